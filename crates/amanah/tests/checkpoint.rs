//! Anchored audit checkpoints from the command line: emitted, checked with the public key
//! only, and used by `audit verify --checkpoint` to detect what the chain alone cannot
//! (truncation together with its signed head, rollback to an older head), plus a deleted head,
//! on both stores. The database is tampered with behind Amanah's back: with the `sqlite3`
//! shell on SQLite, with SQL over the test cluster's connection on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

mod support;
use support::{crm_vault, preset, run, serve};

/// Who the keys the tests create are issued to.
const HOLDER: &str = "Auditor <auditor@example.id>";

/// How a test reaches its store: the CLI arguments and raw SQL behind its back.
trait Tamper {
    fn store_args(&self) -> Vec<String>;
    fn sql(&self, sql: &str);
    /// `seq hash-hex mac-hex` of the head row.
    fn head(&self) -> String;
    /// SQL literal of hex bytes.
    fn bytes(&self, hex: &str) -> String;
}

struct Sqlite {
    data: String,
}

impl Tamper for Sqlite {
    fn store_args(&self) -> Vec<String> {
        vec!["--data".into(), self.data.clone()]
    }
    fn sql(&self, sql: &str) {
        let db = format!("{}/amanah.db", self.data);
        let out = Command::new("sqlite3").arg(&db).arg(sql).output().unwrap();
        assert!(
            out.status.success(),
            "sqlite3 {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    fn head(&self) -> String {
        let db = format!("{}/amanah.db", self.data);
        let out = Command::new("sqlite3")
            .arg(&db)
            .arg("SELECT seq || ' ' || lower(hex(hash)) || ' ' || lower(hex(mac)) FROM audit_head")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
    fn bytes(&self, hex: &str) -> String {
        format!("X'{hex}'")
    }
}

struct Postgres {
    url: String,
    key: String,
}

impl Tamper for Postgres {
    fn store_args(&self) -> Vec<String> {
        vec![
            "--store".into(),
            self.url.clone(),
            "--key-file".into(),
            self.key.clone(),
        ]
    }
    fn sql(&self, sql: &str) {
        amanah_testkit::cluster().execute(&self.url, sql);
    }
    fn head(&self) -> String {
        amanah_testkit::cluster()
            .query_text(
                &self.url,
                "SELECT seq || ' ' || encode(hash, 'hex') || ' ' || encode(mac, 'hex') FROM audit_head",
            )
            .unwrap_or_default()
    }
    fn bytes(&self, hex: &str) -> String {
        format!("decode('{hex}', 'hex')")
    }
}

fn with_store(t: &dyn Tamper, args: &[&str]) -> (bool, String, String) {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(t.store_args());
    run(&all)
}

fn add_entries(t: &dyn Tamper, n: usize) {
    for _ in 0..n {
        let (ok, _, err) = with_store(
            t,
            &["apikey", "create", "--role", "admin", "--holder", HOLDER],
        );
        assert!(ok, "{err}");
    }
}

fn entries(t: &dyn Tamper) -> u64 {
    let (ok, out, err) = with_store(t, &["audit", "verify"]);
    assert!(ok, "{out}{err}");
    out.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The whole scenario, on one store.
fn truncation_head_deletion_and_rollback_are_detected(t: &dyn Tamper, outside: &Path) {
    let public = outside.join("vault.pub");
    let public = public.to_str().unwrap();
    let cp = outside.join("checkpoint.json");
    let cp = cp.to_str().unwrap();

    add_entries(t, 2);
    let n0 = entries(t);
    let old_head = t.head();
    let old: Vec<&str> = old_head.split(' ').collect();
    assert_eq!(old.len(), 3, "{old_head}");
    assert_eq!(old[0], n0.to_string());
    add_entries(t, 2);
    let n1 = entries(t);
    assert_eq!(n1, n0 + 2);

    let (ok, _, err) = with_store(t, &["audit", "public-key", "--out", public]);
    assert!(ok, "{err}");
    let (ok, _, err) = with_store(t, &["audit", "checkpoint", "--out", cp]);
    assert!(ok, "{err}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cp).unwrap()).unwrap();
    assert_eq!(json["seq"], n1);
    assert_eq!(
        json["public_key"].as_str().unwrap(),
        std::fs::read_to_string(public).unwrap().trim()
    );

    // An auditor with the public key only (no key file, no store) checks the signature.
    let (ok, out, err) = run(&["audit", "check-checkpoint", cp, "--public-key", public]);
    assert!(ok && out.contains(&format!("entry {n1}")), "{out}{err}");
    let forged = outside.join("forged.json");
    let mut altered = json.clone();
    altered["seq"] = serde_json::json!(n0);
    std::fs::write(&forged, altered.to_string()).unwrap();
    let forged = forged.to_str().unwrap();
    let (ok, _, err) = run(&["audit", "check-checkpoint", forged, "--public-key", public]);
    assert!(!ok && err.contains("signature does not verify"), "{err}");
    assert!(err.contains("forged.json"), "names the file: {err}");
    let (ok, _, err) = run(&[
        "audit",
        "check-checkpoint",
        "/nonexistent/cp.json",
        "--public-key",
        public,
    ]);
    assert!(!ok && err.contains("/nonexistent/cp.json"), "{err}");

    // Intact: the chain extends the checkpoint, with the pinned key or the vault's own.
    let (ok, out, err) = with_store(
        t,
        &[
            "audit",
            "verify",
            "--checkpoint",
            cp,
            "--public-key",
            public,
        ],
    );
    assert!(ok && out.contains("extends the checkpoint"), "{out}{err}");
    let (ok, _, err) = with_store(t, &["audit", "verify", "--checkpoint", forged]);
    assert!(!ok && err.contains("signature does not verify"), "{err}");
    add_entries(t, 1);
    let (ok, out, err) = with_store(t, &["audit", "verify", "--checkpoint", cp]);
    assert!(ok, "later entries are fine: {out}{err}");
    let n2 = n1 + 1;

    // Truncation with the older signed head put back: the chain alone cannot tell...
    t.sql(&format!(
        "DELETE FROM audit_log WHERE seq > {n0}; UPDATE audit_head SET seq = {n0}, hash = {}, mac = {} WHERE id = 1;",
        t.bytes(old[1]),
        t.bytes(old[2])
    ));
    let (ok, out, err) = with_store(t, &["audit", "verify"]);
    assert!(
        ok && out.contains(&format!("ok: {n0} entries")),
        "{out}{err}"
    );
    // ...the checkpoint can.
    let (ok, _, err) = with_store(
        t,
        &[
            "audit",
            "verify",
            "--checkpoint",
            cp,
            "--public-key",
            public,
        ],
    );
    assert!(!ok, "truncation passed");
    assert!(
        err.contains(&format!("the chain has {n0} entries but the checkpoint"))
            && err.contains(&format!("saw {n1}")),
        "{err}"
    );

    // Rollback, then writing on: the chain grows past the checkpoint again, but its entry at
    // the checkpoint's place is another one.
    add_entries(t, (n2 - n0 + 1) as usize);
    assert!(entries(t) > n1);
    let (ok, _, err) = with_store(
        t,
        &[
            "audit",
            "verify",
            "--checkpoint",
            cp,
            "--public-key",
            public,
        ],
    );
    assert!(!ok, "rollback passed");
    assert!(
        err.contains(&format!("entry {n1} differs from the one the checkpoint")),
        "{err}"
    );

    // Deleting the head row: the chain alone is broken, writes stop, no checkpoint is signed.
    t.sql("DELETE FROM audit_head;");
    let (ok, _, err) = with_store(t, &["audit", "verify"]);
    assert!(!ok && err.contains("signed head is missing"), "{err}");
    let (ok, _, err) = with_store(t, &["audit", "verify", "--checkpoint", cp]);
    assert!(!ok && err.contains("signed head is missing"), "{err}");
    let (ok, _, err) = with_store(t, &["audit", "checkpoint"]);
    assert!(!ok && err.contains("head is missing"), "{err}");
    let (ok, _, _) = with_store(
        t,
        &["apikey", "create", "--role", "admin", "--holder", HOLDER],
    );
    assert!(!ok, "a write after a deleted head must fail");
}

#[test]
fn checkpoints_detect_truncation_head_deletion_and_rollback_on_sqlite() {
    let (dir, data) = crm_vault();
    let data = data.to_str().unwrap().to_owned();
    let outside = dir.path().join("anchors");
    std::fs::create_dir(&outside).unwrap();
    truncation_head_deletion_and_rollback_are_detected(&Sqlite { data }, &outside);
}

#[test]
fn checkpoints_detect_truncation_head_deletion_and_rollback_on_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let url = amanah_testkit::database("checkpoints");
    let key = dir.path().join("master.key").to_str().unwrap().to_owned();
    let (ok, _, err) = run(&[
        "init",
        "--store",
        &url,
        "--key-file",
        &key,
        "--policy",
        &preset("crm.toml"),
    ]);
    assert!(ok, "{err}");
    let outside = dir.path().join("anchors");
    std::fs::create_dir(&outside).unwrap();
    truncation_head_deletion_and_rollback_are_detected(&Postgres { url, key }, &outside);
}

/// `serve --checkpoint-dir`: refused inside the data directory; outside, a checkpoint is
/// written at start (then every interval) that verifies.
#[test]
fn serve_writes_checkpoints_outside_the_data_directory() {
    let (dir, data) = crm_vault();
    let data = data.to_str().unwrap().to_owned();
    let inside = format!("{data}/checkpoints");
    let (ok, _, err) = run(&[
        "serve",
        "--data",
        &data,
        "--listen",
        "127.0.0.1:0",
        "--checkpoint-dir",
        &inside,
    ]);
    assert!(!ok && err.contains("inside the data directory"), "{err}");
    assert!(err.contains(&inside), "names the directory: {err}");

    let anchors = dir.path().join("anchors");
    let mut server = serve([
        "--data",
        &data,
        "--checkpoint-dir",
        anchors.to_str().unwrap(),
        "--checkpoint-interval",
        "3600",
    ])
    .start();
    let latest = anchors.join("latest.json");
    // Wait (bounded) for the first checkpoint; the server writes it at start.
    let mut found = false;
    for _ in 0..600 {
        if latest.exists() {
            found = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server.kill();
    assert!(found, "no checkpoint written in {}", anchors.display());
    let dated: Vec<_> = std::fs::read_dir(&anchors)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("audit-checkpoint-") && n.ends_with(".json"))
        .collect();
    assert_eq!(dated.len(), 1, "{dated:?}");
    let (ok, out, err) = run(&[
        "audit",
        "verify",
        "--data",
        &data,
        "--checkpoint",
        latest.to_str().unwrap(),
    ]);
    assert!(ok && out.contains("extends the checkpoint"), "{out}{err}");
}

/// The realistic rollback: a data backup restored over the live store. Its chain and signed
/// head are genuine, so the chain alone verifies; a checkpoint taken after the backup does not.
#[test]
fn a_restored_older_backup_is_detected_by_a_later_checkpoint() {
    let (dir, data) = crm_vault();
    let data = data.to_str().unwrap().to_owned();
    let t = Sqlite { data: data.clone() };
    add_entries(&t, 1);
    let backup = dir.path().join("old.db");
    let (ok, _, err) = run(&["backup", "--data", &data, "--out", backup.to_str().unwrap()]);
    assert!(ok, "{err}");
    add_entries(&t, 4);
    let cp = dir.path().join("cp.json");
    let (ok, _, err) = run(&[
        "audit",
        "checkpoint",
        "--data",
        &data,
        "--out",
        cp.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&[
        "restore",
        "--data",
        &data,
        "--from",
        backup.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&["audit", "verify", "--data", &data]);
    assert!(ok, "the restored chain is genuine on its own: {out}{err}");
    let (ok, _, err) = run(&[
        "audit",
        "verify",
        "--data",
        &data,
        "--checkpoint",
        cp.to_str().unwrap(),
    ]);
    assert!(!ok, "a rolled-back store passed its checkpoint");
    assert!(
        err.contains("an older log was restored") || err.contains("rolled back"),
        "{err}"
    );
}
