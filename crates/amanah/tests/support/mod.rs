//! The real `amanah` binary as the tests start it: one command whose environment a developer's
//! shell cannot change, its runs to completion, and `amanah serve` as a process that announces
//! its addresses, keeps its output and never outlives its test.
//!
//! Included with `mod support;` by each test file; each uses a part of it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A guard against a hung server (one that neither announces itself nor stops); far beyond
/// any expected wait, never the thing asserted.
const HANG: Duration = Duration::from_secs(60);

/// `program` with every `AMANAH_*` variable and `NO_COLOR` removed from its environment: what
/// a test passes is all the binary sees.
pub fn clean(program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.as_encoded_bytes().starts_with(b"AMANAH_") || name == "NO_COLOR" {
            c.env_remove(name);
        }
    }
    c
}

/// The `amanah` binary under test, in a clean environment.
pub fn amanah() -> Command {
    clean(env!("CARGO_BIN_EXE_amanah"))
}

/// The path of a policy preset of the repository (`policies/NAME`).
pub fn preset(name: &str) -> String {
    format!("{}/../../policies/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A vault initialized with the CRM preset under `DIR/v`; keep the directory alive for the
/// test's duration.
pub fn crm_vault() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("v");
    run_ok(&[
        "init",
        "--data",
        data.to_str().unwrap(),
        "--policy",
        &preset("crm.toml"),
    ]);
    (dir, data)
}

/// Runs `cmd` to its end: (success, stdout, stderr).
pub fn outcome(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `amanah ARGS`: (success, stdout, stderr).
pub fn run<S: AsRef<OsStr>>(args: &[S]) -> (bool, String, String) {
    outcome(amanah().args(args))
}

/// `amanah ARGS`, which must succeed; its stdout.
pub fn run_ok<S: AsRef<OsStr>>(args: &[S]) -> String {
    let (ok, out, err) = run(args);
    let args: Vec<&OsStr> = args.iter().map(AsRef::as_ref).collect();
    assert!(ok, "amanah {args:?}: {out}{err}");
    out
}

/// `amanah serve --listen 127.0.0.1:0 ARGS`, to be started. Without `--metrics-listen` in the
/// arguments `--metrics-listen off` is added (a test never takes the fixed default port); with
/// an address there, the server is ready once it printed both its addresses.
pub fn serve<I, S>(args: I) -> Serve
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Serve {
        args: args.into_iter().map(|a| a.as_ref().to_owned()).collect(),
        log: None,
        stderr: None,
    }
}

/// How to start `amanah serve`; see [`serve`].
pub struct Serve {
    args: Vec<OsString>,
    /// `AMANAH_LOG`; unset, the binary's default.
    log: Option<String>,
    /// Where stderr is appended; `None`: captured with stdout.
    stderr: Option<PathBuf>,
}

impl Serve {
    /// The log filter (`AMANAH_LOG`).
    pub fn log(mut self, filter: &str) -> Serve {
        self.log = Some(filter.to_owned());
        self
    }

    /// Appends stderr to `file` (created if need be) instead of capturing it.
    pub fn stderr_to(mut self, file: &Path) -> Serve {
        self.stderr = Some(file.to_owned());
        self
    }

    /// The value given to `--metrics-listen`, if any.
    fn metrics_listen(&self) -> Option<&OsStr> {
        let mut args = self.args.iter();
        while let Some(a) = args.next() {
            if a == "--metrics-listen" {
                return args.next().map(OsString::as_os_str);
            }
            if let Some(v) = a.to_str().and_then(|a| a.strip_prefix("--metrics-listen=")) {
                return Some(OsStr::new(v));
            }
        }
        None
    }

    /// Spawns the server and returns once it listens (on its metrics address too, when it has
    /// one); panics with what it printed if it does not.
    pub fn start(self) -> Server {
        let metrics_listen = self.metrics_listen();
        let awaits_metrics = metrics_listen.is_some_and(|v| v != "off");
        let mut cmd = amanah();
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(&self.args);
        if metrics_listen.is_none() {
            cmd.args(["--metrics-listen", "off"]);
        }
        if let Some(filter) = &self.log {
            cmd.env("AMANAH_LOG", filter);
        }
        cmd.stdout(Stdio::piped());
        match &self.stderr {
            Some(file) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(file)
                    .unwrap();
                cmd.stderr(Stdio::from(file));
            }
            None => {
                cmd.stderr(Stdio::piped());
            }
        }
        let mut child = cmd.spawn().unwrap();

        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = channel();
        let stdout = child.stdout.take().unwrap();
        let out = output.clone();
        let mut readers = vec![std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                out.lock().unwrap().extend_from_slice(line.as_bytes());
                let l = line.trim();
                if let Some(url) = l.strip_prefix("listening on ") {
                    let _ = tx.send(Announced::Api(url.to_owned()));
                }
                if let Some(url) = l.strip_prefix("metrics on ") {
                    let base = url.trim_end_matches("/metrics").to_owned();
                    let _ = tx.send(Announced::Metrics(base));
                }
                line.clear();
            }
        })];
        if let Some(mut stderr) = child.stderr.take() {
            let out = output.clone();
            readers.push(std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match stderr.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => out.lock().unwrap().extend_from_slice(&buf[..n]),
                    }
                }
            }));
        }

        let mut server = Server {
            child,
            base: String::new(),
            metrics: None,
            output,
            stderr: self.stderr,
            readers,
        };
        let deadline = Instant::now() + HANG;
        while server.base.is_empty() || (awaits_metrics && server.metrics.is_none()) {
            let wait = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Announced::Api(url)) => server.base = url,
                Ok(Announced::Metrics(url)) => server.metrics = Some(url),
                Err(e) => {
                    server.kill();
                    let why = match e {
                        RecvTimeoutError::Timeout => "did not announce itself in time",
                        RecvTimeoutError::Disconnected => "exited",
                    };
                    panic!("amanah serve {why}: {}", server.printed());
                }
            }
        }
        server
    }
}

