//! A batch's creates and audit appends written together: one multi-row statement per table for
//! the whole run of such jobs, all sent as one pipeline, with no savepoint per job.
//!
//! A create refused because a unique term is held (by a committed subject or by an earlier job of
//! the same batch) is found before anything is written: the batch's unique terms are read with
//! one query under the audit head's lock, which every writer of every process holds until it
//! commits, so no other transaction can claim a term between that read and these inserts. The
//! primary keys still decide: if any statement of the group fails anyway (a term claimed behind
//! the store's back, a subject id already taken), the writer rolls the transaction back and runs
//! the batch again one savepoint per job ([`Tx::Split`]), so the failure is only its job's.

use std::collections::HashSet;

use amanah_core::audit::{canonical_bytes, head_mac, AuditDraft, AuditRecord};
use futures_util::future::join_all;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Transaction;

use super::*;
use crate::rows::to_hash;
use crate::{sealed_fields, NewSubject};

/// Whether `op` is written in a group: a create without consents (a consent's number is read
/// back from its insert), or entries that record reads.
pub(super) fn groupable(op: &Op) -> bool {
    match op {
        Op::InsertSubject(s, _) => s.consents.is_empty(),
        Op::Append(_) => true,
        _ => false,
    }
}

/// The unique terms among `$1` (categories) and `$2` (terms) that a subject already holds: one
/// probe of the primary key per term (a join could scan the whole table instead).
const HELD_TERMS: &str = "SELECT t.category, t.term
     FROM unnest($1::text[], $2::bytea[]) AS t(category, term)
     CROSS JOIN LATERAL (SELECT 1 FROM unique_index u
                         WHERE u.category = t.category AND u.term = t.term LIMIT 1) held";

const INSERT_SUBJECTS: &str = "INSERT INTO subjects (id, created_at, fields)
     SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[])";

const INSERT_DATA_KEYS: &str =
    "INSERT INTO amanah_keys.data_keys (subject_id, kek_id, key_version, wrapped_key)
     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bytea[])";

/// No `ON CONFLICT`: a term found free above that is held after all fails the group.
const INSERT_UNIQUE_TERMS: &str = "INSERT INTO unique_index (category, term, subject_id)
     SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[])";

const INSERT_TERMS: &str = "INSERT INTO blind_index (category, term, subject_id)
     SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[])";

/// A new subject has no purpose yet (one subject id given twice fails at `subjects` first).
const INSERT_PURPOSES: &str = "INSERT INTO subject_purposes (subject_id, purpose, collected_at)
     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])";

const INSERT_AUDIT_ROWS: &str =
    "INSERT INTO audit_log (seq, at, actor, role, action, purpose, basis, outcome, reason,
                            subject_id, fields, policy_version, hash)
     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                          $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                          $11::text[], $12::text[], $13::bytea[])";

pub(super) const WRITE_HEAD: &str =
    "UPDATE audit_head SET seq = $1, hash = $2, mac = $3 WHERE id = 1";

/// The rows of a group's creates, column by column.
#[derive(Default)]
struct Creates<'o> {
    ids: Vec<&'o str>,
    created: Vec<i64>,
    kek: Vec<&'o str>,
    version: Vec<i64>,
    wrapped: Vec<&'o [u8]>,
    /// Each subject's sealed fields (`crate::sealed_fields`).
    fields: Vec<Vec<u8>>,
    unique: Terms<'o>,
    terms: Terms<'o>,
    purpose_subject: Vec<&'o str>,
    purpose: Vec<&'o str>,
    purpose_at: Vec<i64>,
}

#[derive(Default)]
struct Terms<'o> {
    category: Vec<&'o str>,
    term: Vec<&'o [u8]>,
    subject: Vec<&'o str>,
}

impl<'o> Creates<'o> {
    fn push(&mut self, s: &'o NewSubject, fields: Vec<u8>) {
        let at = s.created_at_micros;
        self.ids.push(&s.id);
        self.created.push(at);
        self.kek.push(&s.wrapped_key.kek_id);
        self.version.push(i64::from(s.wrapped_key.version));
        self.wrapped.push(&s.wrapped_key.ciphertext);
        self.fields.push(fields);
        for f in &s.fields {
            if let Some(term) = &f.index_term {
                let to = if f.unique {
                    &mut self.unique
                } else {
                    &mut self.terms
                };
                to.category.push(&f.category);
                to.term.push(term);
                to.subject.push(&s.id);
            }
        }
        self.purpose_subject.push(&s.id);
        self.purpose.push(&s.purpose);
        self.purpose_at.push(at);
    }
}

