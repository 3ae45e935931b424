-- Schema 11: a subject's sealed fields move into its own row (`subjects.fields`, framed as
-- `crate::sealed_fields` reads them: a format byte, then per field in ascending byte order of
-- category a u16 length, the category, a u32 length, the sealed value; empty for none). One row
-- to write per new subject and one to read per subject found. Each value stays sealed on its
-- own, bound to its subject, category and key version: the move copies ciphertexts, it never
-- opens one.
ALTER TABLE subjects ADD COLUMN fields BLOB NOT NULL DEFAULT x'';
UPDATE subjects SET fields = (
    SELECT unhex('01' || group_concat(
               printf('%04X', length(CAST(f.category AS BLOB))) || hex(f.category)
               || printf('%08X', length(f.ciphertext)) || hex(f.ciphertext),
               '' ORDER BY CAST(f.category AS BLOB)))
    FROM subject_fields f WHERE f.subject_id = subjects.id)
WHERE EXISTS (SELECT 1 FROM subject_fields f WHERE f.subject_id = subjects.id);
DROP TABLE subject_fields;
