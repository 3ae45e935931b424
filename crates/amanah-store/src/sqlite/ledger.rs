//! The batch ledger: which key-store commits reached the data file, so that recovery at open
//! checks the subjects of the batches that did not, instead of every subject of the store.
//!
//! Every writer commits key changes only while it holds the data file's write lock, between its
//! data transaction's start and its commit (`commit.rs`), so commits of both files never
//! interleave across processes. Each key-store commit adds a row `batch:<id>` to the key store's
//! `meta`, listing the subjects whose keys it changed (`*` beyond [`MAX_LISTED`]); the data
//! transaction that follows adds `batch:<id>` to `store_meta`. A batch in the key store without
//! its row in the data file is one whose data commit never happened: recovery settles its
//! subjects and marks it done. The next batch prunes the rows of batches found in both files.
//!
//! The ledger is trusted only while both files carry the same token: a store written before
//! it, a file put back by a restore (which drops the data file's token) or a half-done
//! activation has none that match, and recovery then scans every subject once, under the write
//! lock, before it activates a new token.

use rusqlite::{Connection, OptionalExtension};

use super::backend;
use super::commit::KeyChange;
use crate::StoreResult;

/// The `meta` / `store_meta` key of the token that shows both files keep the ledger.
const TOKEN: &str = "ledger";
/// Key prefix of a batch's row in either file.
const PREFIX: &str = "batch:";
/// Most subjects a batch's row lists; a bigger batch (a bulk import) is recorded as `*`, and
/// recovery scans every subject if it never reached the data file.
const MAX_LISTED: usize = 4096;
const UNLISTED: &str = "*";

/// Both files' ledger rows, read through a connection that has the data file as `main` and
/// the key store attached as `keys`.
pub(super) struct Ledger {
    trusted: bool,
    /// `(batch id, subjects)` rows of the key store.
    keyed: Vec<(String, String)>,
    /// Batch ids of the data file.
    done: Vec<String>,
}

/// What recovery must check.
pub(super) enum Scope {
    /// Nothing: every key-store batch reached the data file.
    Nothing,
    /// The subjects of the batches that did not.
    Subjects(Vec<String>),
    /// Every subject (the ledger is not trusted, or a pending batch was too big to list).
    Everything,
}

pub(super) fn read(conn: &Connection) -> StoreResult<Ledger> {
    let token = |sql: &str| -> StoreResult<Option<String>> {
        conn.prepare_cached(sql)
            .and_then(|mut st| st.query_row([TOKEN], |r| r.get(0)).optional())
            .map_err(backend)
    };
    let data = token("SELECT value FROM main.store_meta WHERE key = ?1")?;
    let keys = token("SELECT value FROM keys.meta WHERE key = ?1")?;
    let trusted = data.is_some() && data == keys;
    let rows = |sql: &str| -> StoreResult<Vec<(String, String)>> {
        conn.prepare_cached(sql)
            .and_then(|mut st| {
                st.query_map([format!("{PREFIX}%")], |r| Ok((r.get(0)?, r.get(1)?)))
                    .and_then(|rows| rows.collect())
            })
            .map_err(backend)
    };
    let keyed = rows("SELECT key, value FROM keys.meta WHERE key LIKE ?1")?;
    let done = rows("SELECT key, value FROM main.store_meta WHERE key LIKE ?1")?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    Ok(Ledger {
        trusted,
        keyed,
        done,
    })
}

impl Ledger {
    pub(super) fn trusted(&self) -> bool {
        self.trusted
    }

    /// Key-store batches without their data-file row.
    fn pending(&self) -> impl Iterator<Item = &(String, String)> {
        self.keyed.iter().filter(|(id, _)| !self.done.contains(id))
    }

    /// Ids of the pending batches.
    pub(super) fn pending_ids(&self) -> Vec<String> {
        self.pending().map(|(id, _)| id.clone()).collect()
    }

    pub(super) fn scope(&self) -> Scope {
        if !self.trusted {
            return Scope::Everything;
        }
        let mut subjects = Vec::new();
        for (_, listed) in self.pending() {
            match serde_json::from_str::<Vec<String>>(listed) {
                Ok(ids) => subjects.extend(ids),
                // `*`, or a row this binary cannot read: check everything.
                Err(_) => return Scope::Everything,
            }
        }
        if subjects.is_empty() && self.pending().next().is_none() {
            return Scope::Nothing;
        }
        subjects.sort();
        subjects.dedup();
        Scope::Subjects(subjects)
    }

