-- Schema 10: documents. The file itself is an object in the object store under a random name,
-- encrypted as a stream under the subject's data key; here only its place and what identifies
-- it: the media type, size and SHA-256 of the plaintext are sealed under the same key
-- (`sealed`). A category holds versions 1, 2, ... (a rectification adds one); the highest is
-- the current document.
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    category TEXT NOT NULL,
    version BIGINT NOT NULL,
    object TEXT NOT NULL UNIQUE,
    sealed BYTEA NOT NULL,
    stored_size BIGINT NOT NULL,
    uploaded_at BIGINT NOT NULL,
    UNIQUE (subject_id, category, version)
);

-- Objects to delete from the object store: those of erased documents (pending_since NULL,
-- deleted at the next sweep) and those of uploads under way (pending_since set; an upload that
-- commits removes its row, one that never does is deleted a day later). A trigger fills it, so
-- no way of deleting a document (erasure, retention, a crash recovery's purge) forgets its object.
CREATE TABLE IF NOT EXISTS object_trash (
    object TEXT PRIMARY KEY,
    pending_since BIGINT
);

CREATE OR REPLACE FUNCTION documents_to_trash() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO object_trash (object, pending_since) VALUES (OLD.object, NULL)
    ON CONFLICT (object) DO UPDATE SET pending_since = NULL;
    RETURN OLD;
END
$$;

DROP TRIGGER IF EXISTS documents_to_trash ON documents;
CREATE TRIGGER documents_to_trash AFTER DELETE ON documents
    FOR EACH ROW EXECUTE FUNCTION documents_to_trash();
