//! Several organizations in one deployment, driven as their users would: the real `amanah`
//! binary (`amanah tenant ...` and `amanah serve`) over a real store, on SQLite and on
//! PostgreSQL. Two organizations hold the same people; each one's keys, walked over every route
//! against the other's ids, learn nothing of it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use amanah_testkit::{on_both_stores, Kind};

mod support;
use support::{run_ok, serve};

on_both_stores!(
    two_organizations_with_the_same_people_learn_nothing_of_each_other,
    suspension_and_quotas,
    the_operator_runs_organizations_from_the_command_line,
);

const NIK: &str = "3174092512990007";

/// A deployment: a data directory (SQLite, or only the key file beside a PostgreSQL store).
struct Deployment {
    _dir: tempfile::TempDir,
    data: PathBuf,
    store: Option<String>,
}

/// Whose store a raw query reads.
enum Db<'a> {
    Platform,
    Tenant(&'a str),
}

impl Deployment {
    fn new(kind: Kind) -> Deployment {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = match kind {
            Kind::Sqlite => None,
            Kind::Postgres => Some(amanah_testkit::database("tenants")),
        };
        let d = Deployment {
            _dir: dir,
            data,
            store,
        };
        let policy = amanah_testkit::policies::path("clinic.toml");
        run_ok(&d.args(&["init", "--policy", policy.to_str().unwrap()]));
        d
    }

    /// `COMMAND... --data DIR [--store URL]`
    fn args(&self, command: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        a.extend(["--data".to_owned(), self.data.to_str().unwrap().to_owned()]);
        if let Some(url) = &self.store {
            // `tenant create` names the deployment's own store `--deployment-store` (its
            // `--store` places the new organization).
            let flag = if command.starts_with(&["tenant", "create"]) {
                "--deployment-store"
            } else {
                "--store"
            };
            a.extend([flag.to_owned(), url.clone()]);
        }
        a
    }

    /// A platform key.
    fn platform_key(&self) -> String {
        let out =
            run_ok(&self.args(&["tenant", "key", "create", "--holder", "Op <op@platform.id>"]));
        out.lines().last().unwrap().trim().to_owned()
    }

    /// Creates an organization from the command line; returns its id and admin key.
    fn create(&self, name: &str, extra: &[&str]) -> (String, String) {
        let policy = amanah_testkit::policies::path("clinic.toml");
        let mut command = vec![
            "tenant",
            "create",
            name,
            "--policy",
            policy.to_str().unwrap(),
            "--admin-holder",
            "Admin <admin@org.id>",
        ];
        command.extend(extra);
        let out = run_ok(&self.args(&command));
        let id = out
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap();
        (id.to_owned(), out.lines().last().unwrap().trim().to_owned())
    }

    /// Runs a query on a store directly (as someone holding the database would); returns the
    /// output's text.
    fn sql(&self, db: Db<'_>, sql: &str) -> String {
        match &self.store {
            None => {
                let file = match db {
                    Db::Platform => self.data.join("platform/amanah.db"),
                    Db::Tenant(id) => self.data.join("tenants").join(id).join("amanah.db"),
                };
                sqlite(&file, sql)
            }
            Some(url) => {
                let own = url.rsplit('/').next().unwrap();
                let name = match db {
                    Db::Platform => format!("{own}_platform"),
                    Db::Tenant(id) => format!("{own}_t_{}", id.replace('-', "")),
                };
                let cluster = amanah_testkit::cluster();
                cluster
                    .query_text(&cluster.url(&name), sql)
                    .unwrap_or_default()
            }
        }
    }

    /// Whether a tenant's store still exists.
    fn tenant_store_exists(&self, id: &str) -> bool {
        match &self.store {
            None => self.data.join("tenants").join(id).exists(),
            Some(url) => {
                let own = url.rsplit('/').next().unwrap();
                let name = format!("{own}_t_{}", id.replace('-', ""));
                let cluster = amanah_testkit::cluster();
                let q = format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'");
                let n = cluster
                    .query_text(&cluster.url("postgres"), &q)
                    .expect("the cluster answers");
                n == "1"
            }
        }
    }
}

