//! Test support: one throwaway PostgreSQL cluster per test binary, one database per test. The
//! rest of the test kit (policies, store and vault harnesses, `on_both_stores!`) is
//! `amanah-testkit`, which re-exports this; the store's own contract suite uses this directly.
//!
//! The cluster is made with `initdb` in a temporary directory and started with `pg_ctl` on a
//! free loopback port (its unix socket in the same directory). A watchdog process, detached in
//! its own process group, stops the cluster and removes the directory as soon as the test
//! binary exits, whether the tests passed, failed or were interrupted.
//!
//! - Binaries: `AMANAH_PG_BINDIR`, else `pg_config --bindir`, else `initdb` on `PATH`, else the
//!   newest `/usr/lib/postgresql/*/bin` (Debian's layout).
//! - `initdb` and `pg_ctl` refuse to run as root: when the tests run as root they run as the
//!   `postgres` user (or `nobody`) through `runuser`.
//! - Connections use a random password (SCRAM), so tests also see that it never leaks.
//! - [`Cluster::start`] starts another cluster of the test's own, e.g. one serving TLS
//!   ([`Options::tls`]); it is stopped when the test binary exits, like the shared one.
//!
//! This crate only serves tests: a failure to set the cluster up panics with the reason.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

pub const USER: &str = "amanah";

/// A running cluster.
pub struct Cluster {
    dir: PathBuf,
    port: u16,
    password: String,
}

/// How a cluster is started; the default is the shared cluster's (plain TCP).
#[derive(Clone, Default)]
pub struct Options {
    /// Serve TLS (`ssl=on`) with this certificate and key.
    pub tls: Option<ServerTls>,
}

/// The server's side of TLS, in PEM.
#[derive(Clone)]
pub struct ServerTls {
    /// The certificate chain the server sends, its own certificate first.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// The cluster of this test binary, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| Cluster::start(&Options::default()))
}

