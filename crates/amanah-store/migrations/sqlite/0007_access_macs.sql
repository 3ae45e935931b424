-- Schema 7: the rows that grant access carry a MAC under the audit key (see `integrity`); the
-- step's code seals the rows already there.
ALTER TABLE api_keys ADD COLUMN mac BLOB;
ALTER TABLE policy_versions ADD COLUMN mac BLOB;