/// The audit rows of a group, column by column.
#[derive(Default)]
struct AuditRows<'r> {
    seq: Vec<i64>,
    at: Vec<i64>,
    actor: Vec<&'r str>,
    role: Vec<&'r str>,
    action: Vec<&'r str>,
    purpose: Vec<Option<&'r str>>,
    basis: Vec<Option<&'r str>>,
    outcome: Vec<&'r str>,
    reason: Vec<Option<&'r str>>,
    subject: Vec<Option<&'r str>>,
    fields: Vec<String>,
    policy_version: Vec<&'r str>,
    hash: Vec<&'r [u8]>,
}

impl<'r> AuditRows<'r> {
    fn push(&mut self, r: &'r AuditRecord) {
        let e = &r.entry;
        self.seq.push(r.seq as i64);
        self.at.push(e.at_micros);
        self.actor.push(&e.actor);
        self.role.push(&e.role);
        self.action.push(e.action.as_str());
        self.purpose.push(e.purpose.as_deref());
        self.basis.push(e.basis.as_deref());
        self.outcome.push(e.outcome.as_str());
        self.reason.push(e.reason.as_deref());
        self.subject.push(e.subject.as_deref());
        self.fields.push(crate::lists::encode(&e.fields));
        self.policy_version.push(&e.policy_version);
        self.hash.push(&r.hash);
    }
}

/// The record of the entry after the chain's end, which moves to it (nothing is written).
pub(super) fn seal(chain: &mut Chain<'_>, entry: &AuditDraft) -> AuditRecord {
    // Stored strings are bounded (and free of NUL, which `text` cannot hold).
    let entry = entry.clone().bounded();
    let seq = chain.seq + 1;
    let hash = chain.key.chain(&chain.hash, &canonical_bytes(seq, &entry));
    chain.seq = seq;
    chain.hash = hash;
    AuditRecord { seq, entry, hash }
}

