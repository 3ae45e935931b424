//! `amanah audit checkpoint | public-key | check-checkpoint`, `audit verify --checkpoint`, and
//! the checkpoints `serve` writes periodically (see `amanah_core::checkpoint`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use amanah_core::checkpoint::{parse_public_key, SignedCheckpoint};
use amanah_crypto::checkpoint::PublicKey;
use amanah_vault::{act, Deployment, Vault};
use anyhow::{bail, Context, Result};

/// `serve` flags for periodic checkpoints.
#[derive(clap::Args, Clone, Default)]
pub(crate) struct CheckpointArgs {
    /// Write a signed audit checkpoint to this directory at start and then every
    /// --checkpoint-interval seconds. Must be outside the data directory (ideally another
    /// machine's mount or a write-once store): a checkpoint is only worth what its copy is.
    #[arg(long, env = "AMANAH_CHECKPOINT_DIR")]
    pub(crate) checkpoint_dir: Option<PathBuf>,
    /// Seconds between checkpoints.
    #[arg(
        long,
        env = "AMANAH_CHECKPOINT_INTERVAL",
        default_value_t = 3600,
        requires = "checkpoint_dir",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub(crate) checkpoint_interval: u64,
}

/// Refuses a checkpoint directory inside the data directory (creating it if needed), and
/// returns it.
pub(crate) fn prepare_dir(dir: &Path, data_dir: Option<&Path>) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the checkpoint directory {}", dir.display()))?;
    let canon = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve the checkpoint directory {}", dir.display()))?;
    if let Some(data) = data_dir {
        if let Ok(data) = data.canonicalize() {
            if canon.starts_with(&data) {
                bail!(
                    "the checkpoint directory {} is inside the data directory {}: keep checkpoints apart from the data they anchor (a restore or a tamperer would roll them back together)",
                    dir.display(),
                    data.display()
                );
            }
        }
    }
    Ok(canon)
}

/// Writes `text` to `path` through a temporary file in the same directory, so a reader never
/// sees half a file.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Writes one checkpoint into `dir`: `audit-checkpoint-<time>-seq<N>.json`, and the same as
/// `latest.json`. Returns the dated file.
pub(crate) async fn write_into(vault: &Vault, dir: &Path) -> Result<(PathBuf, SignedCheckpoint)> {
    let permit = crate::cli::operator::<act::AuditVerify>(vault).await?;
    let cp = vault.checkpoint(&permit).await?;
    let stamp: String = cp
        .checkpoint
        .time
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let file = dir.join(format!(
        "audit-checkpoint-{stamp}-seq{}.json",
        cp.checkpoint.seq
    ));
    let json = cp.to_json();
    write_atomically(&file, &json)?;
    write_atomically(&dir.join("latest.json"), &json)?;
    Ok((file, cp))
}

/// The task of `serve --checkpoint-dir`: one checkpoint now, then one per interval, of the
/// deployment's own chain into DIR and of each active hosted organization's into
/// DIR/tenants/<id>/. A failure (head missing or altered, directory unwritable) is logged and
/// retried at the next tick.
pub(crate) fn spawn_periodic(deployment: Arc<Deployment>, dir: PathBuf, every_secs: u64) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(every_secs));
        loop {
            tick.tick().await;
            write_logged(deployment.own(), &dir).await;
            match deployment.hosted_vaults().await {
                Ok(vaults) => {
                    for vault in vaults {
                        let Some(id) = vault.tenant_id() else {
                            continue;
                        };
                        let dir = dir.join("tenants").join(id);
                        if let Err(e) = std::fs::create_dir_all(&dir) {
                            tracing::error!(error = %e, dir = %dir.display(), "audit checkpoint failed");
                            continue;
                        }
                        write_logged(&vault, &dir).await;
                    }
                }
                Err(e) => tracing::error!(error = %e, "audit checkpoints of organizations failed"),
            }
        }
    });
}

async fn write_logged(vault: &Vault, dir: &Path) {
    match write_into(vault, dir).await {
        Ok((file, cp)) => tracing::info!(
            file = %file.display(),
            seq = cp.checkpoint.seq,
            "audit checkpoint written"
        ),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), dir = %dir.display(), "audit checkpoint failed")
        }
    }
}

/// `amanah audit checkpoint [--out FILE]`.
pub(crate) async fn emit(vault: &Vault, out: Option<&Path>) -> Result<()> {
    let permit = crate::cli::operator::<act::AuditVerify>(vault).await?;
    let cp = vault.checkpoint(&permit).await?;
    match out {
        Some(path) => {
            write_atomically(path, &cp.to_json())?;
            eprintln!(
                "wrote checkpoint of entry {} to {}",
                cp.checkpoint.seq,
                path.display()
            );
        }
        None => print!("{}", cp.to_json()),
    }
    Ok(())
}

/// `amanah audit public-key [--out FILE]`: 64 hex digits and a newline.
pub(crate) fn print_public_key(vault_key: PublicKey, out: Option<&Path>) -> Result<()> {
    let text = format!("{}\n", hex_encode(&vault_key));
    match out {
        Some(path) => write_atomically(path, &text)?,
        None => print!("{text}"),
    }
    Ok(())
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn read_checkpoint(path: &Path) -> Result<SignedCheckpoint> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the checkpoint {}", path.display()))?;
    SignedCheckpoint::parse(&bytes).with_context(|| format!("checkpoint {}", path.display()))
}

pub(crate) fn read_public_key(path: &Path) -> Result<PublicKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the public key {}", path.display()))?;
    parse_public_key(&text).map_err(|e| anyhow::anyhow!("public key {}: {e}", path.display()))
}

/// `amanah audit check-checkpoint FILE --public-key FILE`: the signature only, without the
/// vault's secret or store.
pub(crate) fn check(file: &Path, public_key: &Path) -> Result<ExitCode> {
    let cp = read_checkpoint(file)?;
    let key = read_public_key(public_key)?;
    match cp.verify_signature(&key) {
        Ok(()) => {
            let c = &cp.checkpoint;
            println!(
                "ok: {} is signed by {}: entry {}, head {}, taken {}{}",
                file.display(),
                public_key.display(),
                c.seq,
                hex_encode(&c.head),
                c.time,
                c.store_id
                    .as_deref()
                    .map(|s| format!(", store {s}"))
                    .unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("checkpoint {} refused: {e}", file.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `amanah audit verify --checkpoint FILE [--public-key FILE]`.
pub(crate) async fn verify(
    vault: &Vault,
    file: &Path,
    public_key: Option<&Path>,
) -> Result<ExitCode> {
    let cp = read_checkpoint(file)?;
    let trusted = public_key.map(read_public_key).transpose()?;
    let permit = crate::cli::operator::<act::AuditVerify>(vault).await?;
    let verdict = vault
        .verify_against_checkpoint(&permit, &cp, trusted.as_ref())
        .await?;
    let mut ok = true;
    match &verdict.chain.first_bad {
        None => println!(
            "ok: {} entries, head {}",
            verdict.chain.entries,
            verdict.chain.head.clone().unwrap_or_default()
        ),
        Some(b) => {
            eprintln!("audit chain broken: {b}");
            ok = false;
        }
    }
    match &verdict.checkpoint {
        Ok(()) => println!(
            "ok: the chain extends the checkpoint {} (entry {}, {})",
            file.display(),
            cp.checkpoint.seq,
            cp.checkpoint.time
        ),
        Err(e) => {
            eprintln!("checkpoint {}: {e}", file.display());
            ok = false;
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
