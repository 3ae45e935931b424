//! `amanah tenant ...` and where a deployment keeps the organizations it hosts.
//!
//! Placement: on SQLite, the platform's store is `DATA/platform/` and each organization's
//! `DATA/tenants/<id>/` (a data file and a key store each, like the data directory itself). On
//! PostgreSQL, the platform's store is a database `<db>_platform` and each organization's a
//! database `<db>_t_<id>` in the same cluster (made with `CREATE DATABASE`), unless
//! `tenant create --store URL` names a database of its own elsewhere (which is then the
//! organization's alone: deleting the organization empties it).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use amanah_core::{Error, Result as CoreResult};
use amanah_crypto::KeyRing;
use amanah_store::{pg_admin, PgStore, SqliteStore, Store};
use amanah_vault::{act, Deployment, NewTenant, Placement, Quotas, TenantView, Vault};
use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use clap::Subcommand;

use crate::cli::{DataArgs, Location, DB_FILE};
use crate::setup::{create_private_dir, open_vault, read_policy};

pub(crate) const CRM_POLICY: &str = include_str!("../../../policies/crm.toml");

#[derive(Subcommand)]
pub(crate) enum TenantCommand {
    /// Host a new organization: its own policy, keys, audit chain and store. Prints its id and
    /// its first admin key (on the last line).
    Create {
        #[command(flatten)]
        data: DeploymentArgs,
        /// The organization's name (unique among those not deleted).
        name: String,
        /// Its policy file (TOML)…
        #[arg(long, conflicts_with = "preset", required_unless_present = "preset")]
        policy: Option<PathBuf>,
        /// …or a shipped preset as its template: `crm` or `university`.
        #[arg(long, value_parser = ["crm", "university"])]
        preset: Option<String>,
        /// The person its first admin key is issued to, `Name <email>`.
        #[arg(long)]
        admin_holder: String,
        /// Keep its data in a PostgreSQL database of its own (dedicated capacity), which must
        /// hold no store yet: postgres://USER:PASSWORD@HOST:PORT/DB[?sslmode=verify-full&sslrootcert=CA.pem].
        #[arg(long = "store", hide_env_values = true)]
        place: Option<String>,
        /// The most subjects it may hold.
        #[arg(long)]
        max_subjects: Option<u64>,
        /// The most requests per second over all its keys (beyond: 429 with Retry-After).
        #[arg(long)]
        max_rps: Option<u64>,
    },
    /// Every organization with its state and usage.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// One organization's state and usage.
    Show {
        #[command(flatten)]
        data: DataArgs,
        id: String,
    },
    /// Refuse an organization's keys (its data is kept) until it is resumed.
    Suspend {
        #[command(flatten)]
        data: DataArgs,
        id: String,
    },
    /// Lift a suspension.
    Resume {
        #[command(flatten)]
        data: DataArgs,
        id: String,
    },
    /// Set an organization's quotas (an option left out means no limit).
    Quota {
        #[command(flatten)]
        data: DataArgs,
        id: String,
        #[arg(long)]
        max_subjects: Option<u64>,
        #[arg(long)]
        max_rps: Option<u64>,
    },
    /// Delete an organization: its key ring is destroyed at once (nothing of it can be read
    /// any more, even with the root key), then its store is removed.
    Delete {
        #[command(flatten)]
        data: DataArgs,
        id: String,
        /// Where the deployment keeps documents (as `serve --documents`): the organization's
        /// objects there are removed with its store.
        #[arg(long, env = "AMANAH_DOCUMENTS")]
        documents: Option<String>,
    },
    /// Write every subject's export of an organization (one JSON object per line), e.g. for
    /// an organization leaving the service.
    Export {
        #[command(flatten)]
        data: DataArgs,
        id: String,
        /// Where to write (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// The platform operator's keys (for `/v1/tenants` only).
    Key {
        #[command(subcommand)]
        command: PlatformKeyCommand,
    },
}

#[derive(Subcommand)]
pub(crate) enum PlatformKeyCommand {
    /// Issue a key to a named person; printed on the last line, only its hash is stored.
    Create {
        #[command(flatten)]
        data: DataArgs,
        /// The person the key is issued to, `Name <email>`.
        #[arg(long)]
        holder: String,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Every key of the operator (never the keys themselves).
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Revoke a key (refused from then on, by every server).
    Revoke {
        #[command(flatten)]
        data: DataArgs,
        id: String,
    },
}

/// The deployment's own store for `tenant create`, whose `--store` places the new organization.
#[derive(clap::Args, Clone)]
pub(crate) struct DeploymentArgs {
    /// The deployment's data directory (SQLite; with --deployment-store only its key file).
    #[arg(long, env = "AMANAH_DATA")]
    data: Option<PathBuf>,
    /// The deployment's key file.
    #[arg(long, env = "AMANAH_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// The deployment's own PostgreSQL store (what `--store` is for the other commands).
    #[arg(long, env = "AMANAH_DATABASE_URL", hide_env_values = true)]
    deployment_store: Option<String>,
}

impl From<DeploymentArgs> for DataArgs {
    fn from(d: DeploymentArgs) -> DataArgs {
        DataArgs {
            data: d.data,
            key_file: d.key_file,
            store: d.deployment_store,
        }
    }
}

/// Where a deployment keeps its platform and its organizations' stores.
pub(crate) struct Places {
    own: Location,
}

impl Places {
    pub(crate) fn new(data: &DataArgs) -> Result<Self> {
        Ok(Places {
            own: data.location()?,
        })
    }