/// Writes a run of [`groupable`] jobs after the locked head; each job's result, in order, and
/// whether the head was written. With `last` (nothing follows the group in the batch) and
/// entries appended, the new head is written in the same pipeline. A database error fails the
/// whole group: retryable as it is, otherwise as [`Tx::Split`].
pub(super) async fn write_group(
    tx: &Transaction<'_>,
    stmts: &mut Stmts,
    chain: &mut Chain<'_>,
    ops: &[&Op],
    held: Option<Held>,
    last: bool,
) -> Result<(BatchResults, bool), Tx> {
    let mut held = match held {
        Some(held) => held,
        None => held_terms(tx, ops).await?,
    };
    let mut results: BatchResults = Vec::with_capacity(ops.len());
    let mut creates = Creates::default();
    for op in ops {
        match op {
            Op::InsertSubject(s, audit) => {
                // Every field is checked before any of this job's terms is claimed, as the
                // job's own inserts would find them.
                let taken = s.fields.iter().find(|f| {
                    f.unique
                        && f.index_term
                            .is_some_and(|t| held.contains(&(f.category.clone(), t)))
                });
                if let Some(f) = taken {
                    let category = f.category.clone();
                    results.push(Err(StoreError::Unique { category }));
                    continue;
                }
                let sealed = match sealed_fields::encode_writes(&s.fields) {
                    Ok(sealed) => sealed,
                    Err(e) => {
                        results.push(Err(e));
                        continue;
                    }
                };
                for f in s.fields.iter().filter(|f| f.unique) {
                    if let Some(t) = f.index_term {
                        held.insert((f.category.clone(), t));
                    }
                }
                creates.push(s, sealed);
                results.push(Ok(vec![seal(chain, audit)]));
            }
            Op::Append(entries) => {
                results.push(Ok(entries.iter().map(|e| seal(chain, e)).collect()));
            }
            _ => {
                return Err(Tx::Store(StoreError::Backend(
                    "a write that cannot be grouped was grouped".into(),
                )))
            }
        }
    }
    let mut audit = AuditRows::default();
    for records in results.iter().flatten() {
        for r in records {
            audit.push(r);
        }
    }
    let head = (last && !audit.seq.is_empty()).then(|| {
        let mac = head_mac(chain.key, chain.seq, &chain.hash);
        (chain.seq as i64, chain.hash, mac)
    });

    type Params<'p> = Vec<&'p (dyn ToSql + Sync)>;
    let mut batch: Vec<(&'static str, Params<'_>)> = Vec::new();
    let c = &creates;
    if !c.ids.is_empty() {
        batch.push((INSERT_SUBJECTS, vec![&c.ids, &c.created, &c.fields]));
        batch.push((
            INSERT_DATA_KEYS,
            vec![&c.ids, &c.kek, &c.version, &c.wrapped],
        ));
        for (q, t) in [(INSERT_UNIQUE_TERMS, &c.unique), (INSERT_TERMS, &c.terms)] {
            if !t.term.is_empty() {
                batch.push((q, vec![&t.category, &t.term, &t.subject]));
            }
        }
        batch.push((
            INSERT_PURPOSES,
            vec![&c.purpose_subject, &c.purpose, &c.purpose_at],
        ));
    }
    let a = &audit;
    if !a.seq.is_empty() {
        batch.push((
            INSERT_AUDIT_ROWS,
            vec![
                &a.seq,
                &a.at,
                &a.actor,
                &a.role,
                &a.action,
                &a.purpose,
                &a.basis,
                &a.outcome,
                &a.reason,
                &a.subject,
                &a.fields,
                &a.policy_version,
                &a.hash,
            ],
        ));
    }
    let head_params = head
        .as_ref()
        .map(|(seq, hash, mac)| (seq, &hash[..], &mac[..]));
    if let Some((seq, hash, mac)) = &head_params {
        batch.push((WRITE_HEAD, vec![*seq, hash, mac]));
    }
    let mut prepared = Vec::with_capacity(batch.len());
    for (q, params) in &batch {
        prepared.push((
            stmts.get(tx, q).await.map_err(|e| match e {
                Tx::Db(e) => split(e),
                other => other,
            })?,
            params,
        ));
    }
    // Sent in order before any answer is awaited: one round trip. The first failure is the
    // cause; the statements after it fail only because the transaction is aborted.
    let done = join_all(
        prepared
            .iter()
            .map(|(st, params)| tx.execute(st, params.as_slice())),
    )
    .await;
    if let Some(e) = done.into_iter().find_map(Result::err) {
        return Err(split(e));
    }
    Ok((results, head.is_some()))
}

/// A database error in a group: the transaction is run again, whole when the error is
/// retryable, otherwise one savepoint per job.
fn split(e: tokio_postgres::Error) -> Tx {
    if retryable(&e) {
        Tx::Db(e)
    } else {
        Tx::Split(e)
    }
}

/// Unique terms (category, term) already held.
pub(super) type Held = HashSet<(String, [u8; 32])>;

/// The unique terms of a group's creates that a subject already holds.
pub(super) async fn held_terms(tx: &Transaction<'_>, ops: &[&Op]) -> Result<Held, Tx> {
    let mut categories: Vec<&str> = Vec::new();
    let mut terms: Vec<&[u8]> = Vec::new();
    for op in ops {
        if let Op::InsertSubject(s, _) = op {
            for f in s.fields.iter().filter(|f| f.unique) {
                if let Some(t) = &f.index_term {
                    categories.push(&f.category);
                    terms.push(t);
                }
            }
        }
    }
    if terms.is_empty() {
        return Ok(HashSet::new());
    }
    // Planned each time (an unnamed statement): a plan cached while the table was small could
    // scan it whole for each term once it is not.
    let rows = tx
        .query_typed(
            HELD_TERMS,
            &[(&categories, Type::TEXT_ARRAY), (&terms, Type::BYTEA_ARRAY)],
        )
        .await
        .map_err(split)?;
    rows.iter()
        .map(|r| {
            let category: String = r.try_get(0)?;
            let term: &[u8] = r.try_get(1)?;
            Ok((category, to_hash(term)))
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(split)
}
