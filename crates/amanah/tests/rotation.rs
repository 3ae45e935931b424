//! `amanah keys rotate` as an operator runs it: the real binary, a real `amanah serve` taking
//! creates and reads over HTTP throughout, on both stores. Afterwards every acknowledged subject
//! reads back with its values, no data key is under the old KEK, the old KEK is gone from the
//! key file, the server still serves and the audit chain verifies. An interrupted rotation
//! (`--limit`) resumes without making another KEK.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amanah_testkit::{on_both_stores, Kind};
use serde_json::{json, Value};

mod support;
use support::{run_ok, serve, Server};

/// A vault on one store, with an admin key.
struct Vault {
    _dir: tempfile::TempDir,
    data: PathBuf,
    store: Option<String>,
    admin: String,
}

impl Vault {
    fn new(kind: Kind, label: &str) -> Vault {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("vault");
        let store = match kind {
            Kind::Sqlite => None,
            Kind::Postgres => Some(amanah_testkit::database(label)),
        };
        let policy = dir.path().join("policy.toml");
        std::fs::write(&policy, amanah_testkit::policies::CONTACTS).unwrap();
        let mut v = Vault {
            _dir: dir,
            data,
            store,
            admin: String::new(),
        };
        run_ok(&v.args(&["init", "--policy", policy.to_str().unwrap()]));
        let out = run_ok(&v.args(&[
            "apikey",
            "create",
            "--role",
            "admin",
            "--holder",
            "Admin <admin@example.id>",
        ]));
        v.admin = out.lines().last().unwrap().trim().to_owned();
        v
    }

    fn args(&self, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.push("--data".into());
        all.push(self.data.to_str().unwrap().to_owned());
        if let Some(url) = &self.store {
            all.push("--store".into());
            all.push(url.clone());
        }
        all
    }

    fn key_file(&self) -> PathBuf {
        self.data.join("master.key")
    }

    /// The KEK ids in the key file, and the active one.
    fn keks(&self) -> (Vec<String>, String) {
        let file: Value = serde_json::from_slice(&std::fs::read(self.key_file()).unwrap()).unwrap();
        let ids = file["keks"].as_object().unwrap().keys().cloned().collect();
        (ids, file["active"].as_str().unwrap().to_owned())
    }

    /// `kek_id count` lines of the key store, sorted.
    fn keys_per_kek(&self) -> String {
        let sql = "SELECT kek_id || ' ' || COUNT(*) FROM TABLE GROUP BY kek_id ORDER BY kek_id";
        match &self.store {
            None => {
                let out = Command::new("sqlite3")
                    .arg(self.data.join("amanah-keys.db"))
                    .arg(sql.replace("TABLE", "data_keys"))
                    .output()
                    .unwrap();
                assert!(out.status.success());
                String::from_utf8(out.stdout).unwrap().trim().to_owned()
            }
            Some(url) => {
                let agg = "SELECT string_agg(kek_id || ' ' || n, E'\\n' ORDER BY kek_id) FROM (SELECT kek_id, COUNT(*) AS n FROM amanah_keys.data_keys GROUP BY kek_id) t";
                amanah_testkit::cluster()
                    .query_text(url, agg)
                    .unwrap_or_default()
            }
        }
    }

    /// Imports `n` subjects named `imported-{i}` (one transaction).
    fn import(&self, n: usize) {
        let csv = self._dir.path().join("import.csv");
        let mut text = String::from("full_name,email\n");
        for i in 0..n {
            text.push_str(&format!("Imported Person,imported-{i}@example.id\n"));
        }
        std::fs::write(&csv, text).unwrap();
        run_ok(&self.args(&["import", "--purpose", "admission", csv.to_str().unwrap()]));
    }

    fn audit_verify(&self) -> String {
        run_ok(&self.args(&["audit", "verify"]))
    }

    /// A running `amanah serve` on the vault, its output captured.
    fn serve(&self) -> Server {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        serve(self.args(&["--metrics-listen", "off"]))
            .log("info")
            .start()
    }
}

