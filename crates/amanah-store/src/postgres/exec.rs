//! PostgreSQL's executor for the shared operations (`crate::ops`), and the subject reader.

use amanah_core::audit::{AuditDraft, AuditRecord};
use amanah_crypto::WrappedKey;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Transaction};

use super::*;
use crate::exec::{Exec, KeyWrite, Keyed, Writer};
use crate::{sealed_fields, StoreResult, StoredSubject};

/// The batch transaction (or a job's savepoint in it), with the statements prepared on its
/// connection and the end of the chain read from the locked head.
pub(super) struct PgTx<'a, 'k> {
    pub(super) tx: &'a Transaction<'a>,
    pub(super) stmts: &'a mut Stmts,
    pub(super) chain: &'a mut Chain<'k>,
}

fn params<'v>(args: &'v [Value<'_>]) -> Vec<&'v (dyn ToSql + Sync)> {
    args.iter().map(Value::pg).collect()
}

impl Exec for PgTx<'_, '_> {
    type Error = Tx;

    async fn execute(&mut self, q: Sql, args: &[Value<'_>]) -> Result<u64, Tx> {
        let st = self.stmts.get(self.tx, q.pg).await?;
        Ok(self.tx.execute(&st, &params(args)).await?)
    }

    async fn query<T>(&mut self, q: Sql, args: &[Value<'_>], map: Map<T>) -> Result<Vec<T>, Tx> {
        let st = self.stmts.get(self.tx, q.pg).await?;
        let rows = self.tx.query(&st, &params(args)).await?;
        Ok(rows.iter().map(|r| map(r)).collect::<StoreResult<_>>()?)
    }

    async fn execute_all(&mut self, batch: &[(Sql, Vec<Value<'_>>)]) -> Result<Vec<u64>, Tx> {
        let mut prepared = Vec::with_capacity(batch.len());
        for (q, args) in batch {
            prepared.push((self.stmts.get(self.tx, q.pg).await?, params(args)));
        }
        let tx = self.tx;
        Ok(futures_util::future::try_join_all(
            prepared
                .iter()
                .map(|(st, params)| tx.execute_raw(st, params.iter().copied())),
        )
        .await?)
    }
}

impl Writer for PgTx<'_, '_> {
    async fn append(&mut self, entry: &AuditDraft) -> Result<AuditRecord, Tx> {
        append(self.tx, self.stmts, self.chain, entry).await
    }

    fn audit_key(&self) -> &AuditKey {
        self.chain.key
    }

    /// The key store is a schema of this database: its changes commit with the rest.
    fn key_write<'a>(&mut self, change: KeyWrite<'a>) -> Result<Keyed<'a>, Tx> {
        let (q, args) = change.statement();
        Ok(Keyed::Run(q, args))
    }

    fn keys_erased(&mut self) {
        // The key's pages are PostgreSQL's to recycle; nothing to truncate here.
    }
}

/// Subjects with their key, fields and purposes, from rows of `subject_rows!`.
pub(super) fn subjects_from_rows(rows: &[Row]) -> StoreResult<Vec<StoredSubject>> {
    rows.iter()
        .map(|r| {
            Ok(StoredSubject {
                id: r.try_get(0).map_err(backend)?,
                wrapped_key: WrappedKey {
                    kek_id: r.try_get(1).map_err(backend)?,
                    version: r.try_get::<_, i64>(2).map_err(backend)? as u32,
                    ciphertext: r.try_get(3).map_err(backend)?,
                },
                created_at_micros: r.try_get(4).map_err(backend)?,
                fields: sealed_fields::decode(r.try_get(5).map_err(backend)?),
                restricted_since_micros: r.try_get(6).map_err(backend)?,
                purposes: r.try_get(7).map_err(backend)?,
            })
        })
        .collect()
}
