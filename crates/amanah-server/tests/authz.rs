//! Every route x every role of both presets, against the decision table. The route list comes
//! from the server's registry, checked against the router's OpenAPI document, so a new route
//! without a rule fails here; the expected answer comes from the table's rules and the role's
//! flags in the policy, not from the decision function. Runs on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use amanah_testkit::on_both_stores;

use std::collections::{BTreeMap, BTreeSet};

use amanah_core::authz::{Action, Rule};
use amanah_core::fields::FieldType;
use amanah_core::policy::{LegalBasis, Policy, ADMIN_ROLE};
use amanah_server::routes::{self, Route};
use amanah_server::{openapi, router, AppState};
use amanah_testkit::TestVault;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::Kind;

use amanah_testkit::policies::{CRM, UNIVERSITY};

#[test]
fn every_served_route_has_a_rule_and_every_rule_a_route() {
    let doc = openapi::base();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in item.as_object().unwrap().keys() {
            documented.insert((m.to_uppercase(), path.clone()));
        }
    }
    let listed: BTreeSet<(String, String)> = routes::all()
        .iter()
        .map(|r| (r.method.to_owned(), r.path.clone()))
        .collect();
    assert_eq!(documented, listed, "the document and the registry differ");
    assert_eq!(listed.len(), routes::all().len(), "a route is listed twice");
    // The API's routes authorize an action; only liveness and the document are public.
    for r in routes::all() {
        assert_eq!(
            r.action.is_some(),
            r.path.starts_with("/v1/"),
            "{} {}",
            r.method,
            r.path
        );
    }
    assert!(routes::protected().count() > 40);
}

/// What the table says a role may attempt, read from the rule and the role's flags.
fn expected(policy: &Policy, role: &str, action: Action, purpose: Option<&str>) -> bool {
    let admin = role == ADMIN_ROLE;
    let r = policy.role(role);
    let flag = |f: fn(&amanah_core::policy::Role) -> bool| r.is_some_and(f);
    let holds = |p: &str| admin || r.is_some_and(|r| r.purposes.iter().any(|x| x == p));
    match action.rule() {
        Rule::Purpose => purpose.is_some_and(holds),
        Rule::SubjectPurpose => admin || r.is_some_and(|r| !r.purposes.is_empty()),
        Rule::SubjectPurposeOrRequests => {
            admin || r.is_some_and(|r| !r.purposes.is_empty() || r.handle_requests)
        }
        Rule::HandleRequests => admin || flag(|r| r.handle_requests),
        Rule::EndRelationships => admin || flag(|r| r.handle_requests || r.end_relationships),
        Rule::ApproveDisclosures => flag(|r| r.approve_disclosures),
        Rule::AuthorizeDisclosures => flag(|r| r.authorize_disclosures),
        Rule::StepDisclosures => flag(|r| r.approve_disclosures || r.authorize_disclosures),
        Rule::OverseeDisclosures => {
            admin || flag(|r| r.handle_requests || r.approve_disclosures || r.authorize_disclosures)
        }
        Rule::AnyRole => true,
        Rule::Admin => admin,
        // An organization's keys never run organizations, whatever their role.
        Rule::Platform => false,
    }
}

/// A refusal by the role-level rule (as opposed to one about the subject or the input).
fn role_level_refusal(detail: &str) -> bool {
    detail.contains("is not granted purpose")
        || detail.contains("only the admin role may")
        || detail.contains("only the platform operator's keys may")
        || (detail.contains("may not ") && detail.contains("that needs"))
}

/// A value of a category's type that needs nothing else (no uniqueness, no checksum).
fn sample(ty: FieldType, n: usize) -> Option<Value> {
    match ty {
        FieldType::Name => Some(json!(format!("Test Person {n}"))),
        FieldType::Text => Some(json!(format!("text {n}"))),
        FieldType::Date => Some(json!("1990-05-01")),
        _ => None,
    }
}