    fn sqlite_dir(&self, dir: &Path, id: &str) -> PathBuf {
        dir.join("tenants").join(id)
    }
}

/// Organizations' stores without the platform's registry (which holds their sealed key rings):
/// making a new, empty registry would hide them for good.
fn orphans() -> Error {
    Error::Conflict(
        amanah_core::Conflict::StoreState,
        "the platform's store is missing but organizations' stores are there: restore the platform's store (it holds their keys) instead of making a new one".into(),
    )
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

/// `url` with its database replaced by `name` (query parameters kept).
fn with_database(url: &str, name: &str) -> CoreResult<String> {
    let not_hosting = || {
        Error::invalid(
            "store",
            "a deployment hosting organizations names its database in a postgres:// URL's path (not key=value, not dbname=)",
        )
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(not_hosting)?;
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    if query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("dbname="))) {
        return Err(not_hosting());
    }
    let authority = before_query.split('/').next().unwrap_or_default();
    Ok(match query {
        Some(q) => format!("{scheme}://{authority}/{name}?{q}"),
        None => format!("{scheme}://{authority}/{name}"),
    })
}

/// The name of a database the platform makes: the deployment's database name and a suffix.
/// A name that is not already short lower-case `[a-z0-9_]` is shortened and given a digest of
/// the whole, so two deployments' names never meet.
fn database_name(url: &str, suffix: &str) -> CoreResult<String> {
    let config = amanah_store::parse_pg_url(url).map_err(internal)?;
    let own = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("amanah");
    let plain = own.len() <= 20
        && own
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let prefix = if plain {
        own.to_owned()
    } else {
        let kept: String = own
            .to_ascii_lowercase()
            .chars()
            .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            .take(12)
            .collect();
        let digest = amanah_crypto::digest::sha256_hex(own.as_bytes());
        format!("{kept}_{}", &digest[..8])
    };
    Ok(format!("{prefix}_{suffix}"))
}

async fn open_sqlite(dir: &Path, keys: &KeyRing, create: bool) -> CoreResult<Arc<dyn Store>> {
    let db = dir.join(DB_FILE);
    if create {
        if db.exists() {
            return Err(internal("a store is already there"));
        }
        create_private_dir(dir).map_err(internal)?;
    } else if !db.exists() {
        return Err(internal("an organization's store is missing"));
    }
    let store = SqliteStore::open(&db, keys.audit_key()).map_err(internal)?;
    Ok(Arc::new(store))
}

async fn open_pg(url: &str, keys: &KeyRing) -> CoreResult<Arc<dyn Store>> {
    let store = PgStore::open(url, keys.audit_key())
        .await
        .map_err(internal)?;
    Ok(Arc::new(store))
}

#[async_trait]
impl Placement for Places {
    async fn platform_store(
        &self,
        keys: &KeyRing,
        create: bool,
    ) -> CoreResult<Option<Arc<dyn Store>>> {
        match &self.own {
            Location::Sqlite(own) => {
                let dir = own.join("platform");
                let exists = dir.join(DB_FILE).exists();
                if !exists {
                    if !create {
                        return Ok(None);
                    }
                    let hosted = std::fs::read_dir(own.join("tenants"))
                        .map(|mut d| d.next().is_some())
                        .unwrap_or(false);
                    if hosted {
                        return Err(orphans());
                    }
                }
                open_sqlite(&dir, keys, create && !exists).await.map(Some)
            }
            Location::Postgres(url) => {
                let name = database_name(url, "platform")?;
                let exists = pg_admin::database_exists(url, &name)
                    .await
                    .map_err(internal)?;
                if !exists {
                    if !create {
                        return Ok(None);
                    }
                    let hosted_prefix = database_name(url, "t_")?;
                    let hosted = pg_admin::count_databases_with_prefix(url, &hosted_prefix)
                        .await
                        .map_err(internal)?;
                    if hosted > 0 {
                        return Err(orphans());
                    }
                    pg_admin::create_database(url, &name)
                        .await
                        .map_err(internal)?;
                }
                open_pg(&with_database(url, &name)?, keys).await.map(Some)
            }
        }
    }

