//! `amanah bench ARGS...`: runs the load tool, `amanah-bench`, a binary of its own so the
//! shipped server does not carry it. It is looked for next to this executable, then on `PATH`;
//! the arguments go through unchanged, and the tool's exit status comes back (the process is
//! replaced by it). The tool is told which `amanah` ran it (`AMANAH_BIN`), so the server it
//! starts is this very binary.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

const TOOL: &str = "amanah-bench";

/// The load tool: next to `exe`, else the first `amanah-bench` in `path`.
fn find_tool(exe: &Path, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    let beside = exe.parent().map(|dir| dir.join(TOOL));
    beside.filter(|p| p.is_file()).or_else(|| {
        std::env::split_paths(path?)
            .map(|dir| dir.join(TOOL))
            .find(|p| p.is_file())
    })
}

/// Replaces this process with `amanah-bench ARGS`; returns only if that cannot be done.
pub(crate) fn forward(args: Vec<OsString>) -> Result<std::process::ExitCode> {
    let exe = std::env::current_exe().context("cannot locate the amanah executable")?;
    let Some(tool) = find_tool(&exe, std::env::var_os("PATH").as_deref()) else {
        bail!(
            "`amanah bench` runs the load tool {TOOL}, which is neither next to {} nor on PATH: build it with `cargo build --release -p amanah-bench` (it lands next to target/release/amanah)",
            exe.display()
        );
    };
    let mut cmd = std::process::Command::new(&tool);
    cmd.args(args);
    if std::env::var_os("AMANAH_BIN").is_none() {
        cmd.env("AMANAH_BIN", &exe);
    }
    let e = cmd.exec();
    bail!("cannot run {}: {e}", tool.display())
}