/// Creates a subject; `Ok(id)` once the server acknowledged it, `Err(text)` otherwise.
async fn create(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    name: &str,
    email: &str,
) -> Result<String, String> {
    let r = client
        .post(format!("{base}/v1/subjects?purpose=admission"))
        .bearer_auth(key)
        .json(&json!({"fields": {"full_name": name, "email": email}}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let body: Value = r.json().await.map_err(|e| e.to_string())?;
    if status != reqwest::StatusCode::CREATED {
        return Err(format!("{status}: {body}"));
    }
    Ok(body["id"].as_str().unwrap().to_owned())
}

/// Reads a subject's e-mail address back.
async fn email_of(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    id: &str,
) -> Result<String, String> {
    let r = client
        .get(format!("{base}/v1/subjects/{id}?purpose=admission"))
        .bearer_auth(key)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let body: Value = r.json().await.map_err(|e| e.to_string())?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("{id}: {status}: {body}"));
    }
    Ok(body["fields"]["email"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// The ids of every subject, by search on each imported e-mail address.
async fn imported_ids(client: &reqwest::Client, base: &str, key: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let r = client
            .get(format!(
                "{base}/v1/subjects?purpose=admission&email=imported-{i}@example.id"
            ))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        let found = body["subjects"]
            .as_array()
            .or_else(|| body.as_array())
            .unwrap_or_else(|| panic!("unexpected search answer {body}"));
        assert_eq!(found.len(), 1, "imported-{i}: {body}");
        ids.push(found[0]["id"].as_str().unwrap().to_owned());
    }
    ids
}

on_both_stores!(rotation_while_serving_loses_nothing_and_retires_the_old_key);

async fn rotation_while_serving_loses_nothing_and_retires_the_old_key(kind: Kind) {
    const IMPORTED: usize = 600;
    let v = Vault::new(kind, "rotation");
    v.import(IMPORTED);
    let (before, old) = v.keks();
    assert_eq!(before, vec![old.clone()]);
    assert_eq!(v.keys_per_kek(), format!("{old} {}", IMPORTED));
    let server = v.serve();
    let client = reqwest::Client::new();

    // A client creating and reading subjects throughout; every acknowledged create is kept
    // with the value it stored, every failure too.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let load = {
        let (stop, acknowledged, failures) = (stop.clone(), acknowledged.clone(), failures.clone());
        let (client, base, key) = (client.clone(), server.base().to_owned(), v.admin.clone());
        tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let email = format!("online-{i}@example.id");
                match create(&client, &base, &key, "Online Person", &email).await {
                    Ok(id) => {
                        // Read back the subject just made and one made earlier.
                        let earlier = acknowledged.lock().unwrap().get(i / 2).cloned();
                        let earlier = earlier.unwrap_or((id.clone(), email.clone()));
                        for (rid, want) in [(id.clone(), email.clone()), earlier] {
                            match email_of(&client, &base, &key, &rid).await {
                                Ok(got) if got == want => {}
                                Ok(got) => failures
                                    .lock()
                                    .unwrap()
                                    .push(format!("{rid}: read {got}, stored {want}")),
                                Err(e) => failures.lock().unwrap().push(e),
                            }
                        }
                        acknowledged.lock().unwrap().push((id, email));
                    }
                    Err(e) => failures.lock().unwrap().push(e),
                }
                i += 1;
            }
        })
    };
    // Let the load run, then rotate under it in small batches (many transactions).
    while acknowledged.lock().unwrap().len() < 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at_start = acknowledged.lock().unwrap().len();
    let args = v.args(&["keys", "rotate", "--batch", "50"]);
    let out = tokio::task::spawn_blocking(move || run_ok(&args))
        .await
        .unwrap();
    let during = acknowledged.lock().unwrap().len();
    assert!(
        during > at_start,
        "no create was acknowledged while the rotation ran"
    );
    // The server keeps creating and reading after the rotation.
    while acknowledged.lock().unwrap().len() < during + 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();

    let (after, new) = v.keks();
    assert!(out.contains(&format!("rotated to {new}")), "{out}");
    assert!(out.contains(&format!("retired {old}")), "{out}");
    assert_ne!(new, old);
    assert_eq!(
        after,
        vec![new.clone()],
        "the old KEK is gone from the key file"
    );
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "failures while rotating: {failures:?}");
    let acknowledged = acknowledged.lock().unwrap().clone();
    // Every key is under the new KEK, none under the old one.
    assert_eq!(
        v.keys_per_kek(),
        format!("{new} {}", IMPORTED + acknowledged.len())
    );
    // Every acknowledged subject reads back with its value, imported ones too.
    for (id, email) in &acknowledged {
        assert_eq!(
            email_of(&client, server.base(), &v.admin, id)
                .await
                .unwrap(),
            *email
        );
    }
    let ids = imported_ids(&client, server.base(), &v.admin, IMPORTED).await;
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            email_of(&client, server.base(), &v.admin, id)
                .await
                .unwrap(),
            format!("imported-{i}@example.id")
        );
    }
    // The server learned the new KEK (and later that the old one is retired) from the file.
    let log = server.output();
    assert!(
        log.contains("key file reloaded"),
        "the server did not reload the key file: {log}"
    );
    assert!(!log.contains("ERROR"), "{log}");
    // The rotation is on record: start, batches, end; the chain verifies.
    let verified = v.audit_verify();
    assert!(verified.starts_with("ok:"), "{verified}");
    drop(server);
    // A fresh process reads with the rotated key file alone.
    let server = v.serve();
    let (id, email) = acknowledged.last().unwrap();
    assert_eq!(
        email_of(&client, server.base(), &v.admin, id)
            .await
            .unwrap(),
        *email
    );
}

