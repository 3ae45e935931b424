use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use amanah_core::policy::ADMIN_ROLE;
use amanah_vault::{act, Act, Permit, Target, Vault};
use anyhow::{anyhow, bail, Result};
use clap::{Parser, Subcommand};

use crate::serving::{print_demo, serve};
use crate::setup::{existing_db, init, load_keys, open_vault, read_policy, write_dpia};

pub(crate) const DB_FILE: &str = "amanah.db";
pub(crate) const KEY_FILE: &str = "master.key";
pub(crate) const DEMO_POLICY: &str = include_str!("../../../policies/university.toml");

#[derive(Parser)]
#[command(
    name = "amanah",
    version,
    about = "Personal-data vault: per-person encryption, policy-checked and audited access"
)]
struct Cli {
    /// Log lines on stderr: `plain` text (coloured only on a terminal) or `json`, one object per
    /// line, for log collectors.
    #[arg(
        long,
        global = true,
        env = "AMANAH_LOG_FORMAT",
        value_enum,
        default_value = "plain"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Plain,
    Json,
}

/// Where `/metrics` is served: an address, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MetricsListen {
    Off,
    On(SocketAddr),
}

fn parse_metrics_listen(s: &str) -> std::result::Result<MetricsListen, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(MetricsListen::Off);
    }
    s.parse()
        .map(MetricsListen::On)
        .map_err(|_| format!("{s:?} is neither an address (e.g. 127.0.0.1:9464) nor `off`"))
}

#[derive(clap::Args, Clone)]
pub(crate) struct DataArgs {
    /// Data directory: the SQLite database, and by default the key file. With --store it only
    /// holds the key file (DIR/master.key) unless --key-file is given.
    #[arg(long, env = "AMANAH_DATA")]
    pub(crate) data: Option<PathBuf>,
    /// Key file; keep it outside the data directory in production.
    #[arg(long, env = "AMANAH_KEY_FILE")]
    pub(crate) key_file: Option<PathBuf>,
    /// Keep the data in PostgreSQL instead of SQLite: postgres://USER:PASSWORD@HOST:PORT/DB.
    #[arg(long, env = "AMANAH_DATABASE_URL", hide_env_values = true)]
    pub(crate) store: Option<String>,
}

