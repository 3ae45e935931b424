//! Bulk import: rows validated and sealed on worker threads, written all or nothing.

use std::sync::Arc;

use amanah_core::access::{self, Grant};
use amanah_core::audit::AuditDraft;
use amanah_core::policy::LegalBasis;
use amanah_core::{Error, Result};
use amanah_crypto::blind::BlindIndexKey;
use amanah_crypto::KeyRing;
use amanah_store::{BulkInsert, NewSubject, StoreError};
use serde_json::{Map, Value};

use crate::authz::{act, Permit};
use crate::subjects::{age_of_new_values, check_field, new_subject_id, seal_fields};
use crate::vault::{store_error, ActivePolicy, Vault};
use crate::Clock;

/// One row of a bulk import: where it came from and its fields (category -> value).
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub line: u64,
    pub fields: Map<String, Value>,
}

/// Why an import row was refused. Names the category and the rule, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub category: Option<String>,
    pub message: String,
}

/// How [`Vault::import_subjects`] runs.
#[derive(Clone)]
pub struct ImportOptions {
    /// Threads that validate and encrypt rows in parallel.
    pub workers: usize,
    /// Return the ids of the new subjects (in row order).
    pub collect_ids: bool,
    /// Called with the number of rows prepared so far.
    pub progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            collect_ids: false,
            progress: None,
        }
    }
}

/// Result of an import: either every row was imported, or none was and `rejected` says why.
#[derive(Debug, Default)]
pub struct ImportOutcome {
    pub imported: u64,
    /// Sorted by line. Non-empty means nothing was written.
    pub rejected: Vec<RowError>,
    pub ids: Vec<String>,
}

/// Everything a worker thread needs to validate and encrypt import rows.
struct ImportContext {
    active: Arc<ActivePolicy>,
    grant: Grant,
    keys: Arc<KeyRing>,
    blind: std::collections::HashMap<String, Arc<BlindIndexKey>>,
    clock: Arc<dyn Clock>,
    purpose: String,
    draft: AuditDraft,
}

type PreparedRow = Result<(NewSubject, AuditDraft), Vec<RowError>>;