#[tokio::test]
async fn an_interrupted_rotation_resumes_without_a_new_key() {
    let v = Vault::new(Kind::Sqlite, "resume");
    v.import(250);
    let (_, old) = v.keks();
    // Stopped after 100 keys: the new KEK is active, the old one kept for the rest.
    let out = run_ok(&v.args(&["keys", "rotate", "--batch", "40", "--limit", "100"]));
    assert!(out.contains("stopped after 100 data keys"), "{out}");
    let (ids, new) = v.keks();
    assert_ne!(new, old);
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&old));
    assert_eq!(v.keys_per_kek(), {
        let mut lines = [format!("{old} 150"), format!("{new} 100")];
        lines.sort();
        lines.join("\n")
    });
    // Run again: it resumes under the same new KEK and finishes.
    let out = run_ok(&v.args(&["keys", "rotate", "--batch", "40"]));
    assert!(
        out.contains(&format!("resuming the rotation to {new}")),
        "{out}"
    );
    assert!(out.contains("150 data keys rewrapped"), "{out}");
    assert_eq!(v.keks(), (vec![new.clone()], new.clone()));
    assert_eq!(v.keys_per_kek(), format!("{new} 250"));
    assert!(!lock_file(&v.key_file(), &old).exists());
    // Everything still reads, and the chain records each step.
    let server = v.serve();
    let client = reqwest::Client::new();
    let ids = imported_ids(&client, server.base(), &v.admin, 250).await;
    for (i, id) in ids.iter().enumerate().step_by(7) {
        assert_eq!(
            email_of(&client, server.base(), &v.admin, id)
                .await
                .unwrap(),
            format!("imported-{i}@example.id")
        );
    }
    let entries = rotation_entries(&v);
    assert!(entries.iter().any(|r| r.contains("started")), "{entries:?}");
    assert!(
        entries.iter().any(|r| r.contains("paused after 100")),
        "{entries:?}"
    );
    assert!(entries.iter().any(|r| r.contains("resumed")), "{entries:?}");
    assert!(
        entries
            .iter()
            .any(|r| r.contains(&format!("retired {old}"))),
        "{entries:?}"
    );
    assert!(v.audit_verify().starts_with("ok:"));
    // A second rotation makes a third key and retires the second.
    let out = run_ok(&v.args(&["keys", "rotate"]));
    let (ids, third) = v.keks();
    assert_eq!(ids, vec![third.clone()]);
    assert!(out.contains(&format!("retired {new}")), "{out}");
}

fn lock_file(key_file: &Path, kek: &str) -> PathBuf {
    key_file.with_file_name(format!("master.key.{kek}.lock"))
}

/// The reasons of the `keys.rotate` audit entries (SQLite).
fn rotation_entries(v: &Vault) -> Vec<String> {
    let out = Command::new("sqlite3")
        .arg(v.data.join("amanah.db"))
        .arg("SELECT reason FROM audit_log WHERE action = 'keys.rotate' ORDER BY seq")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}
