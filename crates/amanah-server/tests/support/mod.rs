//! Shared harness of the in-process HTTP tests: the real router on a loopback port over the test
//! kit's vault (SQLite or PostgreSQL, a manual clock), with one API key per role of the kit's
//! test policy.
#![allow(dead_code)]

pub mod pages;
pub mod preset;

use std::sync::Arc;

use amanah_server::AppState;
use amanah_testkit::TestVault;
use amanah_vault::{ManualClock, Vault};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub use amanah_testkit::policies::{set, test_policy};

/// The test policy's marketing categories with the phone number added: a change of purpose.
pub fn marketing_with_phone(version: &str) -> String {
    set(
        &test_policy(version, 0),
        "purposes.marketing",
        "categories",
        r#"["full_name", "email", "phone"]"#,
    )
}

pub struct Keys {
    pub admin: String,
    pub officer: String,
    pub clerk: String,
    pub marketer: String,
    pub dpo: String,
    pub registrar: String,
    pub pic: String,
    pub owner: String,
}

pub use amanah_testkit::Kind;

/// One API call with a bearer key: the status, the content type and the JSON body (null when
/// there is none).
pub async fn send(
    client: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    let mut req = client
        .request(method, format!("{base}{path}"))
        .header("authorization", format!("Bearer {key}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, ctype, resp.json().await.unwrap_or(Value::Null))
}

pub struct Harness {
    pub base: String,
    /// The metrics listener's base URL and the recorder, for a metered harness.
    pub metrics: Option<(String, metrics_exporter_prometheus::PrometheusHandle)>,
    pub vault: Arc<Vault>,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database, when the test runs on PostgreSQL.
    pub pg_url: Option<String>,
    pub k: Keys,
}

pub async fn start(kind: Kind, grace: u32) -> Harness {
    start_with(kind, grace, None).await
}

/// A harness with a metrics listener rendering the process-wide Prometheus recorder.
pub async fn start_metered(kind: Kind, grace: u32) -> Harness {
    start_with(kind, grace, amanah_server::prometheus()).await
}

/// A harness serving the API with the given options (limits, TLS headers).
pub async fn start_with_options(kind: Kind, options: amanah_server::Options) -> Harness {
    start_full(kind, 0, None, options).await
}

async fn start_with(
    kind: Kind,
    grace: u32,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> Harness {
    start_full(kind, grace, metrics, amanah_server::Options::default()).await
}

async fn start_full(
    kind: Kind,
    grace: u32,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    options: amanah_server::Options,
) -> Harness {
    // When the workspace is tested together, reqwest is built with rustls and no default
    // provider (the binary's TLS tests want it so): install one, even for plain HTTP.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let tv = TestVault::new(kind, "http", &test_policy("v1", grace)).await;
    let k = Keys {
        admin: tv.token("admin").await,
        officer: tv.token("officer").await,
        clerk: tv.token("clerk").await,
        marketer: tv.token("marketer").await,
        dpo: tv.token("dpo").await,
        registrar: tv.token("registrar").await,
        pic: tv.token("pic").await,
        owner: tv.token("owner").await,
    };
    let TestVault {
        vault,
        clock,
        dir,
        pg_url,
        ..
    } = tv;
    // Documents in a directory beside the store, as `amanah serve` keeps them.
    vault.attach_documents(amanah_objects::Objects::local(&dir.path().join("documents")).unwrap());
    let app = amanah_server::router_with(AppState::new(vault.clone()), &options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(amanah_server::limits::serve(
        listener,
        app,
        options.limits.header_read_timeout,
        std::future::pending(),
    ));
    let metrics = match metrics {
        Some(handle) => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let app = amanah_server::metrics_router(handle.clone());
            tokio::spawn(async move { axum::serve(listener, app).await });
            Some((url, handle))
        }
        None => None,
    };
    Harness {
        base,
        metrics,
        vault,
        client: reqwest::Client::new(),
        clock,
        dir,
        pg_url,
        k,
    }
}

impl Harness {
    /// One round of what the server's periodic metrics task does (gauges, recorder upkeep).
    pub async fn metrics_upkeep(&self) {
        if let Some((_, handle)) = &self.metrics {
            amanah_server::metrics_layer::upkeep(&self.vault, handle).await;
        }
    }

    /// The text the metrics listener serves now.
    pub async fn scrape(&self) -> String {
        let (url, _) = self.metrics.as_ref().expect("a metered harness");
        let resp = self
            .client
            .get(format!("{url}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().await.unwrap()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, ctype, value) = send(&self.client, &self.base, method, path, key, body).await;
        if !status.is_success() {
            assert_eq!(
                ctype.as_deref(),
                Some("application/problem+json"),
                "{value}"
            );
        }
        (status, value)
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, key, None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, key, Some(body)).await
    }

    pub async fn create(&self, key: &str, fields: Value) -> String {
        let (s, v) = self
            .post(
                "/v1/subjects?purpose=admission",
                key,
                json!({ "fields": fields }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    pub async fn adult(&self, n: u32) -> String {
        self.create(
            &self.k.officer,
            json!({"full_name": format!("Person {n}"), "email": format!("p{n}@example.id"), "birth_date": "1990-05-01"}),
        )
        .await
    }

    pub async fn consent(&self, key: &str, id: &str, body: Value) -> (StatusCode, Value) {
        self.post(&format!("/v1/subjects/{id}/consents"), key, body)
            .await
    }

    pub async fn grant(&self, id: &str, channels: &[&str]) -> Value {
        let (s, v) = self
            .consent(
                &self.k.officer,
                id,
                json!({"purpose": "marketing", "granted": true, "channel": "web_form",
                       "evidence": "form #1", "contact_channels": channels}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }

    pub async fn withdraw(&self, id: &str) {
        let (s, v) = self
            .consent(
                &self.k.officer,
                id,
                json!({"purpose": "marketing", "granted": false, "channel": "email_link"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }

    /// Enrols a subject in a further purpose (compatible, or with a valid consent).
    pub async fn enroll(&self, key: &str, id: &str, purpose: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/v1/subjects/{id}/purposes"),
            key,
            json!({ "purpose": purpose }),
        )
        .await
    }

    pub async fn read(&self, key: &str, id: &str, purpose: &str) -> (StatusCode, Value) {
        self.get(&format!("/v1/subjects/{id}?purpose={purpose}"), key)
            .await
    }

    pub async fn audit(&self) -> Vec<Value> {
        let (s, v) = self.get("/v1/audit?limit=10000", &self.k.admin).await;
        assert_eq!(s, StatusCode::OK);
        v["entries"].as_array().unwrap().clone()
    }

    pub async fn contactable(&self, key: &str, query: &str) -> Vec<String> {
        let (s, v) = self
            .get(&format!("/v1/contactable?purpose=marketing&{query}"), key)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        strings(&v["subjects"])
    }

    pub async fn apply_policy(&self, source: &str) {
        let resp = self
            .client
            .put(format!("{}/v1/policy", self.base))
            .header("authorization", format!("Bearer {}", self.k.admin))
            .body(source.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}
