//! Recovery at open: settles what a crash left half-committed across the data file and the key
//! store.
//!
//! The writer commits a batch's key changes first, on disk, then the data file (`commit.rs`).
//! A crash between the two leaves:
//! - keys whose subject has no rows (creates whose rows never committed): removed;
//! - rows whose key is already destroyed (an erasure whose data commit never happened): the
//!   subject is purged like an erasure (tombstone, so reads answer 410) and its unique values
//!   are freed.
//!
//! Stores written before that order (the data file committed first) may also hold rows without
//! a key from a create (purged the same way) and keys of subjects the data file records as
//! erased (destroyed). Each settlement appends its own audit entry (`recovery.purge` and
//! `recovery.shred_key` per subject, `recovery.orphan_keys` with a count), which names the
//! pseudonymous subject id at most; after destroying keys both WALs are truncated, as after an
//! erasure. Recovery runs in `SqliteStore::open` before any thread starts, and in the writer
//! when a data commit fails after its key commit went through (or when a batch finds another
//! process's unfinished one). It checks the subjects of the batches the ledger shows unfinished
//! (`ledger.rs`), or every subject when the ledger is not trusted. A store on which a restore is
//! pending (`amanah restore` puts the backup in place, then reconciles) is left to that
//! reconciliation: after a key-store restore, subjects created since the snapshot have no key
//! on purpose, until the restore has reported them.

use amanah_core::audit::{AuditAction, AuditDraft, Outcome};
use rusqlite::Connection;

use super::commit::{sync_chain, truncate_wal, write_head, write_keys, KeyStore};
use super::ledger;
use super::rights::shred;
use super::{append, backend, rows_of, Chain};
use crate::StoreResult;

/// The `store_meta` key that marks a restore whose reconciliation has not run yet.
pub(super) const RESTORE_PENDING: &str = "restore_pending";

/// Who recovery entries name as the actor, and its role.
const ACTOR: &str = "recovery";
const ROLE: &str = "system";

/// What recovery settled.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Recovered {
    /// Subjects whose rows had no data key: purged, their unique values freed.
    pub purged_subjects: u64,
    /// Keys of subjects the data file records as erased: destroyed.
    pub destroyed_keys: u64,
    /// Keys of subjects that have no rows and were never erased: removed.
    pub orphan_keys: u64,
}

impl Recovered {
    fn is_empty(&self) -> bool {
        *self == Recovered::default()
    }
}

pub(super) const KEYLESS: &str = "SELECT s.id FROM main.subjects s
     WHERE NOT EXISTS (SELECT 1 FROM keys.data_keys k WHERE k.subject_id = s.id)";
const STILL_KEYLESS: &str = "SELECT EXISTS (SELECT 1 FROM main.subjects WHERE id = ?1)
        AND NOT EXISTS (SELECT 1 FROM keys.data_keys WHERE subject_id = ?1)";
const ROWLESS_KEYS: &str = "SELECT k.subject_id FROM keys.data_keys k
     WHERE NOT EXISTS (SELECT 1 FROM main.subjects s WHERE s.id = k.subject_id)";
const STILL_ROWLESS: &str = "SELECT EXISTS (SELECT 1 FROM keys.data_keys WHERE subject_id = ?1)
        AND NOT EXISTS (SELECT 1 FROM main.subjects WHERE id = ?1)";
const ERASED: &str = "SELECT EXISTS (SELECT 1 FROM main.erasures WHERE subject_id = ?1)";

pub(super) fn ids(conn: &Connection, sql: &str) -> StoreResult<Vec<String>> {
    conn.prepare(sql)
        .and_then(|mut st| {
            st.query_map([], |r| r.get(0))
                .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
        })
        .map_err(backend)
}

fn holds(conn: &Connection, sql: &str, id: &str) -> StoreResult<bool> {
    conn.prepare_cached(sql)
        .and_then(|mut st| st.query_row([id], |r| r.get(0)))
        .map_err(backend)
}

pub(super) fn restore_pending(conn: &Connection) -> StoreResult<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM main.store_meta WHERE key = ?1)",
        [RESTORE_PENDING],
        |r| r.get(0),
    )
    .map_err(backend)
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn entry(
    action: AuditAction,
    subject: Option<&str>,
    reason: String,
    at: i64,
    policy: &str,
) -> AuditDraft {
    AuditDraft {
        at_micros: at,
        actor: ACTOR.into(),
        role: ROLE.into(),
        action,
        purpose: None,
        basis: None,
        outcome: Outcome::Allowed,
        reason: Some(reason),
        subject: subject.map(str::to_owned),
        fields: Vec::new(),
        policy_version: policy.into(),
    }
}

