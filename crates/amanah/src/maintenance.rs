//! Operator commands over a data directory: backups that forget erased people, restores, and
//! retention sweeps.

use std::path::Path;
use std::sync::Arc;

use amanah_core::audit::{AuditAction, AuditDraft, Outcome};
use amanah_core::policy::ADMIN_ROLE;
use amanah_crypto::KeyRing;
use amanah_store::{BackupKind, SqliteStore, Store};
use amanah_vault::{Clock, SweepItem, SystemClock, Vault, CLI_ACTOR};
use anyhow::{bail, Context, Result};

use crate::cli::operator;

const DAY_MICROS: i64 = 86_400_000_000;

async fn cli_draft(store: &SqliteStore, action: AuditAction) -> Result<AuditDraft> {
    let policy_version = store
        .current_policy()
        .await?
        .map(|p| p.version)
        .unwrap_or_default();
    Ok(AuditDraft {
        at_micros: SystemClock.now_micros(),
        actor: CLI_ACTOR.to_owned(),
        role: ADMIN_ROLE.to_owned(),
        action,
        purpose: None,
        basis: None,
        outcome: Outcome::Allowed,
        reason: None,
        subject: None,
        fields: Vec::new(),
        policy_version,
    })
}

/// `amanah backup`: an online, consistent snapshot of the data file (ciphertext only), or of
/// the key store with `key_store`.
pub async fn backup(db: &Path, keys: &KeyRing, out: &Path, key_store: bool) -> Result<()> {
    if out.exists() {
        bail!("{} already exists: backups never overwrite", out.display());
    }
    let store = SqliteStore::open(db, keys.audit_key())?;
    let now = SystemClock.now_micros();
    if key_store {
        store
            .backup_key_store(out, now)
            .await
            .with_context(|| format!("cannot write {}", out.display()))?;
    } else {
        store
            .backup_data(out)
            .await
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    let mut draft = cli_draft(&store, AuditAction::BackupCreate).await?;
    draft.reason = Some(format!(
        "{} backup written",
        if key_store { "key-store" } else { "data" }
    ));
    store.append_audit(vec![draft]).await?;
    if key_store {
        println!(
            "key-store snapshot written to {} (holds data keys: keep it apart from data backups, and destroy it once older than the key-backup limit)",
            out.display()
        );
    } else {
        println!(
            "data backup written to {} (ciphertext only: it holds no data key)",
            out.display()
        );
    }
    Ok(())
}

/// `amanah restore`: puts a backup in place (the server must be stopped), then forgets every
/// subject erased since.
pub async fn restore(
    db: &Path,
    keys: &KeyRing,
    from: &Path,
    max_key_backup_days: u32,
) -> Result<()> {
    let (kind, _, _) = amanah_store::inspect_backup(from)?;
    let now = SystemClock.now_micros();
    match kind {
        BackupKind::Data => {
            amanah_store::restore_data(db, from)?;
            let store = SqliteStore::open(db, keys.audit_key())?;
            let draft = cli_draft(&store, AuditAction::BackupRestore).await?;
            let (done, _) = store.reconcile_after_data_restore(now, draft).await?;
            println!(
                "data restored from {}; {} subjects erased since the backup were purged",
                from.display(),
                done.purged_subjects
            );
        }
        BackupKind::KeyStore => {
            amanah_store::restore_key_store(
                db,
                from,
                now,
                i64::from(max_key_backup_days) * DAY_MICROS,
            )?;
            let store = SqliteStore::open(db, keys.audit_key())?;
            let draft = cli_draft(&store, AuditAction::BackupRestore).await?;
            let (done, _) = store.reconcile_after_key_restore(draft).await?;
            println!(
                "key store restored from {}; {} keys of erased subjects dropped",
                from.display(),
                done.dropped_keys
            );
            if done.keyless_subjects > 0 {
                eprintln!(
                    "warning: {} subjects have no key in this snapshot (created after it): they are unreadable, and purged when the vault next opens (restore a newer key-store snapshot first if there is one)",
                    done.keyless_subjects
                );
            }
        }
    }
    Ok(())
}

/// `amanah retention sweep`: applies the policy's retention now; a progress bar on a terminal.
pub async fn sweep(vault: Arc<Vault>, dry_run: bool) -> Result<()> {
    let bar = indicatif::ProgressBar::new_spinner();
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} subjects examined ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let progress = bar.clone();
    let permit = operator::<amanah_vault::act::RetentionSweep>(&vault).await?;
    let report = vault
        .retention_sweep(&permit, dry_run, move |n| progress.set_position(n))
        .await?;
    bar.finish_and_clear();
    let verb = if dry_run { "would" } else { "did" };
    for SweepItem {
        subject_id,
        action,
        held_until,
    } in &report.items
    {
        let (name, expired, categories) = amanah_server::describe_retention(action);
        let what = if categories.is_empty() {
            name.to_owned()
        } else {
            format!("{name} {}", categories.join(","))
        };
        match held_until {
            Some(until) => println!(
                "{subject_id}\tsuspended by a legal hold until {until}\t({what}; expired: {})",
                expired.join(",")
            ),
            None => println!("{subject_id}\t{what}\t(expired: {})", expired.join(",")),
        }
    }
    let acted = report
        .items
        .iter()
        .filter(|i| i.held_until.is_none())
        .count();
    println!(
        "{} subjects examined; {verb} act on {acted}; {} suspended by legal holds{}",
        report.examined,
        report.items.len() - acted,
        if dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
    Ok(())
}
