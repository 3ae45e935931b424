//! What clients and auditors read, pinned: the OpenAPI document, problem bodies, a subject's
//! export and the record of processing, for the university preset. Both stores must produce the
//! same snapshot, so a difference between backends fails too. Ids are random and replaced by
//! placeholders; the clock is fixed, so times are part of the snapshot.
//!
//! A deliberate change: `cargo insta review` (or `INSTA_UPDATE=always cargo test`), then read
//! the diff like any other.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use amanah_testkit::on_both_stores;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::preset::{start, Preset, UNIVERSITY};
use support::Kind;

/// Replaces what differs from run to run (UUIDs, API key ids) by placeholders, everywhere in
/// the document, strings included.
fn stable(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(stable_text(&s)),
        Value::Array(a) => Value::Array(a.into_iter().map(stable).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, stable(v))).collect()),
        other => other,
    }
}

fn stable_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        if rest.len() >= 36 && uuid::Uuid::parse_str(&rest[..36]).is_ok() {
            out.push_str("[uuid]");
            rest = &rest[36..];
        } else if rest.len() >= 16
            && rest.starts_with("key-")
            && rest[4..16].bytes().all(|b| b.is_ascii_hexdigit())
        {
            out.push_str("[key-id]");
            rest = &rest[16..];
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

async fn problem(
    p: &Preset,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> Value {
    let (s, v) = p.call(method, path, key, body).await;
    assert!(s.is_client_error(), "{path}: {s} {v}");
    assert_eq!(v["status"], s.as_u16());
    stable(v)
}

async fn contracts(kind: Kind) {
    let p = start(kind, UNIVERSITY).await;

    let resp = p
        .client
        .get(format!("{}/openapi.json", p.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    insta::assert_json_snapshot!("openapi", resp.json::<Value>().await.unwrap());

    let id = p
        .create(
            "admission",
            json!({"fields": {"full_name": "Siti Rahma", "birth_date": "1999-02-03",
                              "email": "siti@example.id", "nik": "3171014101900001"}}),
        )
        .await;
    let marketing = p.role("marketing").await;
    let registrar = p.role("registrar").await;
    let dpo = p.role("dpo").await;
    use reqwest::Method;
    let problems = json!({
        "401": problem(&p, Method::GET, &format!("/v1/subjects/{id}?purpose=admission"), "no-such-key", None).await,
        "403": problem(&p, Method::GET, &format!("/v1/subjects/{id}?purpose=admission"), &marketing, None).await,
        "404": problem(&p, Method::GET, &format!("/v1/subjects/{}?purpose=admission", uuid::Uuid::new_v4()), &registrar, None).await,
        "409": problem(&p, Method::POST, "/v1/subjects?purpose=admission", &registrar,
            Some(json!({"fields": {"full_name": "Twin", "nik": "3171014101900001"}}))).await,
        "422": problem(&p, Method::POST, "/v1/subjects?purpose=admission", &registrar,
            Some(json!({"fields": {"full_name": "Someone", "email": "not an address"}}))).await,
    });
    insta::assert_json_snapshot!("problems", problems);

    let (s, export) = p.get(&format!("/v1/subjects/{id}/export"), &dpo).await;
    assert_eq!(s, StatusCode::OK, "{export}");
    insta::assert_json_snapshot!("export", stable(export));

    let (s, ropa) = p.get("/v1/ropa", &dpo).await;
    assert_eq!(s, StatusCode::OK, "{ropa}");
    insta::assert_json_snapshot!("ropa", stable(ropa));
}

on_both_stores!(contracts);