impl ImportContext {
    fn prepare(&self, row: ImportRow) -> PreparedRow {
        let policy = &self.active.policy;
        let line = row.line;
        let mut errors = Vec::new();
        let mut values = Vec::with_capacity(row.fields.len());
        for (name, value) in &row.fields {
            match check_field(policy, &self.grant, name, value) {
                Ok((ty, normalized)) => values.push((name.clone(), ty, normalized)),
                Err(message) => errors.push(RowError {
                    line,
                    category: Some(name.clone()),
                    message,
                }),
            }
        }
        if row.fields.is_empty() {
            errors.push(RowError {
                line,
                category: None,
                message: "the row has no values".into(),
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let now = self.clock.now_micros();
        // An admin imports (cleared for a minor's data), so only the minimum age can refuse.
        if let Err(e) = age_of_new_values(policy, &values, now) {
            return Err(vec![row_error(line, e)]);
        }
        let internal = |e: amanah_crypto::CryptoError| {
            vec![RowError {
                line,
                category: None,
                message: format!("encryption failed: {e}"),
            }]
        };
        let id = new_subject_id();
        let key = self.keys.new_data_key(1).map_err(internal)?;
        let wrapped_key = self.keys.wrap(&key, &id).map_err(internal)?;
        let fields = seal_fields(policy, &id, &key, &values, |c| self.blind.get(c).cloned())
            .map_err(|e| {
                vec![RowError {
                    line,
                    category: None,
                    message: e.to_string(),
                }]
            })?;
        let mut draft = self.draft.clone();
        draft.at_micros = now;
        draft.subject = Some(id.clone());
        draft.fields = values.iter().map(|(n, _, _)| n.clone()).collect();
        Ok((
            NewSubject {
                id,
                wrapped_key,
                created_at_micros: draft.at_micros,
                purpose: self.purpose.clone(),
                fields,
                consents: Vec::new(),
            },
            draft,
        ))
    }
}

fn row_error(line: u64, e: Error) -> RowError {
    match e {
        Error::Invalid { field, message } => RowError {
            line,
            category: field,
            message,
        },
        other => RowError {
            line,
            category: None,
            message: other.to_string(),
        },
    }
}

impl Vault {
    /// Imports many subjects under `purpose` (admin only): every row is validated, encrypted
    /// (rows the source could not parse arrive as `Err` and count as rejected)
    /// on `options.workers` threads and written with its own `subject.create` audit entry, all
    /// in one store transaction. All or nothing: if any row is invalid or collides with a
    /// unique value (in the input or in the vault), nothing is written and every bad row is
    /// returned in [`ImportOutcome::rejected`].
    pub async fn import_subjects(
        &self,
        permit: &Permit<act::SubjectImport>,
        purpose: &str,
        mut rows: tokio::sync::mpsc::Receiver<Vec<std::result::Result<ImportRow, RowError>>>,
        options: ImportOptions,
    ) -> Result<ImportOutcome> {
        let active = permit.active().clone();
        let mut draft = permit.draft();
        draft.purpose = Some(purpose.to_owned());
        let grant = match access::grant(&active.policy, permit.principal().role(), purpose) {
            Ok(g) => g,
            Err(d) => {
                draft.purpose = None;
                return Err(self.refuse(draft, &d).await);
            }
        };
        draft.basis = Some(grant.basis.as_str().to_owned());
        if grant.basis == LegalBasis::Consent {
            // Each person's consent needs its own evidence and receipt: record them one by
            // one (`POST /v1/subjects` with `consent`), not as an anonymous batch.
            return Err(Error::invalid(
                "purpose",
                format!("purpose {purpose:?} rests on consent: subjects collected under it are created one by one with their consent, not imported"),
            ));
        }
        // One snapshot of the ring for the whole import.
        let keys = self.keys();
        let blind = grant
            .writable
            .iter()
            .filter(|c| active.policy.category(c).is_some_and(|c| c.index))
            .map(|c| (c.clone(), self.blind_keys.get(&keys, c)))
            .collect();
        let ctx = Arc::new(ImportContext {
            active: active.clone(),
            grant,
            keys,
            blind,
            clock: self.clock.clone(),
            purpose: purpose.to_owned(),
            draft,
        });
        let (to_store, from_vault) = tokio::sync::mpsc::channel(4);
        let store = self.store.clone();
        let writer = tokio::spawn(async move { store.insert_subjects(from_vault).await });
        let workers = options.workers.max(1);
        let mut outcome = ImportOutcome::default();
        // Line of each row sent to the store, by position: conflicts come back by position.
        let mut lines: Vec<u64> = Vec::new();
        let mut prepared = 0u64;
        let mut store_gone = false;
        while let Some(chunk) = rows.recv().await {
            let per = chunk.len().div_ceil(workers).max(1);
            let mut parts = Vec::with_capacity(workers);
            let mut chunk = chunk
                .into_iter()
                .filter_map(|r| r.map_err(|e| outcome.rejected.push(e)).ok())
                .collect::<Vec<_>>()
                .into_iter();
            loop {
                let part: Vec<ImportRow> = chunk.by_ref().take(per).collect();
                if part.is_empty() {
                    break;
                }
                let ctx = ctx.clone();
                parts.push(tokio::task::spawn_blocking(move || {
                    part.into_iter()
                        .map(|r| (r.line, ctx.prepare(r)))
                        .collect::<Vec<_>>()
                }));
            }
            let mut good = Vec::new();
            for part in parts {
                let part = part
                    .await
                    .map_err(|e| Error::Internal(format!("import worker failed: {e}")))?;
                for (line, row) in part {
                    prepared += 1;
                    match row {
                        Ok((subject, audit)) => {
                            lines.push(line);
                            if options.collect_ids {
                                outcome.ids.push(subject.id.clone());
                            }
                            good.push((subject, audit));
                        }
                        Err(errors) => outcome.rejected.extend(errors),
                    }
                }
            }
            if let Some(p) = &options.progress {
                p(prepared);
            }
            if !good.is_empty() && to_store.send(BulkInsert::Subjects(good)).await.is_err() {
                store_gone = true;
                break;
            }
        }
        // A hosted organization's subject quota holds for the whole import, or none of it is
        // written.
        let places = lines.len() as u64;
        let (mut over_quota, mut reserved) = (None, 0);
        if outcome.rejected.is_empty() && !store_gone {
            match self.subject_quota.reserve(places) {
                Ok(()) => {
                    reserved = places;
                    let _ = to_store.send(BulkInsert::Commit).await;
                }
                Err(e) => over_quota = Some(e),
            }
        }
        drop(to_store);
        let stored = writer
            .await
            .map_err(|e| Error::Internal(format!("import writer failed: {e}")))?;
        if let Some(e) = over_quota {
            return Err(e);
        }
        if stored.is_err() {
            // Nothing was written: the places go back.
            self.subject_quota.release(reserved);
        }
        match stored {
            Ok(n) => outcome.imported = n,
            Err(StoreError::Conflicts(conflicts)) => {
                for c in conflicts {
                    let line = lines.get(c.index as usize).copied().unwrap_or(0);
                    outcome.rejected.push(RowError {
                        line,
                        message: format!(
                            "another subject already holds this {} (earlier in the input or in the vault); the policy declares it unique",
                            c.category
                        ),
                        category: Some(c.category),
                    });
                }
            }
            Err(e) => return Err(store_error(e)),
        }
        if !outcome.rejected.is_empty() {
            outcome.imported = 0;
            outcome.ids.clear();
            outcome.rejected.sort_by_key(|r| r.line);
        }
        Ok(outcome)
    }
}
