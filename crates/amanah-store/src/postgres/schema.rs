//! The PostgreSQL schema: ordered migrations in `schema_version`, under an advisory lock.

use amanah_core::audit::head_mac;
use amanah_crypto::audit::{AuditKey, GENESIS};
use tokio_postgres::{Client, Transaction};

use super::*;
use crate::rows::{self, to_hash};
use crate::{integrity, sql, StoreError, StoreResult};

async fn seal_access_rows(tx: &Transaction<'_>, audit_key: &AuditKey) -> StoreResult<()> {
    for row in tx
        .query(sql::UNSEALED_API_KEYS.pg, &[])
        .await
        .map_err(backend)?
    {
        let (key, _) = rows::api_key(&row)?;
        let mac = integrity::api_key_mac(audit_key, &key);
        tx.execute(sql::SEAL_API_KEY.pg, &[&key.id, &&mac[..]])
            .await
            .map_err(backend)?;
    }
    for row in tx
        .query(sql::UNSEALED_POLICIES.pg, &[])
        .await
        .map_err(backend)?
    {
        let (policy, _) = rows::policy(&row)?;
        let mac = integrity::policy_mac(audit_key, &policy);
        tx.execute(sql::SEAL_POLICY.pg, &[&policy.seq, &&mac[..]])
            .await
            .map_err(backend)?;
    }
    Ok(())
}

/// Ordered migrations: `(version, SQL)`. A database whose `schema_version` is above the last
/// one here was written by a newer Amanah and is refused.
pub(super) const MIGRATIONS: &[(i64, &str)] = &[
    (1, SCHEMA_V1),
    (2, SCHEMA_V2),
    (3, rights::SCHEMA_V3),
    (4, accountability::SCHEMA_V4),
    (5, SCHEMA_V5),
    (6, SCHEMA_V6),
    (7, SCHEMA_V7),
];
/// The rows that grant access carry a MAC (see `integrity`); the migration seals those there.
pub(super) const SCHEMA_V7: &str = "ALTER TABLE api_keys ADD COLUMN mac BYTEA;
ALTER TABLE policy_versions ADD COLUMN mac BYTEA;";
/// Every API key names the person it was issued to (four eyes count people).
pub(super) const SCHEMA_V5: &str = "ALTER TABLE api_keys ADD COLUMN holder TEXT;";
/// Key of the advisory lock that serializes migrations of concurrently starting processes.
pub(super) const MIGRATION_LOCK: i64 = 0x616d_616e_6168; // "amanah"

