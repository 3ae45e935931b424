//! The HTTP API as a client drives it: the real `amanah` binary over a real store. Every test
//! runs twice, on SQLite and on PostgreSQL (a database of a throwaway cluster shared by this
//! test binary), with the same code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

// The kit's clinic policy: health data for the nurse only, the NIK masked for the officer.
use amanah_testkit::policies::CLINIC as POLICY;

const CATEGORIES: [&str; 5] = ["full_name", "email", "phone", "nik", "health"];
const NIK: &str = "3174092512990007";
const NIK2: &str = "3174096512990007";

use amanah_testkit::{on_both_stores, Kind};

mod support;
use support::{amanah, run_ok, serve};

on_both_stores!(
    routes_happy_paths_and_errors,
    reads_are_filtered_by_role_and_purpose,
    search_normalizes_and_patch_moves_the_index,
    a_rejected_create_stores_nothing,
    every_read_is_audited_once_and_tampering_is_detected,
    no_plaintext_at_rest_or_in_logs,
    a_swapped_ciphertext_fails_closed,
    a_malformed_field_set_fails_closed_and_the_subject_can_still_be_erased,
    openapi_and_metrics,
    a_field_name_with_a_comma_leaves_the_chain_verifying,
);

/// Where a vault lives: a data directory (the SQLite database and the key file), and for
/// PostgreSQL the database URL.
#[derive(Clone)]
struct Target {
    data: PathBuf,
    store: Option<String>,
}

impl Target {
    fn new(kind: Kind, data: PathBuf) -> Target {
        let store = match kind {
            Kind::Sqlite => None,
            Kind::Postgres => Some(amanah_testkit::database("http")),
        };
        Target { data, store }
    }

    /// `--data DIR [--store URL]`
    fn args(&self) -> Vec<String> {
        let mut a = vec!["--data".to_owned(), self.data.to_str().unwrap().to_owned()];
        if let Some(url) = &self.store {
            a.push("--store".into());
            a.push(url.clone());
        }
        a
    }

    /// Runs SQL on the store directly (as someone with database access would); returns the
    /// first column of the first row, if any.
    fn sql(&self, sql: &str) -> String {
        match &self.store {
            None => sqlite(&self.data.join("amanah.db"), sql),
            Some(url) => {
                if sql.trim_start().to_uppercase().starts_with("SELECT") {
                    amanah_testkit::cluster()
                        .query_text(url, sql)
                        .unwrap_or_default()
                } else {
                    amanah_testkit::cluster().execute(url, sql);
                    String::new()
                }
            }
        }
    }

    /// A copy of the whole vault (no server may be running on it).
    fn copy(&self, to: PathBuf) -> Target {
        copy_dir(&self.data, &to);
        let store = self
            .store
            .as_ref()
            .map(|url| amanah_testkit::cluster().copy_database(url, "copy"));
        Target { data: to, store }
    }

    /// The files that hold the stored data: the data directory, and for PostgreSQL this
    /// database's files, the write-ahead log and the server log.
    fn files_at_rest(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(&self.data)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        if let Some(url) = &self.store {
            out.extend(amanah_testkit::cluster().database_files(url));
        }
        out
    }
}

struct Keys {
    admin: String,
    admin_id: String,
    officer: String,
    officer_id: String,
    nurse: String,
    marketer: String,
}

/// An initialized vault with one key per role.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    target: Target,
    keys: Keys,
}

fn with_target(args: &[&str], target: &Target) -> Vec<String> {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend(target.args());
    all
}

fn create_key(target: &Target, role: &str) -> (String, String) {
    let holder = format!("{role} <{role}@example.id>");
    let args = with_target(
        &[
            "apikey", "create", "--role", role, "--name", role, "--holder", &holder,
        ],
        target,
    );
    let out = run_ok(&args);
    let lines: Vec<&str> = out.lines().collect();
    let id = lines[0].split_whitespace().nth(1).unwrap().to_owned();
    (id, lines.last().unwrap().trim().to_owned())
}

fn fixture(kind: Kind) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let target = Target::new(kind, root.join("vault"));
    let policy = root.join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let args = with_target(&["init", "--policy", policy.to_str().unwrap()], &target);
    run_ok(&args);
    let (admin_id, admin) = create_key(&target, "admin");
    let (officer_id, officer) = create_key(&target, "officer");
    let (_, nurse) = create_key(&target, "nurse");
    let (_, marketer) = create_key(&target, "marketer");
    Fixture {
        _dir: dir,
        root,
        target,
        keys: Keys {
            admin,
            admin_id,
            officer,
            officer_id,
            nurse,
            marketer,
        },
    }
}

/// A running `amanah serve` (stdout and stderr captured) and a client for its API.
struct Server {
    server: support::Server,
    client: reqwest::Client,
}

fn start(target: &Target) -> Server {
    // reqwest is built with rustls for the TLS tests; give it a provider even for plain HTTP.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut args = vec!["--metrics-listen".to_owned(), "127.0.0.1:0".to_owned()];
    args.extend(target.args());
    Server {
        server: serve(args).log("debug").start(),
        client: reqwest::Client::new(),
    }
}

impl Server {
    fn base(&self) -> &str {
        self.server.base()
    }

    /// The metrics listener's base URL.
    fn metrics(&self) -> &str {
        self.server.metrics()
    }