struct World {
    base: String,
    client: reqwest::Client,
    policy: Policy,
    keys: BTreeMap<String, (String, String)>,
    /// Two subjects per purpose, each enrolled in that purpose only.
    subjects: BTreeMap<String, [String; 2]>,
    admin: String,
    n: std::cell::Cell<usize>,
}

impl World {
    async fn call(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.base),
            )
            .header("authorization", format!("Bearer {key}"));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn chain_len(&self) -> u64 {
        let (s, v) = self
            .call("GET", "/v1/audit/verify", &self.admin, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["ok"], true, "{v}");
        v["entries"].as_u64().unwrap()
    }

    async fn entries_after(&self, seq: u64) -> Vec<Value> {
        let (s, v) = self
            .call(
                "GET",
                &format!("/v1/audit?after={seq}&limit=10000"),
                &self.admin,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["entries"].as_array().unwrap().clone()
    }

    /// A subject created under `purpose` (with a consent when it rests on consent).
    async fn subject(&self, purpose: &str) -> String {
        let p = self.policy.purpose(purpose).unwrap();
        let n = self.n.get();
        self.n.set(n + 1);
        let (name, value) = p
            .categories
            .iter()
            .filter_map(|c| self.policy.category(c))
            .filter(|c| !c.unique)
            .find_map(|c| sample(c.field_type, n).map(|v| (c.name.clone(), v)))
            .unwrap_or_else(|| panic!("purpose {purpose} has no simple category"));
        let mut body = json!({"fields": {name: value}});
        if p.basis == LegalBasis::Consent {
            body["consent"] = json!({"granted": true, "channel": "web_form", "evidence": "form 1"});
        }
        let (s, v) = self
            .call(
                "POST",
                &format!("/v1/subjects?purpose={purpose}"),
                &self.admin,
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{purpose}: {v}");
        v["id"].as_str().unwrap().to_owned()
    }

    fn held(&self, role: &str) -> Vec<String> {
        if role == ADMIN_ROLE {
            return self.policy.purposes.keys().cloned().collect();
        }
        self.policy.role(role).unwrap().purposes.clone()
    }

    fn consent_purposes(&self) -> Vec<String> {
        self.policy
            .purposes
            .values()
            .filter(|p| p.basis == LegalBasis::Consent)
            .map(|p| p.name.clone())
            .collect()
    }

    /// The purpose a role asks under: one it holds (preferring consent-based ones where the
    /// route needs consent), or with `held = false` one it does not hold.
    fn purpose_for(&self, role: &str, action: Action, held: bool) -> Option<String> {
        let holds = self.held(role);
        let consent_only = matches!(
            action,
            Action::ConsentGrant | Action::ConsentStale | Action::ContactList
        );
        let candidates: Vec<String> = if consent_only {
            self.consent_purposes()
        } else {
            self.policy.purposes.keys().cloned().collect()
        };
        candidates.into_iter().find(|p| holds.contains(p) == held)
    }
}

async fn world(kind: Kind, source: &str) -> (World, TestVault) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let kit = TestVault::new(kind, "authz", source).await;
    let policy = kit.policy().policy.clone();
    let mut keys = BTreeMap::new();
    let roles: Vec<String> = std::iter::once(ADMIN_ROLE.to_owned())
        .chain(policy.roles.keys().cloned())
        .collect();
    for role in &roles {
        let issued = kit
            .issue(role, &format!("{role} <{role}@example.id>"))
            .await;
        keys.insert(
            role.clone(),
            (issued.record.id.clone(), issued.token.to_string()),
        );
    }
    let app = router(AppState::new(kit.vault.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let admin = keys[ADMIN_ROLE].1.clone();
    let mut w = World {
        base,
        client: reqwest::Client::new(),
        policy,
        keys,
        subjects: BTreeMap::new(),
        admin,
        n: std::cell::Cell::new(0),
    };
    let purposes: Vec<String> = w.policy.purposes.keys().cloned().collect();
    for p in purposes {
        let pair = [w.subject(&p).await, w.subject(&p).await];
        w.subjects.insert(p, pair);
    }
    (w, kit)
}

/// The request a role sends to a route: path with query, and body.
async fn request(
    w: &World,
    route: &Route,
    action: Action,
    role: &str,
    held: bool,
) -> Option<(String, Option<Value>, Option<String>)> {
    let purpose = match action.rule() {
        Rule::Purpose => Some(w.purpose_for(role, action, held)?),
        _ => w.held(role).first().cloned(),
    };
    // Subjects: one enrolled in the purpose asked under (or, for subject-purpose rules, in a
    // purpose the role holds); destructive routes get a fresh one.
    let fresh = matches!(
        action,
        Action::SubjectErase | Action::SubjectRestrict | Action::SubjectEnd
    );
    let home = purpose
        .clone()
        .unwrap_or_else(|| w.policy.purposes.keys().next().unwrap().clone());
    let subject = if fresh {
        w.subject(&home).await
    } else {
        w.subjects[&home][0].clone()
    };
    let other = w.subjects[&home][1].clone();
    let random = uuid::Uuid::new_v4().to_string();
    let path = route
        .path
        .replace(
            "{id}",
            match action {
                Action::RequestRead
                | Action::RequestUpdate
                | Action::DisclosureRead
                | Action::DisclosureApprove
                | Action::DisclosureAuthorize
                | Action::DisclosureReject
                | Action::DisclosureRelease
                | Action::BreachRead
                | Action::BreachNotices
                | Action::BreachNotified => &random,
                Action::KeyRevoke => "key-000000000000",
                _ => &subject,
            },
        )
        .replace("{hold_id}", &random)
        .replace(
            "{document}",
            match action {
                Action::DocumentUpload => "nonexistent_category",
                _ => &random,
            },
        );
    let p = purpose.clone().unwrap_or_default();
    let (query, body) = match action {
        Action::SubjectCreate => (
            format!("?purpose={p}"),
            Some(json!({"fields": {"nonexistent_category": "x"}})),
        ),
        Action::SubjectSearch => (format!("?purpose={p}&nonexistent_category=x"), None),
        Action::SubjectRead
        | Action::DocumentUpload
        | Action::DocumentList
        | Action::DocumentRead => (format!("?purpose={p}"), None),
        Action::SubjectUpdate => (
            format!("?purpose={p}"),
            Some(json!({"fields": {"nonexistent_category": "x"}})),
        ),
        Action::SubjectEnroll => (String::new(), Some(json!({"purpose": p}))),
        Action::ConsentGrant => (
            String::new(),
            Some(
                json!({"purpose": p, "granted": true, "channel": "web_form", "evidence": "form 2"}),
            ),
        ),
        Action::ConsentStale => (format!("?purpose={p}"), None),
        Action::ContactList => (format!("?purpose={p}&channel=email"), None),
        Action::RelationCreate => (
            String::new(),
            Some(json!({"kind": "emergency_contact", "subject_id": other})),
        ),
        Action::RequestCreate => (
            String::new(),
            Some(json!({"subject_id": subject, "type": "access"})),
        ),
        Action::RequestUpdate => (String::new(), Some(json!({"status": "in_progress"}))),
        Action::HoldCreate => (
            String::new(),
            Some(json!({"reason": "claim", "until": "2030-01-01"})),
        ),
        Action::SubjectRestrict => (String::new(), Some(json!({}))),
        Action::DisclosureRequest => (
            String::new(),
            Some(
                json!({"recipient": "nobody", "purpose": p, "subject_ids": [subject],
                        "categories": [], "reason": "test"}),
            ),
        ),
        Action::DisclosureApprove | Action::DisclosureAuthorize => (String::new(), None),
        Action::DisclosureReject => (String::new(), Some(json!({"reason": "no"}))),
        Action::BreachRecord => (
            String::new(),
            Some(
                json!({"detected_at": "2030-01-01T00:00:00Z", "description": "x", "categories": []}),
            ),
        ),
        Action::KeyCreate => (
            String::new(),
            Some(json!({"role": "nonexistent", "holder": "X <x@x.id>"})),
        ),
        Action::PolicyApply => (String::new(), None),
        Action::RetentionSweep => ("?dry_run=true".into(), None),
        _ => (String::new(), None),
    };
    Some((format!("{path}{query}"), body, purpose))
}

async fn walk(kind: Kind, source: &str) {
    let (w, _dir) = world(kind, source).await;
    let roles: Vec<String> = w.keys.keys().cloned().collect();
    let mut checked = 0;
    let mut refusals = 0;
    for (route, action) in routes::protected() {
        for role in &roles {
            let (key_id, token) = &w.keys[role];
            let mut cases = vec![true];
            if action.rule() == Rule::Purpose {
                cases.push(false);
            }
            for held in cases {
                let Some((path, body, purpose)) = request(&w, route, action, role, held).await
                else {
                    continue;
                };
                let want = expected(&w.policy, role, action, purpose.as_deref());
                let before = w.chain_len().await;
                let (status, v) = w.call(route.method, &path, token, body).await;
                let what = format!("{} {path} as {role}: {status} {v}", route.method);
                assert!(
                    status.as_u16() < 500 && status != StatusCode::UNAUTHORIZED,
                    "{what}"
                );
                let detail = v["detail"].as_str().unwrap_or_default();
                let refused = status == StatusCode::FORBIDDEN && role_level_refusal(detail);
                assert_eq!(!refused, want, "the table says {want} for {what}");
                if refused {
                    refusals += 1;
                    let entries = w.entries_after(before).await;
                    let denied: Vec<&Value> = entries
                        .iter()
                        .filter(|e| e["actor"] == key_id.as_str() && e["outcome"] == "denied")
                        .collect();
                    assert_eq!(
                        denied.len(),
                        1,
                        "one audit entry per refusal: {what}: {entries:?}"
                    );
                    assert_eq!(denied[0]["action"], action.name(), "{what}");
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked > routes::protected().count() * roles.len(),
        "walked {checked} requests"
    );
    // The walk proves both sides of the table: many refusals, and more allowances.
    assert!(
        refusals > 100 && checked - refusals > 100,
        "{refusals} of {checked} refused"
    );
}

async fn university(kind: Kind) {
    walk(kind, UNIVERSITY).await;
}

async fn crm(kind: Kind) {
    walk(kind, CRM).await;
}

on_both_stores!(university, crm);

#[test]
fn errors_are_documented_as_problems_on_every_protected_route() {
    let doc = openapi::base();
    let mut seen = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            if path.starts_with("/v1/") {
                for status in ["400", "401", "403"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} lacks {status}"
                    );
                }
            }
            for (status, r) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let content = r["content"].as_object().unwrap();
                    assert!(
                        content.contains_key("application/problem+json")
                            && !content.contains_key("application/json"),
                        "{method} {path} {status}: {content:?}"
                    );
                    seen += 1;
                }
            }
        }
    }
    assert!(seen > 100, "{seen} error responses documented");
}

#[test]
fn every_conflict_code_is_documented_in_the_problem_schema() {
    let doc = openapi::base();
    let described = doc["components"]["schemas"]["Problem"]["properties"]["type"]["description"]
        .as_str()
        .unwrap()
        .to_owned();
    let readme = include_str!("../../../README.md");
    for kind in amanah_core::Conflict::ALL {
        let code = kind.code();
        assert!(
            described.contains(&format!("`{code}`")),
            "{code}: {described}"
        );
        assert!(readme.contains(&format!("`{code}`")), "README lacks {code}");
    }
}