pub(super) const SCHEMA_V1: &str = r#"
CREATE TABLE subjects (
    id TEXT PRIMARY KEY,
    kek_id TEXT NOT NULL,
    key_version BIGINT NOT NULL,
    wrapped_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE subject_fields (
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    category TEXT NOT NULL,
    ciphertext BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (subject_id, category)
);
CREATE TABLE blind_index (
    category TEXT NOT NULL,
    term BYTEA NOT NULL,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    PRIMARY KEY (category, term, subject_id)
);
CREATE INDEX blind_index_by_subject ON blind_index(subject_id, category);
CREATE TABLE unique_index (
    category TEXT NOT NULL,
    term BYTEA NOT NULL,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    PRIMARY KEY (category, term)
);
CREATE INDEX unique_index_by_subject ON unique_index(subject_id, category);
CREATE TABLE subject_purposes (
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    collected_at BIGINT NOT NULL,
    PRIMARY KEY (subject_id, purpose)
);
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    purpose TEXT,
    basis TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    subject_id TEXT,
    fields TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    hash BYTEA NOT NULL
);
CREATE INDEX audit_by_subject ON audit_log(subject_id, seq);
-- One row, present from the start: every write transaction locks it. seq 0 is the empty log.
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    mac BYTEA NOT NULL
);
INSERT INTO audit_head (id, seq, hash, mac)
    VALUES (1, 0, decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'));
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE TABLE policy_versions (
    seq BIGINT PRIMARY KEY,
    version TEXT NOT NULL,
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    applied_at BIGINT NOT NULL
);
"#;

pub(super) const SCHEMA_V2: &str = r#"
CREATE TABLE consents (
    seq BIGINT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    purpose_version TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    granted BOOLEAN NOT NULL,
    given_by TEXT NOT NULL,
    capture_channel TEXT NOT NULL,
    contact_channels TEXT NOT NULL,
    guardian_subject_id TEXT REFERENCES subjects(id) ON DELETE SET NULL,
    guardian_details BYTEA,
    evidence BYTEA,
    evidence_sha256 TEXT,
    recorded_by TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX consents_by_subject ON consents(subject_id, seq);
CREATE INDEX consents_by_guardian ON consents(guardian_subject_id);
CREATE TABLE consent_current (
    purpose TEXT NOT NULL,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    consent_seq BIGINT NOT NULL,
    PRIMARY KEY (purpose, subject_id)
);
CREATE INDEX consent_current_by_subject ON consent_current(subject_id);
CREATE TABLE relations (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    related_subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    evidence BYTEA,
    evidence_sha256 TEXT,
    recorded_by TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX relations_by_subject ON relations(subject_id);
CREATE INDEX relations_by_related ON relations(related_subject_id);
"#;

/// Schema 6: comma-joined lists become JSON arrays holding exactly the list that schema 5 read
/// back (`string_to_array('', ',')` is the empty array, as the old reader's empty list), so
/// every old audit entry still matches its MAC. The genesis head is signed in `migrate`.
pub(super) const SCHEMA_V6: &str = r#"
UPDATE audit_log SET fields = to_json(string_to_array(fields, ','))::text;
UPDATE disclosures SET categories = to_json(array_remove(string_to_array(categories, ','), ''))::text;
UPDATE breaches SET categories = to_json(array_remove(string_to_array(categories, ','), ''))::text;
"#;

/// The newest schema version this binary understands.
pub const PG_SCHEMA_VERSION: i64 = 7;

pub(super) async fn migrate(client: &mut Client, audit_key: &AuditKey) -> StoreResult<()> {
    let tx = client.transaction().await.map_err(backend)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(backend)?;
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning;
         CREATE TABLE IF NOT EXISTS schema_version (
             version BIGINT PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(backend)?;
    let found: i64 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
        .await
        .map_err(backend)?
        .get(0);
    if found > PG_SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: PG_SCHEMA_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(sql).await.map_err(backend)?;
        if *version == 7 {
            seal_access_rows(&tx, audit_key).await?;
        }
        if *version == 6 {
            recover_legacy_fields(&tx, audit_key).await?;
            // The head row of an empty log, written unsigned by schema 1, gets its MAC: from
            // now on a head that does not verify stops every write, `seq` 0 included.
            let mac = head_mac(audit_key, 0, &GENESIS);
            tx.execute(
                "UPDATE audit_head SET hash = $1, mac = $2
                 WHERE id = 1 AND seq = 0 AND NOT EXISTS (SELECT 1 FROM audit_log)",
                &[&&GENESIS[..], &&mac[..]],
            )
            .await
            .map_err(backend)?;
        }
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(backend)?;
        tracing::info!(version, "applied a PostgreSQL schema migration");
    }
    tx.commit().await.map_err(backend)
}

/// Schema 6: entries that schema 5 could not read back (a comma inside a field name) get the
/// list their MAC confirms (see `lists::recover_fields`). Streams the entries with more or
/// fewer than one field, with the hash of the entry before each.
pub(super) async fn recover_legacy_fields(
    tx: &Transaction<'_>,
    audit_key: &AuditKey,
) -> StoreResult<()> {
    use futures_util::StreamExt;
    let rows = tx
        .query_raw(
            "SELECT * FROM (
                 SELECT seq, at, actor, role, action, purpose, basis, outcome, reason, subject_id,
                        fields, policy_version, hash,
                        LAG(seq) OVER (ORDER BY seq), LAG(hash) OVER (ORDER BY seq)
                 FROM audit_log) t
             WHERE json_array_length(fields::json) <> 1 ORDER BY seq",
            std::iter::empty::<i64>(),
        )
        .await
        .map_err(backend)?;
    futures_util::pin_mut!(rows);
    let mut recovered = Vec::new();
    while let Some(row) = rows.next().await {
        let row = row.map_err(backend)?;
        let record = rows::audit(&row)?;
        let previous = match row.try_get::<_, Option<i64>>(13).map_err(backend)? {
            None if record.seq == 1 => GENESIS,
            Some(p) if p as u64 + 1 == record.seq => {
                to_hash(row.try_get::<_, &[u8]>(14).map_err(backend)?)
            }
            _ => continue,
        };
        if let Some(fields) = crate::lists::recover_fields(audit_key, &record, &previous) {
            recovered.push((record.seq as i64, crate::lists::encode(&fields)));
        }
    }
    for (seq, fields) in recovered {
        tracing::info!(seq, "audit entry's field list recovered from its MAC");
        tx.execute(
            "UPDATE audit_log SET fields = $1 WHERE seq = $2",
            &[&fields, &seq],
        )
        .await
        .map_err(backend)?;
    }
    Ok(())
}
