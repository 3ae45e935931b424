//! The migrations (`crate::migrations`) on PostgreSQL: applied in order under an advisory lock,
//! each recorded in `schema_version`.

use amanah_core::audit::head_mac;
use amanah_crypto::audit::{AuditKey, GENESIS};
use tokio_postgres::{Client, Transaction};

use super::*;
use crate::migrations::{self, SCHEMA_VERSION};
use crate::rows::{self, to_hash};
use crate::sql::{self, writes};
use crate::{integrity, StoreError, StoreResult};

/// Key of the advisory lock that serializes migrations of concurrently starting processes.
pub(super) const MIGRATION_LOCK: i64 = 0x616d_616e_6168; // "amanah"

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
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for step in migrations::after(found) {
        let version = step.version;
        let reshaped = version == migrations::FIELDS_IN_SUBJECT_ROW
            && tx
                .query_one(migrations::SUBJECT_ROW_HAS_FIELDS.pg, &[])
                .await
                .map_err(backend)?
                .get::<_, i64>(0)
                > 0;
        if !reshaped {
            tx.batch_execute(step.postgres).await.map_err(backend)?;
        }
        if version == migrations::LISTS_AS_JSON {
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
        if version == migrations::ACCESS_MACS {
            seal_access_rows(&tx, audit_key).await?;
        }
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(backend)?;
        tracing::info!(
            version,
            name = step.name,
            "applied a PostgreSQL schema migration"
        );
    }
    tx.commit().await.map_err(backend)
}

/// Schema 6's code: entries that schema 5 could not read back (a comma inside a field name) get the
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

/// Schema 7's code: the rows that grant access, written before it, sealed with their MAC.
async fn seal_access_rows(tx: &Transaction<'_>, audit_key: &AuditKey) -> StoreResult<()> {
    for row in tx
        .query(sql::UNSEALED_API_KEYS.pg, &[])
        .await
        .map_err(backend)?
    {
        let (key, _) = rows::api_key(&row)?;
        let mac = integrity::api_key_mac(audit_key, &key);
        tx.execute(writes::SEAL_API_KEY.pg, &[&key.id, &&mac[..]])
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
        tx.execute(writes::SEAL_POLICY.pg, &[&policy.seq, &&mac[..]])
            .await
            .map_err(backend)?;
    }
    Ok(())
}
