//! `amanah keys rotate`: a new key-encryption key, every data key rewrapped under it while
//! servers keep serving, and the old KEK retired once no data key uses it.
//!
//! 1. A new KEK is added to the key file (atomically, the old KEKs kept) and made active. If the
//!    file already holds older KEKs, an earlier rotation was interrupted: it is resumed and no
//!    KEK is made.
//! 2. For each older KEK, the rotation takes its lease exclusively (see `keyfile`): from then on
//!    no process has it as its active key, so every process knows the new KEK (and can unwrap
//!    what is rewrapped) and none wraps under the old one any more.
//! 3. Every data key not under the active KEK is rewrapped, in batches, each stored only if its
//!    row is still as read (an erasure in between wins), until none is left.
//! 4. The older KEKs are removed from the key file; servers drop them at their next reload
//!    (they held them only to unwrap keys that no longer exist).
//!
//! Each step is recorded in the audit log (KEK ids and counts only).

use std::fs::{File, TryLockError};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amanah_vault::{act, SystemClock, Vault};
use anyhow::{anyhow, bail, Context, Result};

use crate::cli::{operator, DataArgs, Location};
use crate::keyfile::{lease_path, open_lock_file, read_key_file, replace_key_file};

#[derive(clap::Args, Clone)]
pub(crate) struct RotateArgs {
    #[command(flatten)]
    pub(crate) data: DataArgs,
    /// Data keys rewrapped per transaction.
    #[arg(long, env = "AMANAH_ROTATE_BATCH", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) batch: u32,
    /// Stop after rewrapping about this many data keys (whole batches); run the command again
    /// to continue. The new KEK stays active meanwhile and the old one is kept.
    #[arg(long)]
    pub(crate) limit: Option<u64>,
    /// How long to wait for processes that still wrap under an old KEK (servers switch within
    /// a few seconds; a command started before the rotation, e.g. an import, must finish).
    #[arg(long, env = "AMANAH_ROTATE_WAIT", default_value = "120s", value_parser = crate::duration::parse_duration)]
    pub(crate) wait: Duration,
}