enum Announced {
    Api(String),
    Metrics(String),
}

/// A running `amanah serve`. Dropped, it is killed (SIGKILL) and waited for, so a failing
/// assertion never leaves a server running.
pub struct Server {
    child: Child,
    /// `http://ADDR` or `https://ADDR`.
    base: String,
    /// `http://ADDR` of the metrics listener, when it has one.
    metrics: Option<String>,
    /// Stdout, and stderr unless it goes to a file.
    output: Arc<Mutex<Vec<u8>>>,
    stderr: Option<PathBuf>,
    readers: Vec<JoinHandle<()>>,
}

impl Server {
    /// The API's base URL: `http://ADDR` (`https://ADDR` under TLS).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The API's socket address, `IP:PORT`.
    pub fn addr(&self) -> &str {
        self.base.split_once("://").unwrap().1
    }

    /// The metrics listener's base URL, `http://ADDR`.
    pub fn metrics(&self) -> &str {
        self.metrics
            .as_deref()
            .expect("the server was started without a metrics address")
    }

    /// What the server printed so far: stdout, and stderr unless it is appended to a file.
    /// Complete once the server was stopped ([`Server::kill`], [`Server::interrupt`]).
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.join_readers();
    }

    /// SIGINT (a graceful stop); waits for the exit and returns its status.
    pub fn interrupt(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
        assert!(sent.success(), "kill -INT {pid}: {sent}");
        let deadline = Instant::now() + HANG;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                self.kill();
                panic!("amanah serve did not stop on SIGINT: {}", self.printed());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.join_readers();
        status
    }

    /// SIGINT, and the server must exit successfully.
    pub fn stop(&mut self) {
        let status = self.interrupt();
        assert!(status.success(), "server exit: {status}");
    }

    fn join_readers(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }

    /// The output, and the stderr file's content when stderr goes to one.
    fn printed(&self) -> String {
        let mut text = self.output();
        if let Some(file) = &self.stderr {
            text.push_str(&std::fs::read_to_string(file).unwrap_or_default());
        }
        text
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}
