-- Schema 9: the organizations a deployment hosts (used in the platform's store only). A tenant's
-- key ring and placement are sealed under the deployment's root, bound to the tenant id;
-- deleting a tenant clears its key ring (every ciphertext of it becomes unreadable at once),
-- and the purge that follows clears its placement once its store is gone.
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    sealed_keys BYTEA,
    sealed_placement BYTEA,
    max_subjects BIGINT,
    max_rps BIGINT,
    created_at BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    purged BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE UNIQUE INDEX IF NOT EXISTS tenants_by_name ON tenants (lower(name)) WHERE status <> 'deleted';