/// Exclusive for the whole rotation: two rotations at once would make two KEKs.
fn rotation_lock(key_path: &Path) -> Result<File> {
    let path = lease_path(key_path, "rotate");
    let file = open_lock_file(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => {
            bail!("another `amanah keys rotate` is running on this key file")
        }
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Waits until no process holds `kek` as its active key, then holds its lease exclusively.
fn take_exclusive(key_path: &Path, kek: &str, wait: Duration) -> Result<(File, PathBuf)> {
    let path = lease_path(key_path, kek);
    let file = open_lock_file(&path)?;
    let deadline = Instant::now() + wait;
    let mut said = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok((file, path)),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
        if !said {
            eprintln!(
                "waiting for processes that still wrap under {kek} (servers reload the key file every {} s or on SIGHUP)",
                crate::keyfile::RELOAD_INTERVAL.as_secs()
            );
            said = true;
        }
        if Instant::now() > deadline {
            bail!(
                "a process still uses {kek} as its active key after {} s (a server that does not reload, or a command started before the rotation): the new key stays active; run `amanah keys rotate` again to resume",
                wait.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn progress(total: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {pos}/{len} data keys rewrapped  {per_sec}  eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

fn counts(per_kek: &[(String, u64)]) -> String {
    if per_kek.is_empty() {
        return "none".into();
    }
    per_kek
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) async fn run(args: RotateArgs) -> Result<ExitCode> {
    let data = &args.data;
    if let Location::Sqlite(_) = data.location()? {
        crate::setup::existing_db(data)?;
    }
    let key_path = data.key_path()?;
    let _rotating = rotation_lock(&key_path)?;
    let (mut ring, _) = read_key_file(&key_path)?;
    let mut older = ring.older_kek_ids();
    let resumed = !older.is_empty();
    if resumed {
        println!(
            "resuming the rotation to {} (older keys: {})",
            ring.active_kek_id(),
            older.join(" ")
        );
    } else {
        let previous = ring.active_kek_id().to_owned();
        let new = ring.add_kek()?;
        replace_key_file(&key_path, &ring)?;
        println!("new key-encryption key {new} is active; {previous} is kept until every data key is rewrapped");
        older = vec![previous];
    }
    let active = ring.active_kek_id().to_owned();
    let ring = Arc::new(ring);
    let store = crate::setup::open_store(data, &ring, false).await?;
    let vault = Vault::open(store, ring, Arc::new(SystemClock)).await?;
    let permit = operator::<act::KeksRotate>(&vault).await?;
    let per_kek = vault.data_keys_per_kek(&permit).await?;
    vault
        .record_rotation(
            &permit,
            format!(
                "rotation to {active} {}; older keys {}; data keys per key {}",
                if resumed { "resumed" } else { "started" },
                older.join(" "),
                counts(&per_kek)
            ),
        )
        .await?;
    // From here on no process wraps under an older KEK, and every process knows the active one.
    let mut held = Vec::new();
    for kek in &older {
        let (k, wait) = (key_path.clone(), args.wait);
        let kek = kek.clone();
        held.push(
            tokio::task::spawn_blocking(move || take_exclusive(&k, &kek, wait))
                .await
                .map_err(|e| anyhow!("{e}"))??,
        );
    }
    let total: u64 = per_kek
        .iter()
        .filter(|(k, _)| *k != active)
        .map(|(_, n)| n)
        .sum();
    let bar = progress(total);
    let plain = bar.is_hidden();
    let started = Instant::now();
    let (mut done, mut rewrapped, mut last_line) = (0u64, 0u64, Instant::now());
    // Passes over the key store until no key is under an older KEK: a key the conditional
    // update skipped (changed meanwhile) is found again by the next pass.
    for pass in 1.. {
        let mut after = String::new();
        loop {
            let mut size = u64::from(args.batch);
            if let Some(limit) = args.limit {
                if done >= limit {
                    bar.finish_and_clear();
                    vault
                        .record_rotation(
                            &permit,
                            format!(
                                "rotation to {active} paused after {rewrapped} data keys (--limit)"
                            ),
                        )
                        .await?;
                    println!("stopped after {rewrapped} data keys (--limit {limit}); run `amanah keys rotate` again to continue");
                    return Ok(ExitCode::SUCCESS);
                }
                size = size.min(limit - done);
            }
            let batch = vault
                .rewrap_batch(&permit, &after, usize::try_from(size).unwrap_or(usize::MAX))
                .await?;
            done += batch.scanned as u64;
            rewrapped += batch.rewrapped;
            bar.set_position(rewrapped);
            if plain && (last_line.elapsed() >= Duration::from_secs(2) || batch.next.is_none()) {
                eprintln!("rewrapped {rewrapped} of {total} data keys");
                last_line = Instant::now();
            }
            match batch.next {
                Some(next) => after = next,
                None => break,
            }
        }
        let left: u64 = vault
            .data_keys_per_kek(&permit)
            .await?
            .iter()
            .filter(|(k, _)| *k != active)
            .map(|(_, n)| n)
            .sum();
        if left == 0 {
            break;
        }
        if pass >= 10 {
            bail!("{left} data keys are still under older keys after {pass} passes; run `amanah keys rotate` again");
        }
    }
    bar.finish_and_clear();
    // Retire: no data key uses the older KEKs, and no process wraps under them.
    let (mut ring, _) = read_key_file(&key_path)?;
    if ring.active_kek_id() != active {
        bail!("the key file changed during the rotation (active key is no longer {active}): nothing retired");
    }
    for kek in &older {
        ring.retire_kek(kek)?;
    }
    replace_key_file(&key_path, &ring)?;
    for (lock, path) in held {
        let _ = std::fs::remove_file(&path);
        drop(lock);
    }
    vault
        .record_rotation(
            &permit,
            format!(
                "rotation to {active} finished: {rewrapped} data keys rewrapped; retired {}",
                older.join(" ")
            ),
        )
        .await?;
    println!(
        "rotated to {active}: {rewrapped} data keys rewrapped in {:.1} s; retired {}",
        started.elapsed().as_secs_f64(),
        older.join(" ")
    );
    Ok(ExitCode::SUCCESS)
}