    /// The row of a batch about to commit `changes` to the key store (`None` for a bulk, whose
    /// subjects are not listed), with what its two commits prune. `None` when the ledger is
    /// not trusted: nothing is recorded until recovery activates it.
    pub(super) fn entry(&self, changes: Option<&[KeyChange]>) -> Option<Entry> {
        if !self.trusted {
            return None;
        }
        let subjects = match changes {
            Some(changes) if changes.len() <= MAX_LISTED => {
                let mut ids: Vec<&str> = changes.iter().map(KeyChange::subject).collect();
                ids.sort_unstable();
                ids.dedup();
                serde_json::to_string(&ids).unwrap_or_else(|_| UNLISTED.to_owned())
            }
            _ => UNLISTED.to_owned(),
        };
        Some(Entry {
            id: format!("{PREFIX}{}", uuid::Uuid::new_v4()),
            subjects,
            // Batches in both files are finished: their key-store rows go with this commit.
            prune_keyed: self
                .keyed
                .iter()
                .filter(|(id, _)| self.done.contains(id))
                .map(|(id, _)| id.clone())
                .collect(),
            // Every data-file row: each is either pruned from the key store by this commit or
            // was already (a row only ever follows its key-store row).
            prune_done: self.done.clone(),
        })
    }
}

/// One batch's ledger rows.
pub(super) struct Entry {
    id: String,
    subjects: String,
    prune_keyed: Vec<String>,
    prune_done: Vec<String>,
}

fn delete(conn: &Connection, table: &str, ids: &[String]) -> StoreResult<()> {
    let mut st = conn
        .prepare_cached(&format!("DELETE FROM {table} WHERE key = ?1"))
        .map_err(backend)?;
    for id in ids {
        st.execute([id]).map_err(backend)?;
    }
    Ok(())
}

/// In the key store's transaction (the key store is its `main`).
pub(super) fn write_keyed(key_tx: &Connection, entry: &Entry) -> StoreResult<()> {
    delete(key_tx, "meta", &entry.prune_keyed)?;
    key_tx
        .prepare_cached("INSERT INTO meta (key, value) VALUES (?1, ?2)")
        .and_then(|mut st| st.execute([&entry.id, &entry.subjects]))
        .map_err(backend)?;
    Ok(())
}

/// In the data transaction, after the key store committed.
pub(super) fn write_done(tx: &Connection, entry: &Entry) -> StoreResult<()> {
    delete(tx, "main.store_meta", &entry.prune_done)?;
    mark_done(tx, std::slice::from_ref(&entry.id))
}

/// Records batches as reached the data file (in the data transaction).
pub(super) fn mark_done(tx: &Connection, ids: &[String]) -> StoreResult<()> {
    let mut st = tx
        .prepare_cached(
            "INSERT INTO main.store_meta (key, value) VALUES (?1, '')
             ON CONFLICT(key) DO NOTHING",
        )
        .map_err(backend)?;
    for id in ids {
        st.execute([id]).map_err(backend)?;
    }
    Ok(())
}

/// Starts the ledger afresh after a whole-store check: a new token and no batch rows, in the
/// data transaction (`tx`) and the key store's (`key_tx`, the key store as its `main`). Until
/// both commit, the tokens differ and the ledger is not trusted.
pub(super) fn activate(tx: &Connection, key_tx: &Connection) -> StoreResult<()> {
    let token = uuid::Uuid::new_v4().to_string();
    let like = format!("{PREFIX}%");
    for (conn, table) in [(tx, "main.store_meta"), (key_tx, "meta")] {
        conn.execute(&format!("DELETE FROM {table} WHERE key LIKE ?1"), [&like])
            .map_err(backend)?;
        conn.execute(
            &format!(
                "INSERT INTO {table} (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value"
            ),
            [TOKEN, &token],
        )
        .map_err(backend)?;
    }
    Ok(())
}

/// Stops trusting the ledger of the data file opened as `main` on `conn` (a restored file):
/// the next recovery checks every subject.
pub(super) fn forget(conn: &Connection) -> StoreResult<()> {
    conn.execute("DELETE FROM main.store_meta WHERE key = ?1", [TOKEN])
        .map_err(backend)?;
    Ok(())
}
