//! Setting up what every command needs: the policy file, the key ring, the store, the vault,
//! and `init`, which creates them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use amanah_core::policy::Policy;
use amanah_crypto::KeyRing;
use amanah_store::{PgStore, SqliteStore, Store};
use amanah_vault::{SystemClock, Vault};
use anyhow::{bail, Context, Result};

use crate::cli::{DataArgs, Location, DB_FILE};

pub(crate) fn read_policy(file: &Path) -> Result<(Policy, String)> {
    let source =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    match Policy::parse(&source) {
        Ok(p) => match p.reserved_role_error() {
            Some(message) => bail!("invalid policy\n{}: {message}", file.display()),
            None => Ok((p, source)),
        },
        Err(errs) => bail!(
            "invalid policy\n{}",
            errs.render(&file.display().to_string())
        ),
    }
}

/// Prints the Art. 34 triggers of a policy and writes the DPIA skeleton to `out`.
pub(crate) fn write_dpia(policy: &Policy, out: &Path) -> Result<()> {
    use amanah_core::ropa::{dpia_skeleton, dpia_triggers, Finding};
    use std::io::Write;
    let findings = dpia_triggers(policy);
    println!("UU PDP Art. 34 triggers:");
    for (t, f) in &findings {
        match f {
            Finding::Present(ev) => println!("  present  {}: {}", t.as_str(), ev.join("; ")),
            Finding::Absent => println!("  absent   {}", t.as_str()),
            Finding::Assess(what) => println!("  assess   {}: {what}", t.as_str()),
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .with_context(|| format!("cannot create {} (it must not exist yet)", out.display()))?;
    file.write_all(dpia_skeleton(policy, &findings).as_bytes())
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!("DPIA skeleton written to {}", out.display());
    Ok(())
}

/// Loads the key file (refused if group or others may read it) and holds the lease of its
/// active KEK for the life of the process (see `keyfile`).
pub(crate) fn load_keys(data: &DataArgs) -> Result<Arc<KeyRing>> {
    let (ring, lease, id) = crate::keyfile::load_leased(&data.key_path()?)?;
    crate::keyfile::keep_process_lease(lease, id);
    Ok(Arc::new(ring))
}

/// Opens the store (applying pending schema migrations). SQLite's must already exist unless
/// `create` is set.
pub(crate) async fn open_store(
    data: &DataArgs,
    keys: &KeyRing,
    create: bool,
) -> Result<Arc<dyn Store>> {
    match data.location()? {
        Location::Sqlite(dir) => {
            let db = dir.join(DB_FILE);
            if !create && !db.exists() {
                bail!(
                    "{} is not an Amanah data directory: run `amanah init --data {} --policy FILE` first",
                    dir.display(),
                    dir.display()
                );
            }
            Ok(Arc::new(SqliteStore::open(&db, keys.audit_key())?))
        }
        Location::Postgres(url) => {
            let store = PgStore::open(&url, keys.audit_key()).await?;
            tracing::debug!(store = %store.describe(), "opened the PostgreSQL store");
            Ok(Arc::new(store))
        }
    }
}

/// The SQLite database file of a data directory (backups and restores work on SQLite files;
/// on PostgreSQL use its own tools, see ARCHITECTURE.md).
pub(crate) fn existing_db(data: &DataArgs) -> Result<PathBuf> {
    let dir = match data.location()? {
        Location::Sqlite(dir) => dir,
        Location::Postgres(_) => bail!(
            "backup and restore work on the SQLite store; on PostgreSQL back up with pg_dump, excluding the key schema (see ARCHITECTURE.md)"
        ),
    };
    let db = dir.join(DB_FILE);
    if !db.exists() {
        bail!(
            "{} is not an Amanah data directory: run `amanah init --data {} --policy FILE` first",
            dir.display(),
            dir.display()
        );
    }
    Ok(db)
}

pub(crate) async fn open_vault(data: &DataArgs) -> Result<Vault> {
    if let Location::Sqlite(_) = data.location()? {
        existing_db(data)?;
    }
    let keys = load_keys(data)?;
    let store = open_store(data, &keys, false).await?;
    Ok(Vault::open(store, keys, Arc::new(SystemClock)).await?)
}

/// Creates a data directory (and missing parents) open to its owner only (0700).
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

pub(crate) fn write_key_file(path: &Path, ring: &KeyRing) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "cannot create the key file {} (it must not exist yet)",
                path.display()
            )
        })?;
    f.write_all(&ring.to_file_bytes())?;
    f.sync_all()?;
    Ok(())
}

pub(crate) async fn init(data: &DataArgs, policy_source: &str) -> Result<Vault> {
    let location = data.location()?;
    if let Location::Sqlite(dir) = &location {
        create_private_dir(dir)?;
        if dir.join(DB_FILE).exists() {
            bail!("{} already holds a store", dir.display());
        }
    }
    let key_path = data.key_path()?;
    if data.key_file.is_none() {
        if let Some(dir) = &data.data {
            create_private_dir(dir)?;
        }
        eprintln!(
            "warning: the master key is kept in {} beside the data; in production keep it elsewhere (--key-file PATH or AMANAH_KEY_FILE)",
            key_path.display()
        );
    }
    let ring = KeyRing::generate()?;
    let store = match location {
        Location::Sqlite(_) => {
            write_key_file(&key_path, &ring)?;
            open_store(data, &ring, true).await?
        }
        Location::Postgres(_) => {
            let store = open_store(data, &ring, true).await?;
            // Refuse before writing a key file that would not match the stored data (a policy
            // row that fails its integrity check under the new key is another vault's).
            if !matches!(store.current_policy().await, Ok(None)) {
                bail!("{} already holds a store", data.describe());
            }
            write_key_file(&key_path, &ring)?;
            store
        }
    };
    Ok(Vault::initialize(store, Arc::new(ring), Arc::new(SystemClock), policy_source).await?)
}
