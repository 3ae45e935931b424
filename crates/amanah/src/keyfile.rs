//! The key file on disk: reading it (refusing one readable by group or others), replacing it
//! atomically, and the leases that make key rotation safe while servers run.
//!
//! **Leases.** A process that may wrap data keys under the key file's active KEK holds a shared
//! lock (`flock`) on `<key file>.<active KEK id>.lock` for as long as it may: every command that
//! loads the key file takes one, and a server swaps it when it reloads the file. A rotation
//! that wants to rewrap the keys of an older KEK first takes that KEK's lock *exclusively*,
//! which it gets only once no process still has that KEK as its active key: the kernel, not a
//! timer, says when the last writer under the old key is gone (a crashed process's locks are
//! released with it). A process takes its lease *after* reading the file and then checks that
//! the file is still the one it read; a rotation replaces the file *before* it asks for the
//! exclusive lock, so either the process sees the new file and reads again, or the rotation
//! waits for the process.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amanah_crypto::KeyRing;
use amanah_vault::Vault;
use anyhow::{bail, Context, Result};

/// How often a server looks at the key file (it also reloads it on SIGHUP).
pub(crate) const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// What identifies one version of the key file: a rewrite (always a rename) changes the inode,
/// an edit in place the modification time or length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
    mtime_ns: i128,
    len: u64,
}

impl FileId {
    fn of(m: &std::fs::Metadata) -> FileId {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            len: m.len(),
        }
    }
}

/// The identity of the key file at `path` now.
pub(crate) fn file_id(path: &Path) -> std::io::Result<FileId> {
    std::fs::metadata(path).map(|m| FileId::of(&m))
}

/// Reads and parses the key file, refusing one that group or others may read or write.
/// Returns the ring and the identity of the file it was read from.
pub(crate) fn read_key_file(path: &Path) -> Result<(KeyRing, FileId)> {
    let mut file =
        File::open(path).with_context(|| format!("cannot read the key file {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "the key file {} is readable or writable by group or others (mode {:o}): run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(1024));
    file.read_to_end(&mut bytes)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    let ring =
        KeyRing::from_file_bytes(&bytes).with_context(|| format!("key file {}", path.display()))?;
    Ok((ring, FileId::of(&meta)))
}

/// Replaces the key file atomically: the new content goes to a private temporary file beside
/// it (0600), is synced, renamed over the old one, and the directory is synced. A crash leaves
/// the old file or the new one, never a mix.
pub(crate) fn replace_key_file(path: &Path, ring: &KeyRing) -> Result<()> {
    let dir = parent_dir(path);
    let tmp = dir.join(format!(".{}.{}.tmp", file_name(path), std::process::id()));
    // A leftover of a crashed run of this same process id is ours to replace.
    let _ = std::fs::remove_file(&tmp);
    let written = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&ring.to_file_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot replace the key file {}", path.display()));
    }
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "master.key".into())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// The lock file of one KEK's lease, beside the key file.
pub(crate) fn lease_path(key_path: &Path, kek: &str) -> PathBuf {
    parent_dir(key_path).join(format!("{}.{kek}.lock", file_name(key_path)))
}

/// Opens (creating, 0600) a lease's lock file. It holds nothing; only its lock matters.
pub(crate) fn open_lock_file(path: &Path) -> Result<File> {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => Ok(f),
        // A directory the process may not write to: the file may exist already.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => File::open(path)
            .with_context(|| format!("cannot open the lock file {}", path.display())),
        Err(e) => Err(e).with_context(|| format!("cannot open the lock file {}", path.display())),
    }
}

/// A shared lock on the lease of the KEK a process wraps under; released when dropped.
#[derive(Debug)]
pub(crate) struct Lease {
    _file: File,
    kek: String,
}