/// Where the data lives.
pub(crate) enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DataArgs {
    pub(crate) fn location(&self) -> Result<Location> {
        match (&self.store, &self.data) {
            (Some(url), _) => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    bail!("--store takes a postgres:// URL (SQLite is the default: give --data DIR)");
                }
                amanah_store::parse_pg_url(url)?;
                Ok(Location::Postgres(url.clone()))
            }
            (None, Some(dir)) => Ok(Location::Sqlite(dir.clone())),
            (None, None) => bail!(
                "give --data DIR (SQLite) or --store postgres://... (or AMANAH_DATA / AMANAH_DATABASE_URL)"
            ),
        }
    }

    pub(crate) fn key_path(&self) -> Result<PathBuf> {
        match (&self.key_file, &self.data) {
            (Some(f), _) => Ok(f.clone()),
            (None, Some(d)) => Ok(d.join(KEY_FILE)),
            (None, None) => {
                bail!("give --key-file PATH (or --data DIR to keep the key in DIR/{KEY_FILE})")
            }
        }
    }

    /// What to call the store in messages: the directory, or the URL without its password.
    pub(crate) fn describe(&self) -> String {
        match self.location() {
            Ok(Location::Sqlite(dir)) => dir.display().to_string(),
            Ok(Location::Postgres(url)) => amanah_store::parse_pg_url(&url)
                .map(|c| amanah_store::describe_pg_config(&c))
                .unwrap_or_else(|_| "the PostgreSQL store".into()),
            Err(_) => "the store".into(),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create the store, generate the master keys and apply the policy.
    Init {
        #[command(flatten)]
        data: DataArgs,
        /// Policy file (TOML).
        #[arg(long, env = "AMANAH_POLICY")]
        policy: PathBuf,
    },
    /// Host several organizations (tenants) in this deployment: the platform operator's tools.
    Tenant {
        #[command(subcommand)]
        command: crate::tenants::TenantCommand,
    },
    /// Manage API keys.
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Manage the key-encryption keys of the key file.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Check or apply a policy file.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Serve the HTTP API.
    Serve {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        net: NetArgs,
        #[command(flatten)]
        checkpoints: crate::checkpoint::CheckpointArgs,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Back up the data file (ciphertext only, no data keys), or the key store with --key-store.
    Backup {
        #[command(flatten)]
        data: DataArgs,
        /// Where to write the backup (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// Snapshot the key store instead (holds data keys: keep it apart, for a bounded time).
        #[arg(long)]
        key_store: bool,
    },
    /// Restore a data backup or a key-store snapshot (stop the server first); erased people
    /// stay erased.
    Restore {
        #[command(flatten)]
        data: DataArgs,
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// Refuse key-store snapshots older than this many days.
        #[arg(long, env = "AMANAH_MAX_KEY_BACKUP_DAYS", default_value_t = 30)]
        max_key_backup_days: u32,
    },
    /// Print the record of processing activities (UU PDP Art. 31) from the policy in force
    /// and live counts.
    Ropa {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long, value_parser = ["md", "json", "csv"], default_value = "md")]
        format: String,
    },
    /// Retention tools.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Import subjects from a CSV file (header = category names) or JSON Lines (one object of
    /// category -> value per line). All or nothing: any bad row is reported as FILE:LINE and
    /// nothing is written.
    Import {
        #[command(flatten)]
        data: DataArgs,
        /// The purpose the data was collected under; every column must be one of its categories.
        #[arg(long)]
        purpose: String,
        /// Format; by default from the file name (.csv, .jsonl, .ndjson).
        #[arg(long, value_enum)]
        format: Option<crate::import::Format>,
        file: PathBuf,
    },
    /// Load-test a server over HTTP (loopback only) and report throughput and latency: runs the
    /// separate `amanah-bench` tool with these arguments (`amanah bench --help` lists them).
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Run a demo vault (SQLite, or PostgreSQL with --store) with the university preset policy.
    Demo {
        /// Where the demo keeps its data, or only its key file with --store (created if
        /// missing, reused if present).
        #[arg(long, env = "AMANAH_DEMO_DATA", default_value = "amanah-demo")]
        data: PathBuf,
        /// Keep the demo's data in PostgreSQL: postgres://USER:PASSWORD@HOST:PORT/DB.
        #[arg(long, env = "AMANAH_DATABASE_URL", hide_env_values = true)]
        store: Option<String>,
        #[arg(long, env = "AMANAH_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
}

#[derive(clap::Args, Clone)]
pub(crate) struct NetArgs {
    #[arg(long, env = "AMANAH_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// PEM certificate chain: serve HTTPS.
    #[arg(long, env = "AMANAH_TLS_CERT", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, env = "AMANAH_TLS_KEY", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Allow plain HTTP on a non-loopback address.
    #[arg(long, env = "AMANAH_INSECURE_HTTP")]
    pub(crate) insecure_http: bool,
    /// Seconds between retention sweeps while serving (0: never).
    #[arg(long, env = "AMANAH_RETENTION_INTERVAL", default_value_t = 3600)]
    pub(crate) retention_interval: u64,
    /// Where Prometheus metrics are served (GET /metrics, no key, plain HTTP), apart from the
    /// API; `off` to serve none. The API itself answers 404 on /metrics.
    #[arg(long, env = "AMANAH_METRICS_LISTEN", default_value = "127.0.0.1:9464", value_parser = parse_metrics_listen)]
    pub(crate) metrics_listen: MetricsListen,
    /// A request not answered within this time gets 503 (e.g. 30s, 500ms, 2m).
    #[arg(long, env = "AMANAH_REQUEST_TIMEOUT", default_value = "30s", value_parser = crate::duration::parse_duration)]
    pub(crate) request_timeout: std::time::Duration,
    /// A connection that has not sent a request's headers within this time is closed.
    #[arg(long, env = "AMANAH_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = crate::duration::parse_duration)]
    pub(crate) header_read_timeout: std::time::Duration,
    /// Requests handled at once; beyond it, 503 with Retry-After at once.
    #[arg(long, env = "AMANAH_MAX_CONCURRENT_REQUESTS", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) max_concurrent_requests: u32,
    /// Where documents' encrypted objects go: a directory, or s3://BUCKET[/PREFIX] on any
    /// S3-compatible store (credentials and endpoint from AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP). Default: DIR/documents
    /// beside the data (with --store: beside the key file).
    #[arg(long, env = "AMANAH_DOCUMENTS")]
    pub(crate) documents: Option<String>,
    #[command(flatten)]
    pub(crate) portal: Box<PortalArgs>,
}

/// How the privacy portal (`/portal`) sends sign-in codes, and where it is reached.
#[derive(clap::Args, Clone, Default)]
pub(crate) struct PortalArgs {
    /// SMTP relay for e-mailed sign-in codes (host name).
    #[arg(long, env = "AMANAH_SMTP_HOST", requires = "smtp_from")]
    pub(crate) smtp_host: Option<String>,
    /// SMTP port (587 for STARTTLS, 465 for TLS).
    #[arg(long, env = "AMANAH_SMTP_PORT", default_value_t = 587)]
    pub(crate) smtp_port: u16,
    /// The sender of the codes' e-mails, e.g. "Privasi <privacy@example.id>".
    #[arg(long, env = "AMANAH_SMTP_FROM")]
    pub(crate) smtp_from: Option<String>,
    /// SMTP user name (with --smtp-password).
    #[arg(long, env = "AMANAH_SMTP_USERNAME", requires = "smtp_password")]
    pub(crate) smtp_username: Option<String>,
    /// SMTP password.
    #[arg(long, env = "AMANAH_SMTP_PASSWORD", hide_env_values = true)]
    pub(crate) smtp_password: Option<String>,
    /// starttls (default), tls, or none (plain text: a relay on loopback only).
    #[arg(long, env = "AMANAH_SMTP_SECURITY", default_value = "starttls", value_parser = parse_smtp_security)]
    pub(crate) smtp_security: amanah_server::portal::SmtpSecurity,
    /// Webhook for codes to phone numbers (a WhatsApp or SMS gateway): a POST of JSON
    /// {"channel", "to", "code", "text", "lang"}; also e-mail when no SMTP relay is set.
    #[arg(long, env = "AMANAH_PORTAL_WEBHOOK")]
    pub(crate) portal_webhook: Option<String>,
    /// Demo delivery: each code's message written as a file (0600) in this directory, for
    /// the operator to read; for codes no other way carries.
    #[arg(long, env = "AMANAH_PORTAL_OUTBOX")]
    pub(crate) portal_outbox: Option<PathBuf>,
    /// The portal's public origin when TLS ends in front of Amanah (https://...): its cookies
    /// are then marked Secure.
    #[arg(long, env = "AMANAH_PORTAL_ORIGIN")]
    pub(crate) portal_origin: Option<String>,
}

fn parse_smtp_security(s: &str) -> Result<amanah_server::portal::SmtpSecurity, String> {
    amanah_server::portal::SmtpSecurity::parse(s)
        .ok_or_else(|| "expected starttls, tls or none".to_owned())
}

impl PortalArgs {
    /// The portal's configuration; `tls`: the API itself is served over TLS.
    pub(crate) fn config(&self, tls: bool) -> anyhow::Result<amanah_server::portal::PortalConfig> {
        use amanah_server::portal::{Delivery, PortalConfig, SmtpSecurity, SmtpSettings};
        let smtp = match (&self.smtp_host, &self.smtp_from) {
            (Some(host), Some(from)) => {
                let loopback = host == "localhost"
                    || host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback());
                if self.smtp_security == SmtpSecurity::None && !loopback {
                    anyhow::bail!(
                        "--smtp-security none sends codes in plain text: it is allowed only for a relay on loopback (localhost, 127.0.0.1, ::1)"
                    );
                }
                Some(SmtpSettings {
                    host: host.clone(),
                    port: self.smtp_port,
                    from: from.clone(),
                    username: self.smtp_username.clone(),
                    password: self.smtp_password.clone().map(zeroize::Zeroizing::new),
                    security: self.smtp_security,
                })
            }
            _ => None,
        };
        if let Some(url) = &self.portal_webhook {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                anyhow::bail!("--portal-webhook must be an http(s) URL");
            }
        }
        if let Some(origin) = &self.portal_origin {
            if !origin.starts_with("https://") {
                anyhow::bail!(
                    "--portal-origin must be the https:// address people reach the portal at (it marks cookies Secure); without TLS in front, leave it out"
                );
            }
        }
        let https_origin = self.portal_origin.is_some();
        Ok(PortalConfig {
            delivery: Delivery {
                smtp,
                webhook: self.portal_webhook.clone(),
                outbox: self.portal_outbox.clone(),
            },
            secure_cookies: tls || https_origin,
        })
    }
}