fn decode_hex(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn sqlite(db: &Path, sql: &str) -> String {
    let out = Command::new("sqlite3").arg(db).arg(sql).output().unwrap();
    assert!(out.status.success(), "sqlite3 {sql}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    fn of(server: &support::Server) -> Client {
        Client {
            base: server.base().to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// Whether `GET path` with `key` comes to answer `status` within three seconds (a change
    /// made by another process reaches a server within a second).
    async fn comes_to(&self, path: &str, key: &str, status: StatusCode) -> bool {
        for _ in 0..30 {
            if self.call("GET", path, key, None).await.0 == status {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.base),
            )
            .header("authorization", format!("Bearer {key}"));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The entries of an organization's chain (verified).
    async fn chain_len(&self, admin: &str) -> u64 {
        let (s, v) = self.call("GET", "/v1/audit/verify", admin, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["ok"], true, "{v}");
        v["entries"].as_u64().unwrap()
    }
}

/// One person, the same in both organizations.
fn person() -> Value {
    json!({"fields": {
        "full_name": "Siti Rahma",
        "email": "siti.rahma@example.id",
        "phone": "+62 812 3456 7890",
        "nik": NIK,
        "health": "asthma",
    }})
}

/// What an organization holds, by kind of id.
struct Ids {
    subject: String,
    request: String,
    hold: String,
    breach: String,
    key: String,
    document: String,
}

async fn populate(c: &Client, admin: &str) -> Ids {
    let (s, v) = c
        .call(
            "POST",
            "/v1/subjects?purpose=admission",
            admin,
            Some(&person()),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let subject = v["id"].as_str().unwrap().to_owned();
    let (s, v) = c
        .call(
            "POST",
            "/v1/requests",
            admin,
            Some(&json!({"subject_id": subject, "type": "access"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let request = v["id"].as_str().unwrap().to_owned();
    let (s, v) = c
        .call(
            "POST",
            &format!("/v1/subjects/{subject}/holds"),
            admin,
            Some(&json!({"reason": "audit", "until": "2099-01-01"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let hold = v["id"].as_str().unwrap().to_owned();
    let (s, v) = c
        .call(
            "POST",
            "/v1/breaches",
            admin,
            Some(&json!({
                "description": "a laptop was lost",
                "detected_at": "2026-11-30T08:00:00Z",
                "categories": ["email"],
                "subject_ids": [subject],
                "cause": "theft",
                "measures": "remote wipe",
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let breach = v["id"].as_str().unwrap().to_owned();
    let (s, v) = c
        .call(
            "POST",
            "/v1/keys",
            admin,
            Some(&json!({"role": "officer", "name": "o", "holder": "Officer <o@org.id>"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let key = v["id"].as_str().unwrap().to_owned();
    let resp = c
        .http
        .put(format!(
            "{}/v1/subjects/{subject}/documents/referral_letter?purpose=admission",
            c.base
        ))
        .header("authorization", format!("Bearer {admin}"))
        .header("content-type", "application/pdf")
        .body(b"%PDF-1.7\n% a referral letter\n%%EOF\n".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let v: Value = resp.json().await.unwrap();
    let document = v["document_id"].as_str().unwrap().to_owned();
    Ids {
        subject,
        request,
        hold,
        breach,
        key,
        document,
    }
}

/// A path of the registry with its ids filled from `ids` (the disclosures' with a request id,
/// which no disclosure has: an id of another kind, as a prober would send).
fn fill(path: &str, ids: &Ids) -> String {
    let id = if path.starts_with("/v1/subjects/") {
        &ids.subject
    } else if path.starts_with("/v1/requests/") || path.starts_with("/v1/disclosures/") {
        &ids.request
    } else if path.starts_with("/v1/breaches/") {
        &ids.breach
    } else if path.starts_with("/v1/keys/") {
        &ids.key
    } else {
        &ids.subject
    };
    path.replace("{id}", id)
        .replace("{hold_id}", &ids.hold)
        .replace("{document}", &ids.document)
}

/// A body that gets a route past its input checks, so the answer depends on the lookup.
fn body_for(method: &str, path: &str, ids: &Ids) -> Option<Value> {
    if !matches!(method, "POST" | "PATCH" | "PUT") {
        return None;
    }
    Some(match path {
        "/v1/subjects/{id}" => json!({"fields": {"full_name": "Siti R."}}),
        "/v1/subjects/{id}/holds" => json!({"reason": "r", "until": "2099-01-01"}),
        "/v1/subjects/{id}/restriction" => json!({"reason": "disputed"}),
        "/v1/subjects/{id}/consents" => json!({"purpose": "marketing", "granted": true,
            "channel": "web_form", "evidence": "form-1"}),
        "/v1/subjects/{id}/purposes" => json!({"purpose": "marketing"}),
        "/v1/requests/{id}" => json!({"status": "in_progress"}),
        "/v1/requests" => json!({"subject_id": ids.subject, "type": "access"}),
        "/v1/disclosures" => json!({"recipient": "insurer", "purpose": "admission",
            "subject_ids": [ids.subject], "categories": ["email"], "reason": "claim"}),
        "/v1/breaches" => json!({"description": "d", "detected_at": "2026-11-30T08:00:00Z",
            "categories": ["email"], "subject_ids": [ids.subject], "cause": "c",
            "measures": "m"}),
        _ => json!({}),
    })
}

/// The query a route needs to reach its lookup: every parameter the OpenAPI document says it
/// requires (a purpose, a channel…), and a purpose wherever it takes one.
fn query_for(doc: &Value, method: &str, path: &str, ids: &Ids) -> String {
    let params = &doc["paths"][path][method.to_lowercase()]["parameters"];
    let mut pairs = Vec::new();
    for p in params.as_array().into_iter().flatten() {
        if p["in"] != "query" {
            continue;
        }
        let name = p["name"].as_str().unwrap();
        let value = match name {
            "purpose" => "admission".to_owned(),
            "channel" => "email".to_owned(),
            "subject" | "subject_id" => ids.subject.clone(),
            _ if p["required"] == true => p["schema"]["enum"][0].as_str().unwrap_or("x").to_owned(),
            _ => continue,
        };
        pairs.push(format!("{name}={value}"));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

/// Every route that takes an id, called with `prober`'s key once with `theirs` (another
/// organization's ids) and once with `nowhere` (ids no organization has): the two answers must be
/// the same but for the ids, and never a record found. Returns the routes walked and how many
/// answered 404.
async fn walk(
    c: &Client,
    doc: &Value,
    prober: &str,
    theirs: &Ids,
    nowhere: &Ids,
    their_name: &str,
) -> (usize, usize) {
    let (mut walked, mut not_found) = (0, 0);
    for route in amanah_server::routes::all() {
        // The audit log filtered by an id lists the prober's own attempts on it (each probe
        // just made, with its own time and hash): its own record, not the other's.
        if route.path.starts_with("/v1/tenants") || route.path == "/v1/audit" {
            continue;
        }
        let probe_query = query_for(doc, route.method, &route.path, theirs);
        let body = body_for(route.method, &route.path, theirs);
        let takes_id = route.path.contains('{')
            || probe_query.contains(&theirs.subject)
            || body
                .as_ref()
                .is_some_and(|b| b.to_string().contains(&theirs.subject));
        if !takes_id {
            continue;
        }
        let control_query = query_for(doc, route.method, &route.path, nowhere);
        let control_body = body_for(route.method, &route.path, nowhere);
        let probe = format!("{}{probe_query}", fill(&route.path, theirs));
        let control = format!("{}{control_query}", fill(&route.path, nowhere));
        let (s1, v1) = c.call(route.method, &probe, prober, body.as_ref()).await;
        let (s2, v2) = c
            .call(route.method, &control, prober, control_body.as_ref())
            .await;
        let mut seen = v1.to_string();
        for (t, n) in [
            (&theirs.subject, &nowhere.subject),
            (&theirs.request, &nowhere.request),
            (&theirs.hold, &nowhere.hold),
            (&theirs.breach, &nowhere.breach),
            (&theirs.key, &nowhere.key),
            (&theirs.document, &nowhere.document),
        ] {
            seen = seen.replace(t.as_str(), n);
        }
        let what = format!("{} {}", route.method, route.path);
        // A record named by its id is never found; a listing filtered by another's id finds
        // what it finds for an id of nobody (nothing).
        assert!(
            !s1.is_success() || !route.path.contains('{'),
            "{what}: {s1} {v1}"
        );
        assert_eq!(s1, s2, "{what}: {v1} / {v2}");
        assert_eq!(seen, v2.to_string(), "{what}");
        assert!(!seen.contains(their_name), "{what}: {seen}");
        walked += 1;
        if s1 == StatusCode::NOT_FOUND {
            not_found += 1;
        }
    }
    (walked, not_found)
}

async fn two_organizations_with_the_same_people_learn_nothing_of_each_other(kind: Kind) {
    let d = Deployment::new(kind);
    let platform = d.platform_key();
    let (a_id, a_admin) = d.create("Alpha Clinic", &[]);
    let (b_id, b_admin) = d.create("Beta Clinic", &[]);
    let mut server = serve(d.args(&["--metrics-listen", "127.0.0.1:0"]))
        .log("info")
        .start();
    let c = Client::of(&server);
    // The same person in both: unique e-mail and NIK included, no conflict across them.
    let a = populate(&c, &a_admin).await;
    let b = populate(&c, &b_admin).await;
    assert_ne!(a.subject, b.subject);

    // Their index terms and ciphertexts are unrelated (no linking by whoever holds the
    // databases), though the values are the same.
    let terms = |id: &str| {
        let out = d.sql(
            Db::Tenant(id),
            "SELECT string_agg(encode(term, 'hex'), ',') FROM \
             (SELECT term FROM unique_index UNION ALL SELECT term FROM blind_index) t",
        );
        out.split(',').map(str::to_owned).collect::<Vec<_>>()
    };
    let (a_terms, b_terms) = match kind {
        Kind::Sqlite => {
            let q =
                "SELECT hex(term) FROM unique_index UNION ALL SELECT hex(term) FROM blind_index";
            let a_t = d.sql(Db::Tenant(&a_id), q);
            let b_t = d.sql(Db::Tenant(&b_id), q);
            (
                a_t.lines().map(str::to_owned).collect::<Vec<_>>(),
                b_t.lines().map(str::to_owned).collect::<Vec<_>>(),
            )
        }
        Kind::Postgres => (terms(&a_id), terms(&b_id)),
    };
    // The e-mail (unique) and the NIK (indexed).
    assert!(a_terms.len() >= 2, "{a_terms:?}");
    assert_eq!(a_terms.len(), b_terms.len(), "{a_terms:?} {b_terms:?}");
    assert!(a_terms.iter().all(|t| !b_terms.contains(t)));
    // Each subject's sealed fields, one hex value per subject.
    let sealed = match kind {
        Kind::Sqlite => "SELECT hex(fields) FROM subjects",
        Kind::Postgres => "SELECT string_agg(encode(fields, 'hex'), ',') FROM subjects",
    };
    let ciphertexts = |id: &str| -> Vec<String> {
        d.sql(Db::Tenant(id), sealed)
            .split([',', '\n'])
            .filter(|s| !s.trim().is_empty())
            .flat_map(|h| {
                amanah_store::sealed_fields::decode(&hex::decode(h.trim()).unwrap()).unwrap()
            })
            .map(|(_, ct)| hex::encode(ct))
            .collect()
    };
    let (a_ct, b_ct) = (ciphertexts(&a_id), ciphertexts(&b_id));
    assert!(a_ct.len() >= 2, "{a_ct:?}");
    let b_ct = b_ct.join(",");
    for ct in &a_ct {
        assert!(!b_ct.contains(ct.as_str()));
    }

    // Each organization's admin walks every route that takes an id (in its path, query or
    // body) against the other's ids: each answer is exactly the answer for ids that exist
    // nowhere, and never a success. Every attempt is in the prober's chain, none in the other's.
    let doc: Value = c
        .http
        .get(format!("{}/openapi.json", c.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut b_after = 0;
    for (prober, theirs, other_admin, other_name) in [
        (&b_admin, &a, &a_admin, "Alpha"),
        (&a_admin, &b, &b_admin, "Beta"),
    ] {
        let nowhere = Ids {
            subject: uuid::Uuid::now_v7().to_string(),
            request: uuid::Uuid::now_v7().to_string(),
            hold: uuid::Uuid::now_v7().to_string(),
            breach: uuid::Uuid::now_v7().to_string(),
            key: "key-0123456789ab".to_owned(),
            document: uuid::Uuid::now_v7().to_string(),
        };
        let other_chain = c.chain_len(other_admin).await;
        let other_again = c.chain_len(other_admin).await;
        let verify_cost = other_again - other_chain;
        let own_chain = c.chain_len(prober).await;
        let (walked, not_found) = walk(&c, &doc, prober, theirs, &nowhere, other_name).await;
        assert!(walked >= 22, "{walked}");
        assert!(not_found >= 12, "{not_found} of {walked}");
        let own_after = c.chain_len(prober).await;
        assert!(
            own_after - own_chain > 2 * not_found as u64,
            "{own_chain} -> {own_after} for {not_found} misses"
        );
        assert_eq!(c.chain_len(other_admin).await - other_again, verify_cost);
        if prober == &b_admin {
            b_after = own_after;
        }
    }

    // A search by the shared e-mail finds each organization's own person only.
    for (admin, own) in [(&a_admin, &a.subject), (&b_admin, &b.subject)] {
        let (s, v) = c
            .call(
                "GET",
                "/v1/subjects?purpose=admission&email=siti.rahma@example.id",
                admin,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let found: Vec<&str> = v["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        assert_eq!(found, [own.as_str()]);
    }

    // The platform key is refused on every route but the tenants', each refusal in the
    // platform's chain; the organizations' keys are refused on the tenants' routes.
    let denied_before: u64 = d
        .sql(
            Db::Platform,
            "SELECT count(*) FROM audit_log WHERE outcome = 'denied'",
        )
        .trim()
        .parse()
        .unwrap();
    let mut refused = 0;
    for (route, _) in amanah_server::routes::protected() {
        let path = fill(&route.path, &a).replace("{id}", &a.subject);
        let query = query_for(&doc, route.method, &route.path, &a);
        let body = body_for(route.method, &route.path, &a);
        let tenants_route = route.path.starts_with("/v1/tenants");
        if tenants_route {
            for key in [&a_admin, &b_admin] {
                let p = route.path.replace("{id}", &a_id);
                let (s, v) = c.call(route.method, &p, key, Some(&json!({}))).await;
                assert_eq!(s, StatusCode::FORBIDDEN, "{} {p}: {v}", route.method);
            }
            continue;
        }
        let (s, v) = c
            .call(
                route.method,
                &format!("{path}{query}"),
                &platform,
                body.as_ref(),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{} {path}: {v}", route.method);
        assert!(!v.to_string().contains("Siti"), "{v}");
        refused += 1;
    }
    let denied_after: u64 = d
        .sql(
            Db::Platform,
            "SELECT count(*) FROM audit_log WHERE outcome = 'denied'",
        )
        .trim()
        .parse()
        .unwrap();
    assert_eq!(denied_after - denied_before, refused);
    // Metrics and logs name routes, never an organization.
    let metrics = c
        .http
        .get(format!("{}/metrics", server.metrics()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("/v1/subjects/{id}"), "{metrics}");
    for secret in [&a_id, &b_id, &a.subject, &b.subject] {
        assert!(!metrics.contains(secret.as_str()), "{metrics}");
    }
    assert!(!metrics.contains("Alpha") && !metrics.contains("Beta") && !metrics.contains("Siti"));
    let log = server.output();
    assert!(!log.contains(&a_id) && !log.contains(&b_id), "{log}");
    assert!(!log.contains("Siti") && !log.contains(NIK));

    // The operator sees usage figures, not data.
    let (s, v) = c.call("GET", "/v1/tenants", &platform, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["tenants"].as_array().unwrap().len(), 2);
    assert_eq!(v["tenants"][0]["usage"]["subjects"], 1);
    assert!(!v.to_string().contains("Siti"));

    // Deleting A: its keys stop at once, its sealed key ring is gone (so its rows cannot be
    // read even with the root key, which stays), its store is removed; B is untouched.
    let sealed_ring = match kind {
        Kind::Sqlite => d.sql(
            Db::Platform,
            &format!("SELECT hex(sealed_keys) FROM tenants WHERE id = '{a_id}'"),
        ),
        Kind::Postgres => d.sql(
            Db::Platform,
            &format!("SELECT encode(sealed_keys, 'hex') FROM tenants WHERE id = '{a_id}'"),
        ),
    };
    let sealed_ring = decode_hex(sealed_ring.trim());
    assert!(sealed_ring.len() > 64);
    let (s, v) = c
        .call("DELETE", &format!("/v1/tenants/{a_id}"), &platform, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "deleted");
    let (s, _) = c
        .call(
            "GET",
            &format!("/v1/subjects/{}?purpose=admission", a.subject),
            &a_admin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let sealed = d.sql(
        Db::Platform,
        &format!("SELECT count(*) FROM tenants WHERE id = '{a_id}' AND sealed_keys IS NULL"),
    );
    assert_eq!(sealed.trim(), "1");
    // On SQLite no copy of the ring stays in the platform's files, its write-ahead log
    // included.
    if kind == Kind::Sqlite {
        for entry in std::fs::read_dir(d.data.join("platform")).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes
                    .windows(sealed_ring.len())
                    .any(|w| w == sealed_ring.as_slice()),
                "{} still holds the deleted organization's sealed key ring",
                path.display()
            );
        }
    }
    let mut gone = false;
    for _ in 0..100 {
        let (_, v) = c
            .call("GET", &format!("/v1/tenants/{a_id}"), &platform, None)
            .await;
        if v["purged"] == true && !d.tenant_store_exists(&a_id) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the deleted organization's store is still there");
    assert!(d.data.join("master.key").exists());
    let (s, v) = c
        .call(
            "GET",
            &format!("/v1/subjects/{}?purpose=admission", b.subject),
            &b_admin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["fields"]["email"], "siti.rahma@example.id");
    assert!(c.chain_len(&b_admin).await > b_after);
    server.stop();
    // And after a restart: A's key is unknown, B's works.
    let server = serve(d.args(&[])).start();
    let c = Client::of(&server);
    let (s, _) = c.call("GET", "/v1/audit/verify", &a_admin, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    c.chain_len(&b_admin).await;
}

async fn suspension_and_quotas(kind: Kind) {
    let d = Deployment::new(kind);
    let platform = d.platform_key();
    let server = serve(d.args(&[])).start();
    let c = Client::of(&server);
    // Created over HTTP by the operator, with quotas.
    let policy = std::fs::read_to_string(amanah_testkit::policies::path("clinic.toml")).unwrap();
    let (s, v) = c
        .call(
            "POST",
            "/v1/tenants",
            &platform,
            Some(
                &json!({"name": "Gamma", "policy": policy, "admin_holder": "G <g@gamma.id>",
                "quotas": {"max_subjects": 2}}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["tenant"]["id"].as_str().unwrap().to_owned();
    let admin = v["admin_key"].as_str().unwrap().to_owned();
    assert!(admin.starts_with("amt_"));
    // The same name again is refused; a policy that does not parse too, naming the line.
    let (s, v) = c
        .call(
            "POST",
            "/v1/tenants",
            &platform,
            Some(&json!({"name": "Gamma", "policy": policy, "admin_holder": "G <g@gamma.id>"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["type"], "urn:amanah:problem:tenant-name-taken");
    let (s, v) = c
        .call(
            "POST",
            "/v1/tenants",
            &platform,
            Some(&json!({
                "name": "Delta",
                "policy": format!("{policy}\n[roles.platform]\npurposes = [\"admission\"]\n"),
                "admin_holder": "D <d@delta.id>",
            })),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "policy");
    assert!(v["detail"].as_str().unwrap().contains("is built in"), "{v}");

    // Subjects: two fit, the third is refused (and nothing is stored).
    for n in 0..3 {
        let body =
            json!({"fields": {"full_name": format!("P {n}"), "email": format!("p{n}@x.id")}});
        let (s, v) = c
            .call(
                "POST",
                "/v1/subjects?purpose=admission",
                &admin,
                Some(&body),
            )
            .await;
        if n < 2 {
            assert_eq!(s, StatusCode::CREATED, "{v}");
        } else {
            assert_eq!(s, StatusCode::CONFLICT, "{v}");
            assert_eq!(v["type"], "urn:amanah:problem:subject-quota-reached");
        }
    }
    assert_eq!(
        d.sql(Db::Tenant(&id), "SELECT count(*) FROM subjects")
            .trim(),
        "2"
    );

    // Suspended: its keys are refused, its data kept; resumed: they work again.
    let (s, v) = c
        .call(
            "POST",
            &format!("/v1/tenants/{id}/suspend"),
            &platform,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = c.call("GET", "/v1/audit/verify", &admin, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("suspended"));
    let (s, _) = c
        .call(
            "POST",
            &format!("/v1/tenants/{id}/suspend"),
            &platform,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, v) = c
        .call("POST", &format!("/v1/tenants/{id}/resume"), &platform, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["usage"]["subjects"], 2);
    let (s, v) = c.call("GET", "/v1/audit/verify", &admin, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // A rate quota: a burst beyond it gets 429 with Retry-After.
    let (s, v) = c
        .call(
            "PATCH",
            &format!("/v1/tenants/{id}"),
            &platform,
            Some(&json!({"max_subjects": 2, "max_requests_per_second": 3})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut limited = None;
    for _ in 0..20 {
        let resp = c
            .http
            .get(format!("{}/v1/keys", c.base))
            .header("authorization", format!("Bearer {admin}"))
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(resp);
            break;
        }
    }
    let resp = limited.expect("no request was limited");
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "urn:amanah:problem:rate-limited");
    // The operator is not limited by an organization's quota.
    let (s, v) = c.call("GET", "/v1/tenants", &platform, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn the_operator_runs_organizations_from_the_command_line(kind: Kind) {
    let d = Deployment::new(kind);
    // Before any organization: nothing hosted, and a platform key is unknown to the server.
    let out = run_ok(&d.args(&["tenant", "list"]));
    assert!(out.contains("no organization is hosted"), "{out}");
    let (id, admin) = d.create("Epsilon", &["--max-subjects", "10"]);
    let server = serve(d.args(&[])).start();
    let c = Client::of(&server);
    for n in 0..3 {
        let body =
            json!({"fields": {"full_name": format!("Person {n}"), "email": format!("p{n}@e.id")}});
        let (s, v) = c
            .call(
                "POST",
                "/v1/subjects?purpose=admission",
                &admin,
                Some(&body),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let out = run_ok(&d.args(&["tenant", "show", &id]));
    assert!(
        out.contains("Epsilon") && out.contains("subjects 3"),
        "{out}"
    );
    // A document: its object under the organization's own prefix of DATA/documents.
    let (s, v) = c
        .call(
            "POST",
            "/v1/subjects?purpose=admission",
            &admin,
            Some(&json!({"fields": {"full_name": "With File", "email": "file@e.id"}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let holder = v["id"].as_str().unwrap().to_owned();
    let resp = c
        .http
        .put(format!(
            "{}/v1/subjects/{holder}/documents/referral_letter?purpose=admission",
            c.base
        ))
        .header("authorization", format!("Bearer {admin}"))
        .header("content-type", "application/pdf")
        .body(b"%PDF-1.7\n% a referral letter of Epsilon's\n%%EOF\n".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let prefix = d
        .data
        .join("documents")
        .join(format!("t_{}", id.replace('-', "")));
    assert_eq!(std::fs::read_dir(&prefix).unwrap().count(), 1, "{prefix:?}");

    // Its own chain and checkpoints, apart from the deployment's: signed with its own key.
    let out = run_ok(&d.args(&["audit", "verify", "--tenant", &id]));
    assert!(out.starts_with("ok: "), "{out}");
    let own = run_ok(&d.args(&["audit", "verify"]));
    assert_ne!(out, own);
    let anchors = d.data.parent().unwrap().join("anchors");
    std::fs::create_dir_all(&anchors).unwrap();
    let cp = anchors.join("epsilon.json");
    let public = anchors.join("epsilon.pub");
    run_ok(&d.args(&[
        "audit",
        "checkpoint",
        "--tenant",
        &id,
        "--out",
        cp.to_str().unwrap(),
    ]));
    run_ok(&d.args(&[
        "audit",
        "public-key",
        "--tenant",
        &id,
        "--out",
        public.to_str().unwrap(),
    ]));
    let own_public = run_ok(&d.args(&["audit", "public-key"]));
    assert_ne!(std::fs::read_to_string(&public).unwrap(), own_public);
    let (ok, out, err) = support::run(&[
        "audit",
        "check-checkpoint",
        cp.to_str().unwrap(),
        "--public-key",
        public.to_str().unwrap(),
    ]);
    assert!(ok, "{out} {err}");
    let out = run_ok(&d.args(&[
        "audit",
        "verify",
        "--tenant",
        &id,
        "--checkpoint",
        cp.to_str().unwrap(),
    ]));
    assert!(out.contains("extends the checkpoint"), "{out}");
    // The deployment's own public key does not check the organization's checkpoint.
    let own_pub_file = anchors.join("own.pub");
    std::fs::write(&own_pub_file, &own_public).unwrap();
    let (ok, _, _) = support::run(&[
        "audit",
        "check-checkpoint",
        cp.to_str().unwrap(),
        "--public-key",
        own_pub_file.to_str().unwrap(),
    ]);
    assert!(!ok);

    // Export: every subject's export, one per line, recorded in the organization's chain.
    let file = d.data.parent().unwrap().join("epsilon.jsonl");
    let out = run_ok(&d.args(&["tenant", "export", &id, "--out", file.to_str().unwrap()]));
    assert!(out.contains("4 subject(s) exported"), "{out}");
    let lines: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    let mut emails: Vec<&str> = lines
        .iter()
        .map(|e| e["fields"]["email"].as_str().unwrap())
        .collect();
    emails.sort_unstable();
    assert_eq!(emails, ["file@e.id", "p0@e.id", "p1@e.id", "p2@e.id"]);
    // The document is in its subject's export as the manifest lists it.
    let with_file = lines
        .iter()
        .find(|e| e["subject_id"] == holder.as_str())
        .unwrap();
    assert_eq!(with_file["documents"][0]["category"], "referral_letter");
    let exports = d.sql(
        Db::Tenant(&id),
        "SELECT count(*) FROM audit_log WHERE action = 'subject.export' AND actor = 'platform'",
    );
    assert_eq!(exports.trim(), "4");
    // An existing file is never overwritten.
    let (ok, _, err) =
        support::run(&d.args(&["tenant", "export", &id, "--out", file.to_str().unwrap()]));
    assert!(!ok && err.contains("must not exist"), "{err}");

    // Suspended from the command line: the running server refuses its keys within a second.
    run_ok(&d.args(&["tenant", "suspend", &id]));
    assert!(
        c.comes_to("/v1/keys", &admin, StatusCode::FORBIDDEN).await,
        "the suspension did not reach the server"
    );
    run_ok(&d.args(&["tenant", "resume", &id]));
    // Unknown ids and a second deletion are refused with a clear message.
    let (ok, _, err) = support::run(&d.args(&["tenant", "suspend", "not-an-id"]));
    assert!(!ok && err.contains("no organization"), "{err}");
    let out = run_ok(&d.args(&["tenant", "delete", &id]));
    assert!(out.contains("1 store(s) removed"), "{out}");
    assert!(!d.tenant_store_exists(&id));
    assert!(
        !prefix.exists(),
        "the deleted organization's documents remain"
    );
    let (ok, _, err) = support::run(&d.args(&["tenant", "delete", &id]));
    assert!(!ok && err.contains("already deleted"), "{err}");
    assert!(
        c.comes_to("/v1/keys", &admin, StatusCode::UNAUTHORIZED)
            .await,
        "a deleted organization's key still authenticates"
    );
    let out = run_ok(&d.args(&["tenant", "list"]));
    assert!(out.contains("deleted") && out.contains("Epsilon"), "{out}");

    // The operator's keys are listed and revoked from the command line; a revoked one is
    // refused at once.
    let platform = d.platform_key();
    let (s, _) = c.call("GET", "/v1/tenants", &platform, None).await;
    assert_eq!(s, StatusCode::OK);
    let out = run_ok(&d.args(&["tenant", "key", "list"]));
    let line = out.lines().find(|l| l.contains("active")).unwrap();
    let key_id = line.split_whitespace().next().unwrap();
    assert!(line.contains("Op <op@platform.id>"), "{out}");
    run_ok(&d.args(&["tenant", "key", "revoke", key_id]));
    let (s, _) = c.call("GET", "/v1/tenants", &platform, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The platform's own chain holds the lifecycle (create, suspend, resume, delete, purge,
    // export) and verifies.
    let out = run_ok(&d.args(&["audit", "verify", "--platform"]));
    assert!(out.starts_with("ok: "), "{out}");
    let actions = d.sql(
        Db::Platform,
        "SELECT count(*) FROM audit_log WHERE action IN ('tenant.create', 'tenant.suspend', \
         'tenant.resume', 'tenant.delete', 'tenant.purge', 'tenant.export')",
    );
    assert_eq!(actions.trim(), "6");
    drop(server);

    // Without the platform's store (it holds the organizations' keys), no new one is made over
    // the organizations' stores still there.
    let (keep, _) = d.create("Zeta", &[]);
    match &d.store {
        None => std::fs::rename(d.data.join("platform"), d.data.join("platform.moved")).unwrap(),
        Some(url) => {
            let own = url.rsplit('/').next().unwrap();
            amanah_testkit::cluster().execute(
                "postgres",
                &format!("ALTER DATABASE {own}_platform RENAME TO {own}_moved"),
            );
        }
    }
    let (ok, _, err) =
        support::run(&d.args(&["tenant", "key", "create", "--holder", "Op <op@platform.id>"]));
    assert!(!ok && err.contains("platform's store is missing"), "{err}");
    assert!(d.tenant_store_exists(&keep));
}

/// A large organization placed on a cluster of its own (`tenant create --store`), reached by
/// the deployment's server beside the organizations that share its cluster.
#[tokio::test]
async fn an_organization_on_a_cluster_of_its_own() {
    let d = Deployment::new(Kind::Postgres);
    let second = amanah_testkit::Cluster::start(&amanah_testkit::ClusterOptions::default());
    let dedicated = second.create_database("big");
    let (big, big_admin) = d.create("Big Corp", &["--store", &dedicated]);
    let (small, small_admin) = d.create("Small Shop", &[]);
    let server = serve(d.args(&[])).start();
    let c = Client::of(&server);
    for admin in [&big_admin, &small_admin] {
        let (s, v) = c
            .call(
                "POST",
                "/v1/subjects?purpose=admission",
                admin,
                Some(&person()),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    // A database that already holds tables is refused for a new organization, and left as
    // it was (here: Big Corp's own).
    let policy = amanah_testkit::policies::path("clinic.toml");
    let (ok, _, err) = support::run(&d.args(&[
        "tenant",
        "create",
        "Intruder",
        "--policy",
        policy.to_str().unwrap(),
        "--admin-holder",
        "I <i@x.id>",
        "--store",
        &dedicated,
    ]));
    assert!(!ok && err.contains("must be empty"), "{err}");
    // Big Corp's rows are on the second cluster, Small Shop's on the deployment's.
    assert_eq!(
        second
            .query_text(&dedicated, "SELECT count(*) FROM subjects")
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        d.sql(Db::Tenant(&small), "SELECT count(*) FROM subjects")
            .trim(),
        "1"
    );
    // The registry shows the placement, never its URL (it holds a password).
    let platform = d.platform_key();
    let (s, v) = c
        .call("GET", &format!("/v1/tenants/{big}"), &platform, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["dedicated_store"], true);
    assert!(!v.to_string().contains(second.password()));
    let sealed = d.sql(
        Db::Platform,
        &format!(
            "SELECT count(*) FROM tenants WHERE id = '{big}' AND sealed_placement IS NOT NULL"
        ),
    );
    assert_eq!(sealed.trim(), "1");
    let raw = d.sql(
        Db::Platform,
        "SELECT string_agg(encode(sealed_placement, 'escape'), '') FROM tenants",
    );
    assert!(!raw.contains(second.password()) && !raw.contains("postgres://"));
    // Deleting it empties its database on the other cluster.
    let (s, v) = c
        .call("DELETE", &format!("/v1/tenants/{big}"), &platform, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut emptied = false;
    for _ in 0..100 {
        let left = second.query_text(
            &dedicated,
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'subjects'",
        );
        if left.as_deref() == Some("0") {
            emptied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        emptied,
        "the dedicated database still holds the organization's tables"
    );
    let (s, v) = c.call("GET", "/v1/audit/verify", &small_admin, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}
