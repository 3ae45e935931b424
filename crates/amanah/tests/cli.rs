//! The command line as a user drives it: exit codes and messages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use support::{amanah, crm_vault, outcome, preset, run_ok};

/// A store initialized with the CRM preset; keep the guard alive for the test's duration.
fn initialized_store() -> (tempfile::TempDir, String) {
    let (dir, data) = crm_vault();
    (dir, data.to_str().unwrap().to_owned())
}

const PRESETS: [&str; 2] = ["crm.toml", "university.toml"];

#[test]
fn presets_pass_policy_check() {
    for preset in PRESETS {
        let path = support::preset(preset);
        let out = run_ok(&["policy", "check", &path]);
        assert!(out.contains(": ok"), "{preset}: {out}");
    }
}

#[test]
fn init_refuses_an_existing_store_and_a_bad_policy_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("vault");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "version = \"1\"\n[controller]\nname = \"C\"\n").unwrap();
    let out = amanah()
        .args([
            "init",
            "--data",
            data.to_str().unwrap(),
            "--policy",
            bad.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml:"));
    assert!(
        !data.exists(),
        "a rejected init must not create the data directory"
    );

    let good = preset("crm.toml");
    let init = |policy: &str| {
        amanah()
            .args(["init", "--data", data.to_str().unwrap(), "--policy", policy])
            .output()
            .unwrap()
    };
    let first = init(&good);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stderr).contains("warning"));
    let key = data.join("master.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let before = std::fs::read(&key).unwrap();
    let second = init(&good);
    assert!(!second.status.success());
    assert_eq!(
        std::fs::read(&key).unwrap(),
        before,
        "the key file must not be replaced"
    );
}

#[test]
fn apikey_lifecycle_on_the_command_line() {
    let (_dir, data) = initialized_store();
    let stdout = run_ok(&[
        "apikey",
        "create",
        "--data",
        &data,
        "--role",
        "admin",
        "--name",
        "ops",
        "--holder",
        "Ops Lead <ops@example.id>",
    ]);
    let token = stdout.lines().last().unwrap();
    assert!(token.starts_with("amk_"));
    let id = stdout.split_whitespace().nth(1).unwrap().to_owned();

    let list = amanah()
        .args(["apikey", "list", "--data", &data])
        .output()
        .unwrap();
    let listed = String::from_utf8(list.stdout).unwrap();
    assert!(listed.contains(&id) && listed.contains("active"));
    assert!(!listed.contains(token), "list must never show a key");
    let db = std::fs::read(format!("{data}/amanah.db")).unwrap();
    assert!(
        !db.windows(token.len()).any(|w| w == token.as_bytes()),
        "the key must not be stored"
    );

    let unknown_role = amanah()
        .args([
            "apikey",
            "create",
            "--data",
            &data,
            "--role",
            "ghost",
            "--holder",
            "G <g@x.id>",
        ])
        .output()
        .unwrap();
    assert!(!unknown_role.status.success());
    assert!(String::from_utf8_lossy(&unknown_role.stderr).contains("unknown role"));

    assert!(amanah()
        .args(["apikey", "revoke", "--data", &data, &id])
        .status()
        .unwrap()
        .success());
    let again = amanah()
        .args(["apikey", "revoke", "--data", &data, &id])
        .output()
        .unwrap();
    assert!(!again.status.success(), "revoking twice is an error");
    let list = amanah()
        .args(["apikey", "list", "--data", &data])
        .output()
        .unwrap();
    assert!(String::from_utf8(list.stdout).unwrap().contains("revoked"));
    assert!(amanah()
        .args(["audit", "verify", "--data", &data])
        .status()
        .unwrap()
        .success());
}

#[test]
fn serve_refuses_plain_http_on_a_public_address() {
    let (_dir, data) = initialized_store();
    let out = amanah()
        .args(["serve", "--data", &data, "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing") && err.contains("--insecure-http"),
        "{err}"
    );
}

