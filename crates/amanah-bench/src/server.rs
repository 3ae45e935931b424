//! The server under test when no `--url` is given: the `amanah` binary itself, set up the way an
//! operator would (`amanah init`, `amanah apikey create`, `amanah import`) on a temporary data
//! directory, then `amanah serve` on a loopback port. The bench links no part of the vault.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};

use crate::target::{loopback_target, Target};
use crate::workload::subject_fields;

/// The policy the server runs: the university preset (purpose `admission` with the five
/// categories the generated subjects fill).
const POLICY: &str = include_str!("../../../policies/university.toml");

/// The `amanah` binary to run: `--amanah` (or `AMANAH_BIN`, which `amanah bench` sets to
/// itself), else the one next to this executable, else the first on `PATH`.
pub fn find_amanah(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(path.to_owned());
        }
        bail!("--amanah {}: no such file", path.display());
    }
    let exe = std::env::current_exe().context("cannot locate the amanah-bench executable")?;
    let beside = exe.parent().map(|dir| dir.join("amanah"));
    if let Some(path) = beside.as_ref().filter(|p| p.is_file()) {
        return Ok(path.clone());
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("amanah"))
        .find(|p| p.is_file());
    on_path.ok_or_else(|| {
        anyhow!(
            "cannot find the amanah binary to start a server (not next to {} nor on PATH): build it with `cargo build --release -p amanah`, give --amanah PATH, or target a running server with --url",
            exe.display()
        )
    })
}

/// `amanah` with none of the caller's `AMANAH_*` settings (a data directory, a PostgreSQL URL,
/// a listen address meant for another server), logging warnings only.
fn amanah(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AMANAH_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("AMANAH_LOG", "warn").stdin(Stdio::null());
    cmd
}

/// Runs `amanah ARGS` to completion; its stdout, or an error with its stderr.
async fn run_amanah(bin: &Path, args: Vec<OsString>) -> Result<String> {
    let what = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut cmd = amanah(bin);
    cmd.args(args);
    let out = tokio::process::Command::from(cmd)
        .output()
        .await
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "`amanah {what}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).map_err(|_| anyhow!("`amanah {what}` wrote invalid UTF-8"))
}

/// Command-line words.
fn words<const N: usize>(w: [&str; N]) -> Vec<OsString> {
    w.into_iter().map(OsString::from).collect()
}

/// A server started by the bench; killed (and its data directory removed) when dropped.
pub struct OwnServer {
    child: Child,
    pub target: Target,
    /// An admin API key of that server.
    pub token: String,
    _dir: tempfile::TempDir,
}

impl OwnServer {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Initializes a throwaway vault, imports subjects `0..seed` of `run` under `purpose`, and
/// starts `amanah serve` on it, allowing `connections` requests in progress at once.
pub async fn start(
    bin: &Path,
    run: u32,
    seed: u64,
    purpose: &str,
    connections: usize,
) -> Result<OwnServer> {
    let dir = tempfile::Builder::new()
        .prefix("amanah-bench-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let data = dir.path().join("data");
    let key_file = dir.path().join("master.key");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).context("cannot write the policy file")?;
    let store: Vec<OsString> = vec![
        "--data".into(),
        data.clone().into(),
        "--key-file".into(),
        key_file.clone().into(),
    ];
    run_amanah(
        bin,
        [
            words(["init", "--policy"]),
            vec![policy.into()],
            store.clone(),
        ]
        .concat(),
    )
    .await?;
    let key = [
        words(["apikey", "create", "--role", "admin", "--name", "bench"]),
        words(["--holder", "Load tool <bench@amanah.invalid>"]),
        store.clone(),
    ]
    .concat();
    let token = run_amanah(bin, key)
        .await?
        .lines()
        .last()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("`amanah apikey create` printed no key"))?;
    if seed > 0 {
        let file = dir.path().join("subjects.jsonl");
        write_subjects(&file, run, seed)?;
        let import = [
            words(["import", "--purpose", purpose]),
            vec![file.into()],
            store.clone(),
        ]
        .concat();
        run_amanah(bin, import).await?;
    }
    let mut serve = amanah(bin);
    let mut child = serve
        .arg("serve")
        .args(&store)
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        // Every connection may have a request in progress: none is shed.
        .arg("--max-concurrent-requests")
        .arg(connections.max(512).to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {} serve", bin.display()))?;
    let stdout = child.stdout.take();
    // From here on the server is killed if anything fails.
    let mut server = OwnServer {
        child,
        target: loopback_target("http://127.0.0.1:1")?,
        token,
        _dir: dir,
    };
    let stdout = stdout.ok_or_else(|| anyhow!("no stdout from amanah serve"))?;
    let addr = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let addr = lines.find_map(|l| {
            l.ok()?
                .trim()
                .strip_prefix("listening on http://")
                .map(str::to_owned)
        });
        // Keep draining so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        addr
    })
    .await?
    .ok_or_else(|| anyhow!("amanah serve did not report its address"))?;
    server.target = loopback_target(&format!("http://{addr}"))?;
    Ok(server)
}

/// Subjects `0..count` of `run` as JSON Lines, the input of `amanah import`.
fn write_subjects(file: &Path, run: u32, count: u64) -> Result<()> {
    let mut out = BufWriter::new(
        std::fs::File::create(file).with_context(|| format!("cannot create {}", file.display()))?,
    );
    for m in 0..count {
        serde_json::to_writer(&mut out, &subject_fields(run, m))?;
        out.write_all(b"\n")?;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", file.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn the_import_file_holds_one_subject_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.jsonl");
        write_subjects(&file, 5, 3).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2], subject_fields(5, 2));
        assert_eq!(lines[0]["email"], crate::workload::email(5, 0));
    }

    #[test]
    fn an_explicit_amanah_binary_must_exist() {
        let e = find_amanah(Some(Path::new("/nonexistent/amanah")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/amanah: no such file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("amanah");
        std::fs::write(&bin, "").unwrap();
        assert_eq!(find_amanah(Some(&bin)).unwrap(), bin);
    }
}
