-- Schema 11: a subject's sealed fields move into its own row (`subjects.fields`, framed as
-- `crate::sealed_fields` reads them: a format byte, then per field in ascending byte order of
-- category a u16 length, the category, a u32 length, the sealed value; empty for none). One row
-- to write per new subject and one to read per subject found. Each value stays sealed on its
-- own, bound to its subject, category and key version: the move copies ciphertexts, it never
-- opens one.
-- (Bytes written without backslash escapes: their meaning follows standard_conforming_strings.)
ALTER TABLE subjects ADD COLUMN fields BYTEA NOT NULL DEFAULT ''::bytea;
UPDATE subjects s SET fields = packed.fields
FROM (
    SELECT subject_id, decode('01', 'hex') || string_agg(
               int2send(octet_length(convert_to(category, 'UTF8'))::int2)
               || convert_to(category, 'UTF8')
               || int4send(octet_length(ciphertext)) || ciphertext,
               ''::bytea ORDER BY convert_to(category, 'UTF8')) AS fields
    FROM subject_fields GROUP BY subject_id
) packed
WHERE packed.subject_id = s.id;
DROP TABLE subject_fields;
