-- Schema 8: SQLite's batch ledger (its key store is a file of its own). On PostgreSQL the data
-- keys commit in the same transaction as the rows, so there is nothing to record: the step only
-- keeps the numbering one sequence on both backends.
SELECT 1;