impl NetArgs {
    /// The defaults of `serve`, listening on `listen`.
    fn on(listen: SocketAddr) -> Self {
        NetArgs {
            listen,
            tls_cert: None,
            tls_key: None,
            insecure_http: false,
            retention_interval: 3600,
            metrics_listen: MetricsListen::On(SocketAddr::from(([127, 0, 0, 1], 9464))),
            request_timeout: std::time::Duration::from_secs(30),
            header_read_timeout: std::time::Duration::from_secs(10),
            max_concurrent_requests: 512,
            documents: None,
            portal: Box::default(),
        }
    }

    pub(crate) fn limits(&self) -> amanah_server::Limits {
        amanah_server::Limits {
            request_timeout: self.request_timeout,
            max_concurrent_requests: self.max_concurrent_requests as usize,
            header_read_timeout: self.header_read_timeout,
        }
    }
}

#[derive(Subcommand)]
enum ApikeyCommand {
    /// Issue a key; it is printed on the last line of stdout, only its hash is stored.
    Create {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        role: String,
        /// The person the key is issued to, `Name <email>`: four eyes count people, not keys.
        #[arg(long)]
        holder: String,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List keys (never the keys themselves).
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Revoke a key by id.
    Revoke {
        #[command(flatten)]
        data: DataArgs,
        id: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new key-encryption key active, rewrap every data key under it while servers keep
    /// serving (they reload the key file every 2 s or on SIGHUP), then retire the old key.
    /// Interrupted, it resumes where it stopped when run again.
    Rotate(crate::rotate::RotateArgs),
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy file; errors are printed as `file:line:col: message`.
    Check {
        file: PathBuf,
        /// Also report the UU PDP Art. 34 triggers present and write a DPIA skeleton (Markdown)
        /// to this file, which must not exist yet.
        #[arg(long)]
        dpia: Option<PathBuf>,
    },
    /// Apply a policy file as the new version.
    Apply {
        #[command(flatten)]
        data: DataArgs,
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Erase or de-identify what no purpose needs any more; --dry-run lists it only.
    Sweep {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the hash chain; exit 0 if intact, 1 naming the first bad entry otherwise. With
    /// --checkpoint, also that the chain still holds what that checkpoint saw (detects
    /// truncation, a deleted head, rollback to an older log).
    Verify {
        #[command(flatten)]
        data: DataArgs,
        /// A hosted organization's chain (its id) instead of the deployment's own.
        #[arg(long, conflicts_with = "platform")]
        tenant: Option<String>,
        /// The platform operator's chain (tenants' lifecycle, the operator's refusals).
        #[arg(long)]
        platform: bool,
        /// A checkpoint file written by `amanah audit checkpoint` or `serve --checkpoint-dir`.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Check the checkpoint's signature with this public key (as printed by `amanah audit
        /// public-key`) instead of the one derived from the key file.
        #[arg(long, requires = "checkpoint")]
        public_key: Option<PathBuf>,
    },
    /// Sign a checkpoint of the chain's head (JSON: seq, head hash, time, store id, signature,
    /// public key), to stdout or --out FILE. Keep it outside the data directory.
    Checkpoint {
        #[command(flatten)]
        data: DataArgs,
        /// A hosted organization's chain (its id) instead of the deployment's own.
        #[arg(long, conflicts_with = "platform")]
        tenant: Option<String>,
        /// The platform operator's chain (tenants' lifecycle, the operator's refusals).
        #[arg(long)]
        platform: bool,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the public key that checks checkpoints (hex), or write it to --out FILE.
    PublicKey {
        #[command(flatten)]
        data: DataArgs,
        /// A hosted organization's chain (its id) instead of the deployment's own.
        #[arg(long, conflicts_with = "platform")]
        tenant: Option<String>,
        /// The platform operator's chain (tenants' lifecycle, the operator's refusals).
        #[arg(long)]
        platform: bool,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check a checkpoint's signature with a public key only: no key file, no store needed.
    CheckCheckpoint {
        /// The checkpoint file.
        file: PathBuf,
        /// The vault's public key file (from `amanah audit public-key`).
        #[arg(long)]
        public_key: PathBuf,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; colours only when stderr is a terminal (and `NO_COLOR` is unset), so a
/// log file or a journal holds no escape codes.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("AMANAH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Plain => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(colour).init()
        }
    }
}

/// The command line's permit for `A`: the operator on the server's machine acts as the admin,
/// through the same decision point as every API key.
/// The vault whose chain an `audit` command reads: the deployment's own, a hosted
/// organization's, or the platform operator's (the platform's registry opens them).
async fn audited_vault(
    data: &DataArgs,
    tenant: Option<&str>,
    platform: bool,
) -> Result<Arc<Vault>> {
    if tenant.is_none() && !platform {
        return Ok(Arc::new(open_vault(data).await?));
    }
    let deployment = crate::tenants::open_deployment(data).await?;
    match tenant {
        Some(id) => Ok(deployment.tenant_vault(id).await?),
        None => deployment.platform(false).await?.ok_or_else(|| {
            anyhow!("this deployment hosts no other organization: it has no platform chain")
        }),
    }
}

pub(crate) async fn operator<A: Act>(vault: &Vault) -> amanah_core::Result<Permit<A>> {
    vault
        .authorize::<A>(&vault.operator(), Target::none())
        .await
}

async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Init { data, policy } => {
            let (p, source) = read_policy(&policy)?;
            init(&data, &source).await?;
            println!(
                "initialized {} with policy {:?}",
                data.describe(),
                p.version
            );
        }
        Command::Tenant { command } => crate::tenants::run(command).await?,
        Command::Apikey { command } => match command {
            ApikeyCommand::Create {
                data,
                role,
                holder,
                name,
            } => {
                let vault = open_vault(&data).await?;
                let permit = operator::<act::KeyCreate>(&vault).await?;
                let issued = vault.create_api_key(&permit, &role, &name, &holder).await?;
                println!("id {} role {}", issued.record.id, issued.record.role);
                println!("{}", issued.token.as_str());
            }
            ApikeyCommand::List { data } => {
                let vault = open_vault(&data).await?;
                let permit = operator::<act::KeyList>(&vault).await?;
                for k in vault.list_api_keys(&permit).await? {
                    let status = if k.revoked_at_micros.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        k.id,
                        k.role,
                        status,
                        k.name,
                        k.holder.as_deref().unwrap_or("-")
                    );
                }
            }
            ApikeyCommand::Revoke { data, id } => {
                let vault = open_vault(&data).await?;
                let permit = operator::<act::KeyRevoke>(&vault).await?;
                vault.revoke_api_key(&permit, &id).await?;
                println!("revoked {id}");
            }
        },
        Command::Keys {
            command: KeysCommand::Rotate(args),
        } => return crate::rotate::run(args).await,
        Command::Policy { command } => match command {
            PolicyCommand::Check { file, dpia } => {
                let (p, _) = read_policy(&file)?;
                if let Some(out) = dpia {
                    write_dpia(&p, &out)?;
                }
                println!(
                    "{}: ok (version {:?}: {} categories, {} purposes, {} roles, {} recipients)",
                    file.display(),
                    p.version,
                    p.categories.len(),
                    p.purposes.len(),
                    p.roles.len(),
                    p.recipients.len()
                );
            }
            PolicyCommand::Apply { data, file } => {
                let (_, source) = read_policy(&file)?;
                let vault = open_vault(&data).await?;
                let permit = operator::<act::PolicyApply>(&vault).await?;
                let r = vault.apply_policy(&permit, &source).await?;
                println!("applied policy version {:?} as #{}", r.version, r.seq);
            }
        },
        Command::Ropa { data, format } => {
            let vault = open_vault(&data).await?;
            let permit = operator::<act::Ropa>(&vault).await?;
            let storage = if data.store.is_some() {
                "PostgreSQL (every commit synced before it is acknowledged); data keys in their own schema"
            } else {
                "SQLite (WAL, every commit fsynced before it is acknowledged, secure_delete); data keys in a separate key store"
            };
            let doc = vault.ropa(&permit, storage).await?;
            match format.as_str() {
                "json" => println!("{}", serde_json::to_string_pretty(&doc)?),
                "csv" => print!("{}", amanah_core::ropa::csv(&doc)),
                _ => print!("{}", amanah_core::ropa::markdown(&doc)),
            }
        }
        Command::Serve {
            data,
            net,
            checkpoints,
        } => {
            let dir = match &checkpoints.checkpoint_dir {
                Some(dir) => Some(crate::checkpoint::prepare_dir(dir, data.data.as_deref())?),
                None => None,
            };
            let vault = Arc::new(open_vault(&data).await?);
            crate::keyfile::spawn_watcher(vault.clone(), data.key_path()?)?;
            let deployment = crate::tenants::deployment_of(vault, &data)?;
            if let Some(dir) = &dir {
                crate::checkpoint::spawn_periodic(
                    deployment.clone(),
                    dir.clone(),
                    checkpoints.checkpoint_interval,
                );
            }
            let documents = crate::serving::documents(net.documents.as_deref(), &data)?;
            deployment.attach_documents(documents);
            serve(deployment, net, dir).await?;
        }
        Command::Backup {
            data,
            out,
            key_store,
        } => {
            let keys = load_keys(&data)?;
            crate::maintenance::backup(&existing_db(&data)?, &keys, &out, key_store).await?;
        }
        Command::Restore {
            data,
            from,
            max_key_backup_days,
        } => {
            let keys = load_keys(&data)?;
            crate::maintenance::restore(&existing_db(&data)?, &keys, &from, max_key_backup_days)
                .await?;
        }
        Command::Retention {
            command: RetentionCommand::Sweep { data, dry_run },
        } => {
            let vault = open_vault(&data).await?;
            crate::maintenance::sweep(Arc::new(vault), dry_run).await?;
        }
        Command::Audit {
            command:
                AuditCommand::Verify {
                    data,
                    tenant,
                    platform,
                    checkpoint: Some(file),
                    public_key,
                },
        } => {
            let vault = audited_vault(&data, tenant.as_deref(), platform).await?;
            return crate::checkpoint::verify(&vault, &file, public_key.as_deref()).await;
        }
        Command::Audit {
            command:
                AuditCommand::Checkpoint {
                    data,
                    tenant,
                    platform,
                    out,
                },
        } => {
            let vault = audited_vault(&data, tenant.as_deref(), platform).await?;
            crate::checkpoint::emit(&vault, out.as_deref()).await?;
        }
        Command::Audit {
            command:
                AuditCommand::PublicKey {
                    data,
                    tenant,
                    platform,
                    out,
                },
        } => {
            let key = match (tenant, platform) {
                (None, false) => load_keys(&data)?
                    .checkpoint_key()
                    .map_err(|e| anyhow!("{e}"))?
                    .public_key(),
                (id, platform) => audited_vault(&data, id.as_deref(), platform)
                    .await?
                    .checkpoint_public_key()?,
            };
            crate::checkpoint::print_public_key(key, out.as_deref())?;
        }
        Command::Audit {
            command: AuditCommand::CheckCheckpoint { file, public_key },
        } => return crate::checkpoint::check(&file, &public_key),
        Command::Audit {
            command:
                AuditCommand::Verify {
                    data,
                    tenant,
                    platform,
                    ..
                },
        } => {
            let vault = audited_vault(&data, tenant.as_deref(), platform).await?;
            let report = vault.verify_chain().await?;
            match report.first_bad {
                None => println!(
                    "ok: {} entries, head {}",
                    report.entries,
                    report.head.unwrap_or_default()
                ),
                Some(b) => {
                    eprintln!("audit chain broken: {b}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        Command::Import {
            data,
            purpose,
            format,
            file,
        } => {
            let vault = open_vault(&data).await?;
            let permit = operator::<act::SubjectImport>(&vault).await?;
            return crate::import::run(&vault, &permit, &purpose, &file, format).await;
        }
        Command::Bench { args } => return crate::bench::forward(args),
        Command::Demo {
            data,
            store,
            listen,
        } => {
            let existing = match &store {
                None => data.join(DB_FILE).exists(),
                Some(_) => data.join(KEY_FILE).exists(),
            };
            let args = DataArgs {
                data: Some(data.clone()),
                key_file: None,
                store,
            };
            let vault = if existing {
                open_vault(&args).await?
            } else {
                init(&args, DEMO_POLICY).await?
            };
            let permit = operator::<act::KeyCreate>(&vault).await?;
            let admin = vault
                .create_api_key(
                    &permit,
                    ADMIN_ROLE,
                    "demo admin",
                    "Demo administrator <admin@demo.invalid>",
                )
                .await?;
            let officer_role = {
                let roles = &vault.policy().policy.roles;
                roles
                    .keys()
                    .find(|r| r.as_str() == "admissions_officer")
                    .or_else(|| roles.keys().next())
                    .cloned()
            };
            let officer = match &officer_role {
                Some(r) => Some(
                    vault
                        .create_api_key(&permit, r, "demo", "Demo officer <officer@demo.invalid>")
                        .await?,
                ),
                None => None,
            };
            print_demo(
                &listen,
                &admin.token,
                officer
                    .as_ref()
                    .map(|o| (o.record.role.as_str(), o.token.as_str())),
                &vault,
                &data.join("outbox"),
            );
            let vault = Arc::new(vault);
            crate::keyfile::spawn_watcher(vault.clone(), args.key_path()?)?;
            let deployment = crate::tenants::deployment_of(vault, &args)?;
            deployment.attach_documents(crate::serving::documents(None, &args)?);
            let mut net = NetArgs::on(listen);
            net.portal.portal_outbox = Some(data.join("outbox"));
            serve(deployment, net, None).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