#[test]
fn serve_refuses_a_portal_origin_that_is_not_https() {
    let (_dir, data) = initialized_store();
    let out = amanah()
        .args([
            "serve",
            "--data",
            &data,
            "--listen",
            "127.0.0.1:0",
            "--portal-origin",
            "http://privasi.example.id",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--portal-origin must be the https://"),
        "{err}"
    );
}

#[test]
fn commands_on_a_missing_store_explain_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = amanah()
        .args(["audit", "verify", "--data", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("amanah init"));
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    outcome(amanah().args(args).envs(env.iter().copied()))
}

/// Every store command on PostgreSQL: the URL from `--store` or `AMANAH_DATABASE_URL`, the key
/// in a file of its own; the password never printed; a second init and a newer schema refused.
#[test]
fn the_command_line_on_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let url = amanah_testkit::database("cli");
    let password = amanah_testkit::cluster().password().to_owned();
    let key = dir.path().join("master.key");
    let key = key.to_str().unwrap();
    let policy = preset("crm.toml");
    let mut printed = String::new();

    let (ok, out, err) = run(
        &[
            "init",
            "--store",
            &url,
            "--key-file",
            key,
            "--policy",
            &policy,
        ],
        &[],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("initialized postgres://amanah@127.0.0.1:"),
        "{out}"
    );
    printed += &(out + &err);
    let env = [
        ("AMANAH_DATABASE_URL", url.as_str()),
        ("AMANAH_KEY_FILE", key),
    ];
    let (ok, out, err) = run(
        &[
            "apikey",
            "create",
            "--role",
            "admin",
            "--holder",
            "Ops <ops@x.id>",
        ],
        &env,
    );
    assert!(ok, "{err}");
    let id = out.split_whitespace().nth(1).unwrap().to_owned();
    printed += &(out + &err);
    let (ok, out, err) = run(&["apikey", "list"], &env);
    assert!(ok && out.contains(&id), "{err}");
    let (ok, _, err) = run(&["apikey", "revoke", &id], &env);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&["policy", "apply", &policy], &env);
    assert!(ok && out.contains("#2"), "{out}{err}");
    let (ok, out, err) = run(&["audit", "verify"], &env);
    assert!(ok && out.starts_with("ok: 5 entries"), "{out}{err}");
    printed += &(out + &err);

    // A second init neither touches the store nor replaces the key file.
    let before = std::fs::read(key).unwrap();
    let other_key = dir.path().join("other.key");
    let (ok, _, err) = run(
        &[
            "init",
            "--key-file",
            other_key.to_str().unwrap(),
            "--policy",
            &policy,
        ],
        &env,
    );
    assert!(!ok && err.contains("already holds a store"), "{err}");
    assert!(!other_key.exists(), "no key file for a refused init");
    assert_eq!(std::fs::read(key).unwrap(), before);
    printed += &err;

    // Wrong password, unreachable server, non-postgres URL: clear errors, no password.
    let wrong = url.replace(&password, "not-the-password-at-all");
    let (ok, _, err) = run(
        &["audit", "verify", "--store", &wrong, "--key-file", key],
        &[],
    );
    assert!(
        !ok && err.contains("cannot connect to postgres://amanah@"),
        "{err}"
    );
    assert!(!err.contains("not-the-password-at-all"), "{err}");
    let (ok, _, err) = run(
        &["audit", "verify", "--store", "mysql://x", "--key-file", key],
        &[],
    );
    assert!(!ok && err.contains("postgres://"), "{err}");
    let (ok, _, err) = run(&["audit", "verify", "--store", &url], &[]);
    assert!(!ok && err.contains("--key-file"), "{err}");

    // A schema written by a newer Amanah is refused, by serve too.
    amanah_testkit::cluster().execute(&url, "INSERT INTO schema_version (version) VALUES (99)");
    let (ok, _, err) = run(&["serve", "--listen", "127.0.0.1:0"], &env);
    assert!(!ok && err.contains("schema version 99 is newer"), "{err}");
    printed += &err;
    assert!(
        !printed.contains(&password),
        "the password was printed: {printed}"
    );
}

#[test]
fn ropa_prints_the_record_of_processing_in_three_formats() {
    let (_dir, data) = initialized_store();
    let md = run_ok(&["ropa", "--data", &data, "--format", "md"]);
    assert!(md.contains("# Record of processing activities"), "{md}");
    assert!(md.contains("Barantum"));
    assert!(md.contains("payment_gateway (processor, ID)"), "{md}");
    assert!(
        md.contains("google (third_party, US, transfer: consent)"),
        "{md}"
    );
    assert!(md.contains("AES-256-GCM"));
    let json = run_ok(&["ropa", "--data", &data, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["format"], "amanah-ropa/1");
    assert!(v["activities"].as_array().unwrap().len() > 5);
    let csv = run_ok(&["ropa", "--data", &data, "--format", "csv"]);
    assert!(csv.starts_with("controller,contact,purpose"));
    let bad = amanah()
        .args(["ropa", "--data", &data, "--format", "pdf"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[test]
fn policy_check_reports_dpia_triggers_and_writes_a_skeleton() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dpia.md");
    let path = preset("university.toml");
    let stdout = run_ok(&["policy", "check", &path, "--dpia", out.to_str().unwrap()]);
    assert!(stdout.contains("present  specific data"), "{stdout}");
    assert!(stdout.contains("present  children"), "{stdout}");
    assert!(
        stdout.contains("present  cross-border transfer"),
        "{stdout}"
    );
    assert!(
        stdout.contains("assess   large-scale processing"),
        "{stdout}"
    );
    let skeleton = std::fs::read_to_string(&out).unwrap();
    assert!(skeleton.contains("# Data protection impact assessment (UU PDP Art. 34)"));
    assert!(skeleton.contains("Universitas Bunda Mulia"));
    assert!(
        skeleton.contains("partner_universities (AU, safeguards)"),
        "{skeleton}"
    );
    // Never overwrites the DPO's work.
    let again = amanah()
        .args(["policy", "check", &path, "--dpia", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success());
}

/// Whatever the umask, the data directory is the owner's only, every database file (and its
/// journals, and backups) is 0600, and a key file others can read is refused.
#[test]
fn files_are_private_and_a_readable_key_file_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, data) = initialized_store();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let data_dir = std::path::Path::new(&data);
    assert_eq!(mode(data_dir), 0o700);
    let holder = "Admin <admin@example.id>";
    let (ok, _, err) = run(
        &[
            "apikey", "create", "--data", &data, "--role", "admin", "--holder", holder,
        ],
        &[],
    );
    assert!(ok, "{err}");
    let backup = dir.path().join("backup.db");
    let (ok, _, err) = run(
        &["backup", "--data", &data, "--out", backup.to_str().unwrap()],
        &[],
    );
    assert!(ok, "{err}");
    assert_eq!(mode(&backup), 0o600, "backup");
    let mut files = 0;
    for entry in std::fs::read_dir(data_dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        files += 1;
    }
    assert!(
        files >= 3,
        "the database, the key store and the key file: {files}"
    );

    let key_file = data_dir.join("master.key");
    let list = ["apikey", "list", "--data", &data];
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (ok, _, err) = run(&list, &[]);
    assert!(!ok && err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, _, err) = run(&list, &[]);
    assert!(ok, "{err}");
}
