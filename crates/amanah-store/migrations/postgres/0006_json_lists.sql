-- Schema 6: comma-joined lists become JSON arrays holding exactly the list schema 5 read back
-- (`string_to_array('', ',')` is the empty array, as the old reader's empty list), so every
-- old audit entry still matches its MAC. Then code (`recover_legacy_fields` in
-- src/postgres/schema.rs) recovers the entries schema 5 misread and signs the genesis head.
UPDATE audit_log SET fields = to_json(string_to_array(fields, ','))::text;
UPDATE disclosures SET categories = to_json(array_remove(string_to_array(categories, ','), ''))::text;
UPDATE breaches SET categories = to_json(array_remove(string_to_array(categories, ','), ''))::text;