/// A fresh, empty database on the shared cluster; returns its URL.
pub fn database(label: &str) -> String {
    cluster().create_database(label)
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
pub fn bindir() -> PathBuf {
    if let Some(d) = std::env::var_os("AMANAH_PG_BINDIR") {
        return PathBuf::from(d);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && d.join("initdb").exists() {
            return d;
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if d.join("initdb").exists() && d.join("pg_ctl").exists() {
                return d;
            }
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, d)) => d,
        None => panic!(
            "PostgreSQL server binaries not found (initdb, pg_ctl): install Debian's `postgresql` \
             package or set AMANAH_PG_BINDIR"
        ),
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// The unprivileged account that owns the cluster when the tests run as root.
fn cluster_user() -> Option<String> {
    if !is_root() {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let has = |name: &str| passwd.lines().any(|l| l.split(':').next() == Some(name));
    Some(
        if has("postgres") {
            "postgres"
        } else {
            "nobody"
        }
        .to_owned(),
    )
}

fn as_owner(user: &Option<String>, program: &Path) -> Command {
    match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    let mut f = std::fs::File::open("/dev/urandom").expect("/dev/urandom");
    std::io::Read::read_exact(&mut f, &mut buf).expect("random bytes");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    if !out.status.success() {
        panic!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Cluster {
    /// Starts a cluster of its own (use [`cluster`] for the shared one).
    pub fn start(options: &Options) -> Cluster {
        let bin = bindir();
        let user = cluster_user();
        // As root, the cluster's owner must be able to reach the directory: use /tmp itself,
        // not a TMPDIR that may be private to root.
        let parent = if user.is_some() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = parent.join(format!(
            "amanah-pg-{}-{}",
            std::process::id(),
            random_hex(4)
        ));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        // Stop and remove the cluster when this process ends, however it ends. The watchdog
        // runs in its own process group so that an interrupt of the tests does not kill it.
        let data = dir.join("data");
        let stop = match &user {
            Some(u) => format!("runuser -u {u} -- '{}/pg_ctl'", bin.display()),
            None => format!("'{}/pg_ctl'", bin.display()),
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.3; done; \
             {stop} -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            data = data.display(),
            dir = dir.display(),
        );
        // Never waited for: it outlives this process by design.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("cluster watchdog");
        if let Some(u) = &user {
            run(
                Command::new("chown").args([u.as_str()]).arg(&dir),
                "chown of the cluster directory",
            );
        }
        let password = random_hex(16);
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, &password).expect("password file");
        if let Some(u) = &user {
            run(
                Command::new("chown").args([u.as_str()]).arg(&pwfile),
                "chown of the password file",
            );
        }
        run(
            as_owner(&user, &bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-U", USER, "-E", "UTF8", "--no-sync", "--auth-local=trust"])
                .args(["--auth-host=scram-sha-256", "--no-instructions"])
                .arg(format!("--pwfile={}", pwfile.display())),
            "initdb",
        );
        let _ = std::fs::remove_file(&pwfile);
        let tls_opts = match &options.tls {
            Some(tls) => {
                // The server refuses a key file others can read, or one it does not own.
                let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
                std::fs::write(&cert, &tls.cert_pem).expect("server certificate file");
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&key)
                    .and_then(|mut f| f.write_all(tls.key_pem.as_bytes()))
                    .expect("server key file");
                if let Some(u) = &user {
                    run(
                        Command::new("chown").arg(u).arg(&cert).arg(&key),
                        "chown of the server's certificate and key",
                    );
                }
                format!(
                    " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                    cert.display(),
                    key.display()
                )
            }
            None => String::new(),
        };
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port();
            let opts = format!(
                "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 \
                 -c shared_buffers=64MB{tls_opts}",
                dir.display()
            );
            let out = as_owner(&user, &bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("log"))
                .args(["-w", "-t", "30", "-o", &opts, "start"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .expect("pg_ctl start");
            if out.status.success() {
                return Cluster {
                    dir,
                    port,
                    password,
                };
            }
            last_error = format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(dir.join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("the test cluster did not start: {last_error}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The URL of database `db` (with the password).
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{USER}:{}@127.0.0.1:{}/{db}",
            self.password, self.port
        )
    }

    /// The URL of database `db` naming the server `host` (the name a TLS certificate is checked
    /// against), while the connection still goes to 127.0.0.1 (`hostaddr`).
    pub fn url_as(&self, host: &str, db: &str) -> String {
        format!(
            "postgres://{USER}:{}@{host}:{}/{db}?hostaddr=127.0.0.1",
            self.password, self.port
        )
    }

    /// Creates an empty database named after `label` (made unique) and returns its URL.
    pub fn create_database(&self, label: &str) -> String {
        let clean: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let name = format!("t{}_{clean}", NEXT_DB.fetch_add(1, Ordering::Relaxed));
        self.execute("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url(&name)
    }

    /// Copies database `from` (which must have no open connection) to a new one; returns its URL.
    pub fn copy_database(&self, from_url: &str, label: &str) -> String {
        let from = from_url.rsplit('/').next().unwrap_or_default().to_owned();
        let name = format!("t{}_{label}", NEXT_DB.fetch_add(1, Ordering::Relaxed));
        self.execute(
            "postgres",
            &format!("CREATE DATABASE \"{name}\" TEMPLATE \"{from}\""),
        );
        self.url(&name)
    }

    /// Runs SQL statements on database `db` (a name or a URL of this cluster).
    pub fn execute(&self, db: &str, sql: &str) {
        let url = if db.contains("://") {
            db.to_owned()
        } else {
            self.url(db)
        };
        let sql = sql.to_owned();
        on_own_runtime(move || async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect to the test cluster");
            tokio::spawn(conn);
            client
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("SQL failed: {e:?}\n{sql}"));
        })
    }

    /// The first column of the first row of `sql`, as text.
    pub fn query_text(&self, db_url: &str, sql: &str) -> Option<String> {
        let url = db_url.to_owned();
        let sql = sql.to_owned();
        on_own_runtime(move || async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect to the test cluster");
            tokio::spawn(conn);
            let rows = client
                .simple_query(&sql)
                .await
                .unwrap_or_else(|e| panic!("SQL failed: {e:?}\n{sql}"));
            rows.iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
        })
    }

    /// Every file of the cluster's data directory (to scan for plaintext), read as root or
    /// as the owner.
    pub fn data_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir, &mut out);
        out
    }

    /// The files that hold database `db_url`'s data at rest: its own directory under `base/`,
    /// the write-ahead log and the server log (after a checkpoint, so every row is on disk).
    pub fn database_files(&self, db_url: &str) -> Vec<PathBuf> {
        self.checkpoint();
        let oid = self
            .query_text(
                db_url,
                "SELECT oid::text FROM pg_database WHERE datname = current_database()",
            )
            .expect("database oid");
        let db_dir = format!("/data/base/{oid}/");
        self.data_files()
            .into_iter()
            .filter(|p| {
                let p = p.to_string_lossy();
                p.contains(&db_dir) || p.contains("/pg_wal/") || p.ends_with("/log")
            })
            .collect()
    }

    /// Forces dirty pages to disk, so that a scan of the data files sees every row.
    pub fn checkpoint(&self) {
        self.execute("postgres", "CHECKPOINT");
    }
}

/// Runs async work on a runtime of its own, on another thread, so it can be called from sync
/// code and from inside a test's runtime alike.
fn on_own_runtime<F, Fut, T>(f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f())
    })
    .join()
    .unwrap_or_else(|_| panic!("test cluster helper failed"))
}
