//! A server over one of the shipped presets (`policies/*.toml`), with keys minted on demand
//! for any role and holder: what a new user runs.

use std::sync::Arc;

use amanah_server::{router, AppState};
use amanah_testkit::TestVault;
use amanah_vault::{ManualClock, Vault};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::Kind;

pub const UNIVERSITY: &str = amanah_testkit::policies::UNIVERSITY;
pub const CRM: &str = amanah_testkit::policies::CRM;

pub struct Preset {
    pub base: String,
    pub client: reqwest::Client,
    pub vault: Arc<Vault>,
    pub clock: Arc<ManualClock>,
    pub admin: String,
    pub kit: TestVault,
}

pub async fn start(kind: Kind, source: &str) -> Preset {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let kit = TestVault::new(kind, "preset", source).await;
    let vault = kit.vault.clone();
    let clock = kit.clock.clone();
    let app = router(AppState::new(vault.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut p = Preset {
        base,
        client: reqwest::Client::new(),
        vault,
        clock,
        admin: String::new(),
        kit,
    };
    p.admin = p.key("admin", "Admin <admin@example.id>").await;
    p
}

impl Preset {
    /// A key for `role`, issued to `holder`.
    pub async fn key(&self, role: &str, holder: &str) -> String {
        self.kit.issue(role, holder).await.token.to_string()
    }

    /// A key for `role` issued to a person named after the role.
    pub async fn role(&self, role: &str) -> String {
        self.key(role, &format!("{role} <{role}@example.id>")).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, value) =
            super::send(&self.client, &self.base, method, path, key, body).await;
        assert!(status.as_u16() < 500, "{path}: {status}");
        (status, value)
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, key, None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, key, Some(body)).await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, key, Some(body)).await
    }

    /// Creates a subject under `purpose` as the admin; returns its id.
    pub async fn create(&self, purpose: &str, body: Value) -> String {
        let (s, v) = self
            .post(
                &format!("/v1/subjects?purpose={purpose}"),
                &self.admin,
                body,
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    /// The audit entries after `seq` (as the admin sees them).
    pub async fn audit_after(&self, seq: u64) -> Vec<Value> {
        let (s, v) = self
            .get(&format!("/v1/audit?after={seq}&limit=10000"), &self.admin)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["entries"].as_array().unwrap().clone()
    }

    /// How many entries the chain holds (verifying it).
    pub async fn chain_len(&self) -> u64 {
        let (s, v) = self.get("/v1/audit/verify", &self.admin).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["ok"], true, "{v}");
        v["entries"].as_u64().unwrap()
    }

    /// The denied entries recorded since `seq`.
    pub async fn refusals_since(&self, seq: u64) -> Vec<Value> {
        self.audit_after(seq)
            .await
            .into_iter()
            .filter(|e| e["outcome"] == "denied")
            .collect()
    }
}