/// Settles the two files (see the module doc) on the writer's connection and the key store's.
/// Finds nothing to do, and writes nothing, on a store that is consistent.
pub(super) fn recover(
    conn: &mut Connection,
    keys: &mut KeyStore,
    chain: &mut Chain,
) -> StoreResult<Recovered> {
    if restore_pending(conn)? {
        tracing::warn!(
            "a restore is pending: crash recovery is left to its reconciliation (run `amanah restore` again)"
        );
        return Ok(Recovered::default());
    }
    // Read without the write lock: on a consistent store (every key-store batch reached the data
    // file) nothing more is done, and another process's writer is not stalled. Such a writer may
    // be between its key commit and its data commit right now: whatever is found here is
    // decided again under the lock, when no batch is half-committed.
    if let ledger::Scope::Nothing = ledger::read(conn)?.scope() {
        return Ok(Recovered::default());
    }
    let outcome = settle(conn, keys, chain);
    // Whatever failed, nothing staged outlives this attempt.
    chain.keys.take();
    let done = outcome?;
    if !done.is_empty() {
        truncate_wal(conn, keys);
        tracing::warn!(
            purged_subjects = done.purged_subjects,
            destroyed_keys = done.destroyed_keys,
            orphan_keys = done.orphan_keys,
            "crash recovery settled the data file and the key store"
        );
    }
    Ok(done)
}

fn settle(conn: &mut Connection, keys: &mut KeyStore, chain: &mut Chain) -> StoreResult<Recovered> {
    // The data file's write lock: any other writer has finished both of its commits.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    let ledger = ledger::read(&tx)?;
    let (keyless, rowless) = match ledger.scope() {
        ledger::Scope::Nothing => return Ok(Recovered::default()),
        ledger::Scope::Subjects(ids) => (ids.clone(), ids),
        // A store without a trusted ledger (or a pending bulk) is checked whole, once, under
        // the lock: nothing may half-commit between the check and the ledger's new start.
        ledger::Scope::Everything => (ids(&tx, KEYLESS)?, ids(&tx, ROWLESS_KEYS)?),
    };
    let mut purge = Vec::new();
    for id in keyless {
        if holds(&tx, STILL_KEYLESS, &id)? {
            purge.push(id);
        }
    }
    let mut dead = Vec::new();
    for id in rowless {
        if holds(&tx, STILL_ROWLESS, &id)? {
            let erased = holds(&tx, ERASED, &id)?;
            dead.push((id, erased));
        }
    }
    let mut done = Recovered::default();
    if !purge.is_empty() || !dead.is_empty() {
        done = settle_subjects(&tx, chain, &purge, &dead)?;
    }
    // The data file first, so that every settlement is in the log before a key is destroyed
    // (a crash in between redoes the rest, audited again). Every key deleted here belongs to a
    // subject without rows, so the order exposes nothing. The key store's lock is taken before
    // the data lock is released: no other writer runs between the two commits.
    let staged = chain.keys.take();
    let key_tx = keys.begin()?;
    write_keys(&key_tx, &staged)?;
    if !ledger.trusted() {
        // Until both commits are in, the two tokens differ: still a whole-store check.
        ledger::activate(&tx, &key_tx)?;
    }
    tx.commit().map_err(backend)?;
    key_tx.commit().map_err(backend)?;
    // The settled batches are marked done only now: a crash before this leaves them pending,
    // and the next recovery redoes whatever of them the key commit did not reach.
    let settled = if ledger.trusted() {
        ledger.pending_ids()
    } else {
        Vec::new()
    };
    if !settled.is_empty() {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(backend)?;
        ledger::mark_done(&tx, &settled)?;
        tx.commit().map_err(backend)?;
    }
    Ok(done)
}

/// Purges the subjects without a key and destroys the keys without a subject, each audited.
fn settle_subjects(
    tx: &Connection,
    chain: &mut Chain,
    purge: &[String],
    dead: &[(String, bool)],
) -> StoreResult<Recovered> {
    sync_chain(tx, chain)?;
    // The version in force is the newest one whose MAC holds: a forged row names nothing here.
    let policy = crate::integrity::current_policy(
        &chain.key,
        rows_of(tx, crate::sql::NEWEST_POLICIES, &[], crate::rows::policy)?,
    )
    .ok()
    .flatten()
    .map(|p| p.version)
    .unwrap_or_default();
    let at = now_micros();
    let mut done = Recovered::default();
    for id in purge {
        shred(tx, chain, id, at, "recovery: no data key")?;
        append(
            tx,
            chain,
            entry(
                AuditAction::RecoveryPurge,
                Some(id),
                "crash recovery: the subject's rows had no data key (a create never acknowledged, or an erasure whose key was already destroyed); rows purged, unique values freed".into(),
                at,
                &policy,
            ),
        )?;
        done.purged_subjects += 1;
    }
    for (id, erased) in dead {
        chain.keys.delete(id);
        if *erased {
            append(
                tx,
                chain,
                entry(
                    AuditAction::RecoveryShredKey,
                    Some(id),
                    "crash recovery: the data file records this subject as erased; its surviving data key was destroyed".into(),
                    at,
                    &policy,
                ),
            )?;
            done.destroyed_keys += 1;
        } else {
            done.orphan_keys += 1;
        }
    }
    if done.orphan_keys > 0 {
        append(
            tx,
            chain,
            entry(
                AuditAction::RecoveryOrphanKeys,
                None,
                format!(
                    "crash recovery: {} data keys without a subject removed (creates whose rows were never committed)",
                    done.orphan_keys
                ),
                at,
                &policy,
            ),
        )?;
    }
    write_head(tx, chain)?;
    Ok(done)
}
