-- Schema 8: the writer keeps the batch ledger (`sqlite/ledger.rs`: a row per key-store commit in
-- `keys.meta`, a row per data commit in `store_meta`), so that recovery at open checks only the
-- batches that did not reach the data file. A store written by an earlier binary has no
-- trusted ledger: its first recovery checks every subject, then starts one. The number also
-- keeps earlier binaries, which would commit keys without a ledger row, from writing the store.
DELETE FROM store_meta WHERE key = 'ledger';
