//! The revocation epoch of an embedded store: lets a server keep the API keys it verified in
//! memory, without reading the database on every request, while a revocation made by any
//! process on the same store still takes effect at the very next request.
//!
//! A small file beside the database holds two counters, `begun` and `done`. A revocation
//! increments `begun`, commits, then increments `done` (each under an exclusive lock on the
//! file, so that revocations from several processes count one by one). A reader may trust a
//! key it read from the database only while `begun == done` holds the same value as when it
//! read the key: a revocation in progress (`begun > done`) or finished since then moves the
//! value. A process that dies between the two increments leaves `begun > done`, which only
//! turns the memory off (every request reads the database again); it never lets a revoked key
//! through. A revocation also holds a shared lock on a second file (`NAME-access.lock`) from
//! before `begun` to after `done`, and the kernel drops it with its process: so when a store
//! opens and can lock that file exclusively, no revocation is in progress anywhere, and
//! counters left apart by a crash are brought together again (to a value never used before).
//!
//! The counters only grow, and a process trusts no epoch lower than one it has seen: a file
//! written back to its state before a revocation (by someone who can write the data
//! directory) is not trusted once the revocation was seen, and the vault that revokes a key
//! forgets its kept keys at once whatever the file says.
//!
//! Reading the counters is one 16-byte `pread`: far below the B-tree walks of an API-key
//! read. A torn read (racing a write) can only show counters that differ, which reads as "in
//! progress": never a false match. (The old `done` with the new `begun` differ; a `done`
//! being incremented equals `begun` only once all of it is written.)

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{StoreError, StoreResult};

/// The epoch file of a database file: `NAME-access` beside it.
pub(crate) fn epoch_path(db: &Path) -> PathBuf {
    beside(db, "-access")
}

fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// An open epoch file.
pub(crate) struct AccessEpoch {
    file: File,
    /// Held shared by every revocation in progress (see the module doc).
    in_progress: File,
    /// The highest epoch this process has seen. The counters only grow: a file showing less
    /// was written back (someone undoing a revocation's mark), and nothing is trusted then.
    highest: AtomicU64,
}

fn open_private(path: &Path) -> StoreResult<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| failed("open", &e))
}

impl AccessEpoch {
    /// Opens (creating, private to its owner) the epoch file of the database at `db`.
    pub(crate) fn open(db: &Path) -> StoreResult<Self> {
        let epoch = AccessEpoch {
            file: open_private(&epoch_path(db))?,
            in_progress: open_private(&beside(db, "-access.lock"))?,
            highest: AtomicU64::new(0),
        };
        epoch.settle().map_err(|e| failed("settle", &e))?;
        Ok(epoch)
    }

    /// Brings counters a crashed revocation left apart together again, if no revocation is in
    /// progress in any process.
    fn settle(&self) -> std::io::Result<()> {
        match self.in_progress.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(()),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        let result = self.update(|begun, done| {
            (begun != done).then(|| {
                let next = begun.max(done).wrapping_add(1);
                [next, next]
            })
        });
        let _ = self.in_progress.unlock();
        result
    }

    fn counters(&self) -> std::io::Result<(u64, u64)> {
        let mut bytes = [0u8; 16];
        // A new file is empty: both counters zero.
        let n = self.file.read_at(&mut bytes, 0)?;
        if n != 0 && n != 16 {
            // A write in progress, seen half-way: like a revocation in progress.
            return Ok((1, 0));
        }
        let [begun, done] = [&bytes[..8], &bytes[8..]]
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
        Ok((begun, done))
    }

    /// The current epoch, when no revocation is in progress: a key verified from the store
    /// while this was `Some(e)` is still valid while it is `Some(e)`. `None` (a revocation in
    /// progress, one interrupted by a crash, or the file unreadable): read the store.
    pub(crate) fn current(&self) -> Option<u64> {
        let (begun, done) = self.counters().ok()?;
        if begun != done {
            return None;
        }
        let seen = self.highest.fetch_max(done, Ordering::AcqRel);
        (done >= seen).then_some(done)
    }

