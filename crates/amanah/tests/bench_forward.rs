//! `amanah bench ARGS...` hands over to the separate load tool, `amanah-bench`: found next to
//! the `amanah` executable, then on PATH; arguments passed unchanged, its exit status returned,
//! and a precise message when it is not built. A stand-in script plays the tool here (the real
//! one is run through `amanah bench` by amanah-bench's own tests). One test in its own file, so
//! no other test forks while the script is written (a script still open for writing elsewhere
//! cannot be executed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

mod support;

/// A copy of the `amanah` binary in a directory of its own (a hard link when possible).
fn amanah_in(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let bin = dir.join("amanah");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_amanah"), &bin).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_amanah"), &bin).unwrap();
    }
    bin
}

/// A stand-in `amanah-bench` in `dir`: prints each argument and AMANAH_BIN, exits 7.
fn stand_in(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let script = dir.join("amanah-bench");
    std::fs::write(
        &script,
        "#!/bin/sh\nfor a in \"$@\"; do echo \"arg:$a\"; done\necho \"bin:$AMANAH_BIN\"\nexit 7\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `amanah bench ARGS` with `path` as PATH, in a clean environment (no AMANAH_BIN).
fn run(amanah: &Path, path: &Path, args: &[&str]) -> Output {
    support::clean(amanah)
        .arg("bench")
        .args(args)
        .env("PATH", path)
        .output()
        .unwrap()
}

#[test]
fn amanah_bench_forwards_to_the_load_tool() {
    let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let empty = root.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let args = [
        "--workload",
        "get",
        "--duration",
        "1s",
        "--help",
        "two words",
    ];

    // Next to the executable: every argument through unchanged, the exit status back, and the
    // tool told which amanah ran it.
    let beside = root.path().join("beside");
    let amanah = amanah_in(&beside);
    stand_in(&beside);
    let out = run(&amanah, &empty, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected: Vec<String> = args
        .iter()
        .map(|a| format!("arg:{a}"))
        .chain([format!("bin:{}", amanah.display())])
        .collect();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected, "{stdout}");
    assert_eq!(out.status.code(), Some(7));

    // Not beside it: the first on PATH.
    let alone = root.path().join("alone");
    let amanah = amanah_in(&alone);
    let tools = root.path().join("tools");
    stand_in(&tools);
    let out = run(&amanah, &tools, &["--json"]);
    assert_eq!(out.status.code(), Some(7));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("arg:--json\n"));

    // Nowhere: exit 1 and how to build it.
    let out = run(&amanah, &empty, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("amanah-bench, which is neither next to")
            && stderr.contains("cargo build --release -p amanah-bench"),
        "{stderr}"
    );
}
