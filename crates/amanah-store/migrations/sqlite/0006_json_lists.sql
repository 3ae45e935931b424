-- Schema 6: lists stored as JSON arrays, and a signed genesis head. The conversion is code
-- (`migrate_6` in src/sqlite/schema.rs): each comma-joined list becomes exactly the list schema 5
-- read back, and entries whose MAC confirms another grouping get that one.
SELECT 1;