/// Reads the key file and takes the lease of its active KEK, reading again if a rotation
/// replaced the file in between (see the module's documentation).
pub(crate) fn load_leased(path: &Path) -> Result<(KeyRing, Lease, FileId)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (ring, id) = read_key_file(path)?;
        let kek = ring.active_kek_id().to_owned();
        let lock = lease_path(path, &kek);
        let file = open_lock_file(&lock)?;
        match file.try_lock_shared() {
            Ok(()) => {
                if file_id(path).ok() == Some(id) {
                    return Ok((ring, Lease { _file: file, kek }, id));
                }
            }
            // A rotation is retiring this KEK: the file has been replaced already.
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", lock.display()))
            }
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "the key file {} keeps changing under a key rotation: try again once it is done",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lease taken by `load_keys`, held for the life of the process (a server hands it to its
/// key-file watcher, which swaps it on reload).
static PROCESS_LEASE: Mutex<Option<(Lease, FileId)>> = Mutex::new(None);

pub(crate) fn keep_process_lease(lease: Lease, id: FileId) {
    let mut held = match PROCESS_LEASE.lock() {
        Ok(h) => h,
        Err(p) => p.into_inner(),
    };
    *held = Some((lease, id));
}

fn take_process_lease() -> Option<(Lease, FileId)> {
    match PROCESS_LEASE.lock() {
        Ok(mut h) => h.take(),
        Err(p) => p.into_inner().take(),
    }
}

/// Keeps a serving vault's key ring in step with the key file: the file is looked at every
/// [`RELOAD_INTERVAL`] and on SIGHUP; when it changed, it is read again (with a new lease) and
/// put in force. The previous ring's lease is released once no operation holds that ring any
/// more, which is what a rotation waits for before rewrapping.
pub(crate) fn spawn_watcher(vault: Arc<Vault>, path: PathBuf) -> Result<()> {
    let (lease, id) = match take_process_lease() {
        Some(held) => held,
        // A vault made by `init` (the demo): lease the file it wrote, and serve that ring.
        None => {
            let (ring, lease, id) = load_leased(&path)?;
            vault.replace_keys(Arc::new(ring))?;
            (lease, id)
        }
    };
    let mut current = Some(id);
    tokio::spawn(async move {
        let mut lease = Some(lease);
        // Rings replaced but maybe still used by an operation in flight, with their leases.
        let mut draining: Vec<(Arc<KeyRing>, Option<Lease>)> = Vec::new();
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(RELOAD_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = match &mut hangup {
                Some(h) => tokio::select! {
                    _ = tick.tick() => false,
                    _ = h.recv() => true,
                },
                None => {
                    tick.tick().await;
                    false
                }
            };
            let changed = forced || file_id(&path).ok() != current;
            if changed {
                let p = path.clone();
                match tokio::task::spawn_blocking(move || load_leased(&p)).await {
                    Ok(Ok((ring, new_lease, id))) => {
                        let active = ring.active_kek_id().to_owned();
                        let keks = ring.kek_ids().collect::<Vec<_>>().join(" ");
                        match vault.replace_keys(Arc::new(ring)) {
                            Ok(old) => {
                                tracing::info!(active = %active, keks = %keks, "key file reloaded");
                                draining.push((old, lease.replace(new_lease)));
                                current = Some(id);
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "key file not reloaded");
                                current = Some(id);
                            }
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::error!(error = %format!("{e:#}"), "key file not reloaded")
                    }
                    Err(e) => tracing::error!(error = %e, "key file reload failed"),
                }
            }
            draining.retain(|(ring, held)| {
                let in_use = Arc::strong_count(ring) > 1;
                if !in_use {
                    if let Some(l) = held {
                        tracing::debug!(kek = %l.kek, "lease released");
                    }
                }
                in_use
            });
        }
    });
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn key_file(dir: &Path) -> (PathBuf, KeyRing) {
        let path = dir.join("master.key");
        let ring = KeyRing::generate().unwrap();
        replace_key_file(&path, &ring).unwrap();
        (path, ring)
    }

    #[test]
    fn the_key_file_is_replaced_privately_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut ring) = key_file(dir.path());
        let first = ring.active_kek_id().to_owned();
        let second = ring.add_kek().unwrap();
        let before = file_id(&path).unwrap();
        replace_key_file(&path, &ring).unwrap();
        assert_ne!(file_id(&path).unwrap(), before, "a rewrite is seen");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (back, _) = read_key_file(&path).unwrap();
        assert_eq!(back.active_kek_id(), second);
        assert_eq!(back.older_kek_ids(), vec![first]);
        // No temporary file is left beside it.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["master.key".to_owned()]);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = format!("{:#}", read_key_file(&path).err().unwrap());
        assert!(
            err.contains("readable or writable by group or others"),
            "{err}"
        );
    }

    #[test]
    fn a_lease_holds_off_the_rotation_until_released_and_follows_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut ring) = key_file(dir.path());
        let old = ring.active_kek_id().to_owned();
        let (_, lease, _) = load_leased(&path).unwrap();
        assert_eq!(lease.kek, old);
        // The rotation's exclusive lock on the old KEK waits while a process wraps under it.
        let rotation = open_lock_file(&lease_path(&path, &old)).unwrap();
        assert!(matches!(rotation.try_lock(), Err(TryLockError::WouldBlock)));
        // The rotation replaces the file, then locks: a process loading now follows the new
        // file and is not held up by the exclusive lock.
        let new = ring.add_kek().unwrap();
        replace_key_file(&path, &ring).unwrap();
        drop(lease);
        rotation.try_lock().unwrap();
        let (loaded, lease, id) = load_leased(&path).unwrap();
        assert_eq!(loaded.active_kek_id(), new);
        assert_eq!(lease.kek, new);
        assert_eq!(file_id(&path).unwrap(), id);
    }
}