    /// Marks a revocation as begun; the returned guard marks it done when dropped, after the
    /// revocation's commit (or its failure). Fails when the file cannot be written: then the
    /// revocation must not go ahead, as other servers would not see it.
    pub(crate) fn begin(&self) -> StoreResult<Revoking<'_>> {
        // Shared: revocations run side by side; only a store opening (`settle`) excludes them.
        self.in_progress
            .lock_shared()
            .map_err(|e| failed("lock", &e))?;
        let revoking = Revoking(self);
        self.update(|begun, done| Some([begun.wrapping_add(1), done]))
            .map_err(|e| failed("mark", &e))?;
        Ok(revoking)
    }

    /// Rewrites the counters as `change` says (`None`: leave them), under an exclusive lock of
    /// the file so that updates from several processes never interleave.
    fn update(&self, change: impl FnOnce(u64, u64) -> Option<[u64; 2]>) -> std::io::Result<()> {
        self.file.lock()?;
        let result = (|| {
            let (begun, done) = self.counters()?;
            let Some([begun, done]) = change(begun, done) else {
                return Ok(());
            };
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&begun.to_le_bytes());
            bytes[8..].copy_from_slice(&done.to_le_bytes());
            self.file.write_all_at(&bytes, 0)
        })();
        let _ = self.file.unlock();
        result
    }
}

/// A revocation in progress; see [`AccessEpoch::begin`].
pub(crate) struct Revoking<'a>(&'a AccessEpoch);

impl Drop for Revoking<'_> {
    fn drop(&mut self) {
        if let Err(e) = self
            .0
            .update(|begun, done| Some([begun, done.wrapping_add(1)]))
        {
            // `begun` stays ahead: servers stop trusting keys held in memory (safe, slower)
            // until a store opens with no revocation in progress.
            tracing::error!(error = %e, "cannot mark a key revocation done: API keys are read from the store on every request");
        }
        let _ = self.0.in_progress.unlock();
    }
}

fn failed(what: &str, e: &std::io::Error) -> StoreError {
    StoreError::Backend(format!("cannot {what} the store's revocation epoch: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revocation_moves_the_epoch_and_one_in_progress_hides_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("amanah.db");
        let a = AccessEpoch::open(&db).unwrap();
        // Another process's handle on the same file.
        let b = AccessEpoch::open(&db).unwrap();
        let start = a.current().expect("a new store has an epoch");
        assert_eq!(b.current(), Some(start));
        {
            let _revoking = b.begin().unwrap();
            assert_eq!(a.current(), None, "in progress: nothing may be trusted");
        }
        let after = a.current().expect("done");
        assert_ne!(after, start, "a finished revocation moves the epoch");
        assert_eq!(b.current(), Some(after));
    }

    #[test]
    fn an_interrupted_revocation_is_settled_once_no_revocation_runs() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("amanah.db");
        let before = AccessEpoch::open(&db).unwrap().current().unwrap();
        let dying = AccessEpoch::open(&db).unwrap();
        // A process stopped between its commit and `done`: the guard never drops...
        std::mem::forget(dying.begin().unwrap());
        // ... and while it still holds its lock, nothing is trusted, even by a store opening.
        let other = AccessEpoch::open(&db).unwrap();
        assert_eq!(other.current(), None);
        // Its death releases the lock (closing its file descriptions does the same here).
        drop(dying);
        assert_eq!(other.current(), None, "still apart until a store opens");
        let reopened = AccessEpoch::open(&db).unwrap();
        let settled = reopened.current().expect("settled at open");
        assert_ne!(settled, before, "a value no key was ever trusted under");
        assert_eq!(other.current(), Some(settled));
    }

    #[test]
    fn counters_written_back_are_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("amanah.db");
        let server = AccessEpoch::open(&db).unwrap();
        let before = server.current().unwrap();
        let saved = std::fs::read(epoch_path(&db)).unwrap();
        drop(AccessEpoch::open(&db).unwrap().begin().unwrap());
        let after = server.current().expect("a finished revocation");
        assert_ne!(after, before);
        // The file put back as it was before the revocation: never the old epoch again.
        std::fs::write(epoch_path(&db), saved).unwrap();
        assert_eq!(server.current(), None);
    }

    #[test]
    fn a_torn_or_foreign_file_reads_as_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("amanah.db");
        let epoch = AccessEpoch::open(&db).unwrap();
        assert!(epoch.current().is_some());
        // Half a write, as a read racing it could see.
        std::fs::write(epoch_path(&db), [1u8; 5]).unwrap();
        assert_eq!(epoch.current(), None);
        // Counters that differ, e.g. a revocation's `begun` seen before its `done`.
        let mut apart = [0u8; 16];
        apart[..8].copy_from_slice(&7u64.to_le_bytes());
        apart[8..].copy_from_slice(&6u64.to_le_bytes());
        std::fs::write(epoch_path(&db), apart).unwrap();
        assert_eq!(epoch.current(), None);
        // Opened with no revocation running, the store brings them together again.
        assert!(AccessEpoch::open(&db).unwrap().current().is_some());
    }
}