    /// Graceful stop (SIGINT); returns everything the server printed.
    fn stop(mut self) -> Vec<u8> {
        self.server.stop();
        self.server.output().into_bytes()
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, String, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base()));
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            assert_eq!(ctype, "application/problem+json", "{path}: {status} {text}");
            assert_eq!(value["status"], status.as_u16(), "{text}");
            assert!(value["type"].is_string() && value["title"].is_string());
            assert!(value["detail"].is_string());
        }
        (status, ctype, value)
    }

    async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        let (s, _, v) = self.call(Method::GET, path, Some(key), None).await;
        (s, v)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: &Value,
    ) -> (StatusCode, Value) {
        let (s, _, v) = self
            .call(method, path, Some(key), Some(&body.to_string()))
            .await;
        (s, v)
    }

    async fn create(&self, key: &str, purpose: &str, fields: Value) -> String {
        let (s, v) = self
            .send(
                Method::POST,
                &format!("/v1/subjects?purpose={purpose}"),
                key,
                &json!({ "fields": fields }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    /// Records the subject's consent to a purpose whose legal basis is consent.
    async fn consent(&self, key: &str, id: &str, purpose: &str) {
        let (s, v) = self
            .send(
                Method::POST,
                &format!("/v1/subjects/{id}/consents"),
                key,
                &json!({"purpose": purpose, "granted": true, "channel": "web_form", "evidence": "form 1"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }

    async fn audit(&self, admin: &str) -> Vec<Value> {
        let (s, v) = self.get("/v1/audit?limit=10000", admin).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["entries"].as_array().unwrap().clone()
    }

    async fn search(&self, key: &str, purpose: &str, query: &str) -> (StatusCode, Value) {
        self.get(&format!("/v1/subjects?purpose={purpose}&{query}"), key)
            .await
    }
}

fn ids(found: &Value) -> Vec<String> {
    found["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

fn student() -> Value {
    json!({
        "full_name": "Siti Rahma",
        "email": "siti@example.id",
        "phone": "0812-4471-9035",
        "nik": NIK,
        "health": "asthma",
    })
}

async fn routes_happy_paths_and_errors(kind: Kind) {
    let f = fixture(kind);
    let srv = start(&f.target);
    let k = &f.keys;

    // A body over the limit is refused with a problem before it is read. (Raw socket: a client
    // still writing a large body may see the early close as a broken pipe.)
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = srv.server.addr().to_owned();
        let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /v1/subjects?purpose=admission HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            k.admin,
            2 * 1024 * 1024
        );
        sock.write_all(head.as_bytes()).await.unwrap();
        let mut response = String::new();
        sock.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 413"), "{response}");
        assert!(
            response
                .to_ascii_lowercase()
                .contains("content-type: application/problem+json"),
            "{response}"
        );
    }

    // Unauthenticated requests get 401 whatever else is wrong with them.
    let revoked = create_key(&f.target, "officer");
    let (s, _) = srv
        .send(
            Method::DELETE,
            &format!("/v1/keys/{}", revoked.0),
            &k.admin,
            &json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    for key in [
        None,
        Some("not-a-key"),
        Some("amk_0000000000000000000000000000000000000000000"),
        Some(revoked.1.as_str()),
    ] {
        for (method, path, body) in [
            (Method::POST, "/v1/subjects", Some("{not json")),
            (Method::POST, "/v1/subjects?purpose=admission", Some("{")),
            (Method::GET, "/v1/subjects/x", None),
            (Method::GET, "/v1/subjects?email=a@b.id", None),
            (Method::PATCH, "/v1/subjects/x", Some("[")),
            (Method::GET, "/v1/audit", None),
            (Method::GET, "/v1/audit/verify", None),
            (Method::GET, "/v1/keys", None),
            (Method::POST, "/v1/keys", Some("nope")),
            (Method::DELETE, "/v1/keys/x", None),
            (Method::GET, "/v1/policy", None),
            (Method::PUT, "/v1/policy", Some("garbage")),
        ] {
            let (s, _, _) = srv.call(method.clone(), path, key, body).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {path} key {key:?}");
        }
    }

    // Happy paths.
    let id = srv.create(&k.nurse, "admission", student()).await;
    let (s, v) = srv
        .get(&format!("/v1/subjects/{id}?purpose=admission"), &k.nurse)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["fields"]["full_name"], "Siti Rahma");
    assert_eq!(v["fields"]["email"], "siti@example.id");
    let (s, v) = srv
        .search(&k.nurse, "admission", "email=siti@example.id")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&v), vec![id.clone()]);
    let (s, v) = srv
        .send(
            Method::PATCH,
            &format!("/v1/subjects/{id}?purpose=admission"),
            &k.nurse,
            &json!({"fields": {"full_name": "Siti Rahmawati"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = srv
        .get(&format!("/v1/subjects/{id}?purpose=admission"), &k.nurse)
        .await;
    assert_eq!(v["fields"]["full_name"], "Siti Rahmawati");
    let (s, v) = srv.get(&format!("/v1/audit?subject={id}"), &k.admin).await;
    assert_eq!(s, StatusCode::OK);
    let entries = v["entries"].as_array().unwrap();
    assert!(entries.len() >= 4, "{v}");
    assert!(entries.iter().all(|e| e["subject"] == id.as_str()));
    let (s, v) = srv.get("/v1/audit/verify", &k.admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["entries"].as_u64().unwrap() > 0 && v["head"].is_string());
    let (s, v) = srv.get("/v1/keys", &k.admin).await;
    assert_eq!(s, StatusCode::OK);
    let keys = v["keys"].as_array().unwrap();
    assert!(keys.iter().any(|x| x["id"] == k.officer_id.as_str()));
    assert!(!v.to_string().contains(&k.officer));
    let (s, v) = srv
        .send(
            Method::POST,
            "/v1/keys",
            &k.admin,
            &json!({"role": "marketer", "name": "new"}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "every key names its holder: {v}"
    );
    let (s, v) = srv
        .send(
            Method::POST,
            "/v1/keys",
            &k.admin,
            &json!({"role": "marketer", "name": "new", "holder": "Mira Marketer <mira@example.id>"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["holder"], "Mira Marketer <mira@example.id>");
    let new_key = v["key"].as_str().unwrap().to_owned();
    let new_id = v["id"].as_str().unwrap().to_owned();
    let (s, _) = srv
        .search(&new_key, "marketing", "email=siti@example.id")
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = srv
        .call(
            Method::DELETE,
            &format!("/v1/keys/{new_id}"),
            Some(&k.admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = srv
        .search(&new_key, "marketing", "email=siti@example.id")
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = srv
        .call(
            Method::DELETE,
            "/v1/keys/key-nonexistent",
            Some(&k.admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = srv.get("/v1/policy", &k.admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["version"], "http-test-1");
    let new_policy = POLICY.replace("http-test-1", "http-test-2");
    let resp = srv
        .client
        .put(format!("{}/v1/policy", srv.base()))
        .header("authorization", format!("Bearer {}", k.admin))
        .body(new_policy)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, v) = srv.get("/v1/policy", &k.admin).await;
    assert_eq!(v["version"], "http-test-2");
    let resp = srv
        .client
        .put(format!("{}/v1/policy", srv.base()))
        .header("authorization", format!("Bearer {}", k.admin))
        .body("version = ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _, v) = srv.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "ok");

    // Errors.
    let subj = format!("/v1/subjects/{id}");
    let (s, v) = srv.get(&subj, &k.officer).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "missing purpose: {v}");
    let (s, _) = srv
        .send(
            Method::POST,
            "/v1/subjects",
            &k.officer,
            &json!({"fields": {"full_name": "A B"}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = srv
        .get(&format!("{subj}?purpose=marketing"), &k.officer)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "purpose not granted");
    let (s, _) = srv
        .send(
            Method::POST,
            "/v1/subjects?purpose=marketing",
            &k.officer,
            &json!({"fields": {"full_name": "A B"}}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = srv
        .get(&format!("{subj}?purpose=astrology"), &k.officer)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "unknown purpose");
    let (s, _) = srv
        .get(
            "/v1/subjects/00000000-0000-0000-0000-000000000000?purpose=admission",
            &k.officer,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = srv
        .send(
            Method::PATCH,
            "/v1/subjects/00000000-0000-0000-0000-000000000000?purpose=admission",
            &k.officer,
            &json!({"fields": {"full_name": "A B"}}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let post = |fields: Value| {
        let srv = &srv;
        let key = k.officer.clone();
        async move {
            srv.send(
                Method::POST,
                "/v1/subjects?purpose=admission",
                &key,
                &json!({ "fields": fields }),
            )
            .await
        }
    };
    let (s, v) = post(json!({"full_name": "A B", "shoe_size": "44"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // The unknown name is not repeated back; the answer lists what the purpose takes.
    assert_eq!(v.get("field"), None, "{v}");
    let detail = v["detail"].as_str().unwrap();
    assert!(!detail.contains("shoe_size"), "{detail}");
    assert!(detail.contains("full_name"), "{detail}");
    let (s, v) = srv
        .send(
            Method::POST,
            "/v1/subjects?purpose=marketing",
            &k.marketer,
            &json!({"fields": {"full_name": "A B", "phone": "081244719035"}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "field not in purpose");
    assert_eq!(v["field"], "phone");
    let (s, v) = post(json!({"full_name": "A B", "nik": "9974092512990007"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["field"], "nik");
    assert!(!v.to_string().contains("9974092512990007"), "{v}");
    let (s, v) = post(json!({"full_name": "A B", "email": "bogus-at-nowhere"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["field"], "email");
    assert!(!v.to_string().contains("bogus-at-nowhere"), "{v}");
    for bad in [
        "{\"fields\": {",
        "not json",
        "{\"fields\": {}, \"extra\": 1}",
    ] {
        let (s, _, _) = srv
            .call(
                Method::POST,
                "/v1/subjects?purpose=admission",
                Some(&k.officer),
                Some(bad),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (s, v) = srv.search(&k.nurse, "admission", "health=asthma").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "not indexed: {v}");
    assert!(!v.to_string().contains("asthma"));
    let (s, _) = srv
        .search(&k.officer, "admission", &format!("nik={NIK}"))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "masked category search");
    for path in ["/v1/audit", "/v1/audit/verify", "/v1/keys", "/v1/policy"] {
        let (s, _) = srv.get(path, &k.officer).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}");
    }
    let (s, _) = srv
        .send(
            Method::POST,
            "/v1/keys",
            &k.nurse,
            &json!({"role": "admin"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = srv
        .call(
            Method::DELETE,
            &format!("/v1/keys/{}", k.admin_id),
            Some(&k.nurse),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = srv
        .call(Method::PUT, "/v1/policy", Some(&k.nurse), Some(POLICY))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = post(json!({"full_name": "Other", "email": "SITI@example.id"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(!v.to_string().to_lowercase().contains("siti@"));
    let (s, _, _) = srv.call(Method::GET, "/v1/nothing-here", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = srv
        .call(Method::GET, "/v1/nothing-here", Some(&k.admin), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    srv.stop();
}

async fn reads_are_filtered_by_role_and_purpose(kind: Kind) {
    let f = fixture(kind);
    let srv = start(&f.target);
    let k = &f.keys;
    let id = srv.create(&k.nurse, "admission", student()).await;
    let path = format!("/v1/subjects/{id}?purpose=admission");
    srv.consent(&k.admin, &id, "marketing").await;

    let (s, v) = srv.get(&path, &k.officer).await;
    assert_eq!(s, StatusCode::OK);
    let nik = v["fields"]["nik"].as_str().unwrap();
    assert!(nik.contains('*') && nik != NIK, "{v}");
    assert!(v["fields"].get("health").is_none(), "{v}");
    assert_eq!(v["fields"]["full_name"], "Siti Rahma");
    // Search results are filtered the same way.
    let (_, v) = srv
        .search(&k.officer, "admission", "email=siti@example.id")
        .await;
    let found = &v["subjects"][0]["fields"];
    assert!(found["nik"].as_str().unwrap().contains('*'));
    assert!(found.get("health").is_none());

    for key in [&k.nurse, &k.admin] {
        let (s, v) = srv.get(&path, key).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["fields"]["health"], "asthma", "{v}");
        assert_eq!(v["fields"]["nik"], NIK);
    }

    let (s, v) = srv
        .get(&format!("/v1/subjects/{id}?purpose=marketing"), &k.marketer)
        .await;
    assert_eq!(s, StatusCode::OK);
    let mut names: Vec<&String> = v["fields"].as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(names, ["email", "full_name"], "{v}");
    let (s, _) = srv.get(&path, &k.marketer).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    srv.stop();
}

async fn search_normalizes_and_patch_moves_the_index(kind: Kind) {
    let f = fixture(kind);
    let srv = start(&f.target);
    let k = &f.keys;
    let id = srv
        .create(
            &k.nurse,
            "admission",
            json!({"full_name": "Budi", "email": "Budi.Santoso@Example.ID", "phone": "0812-4471-9035"}),
        )
        .await;
    for q in [
        "phone=%2B62%20812%204471%209035",
        "phone=081244719035",
        "email=budi.santoso@example.id",
        "email=BUDI.SANTOSO@EXAMPLE.ID",
    ] {
        let (s, v) = srv.search(&k.nurse, "admission", q).await;
        assert_eq!(s, StatusCode::OK, "{q}: {v}");
        assert_eq!(ids(&v), vec![id.clone()], "{q}");
    }
    let (_, v) = srv
        .search(&k.nurse, "admission", "phone=081244719036")
        .await;
    assert!(ids(&v).is_empty());

    let (s, _) = srv
        .send(
            Method::PATCH,
            &format!("/v1/subjects/{id}?purpose=admission"),
            &k.nurse,
            &json!({"fields": {"email": "budi@new.example.id", "phone": "+62 813 1111 2222"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = srv
        .search(&k.nurse, "admission", "email=budi.santoso@example.id")
        .await;
    assert!(ids(&v).is_empty(), "old email still finds: {v}");
    let (_, v) = srv
        .search(&k.nurse, "admission", "phone=081244719035")
        .await;
    assert!(ids(&v).is_empty(), "old phone still finds: {v}");
    let (_, v) = srv
        .search(&k.nurse, "admission", "email=BUDI@new.example.id")
        .await;
    assert_eq!(ids(&v), vec![id.clone()]);
    let (_, v) = srv
        .search(&k.nurse, "admission", "phone=0813-1111-2222")
        .await;
    assert_eq!(ids(&v), vec![id.clone()]);
    // The old unique email is free again.
    let other = srv
        .create(
            &k.nurse,
            "admission",
            json!({"full_name": "Other", "email": "budi.santoso@example.id"}),
        )
        .await;
    assert_ne!(other, id);
    srv.stop();
}

async fn a_rejected_create_stores_nothing(kind: Kind) {
    let f = fixture(kind);
    let srv = start(&f.target);
    let k = &f.keys;
    let creates = |entries: &[Value]| {
        entries
            .iter()
            .filter(|e| e["action"] == "subject.create")
            .count()
    };
    let before = creates(&srv.audit(&k.admin).await);
    for fields in [
        json!({"full_name": "Rejected One", "email": "rejected@example.id", "nik": "1234"}),
        json!({"full_name": "Rejected One", "email": "rejected@example.id", "shoe": "x"}),
        json!({"full_name": "Rejected One", "email": "rejected@example.id", "phone": "abc"}),
    ] {
        let (s, _) = srv
            .send(
                Method::POST,
                "/v1/subjects?purpose=admission",
                &k.nurse,
                &json!({ "fields": fields }),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let (s, v) = srv
        .search(&k.nurse, "admission", "email=rejected@example.id")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(ids(&v).is_empty(), "{v}");
    let entries = srv.audit(&k.admin).await;
    assert_eq!(creates(&entries), before);
    // The email is not taken either.
    srv.create(
        &k.nurse,
        "admission",
        json!({"full_name": "Accepted", "email": "rejected@example.id"}),
    )
    .await;
    srv.stop();
}

/// Issue 14, reproduction 1: `?purpose=admission&a,b=1` by a non-admin key was refused and its
/// audit entry stored the field list comma-joined, so it split into two names on reading and
/// `audit verify` failed from then on.
async fn a_field_name_with_a_comma_leaves_the_chain_verifying(kind: Kind) {
    let f = fixture(kind);
    let srv = start(&f.target);
    let k = &f.keys;
    let (s, _) = srv.search(&k.nurse, "admission", "a,b=1").await;
    assert!(s.is_client_error(), "{s}");
    let (s, _) = srv
        .search(&k.nurse, "admission", "%22x%22%2C%5B%5D=1")
        .await;
    assert!(s.is_client_error(), "{s}");
    let (s, v) = srv.get("/v1/audit/verify", &k.admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["ok"], json!(true), "{v}");
    srv.stop();
    let (ok, out) = verify(&f.target);
    assert!(ok, "{out}");
}

fn sqlite(db: &Path, sql: &str) -> String {
    let out = Command::new("sqlite3").arg(db).arg(sql).output().unwrap();
    assert!(
        out.status.success(),
        "sqlite3 {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn verify(target: &Target) -> (bool, String) {
    let out = amanah()
        .args(with_target(&["audit", "verify"], target))
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn every_read_is_audited_once_and_tampering_is_detected(kind: Kind) {
    let f = fixture(kind);
    let srv = start(&f.target);
    let k = &f.keys;
    let id = srv.create(&k.nurse, "admission", student()).await;
    srv.consent(&k.admin, &id, "marketing").await;
    let _second = srv
        .create(
            &k.officer,
            "admission",
            json!({"full_name": "Second", "email": "second@example.id", "phone": "0812-4471-9035"}),
        )
        .await;

    let reads: Vec<(String, &str, Option<StatusCode>)> = vec![
        (
            format!("/v1/subjects/{id}?purpose=admission"),
            &k.officer,
            Some(StatusCode::OK),
        ),
        (
            format!("/v1/subjects/{id}?purpose=admission"),
            &k.nurse,
            Some(StatusCode::OK),
        ),
        (
            format!("/v1/subjects/{id}?purpose=marketing"),
            &k.officer,
            Some(StatusCode::FORBIDDEN),
        ),
        (
            format!("/v1/subjects/{id}?purpose=astrology"),
            &k.officer,
            Some(StatusCode::UNPROCESSABLE_ENTITY),
        ),
        (
            "/v1/subjects/00000000-0000-0000-0000-000000000000?purpose=admission".into(),
            &k.officer,
            Some(StatusCode::NOT_FOUND),
        ),
        (
            "/v1/subjects?purpose=admission&email=siti@example.id".into(),
            &k.officer,
            Some(StatusCode::OK),
        ),
        (
            "/v1/subjects?purpose=admission&email=nobody@example.id".into(),
            &k.officer,
            Some(StatusCode::OK),
        ),
        (
            format!("/v1/subjects?purpose=admission&nik={NIK}"),
            &k.officer,
            Some(StatusCode::FORBIDDEN),
        ),
        (
            "/v1/subjects?purpose=marketing&email=siti@example.id".into(),
            &k.officer,
            Some(StatusCode::FORBIDDEN),
        ),
        (
            "/v1/subjects?purpose=admission&health=asthma".into(),
            &k.nurse,
            Some(StatusCode::UNPROCESSABLE_ENTITY),
        ),
        (
            "/v1/subjects?purpose=admission&nik=123".into(),
            &k.nurse,
            Some(StatusCode::UNPROCESSABLE_ENTITY),
        ),
        (
            "/v1/subjects?purpose=marketing&email=siti@example.id".into(),
            &k.marketer,
            Some(StatusCode::OK),
        ),
    ];
    let mut last = srv.audit(&k.admin).await.len();
    for (path, key, expect) in &reads {
        let (s, v) = srv.get(path, key).await;
        if let Some(e) = expect {
            assert_eq!(s, *e, "{path}: {v}");
        }
        let entries = srv.audit(&k.admin).await;
        // +1 for the previous audit listing, +1 for this read.
        assert_eq!(
            entries.len(),
            last + 2,
            "{path} ({s}) should add exactly one audit entry"
        );
        let new = &entries[entries.len() - 1];
        assert_ne!(new["action"], "audit.read", "{new}");
        assert!(
            new["action"].as_str().unwrap().starts_with("subject."),
            "{new}"
        );
        let expected_outcome = if s.is_success() { "allowed" } else { "denied" };
        assert_eq!(new["outcome"], expected_outcome, "{path}: {new}");
        last = entries.len();
    }
    // A search matching two subjects records one entry per subject.
    let (_, v) = srv
        .search(&k.nurse, "admission", "phone=081244719035")
        .await;
    assert_eq!(ids(&v).len(), 2);
    let entries = srv.audit(&k.admin).await;
    assert_eq!(entries.len(), last + 3);

    let keys = [&k.admin, &k.officer, &k.nurse, &k.marketer];
    for e in &entries {
        let actor = e["actor"].as_str().unwrap();
        assert!(actor.starts_with("key-") || actor == "cli", "{e}");
        for key in keys {
            assert!(!e.to_string().contains(key.as_str()), "key in audit: {e}");
        }
        for field in e["fields"].as_array().unwrap() {
            assert!(CATEGORIES.contains(&field.as_str().unwrap()), "{e}");
        }
        let text = e.to_string();
        // Whole values only: a short fragment can occur by chance inside a hex hash.
        for value in ["Siti", "siti@example.id", NIK, "asthma", "81244719035"] {
            assert!(!text.contains(value), "value {value} in audit: {e}");
        }
    }
    assert!(entries
        .iter()
        .any(|e| e["actor"] == f.keys.officer_id.as_str() && e["action"] == "subject.read"));
    let (s, v) = srv.get("/v1/audit/verify", &k.admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["ok"], true, "{v}");
    srv.stop();

    let (ok, out) = verify(&f.target);
    assert!(ok, "{out}");
    let max: u64 = f
        .target
        .sql("SELECT max(seq) FROM audit_log;")
        .trim()
        .parse()
        .unwrap();
    assert!(max > 10);
    let mid = max / 2;
    let cols = "at, actor, role, action, purpose, basis, outcome, reason, subject_id, fields, policy_version, hash";
    let tampers: Vec<(&str, String, u64)> = vec![
        (
            "edit",
            format!("UPDATE audit_log SET actor = 'someone-else' WHERE seq = {mid};"),
            mid,
        ),
        (
            "edit-fields",
            // A change under any encoding: the lists are JSON arrays since schema 6.
            format!("UPDATE audit_log SET fields = '[\"tampered\"]' WHERE seq = {mid};"),
            mid,
        ),
        (
            // A name Amanah never writes: the row is refused on read, naming the entry.
            "edit-action",
            format!("UPDATE audit_log SET action = 'subject.peek' WHERE seq = {mid};"),
            mid,
        ),
        (
            "delete-middle",
            format!("DELETE FROM audit_log WHERE seq = {mid};"),
            mid,
        ),
        (
            "delete-last",
            format!("DELETE FROM audit_log WHERE seq = {max};"),
            max - 1,
        ),
        (
            "swap",
            format!(
                "CREATE TEMP TABLE t AS SELECT * FROM audit_log WHERE seq IN ({mid}, {n});
                 UPDATE audit_log SET ({cols}) = (SELECT {cols} FROM t WHERE t.seq = {n}) WHERE seq = {mid};
                 UPDATE audit_log SET ({cols}) = (SELECT {cols} FROM t WHERE t.seq = {mid}) WHERE seq = {n};",
                n = mid + 1
            ),
            mid,
        ),
    ];
    for (name, sql, entry) in tampers {
        let copy = f.target.copy(f.root.join(format!("tamper-{name}")));
        copy.sql(&sql);
        let (ok, out) = verify(&copy);
        assert!(!ok, "{name}: verify passed: {out}");
        assert!(
            out.contains(&format!("entry {entry}")),
            "{name}: should name entry {entry}: {out}"
        );
        // Reported as a break of the chain, not as a failure to read it.
        assert!(!out.contains("storage failure"), "{name}: {out}");
    }
}

fn needles(marker: &str) -> Vec<Vec<u8>> {
    let mut forms = vec![marker.to_owned(), marker.to_lowercase()];
    forms.dedup();
    let mut out = Vec::new();
    for f in forms {
        out.push(f.as_bytes().to_vec());
        out.push(f.encode_utf16().flat_map(u16::to_le_bytes).collect());
        out.push(f.encode_utf16().flat_map(u16::to_be_bytes).collect());
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    // The PostgreSQL scan reads tens of megabytes: use a fast substring search.
    memchr::memmem::find(hay, needle).is_some()
}

async fn no_plaintext_at_rest_or_in_logs(kind: Kind) {
    let f = fixture(kind);
    let srv = start(&f.target);
    let k = &f.keys;
    let markers = [
        "Zanzibar Quokkaface",
        "quokka.marker@example.id",
        NIK2,
        "Quokkaitis Chronica",
        "Rejected Wombatface",
        "wombat.rejected@example.id",
        "Patched Platypusface",
        "081299887766",
    ];
    let id = srv
        .create(
            &k.nurse,
            "admission",
            json!({
                "full_name": "Zanzibar Quokkaface",
                "email": "Quokka.Marker@Example.ID",
                "nik": NIK2,
                "phone": "0812-9988-7766",
                "health": "Quokkaitis Chronica",
            }),
        )
        .await;
    // Rejected request holding markers.
    let (s, _) = srv
        .send(
            Method::POST,
            "/v1/subjects?purpose=admission",
            &k.nurse,
            &json!({"fields": {"full_name": "Rejected Wombatface", "email": "wombat.rejected@example.id", "nik": "0000"}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = srv
        .send(
            Method::PATCH,
            &format!("/v1/subjects/{id}?purpose=admission"),
            &k.nurse,
            &json!({"fields": {"full_name": "Patched Platypusface"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = srv
        .search(&k.nurse, "admission", "email=quokka.marker@example.id")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&v), vec![id.clone()]);
    let (s, _) = srv
        .search(&k.nurse, "admission", "email=wombat.rejected@example.id")
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = srv
        .search(&k.officer, "admission", &format!("nik={NIK2}"))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = srv
        .search(&k.nurse, "admission", "health=Quokkaitis%20Chronica")
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, v) = srv
        .get(&format!("/v1/subjects/{id}?purpose=admission"), &k.nurse)
        .await;
    assert_eq!(v["fields"]["health"], "Quokkaitis Chronica");
    let logs = srv.stop();
    assert!(!logs.is_empty());

    let mut files: Vec<(String, Vec<u8>)> = vec![("server output".into(), logs)];
    for p in f.target.files_at_rest() {
        // A file may vanish meanwhile (a recycled log segment of the shared cluster).
        if let Ok(bytes) = std::fs::read(&p) {
            files.push((p.display().to_string(), bytes));
        }
    }
    // Control: the scan does see stored rows (the policy source is kept as text).
    assert!(
        files
            .iter()
            .any(|(_, bytes)| contains(bytes, b"dpo@example.id")),
        "the scanned files do not hold the stored policy"
    );
    match kind {
        Kind::Sqlite => assert!(files.iter().any(|(n, _)| n.ends_with("amanah.db"))),
        Kind::Postgres => {
            assert!(files.iter().any(|(n, _)| n.contains("/base/")));
            // The database password is never printed either.
            let password = amanah_testkit::cluster().password();
            assert!(!contains(&files[0].1, password.as_bytes()));
        }
    }
    for (name, bytes) in &files {
        for m in markers {
            for needle in needles(m) {
                assert!(
                    !contains(bytes, &needle),
                    "{name} holds marker {m:?} ({} bytes form)",
                    needle.len()
                );
            }
        }
    }
}

async fn a_swapped_ciphertext_fails_closed(kind: Kind) {
    let f = fixture(kind);
    let srv = start(&f.target);
    let k = &f.keys;
    let a = srv
        .create(
            &k.nurse,
            "admission",
            json!({"full_name": "Alpha Person", "email": "alpha.swap@example.id"}),
        )
        .await;
    let b = srv
        .create(
            &k.nurse,
            "admission",
            json!({"full_name": "Beta Person", "email": "beta.swap@example.id"}),
        )
        .await;
    srv.stop();
    f.target.sql(
        &format!(
            "UPDATE subjects SET fields = (SELECT fields FROM subjects WHERE id = '{a}') WHERE id = '{b}';"
        ),
    );
    let srv = start(&f.target);
    let (s, _, v) = srv
        .call(
            Method::GET,
            &format!("/v1/subjects/{b}?purpose=admission"),
            Some(&k.nurse),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    let text = v.to_string();
    for value in ["alpha", "beta", "Alpha Person", "Beta Person"] {
        assert!(!text.contains(value), "{text}");
    }
    // The untouched subject still reads.
    let (s, v) = srv
        .get(&format!("/v1/subjects/{a}?purpose=admission"), &k.nurse)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["fields"]["email"], "alpha.swap@example.id");
    // The failed read is on record as a refusal for that subject.
    let entries = srv.audit(&k.admin).await;
    let failed = entries
        .iter()
        .rev()
        .find(|e| e["subject"] == b.as_str() && e["action"] == "subject.read")
        .unwrap();
    assert_eq!(failed["outcome"], "denied", "{failed}");
    assert!(failed["reason"]
        .as_str()
        .unwrap()
        .contains("decryption failed"));
    let logs = srv.stop();
    let logs = String::from_utf8_lossy(&logs);
    assert!(!logs.contains("alpha.swap") && !logs.contains("beta.swap"));
}

/// A subject's set of sealed fields altered so that it no longer decodes (here cut short): its
/// reads fail closed and are on record as refused, other subjects read as before, and the
/// subject can still be erased (its key destroyed).
async fn a_malformed_field_set_fails_closed_and_the_subject_can_still_be_erased(kind: Kind) {
    let f = fixture(kind);
    let srv = start(&f.target);
    let k = &f.keys;
    let mut ids = Vec::new();
    for (name, email) in [
        ("Gamma Person", "gamma.cut@example.id"),
        ("Delta Person", "delta.cut@example.id"),
    ] {
        let id = srv
            .create(
                &k.nurse,
                "admission",
                json!({"full_name": name, "email": email}),
            )
            .await;
        ids.push(id);
    }
    let (intact, cut) = (&ids[0], &ids[1]);
    srv.stop();
    f.target.sql(&format!(
        "UPDATE subjects SET fields = substr(fields, 1, 9) WHERE id = '{cut}';"
    ));
    let srv = start(&f.target);
    let (s, _, v) = srv
        .call(
            Method::GET,
            &format!("/v1/subjects/{cut}?purpose=admission"),
            Some(&k.nurse),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    assert!(!v.to_string().contains("Delta"), "{v}");
    let (s, v) = srv
        .get(
            &format!("/v1/subjects/{intact}?purpose=admission"),
            &k.nurse,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["fields"]["email"], "gamma.cut@example.id");
    let entries = srv.audit(&k.admin).await;
    let refused = entries
        .iter()
        .rev()
        .find(|e| e["subject"] == cut.as_str() && e["action"] == "subject.read")
        .unwrap();
    assert_eq!(refused["outcome"], "denied", "{refused}");
    assert!(
        refused["reason"].as_str().unwrap().contains("malformed"),
        "{refused}"
    );
    // Erasure needs no field: the key is destroyed and the subject reads as erased.
    let (s, _, v) = srv
        .call(
            Method::DELETE,
            &format!("/v1/subjects/{cut}"),
            Some(&k.admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, _) = srv
        .get(&format!("/v1/subjects/{cut}?purpose=admission"), &k.admin)
        .await;
    assert_eq!(s, StatusCode::GONE);
    let logs = srv.stop();
    let logs = String::from_utf8_lossy(&logs);
    assert!(!logs.contains("gamma.cut") && !logs.contains("delta.cut"));
}

async fn openapi_and_metrics(kind: Kind) {
    let f = fixture(kind);
    let srv = start(&f.target);
    let (s, _, v) = srv.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let paths = v["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/v1/subjects", &["post", "get"][..]),
        ("/v1/subjects/{id}", &["get", "patch", "delete"]),
        ("/v1/audit", &["get"]),
        ("/v1/audit/verify", &["get"]),
        ("/v1/keys", &["get", "post"]),
        ("/v1/keys/{id}", &["delete"]),
        ("/v1/policy", &["get", "put"]),
        ("/v1/subjects/{id}/consents", &["get", "post"]),
        ("/v1/subjects/{id}/relations", &["get", "post"]),
        ("/v1/consents/stale", &["get"]),
        ("/v1/contactable", &["get"]),
        ("/v1/subjects/{id}/export", &["get"]),
        ("/v1/subjects/{id}/restriction", &["post", "delete"]),
        ("/v1/subjects/{id}/holds", &["post", "get"]),
        ("/v1/subjects/{id}/holds/{hold_id}", &["delete"]),
        ("/v1/subjects/{id}/end", &["post"]),
        ("/v1/requests", &["post", "get"]),
        ("/v1/requests/{id}", &["get", "patch"]),
        ("/v1/retention/sweep", &["post"]),
        ("/v1/disclosures", &["post", "get"]),
        ("/v1/disclosures/{id}", &["get"]),
        ("/v1/disclosures/{id}/approve", &["post"]),
        ("/v1/disclosures/{id}/authorize", &["post"]),
        ("/v1/disclosures/{id}/reject", &["post"]),
        ("/v1/disclosures/{id}/package", &["get"]),
        ("/v1/breaches", &["post", "get"]),
        ("/v1/breaches/{id}", &["get"]),
        ("/v1/breaches/{id}/notices", &["get"]),
        ("/v1/breaches/{id}/notices/sent", &["post"]),
        ("/v1/ropa", &["get"]),
        ("/healthz", &["get"]),
    ] {
        let p = paths
            .get(path)
            .unwrap_or_else(|| panic!("openapi lacks {path}"));
        for m in methods {
            assert!(p.get(*m).is_some(), "openapi lacks {m} {path}");
        }
    }
    // Metrics are not on the API's listener: it answers 404 there, like any unknown route,
    // and the document does not list them.
    assert!(paths.get("/metrics").is_none());
    let resp = srv
        .client
        .get(format!("{}/metrics", srv.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    assert!(!resp.text().await.unwrap().contains("amanah_"));
    let _ = srv.get("/healthz", &f.keys.admin).await;
    // Made-up methods all count under one label.
    for m in ["FOO", "BAR", "XYZZY"] {
        let _ = srv
            .client
            .request(
                Method::from_bytes(m.as_bytes()).unwrap(),
                format!("{}/v1/subjects", srv.base()),
            )
            .send()
            .await
            .unwrap();
    }
    // They are on the metrics listener, gauges included (kept by the upkeep task, which runs
    // once at start).
    let text = loop {
        let resp = srv
            .client
            .get(format!("{}/metrics", srv.metrics()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let text = resp.text().await.unwrap();
        if text.contains("amanah_metrics_upkeep_runs_total") {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(text.contains("amanah_http_requests_total"), "{text}");
    assert!(text.contains("amanah_requests_overdue"), "{text}");
    assert!(text.contains("amanah_breaches_overdue"), "{text}");
    assert!(text.contains("method=\"other\""), "{text}");
    for m in ["FOO", "BAR", "XYZZY"] {
        assert!(!text.contains(m), "{text}");
    }
    // Only GET /metrics there.
    let resp = srv
        .client
        .get(format!("{}/v1/audit", srv.metrics()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    srv.stop();
}

#[test]
fn policy_check_names_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.toml");
    std::fs::write(
        &file,
        POLICY.replace("type = \"nik\"", "type = \"passport-ish\""),
    )
    .unwrap();
    let out = amanah()
        .args(["policy", "check", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let prefix = format!("{}:", file.display());
    let line = err
        .lines()
        .find(|l| l.contains(&prefix))
        .unwrap_or_else(|| panic!("no file:line:col in {err}"));
    let rest = &line[line.find(&prefix).unwrap() + prefix.len()..];
    let mut parts = rest.splitn(3, ':');
    let l: u32 = parts.next().unwrap().parse().expect("line number");
    let c: u32 = parts.next().unwrap().parse().expect("column number");
    assert!(l > 1 && c >= 1, "{line}");
    // The reported line is the broken one.
    let src = std::fs::read_to_string(&file).unwrap();
    let bad = src.lines().nth(l as usize - 1).unwrap();
    assert!(bad.contains("passport-ish"), "line {l} is {bad:?}");

    let good = dir.path().join("good.toml");
    std::fs::write(&good, POLICY).unwrap();
    run_ok(&["policy", "check", good.to_str().unwrap()]);
}

fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && contains(&std::fs::read(p).unwrap(), needle))
        .map(|p| p.display().to_string())
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

#[tokio::test]
async fn erased_people_stay_erased_in_restored_backups() {
    // SQLite: backups and the key store are files of the data directory.
    let f = fixture(Kind::Sqlite);
    let data_dir = f.target.data.clone();
    let k = &f.keys;
    let data = data_dir.to_str().unwrap().to_owned();
    let srv = start(&f.target);
    let gone = srv
        .create(
            &k.admin,
            "admission",
            json!({"full_name": "Wombatina Markerova", "email": "wombatina.marker@example.id"}),
        )
        .await;
    let kept = srv
        .create(
            &k.admin,
            "admission",
            json!({"full_name": "Kept Person", "email": "kept@example.id"}),
        )
        .await;
    let keys_db = data_dir.join("amanah-keys.db");
    let wrapped = unhex(
        sqlite(
            &keys_db,
            &format!("SELECT hex(wrapped_key) FROM data_keys WHERE subject_id = '{gone}'"),
        )
        .trim(),
    );
    let sealed_fields = unhex(
        sqlite(
            &data_dir.join("amanah.db"),
            &format!("SELECT hex(fields) FROM subjects WHERE id = '{gone}'"),
        )
        .trim(),
    );
    let (_, sealed_email) = amanah_store::sealed_fields::decode(&sealed_fields)
        .unwrap()
        .into_iter()
        .find(|(category, _)| category == "email")
        .unwrap();
    assert!(wrapped.len() > 32 && sealed_email.len() > 16);

    // Online backups while the server runs: the data file (no keys), and the key store.
    let data_backup = f.root.join("data-backup.db");
    let key_backup = f.root.join("key-backup.db");
    let out = run_ok(&[
        "backup",
        "--data",
        &data,
        "--out",
        data_backup.to_str().unwrap(),
    ]);
    assert!(out.contains("ciphertext only"), "{out}");
    run_ok(&[
        "backup",
        "--data",
        &data,
        "--out",
        key_backup.to_str().unwrap(),
        "--key-store",
    ]);
    let again = amanah()
        .args([
            "backup",
            "--data",
            &data,
            "--out",
            data_backup.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!again.status.success(), "a backup never overwrites");
    assert!(contains(
        &std::fs::read(&data_backup).unwrap(),
        &sealed_email
    ));
    assert!(
        !contains(&std::fs::read(&data_backup).unwrap(), &wrapped),
        "a data backup holds no key"
    );

    let (s, _, v) = srv
        .call(
            Method::DELETE,
            &format!("/v1/subjects/{gone}"),
            Some(&k.admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, _) = srv
        .get(&format!("/v1/subjects/{gone}?purpose=admission"), &k.admin)
        .await;
    assert_eq!(s, StatusCode::GONE);
    srv.stop();
    assert_eq!(
        files_holding(&data_dir, &wrapped),
        Vec::<String>::new(),
        "the key is gone from the data dir"
    );
    assert_eq!(
        files_holding(&data_dir, &sealed_email),
        Vec::<String>::new()
    );

    // Restore the backup taken before the erasure: the person stays erased.
    let out = run_ok(&[
        "restore",
        "--data",
        &data,
        "--from",
        data_backup.to_str().unwrap(),
    ]);
    assert!(
        out.contains("1 subjects erased since the backup were purged"),
        "{out}"
    );
    assert_eq!(
        files_holding(&data_dir, &sealed_email),
        Vec::<String>::new()
    );
    let srv = start(&f.target);
    let (s, v) = srv
        .get(&format!("/v1/subjects/{gone}?purpose=admission"), &k.admin)
        .await;
    assert_eq!(s, StatusCode::GONE, "{v}");
    let (s, v) = srv
        .get(&format!("/v1/subjects/{kept}?purpose=admission"), &k.admin)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, found) = srv
        .search(&k.admin, "admission", "email=wombatina.marker@example.id")
        .await;
    assert!(ids(&found).is_empty());
    srv.stop();
    let (ok, out) = verify(&f.target);
    assert!(ok, "{out}");

    // A key-store snapshot beyond the limit is refused; within it, erased keys are dropped.
    let old = amanah()
        .args([
            "restore",
            "--data",
            &data,
            "--from",
            key_backup.to_str().unwrap(),
            "--max-key-backup-days",
            "0",
        ])
        .output()
        .unwrap();
    assert!(!old.status.success());
    assert!(String::from_utf8_lossy(&old.stderr).contains("beyond the 0-day limit"));
    let out = run_ok(&[
        "restore",
        "--data",
        &data,
        "--from",
        key_backup.to_str().unwrap(),
    ]);
    assert!(out.contains("1 keys of erased subjects dropped"), "{out}");
    assert_eq!(files_holding(&data_dir, &wrapped), Vec::<String>::new());
    let srv = start(&f.target);
    let (s, _) = srv
        .get(&format!("/v1/subjects/{gone}?purpose=admission"), &k.admin)
        .await;
    assert_eq!(s, StatusCode::GONE);
    let (s, _) = srv
        .get(&format!("/v1/subjects/{kept}?purpose=admission"), &k.admin)
        .await;
    assert_eq!(s, StatusCode::OK);
    srv.stop();
}

/// Two `amanah serve` processes on one PostgreSQL database, under concurrent load: one server
/// rectifies a subject's name while the other rectifies its phone (neither update is lost),
/// both race to create subjects with the same unique emails (each email is taken once), and
/// reads are audited by both. The chain of all their entries then verifies, on each server
/// and from the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_database() {
    let f = fixture(Kind::Postgres);
    let (a, b) = (start(&f.target), start(&f.target));
    let k = &f.keys;
    let id = a.create(&k.nurse, "admission", student()).await;
    const ROUNDS: usize = 25;
    let name = |i: usize| {
        format!(
            "Siti {}{}",
            char::from(b'A' + (i / 26) as u8),
            char::from(b'a' + (i % 26) as u8)
        )
    };
    let phone = |i: usize| format!("0812-4471-{:04}", 5000 + i);
    let subject = format!("/v1/subjects/{id}?purpose=admission");
    let patch = |srv: &'static str, i: usize| {
        let (srv, field, value) = match srv {
            "a" => (&a, "full_name", name(i)),
            _ => (&b, "phone", phone(i)),
        };
        let path = subject.clone();
        let key = k.nurse.clone();
        async move {
            let (s, v) = srv
                .send(
                    Method::PATCH,
                    &path,
                    &key,
                    &json!({"fields": {field: value}}),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
        }
    };
    let race = |srv: &'static str, i: usize| {
        let srv = if srv == "a" { &a } else { &b };
        let key = k.officer.clone();
        async move {
            let (s, _) = srv
                .send(
                    Method::POST,
                    "/v1/subjects?purpose=admission",
                    &key,
                    &json!({"fields": {"full_name": "Race Person", "email": format!("race{i}@example.id")}}),
                )
                .await;
            assert!(s == StatusCode::CREATED || s == StatusCode::CONFLICT, "{s}");
            s == StatusCode::CREATED
        }
    };
    let stream_a = async {
        for i in 0..ROUNDS {
            patch("a", i).await;
        }
    };
    let stream_b = async {
        for i in 0..ROUNDS {
            patch("b", i).await;
        }
    };
    let races = async {
        let mut created = 0;
        for i in 0..ROUNDS {
            let (x, y) = tokio::join!(race("a", i), race("b", i));
            created += usize::from(x) + usize::from(y);
        }
        created
    };
    let reads = async {
        for i in 0..ROUNDS {
            let srv = if i % 2 == 0 { &a } else { &b };
            let (s, _) = srv.get(&subject, &k.officer).await;
            assert_eq!(s, StatusCode::OK);
        }
    };
    let ((), (), created, ()) = tokio::join!(stream_a, stream_b, races, reads);
    assert_eq!(created, ROUNDS, "each unique email is taken exactly once");

    // Neither server's updates were lost.
    let (_, v) = b.get(&subject, &k.nurse).await;
    assert_eq!(v["fields"]["full_name"], name(ROUNDS - 1).as_str(), "{v}");
    let last_phone = phone(ROUNDS - 1).replace('-', "");
    let (_, v) = a
        .search(&k.nurse, "admission", &format!("phone={last_phone}"))
        .await;
    assert_eq!(
        ids(&v),
        vec![id.clone()],
        "the phone index follows the last update"
    );
    let (_, v) = a.search(&k.nurse, "admission", "phone=081244719035").await;
    assert!(ids(&v).is_empty(), "the first phone left the index: {v}");
    for i in 0..ROUNDS {
        let (_, v) = b
            .search(&k.nurse, "admission", &format!("email=race{i}@example.id"))
            .await;
        assert_eq!(ids(&v).len(), 1, "race{i}");
    }
    let updates = a
        .audit(&k.admin)
        .await
        .iter()
        .filter(|e| e["action"] == "subject.update" && e["subject"] == id.as_str())
        .count();
    assert_eq!(updates, 2 * ROUNDS);
    for srv in [&a, &b] {
        let (s, v) = srv.get("/v1/audit/verify", &k.admin).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["ok"], true, "{v}");
    }
    a.stop();
    b.stop();
    let (ok, out) = verify(&f.target);
    assert!(ok, "{out}");
}