    async fn tenant_store(
        &self,
        id: &str,
        place: Option<&str>,
        keys: &KeyRing,
        create: bool,
    ) -> CoreResult<Arc<dyn Store>> {
        if let Some(url) = place {
            // A database given to a new organization is its alone from now on (deleting the
            // organization empties it): anything already there is refused, never touched.
            if create && !pg_admin::is_empty(url).await.map_err(internal)? {
                return Err(Error::invalid(
                    "store",
                    "the database given already holds tables: an organization's database must be empty and dedicated to it",
                ));
            }
            return open_pg(url, keys).await;
        }
        match &self.own {
            Location::Sqlite(dir) => open_sqlite(&self.sqlite_dir(dir, id), keys, create).await,
            Location::Postgres(url) => {
                let name = database_name(url, &format!("t_{}", id.replace('-', "")))?;
                if create {
                    pg_admin::create_database(url, &name)
                        .await
                        .map_err(internal)?;
                }
                open_pg(&with_database(url, &name)?, keys).await
            }
        }
    }

    async fn remove_tenant_store(&self, id: &str, place: Option<&str>) -> CoreResult<()> {
        if let Some(url) = place {
            return pg_admin::clear_database(url).await.map_err(internal);
        }
        match &self.own {
            Location::Sqlite(dir) => {
                let dir = self.sqlite_dir(dir, id);
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(internal(format!("cannot remove {}: {e}", dir.display()))),
                }
            }
            Location::Postgres(url) => {
                let name = database_name(url, &format!("t_{}", id.replace('-', "")))?;
                pg_admin::drop_database(url, &name).await.map_err(internal)
            }
        }
    }
}

/// The deployment of a data directory (or PostgreSQL store): its own organization and the
/// ones it hosts.
pub(crate) async fn open_deployment(data: &DataArgs) -> Result<Arc<Deployment>> {
    let own = Arc::new(open_vault(data).await?);
    Ok(Arc::new(Deployment::new(own, Arc::new(Places::new(data)?))))
}

/// Opens a deployment around a vault already open (`serve`).
pub(crate) fn deployment_of(own: Arc<Vault>, data: &DataArgs) -> Result<Arc<Deployment>> {
    Ok(Arc::new(Deployment::new(own, Arc::new(Places::new(data)?))))
}

fn print_view(t: &TenantView) {
    let quota = |q: Option<u64>| q.map_or("unlimited".to_owned(), |n| n.to_string());
    println!(
        "{}  {:<9}  {}  subjects {}  max subjects {}  max rps {}{}",
        t.id,
        t.status,
        t.name,
        t.usage.map_or("-".to_owned(), |u| u.subjects.to_string()),
        quota(t.quotas.max_subjects),
        quota(t.quotas.max_requests_per_second),
        if t.dedicated_store {
            "  (own database)"
        } else {
            ""
        },
    );
}

pub(crate) async fn run(command: TenantCommand) -> Result<()> {
    match command {
        TenantCommand::Create {
            data,
            name,
            policy,
            preset,
            admin_holder,
            place,
            max_subjects,
            max_rps,
        } => {
            let source = match (policy, preset.as_deref()) {
                (Some(file), _) => read_policy(&file)?.1,
                (None, Some("crm")) => CRM_POLICY.to_owned(),
                (None, _) => crate::cli::DEMO_POLICY.to_owned(),
            };
            if let Some(url) = &place {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    bail!("--store takes a postgres:// URL");
                }
                amanah_store::parse_pg_url(url)?;
            }
            let deployment = open_deployment(&data.into()).await?;
            let permit = deployment.operator_permit::<act::TenantCreate>().await?;
            let created = deployment
                .create_tenant(
                    &permit,
                    NewTenant {
                        name,
                        policy: source,
                        place,
                        admin_holder,
                        quotas: Quotas {
                            max_subjects,
                            max_requests_per_second: max_rps,
                        },
                    },
                )
                .await?;
            println!(
                "tenant {} created ({})",
                created.tenant.id, created.tenant.name
            );
            println!("admin key id {}", created.admin_key.record.id);
            println!("{}", created.admin_key.token.as_str());
        }
        TenantCommand::List { data } => {
            let deployment = open_deployment(&data).await?;
            if deployment.platform(false).await?.is_none() {
                println!("no organization is hosted besides the deployment's own");
                return Ok(());
            }
            let permit = deployment.operator_permit::<act::TenantList>().await?;
            for t in deployment.list_tenants(&permit).await? {
                print_view(&t);
            }
        }
        TenantCommand::Show { data, id } => {
            let deployment = open_deployment(&data).await?;
            let permit = deployment.operator_permit::<act::TenantRead>().await?;
            print_view(&deployment.tenant(&permit, &id).await?);
        }
        TenantCommand::Suspend { data, id } => {
            let deployment = open_deployment(&data).await?;
            let permit = deployment.operator_permit::<act::TenantSuspend>().await?;
            print_view(&deployment.suspend_tenant(&permit, &id).await?);
        }
        TenantCommand::Resume { data, id } => {
            let deployment = open_deployment(&data).await?;
            let permit = deployment.operator_permit::<act::TenantResume>().await?;
            print_view(&deployment.resume_tenant(&permit, &id).await?);
        }
        TenantCommand::Quota {
            data,
            id,
            max_subjects,
            max_rps,
        } => {
            let deployment = open_deployment(&data).await?;
            let permit = deployment.operator_permit::<act::TenantUpdate>().await?;
            let quotas = Quotas {
                max_subjects,
                max_requests_per_second: max_rps,
            };
            print_view(&deployment.set_quotas(&permit, &id, quotas).await?);
        }
        TenantCommand::Delete {
            data,
            id,
            documents,
        } => {
            let deployment = open_deployment(&data).await?;
            deployment.attach_documents(crate::serving::documents(documents.as_deref(), &data)?);
            let permit = deployment.operator_permit::<act::TenantDelete>().await?;
            print_view(&deployment.delete_tenant(&permit, &id).await?);
            let purged = deployment.purge().await?;
            println!("its key ring is destroyed; {purged} store(s) removed");
        }
        TenantCommand::Export { data, id, out } => {
            let deployment = open_deployment(&data).await?;
            let permit = deployment.operator_permit::<act::TenantExport>().await?;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&out)
                .with_context(|| {
                    format!("cannot create {} (it must not exist yet)", out.display())
                })?;
            let mut file = std::io::BufWriter::new(file);
            let bar = progress_bar();
            let written = deployment
                .export_tenant(
                    &permit,
                    &id,
                    |export| {
                        serde_json::to_writer(&mut file, &export).map_err(internal)?;
                        file.write_all(b"\n").map_err(internal)
                    },
                    |done, total| {
                        bar.set_length(total);
                        bar.set_position(done);
                    },
                )
                .await;
            bar.finish_and_clear();
            let written = match written {
                Ok(n) => n,
                Err(e) => {
                    drop(file);
                    let _ = std::fs::remove_file(&out);
                    return Err(e.into());
                }
            };
            file.flush()?;
            file.get_ref().sync_all()?;
            println!("{written} subject(s) exported to {}", out.display());
        }
        TenantCommand::Key { command } => match command {
            PlatformKeyCommand::Create { data, holder, name } => {
                let deployment = open_deployment(&data).await?;
                let issued = deployment.create_platform_key(&name, &holder).await?;
                println!("id {} role {}", issued.record.id, issued.record.role);
                println!("{}", issued.token.as_str());
            }
            PlatformKeyCommand::List { data } => {
                let deployment = open_deployment(&data).await?;
                for k in deployment.platform_keys().await? {
                    let status = if k.revoked_at_micros.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!(
                        "{}  {status:<7}  {}  {}",
                        k.id,
                        k.holder.as_deref().unwrap_or("-"),
                        k.name
                    );
                }
            }
            PlatformKeyCommand::Revoke { data, id } => {
                let deployment = open_deployment(&data).await?;
                deployment.revoke_platform_key(&id).await?;
                println!("revoked {id}");
            }
        },
    }
    Ok(())
}

fn progress_bar() -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {pos}/{len} subjects  {per_sec}  eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_is_replaced_in_a_url_and_its_parameters_kept() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/app?sslmode=require", "app_platform").unwrap(),
            "postgres://u:p@h:5432/app_platform?sslmode=require"
        );
        assert_eq!(
            with_database("postgresql://u@h", "x").unwrap(),
            "postgresql://u@h/x"
        );
        assert!(with_database("not a url", "x").is_err());
        assert!(with_database("host=h dbname=app", "x").is_err());
        assert!(with_database("postgres://u@h/app?dbname=other", "x").is_err());
        assert_eq!(
            database_name("postgres://u@h/app_prod", "platform").unwrap(),
            "app_prod_platform"
        );
        // Names that would meet once cleaned up stay apart.
        let a = database_name("postgres://u@h/crm-prod", "platform").unwrap();
        let b = database_name("postgres://u@h/crmprod", "platform").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("crmprod_") && a.len() <= 63, "{a}");
    }
}
