//! Property: whatever text callers send — commas, quotes, NUL and other control characters,
//! percent signs, non-ASCII, up to 64 KiB — in query names and values, path ids, body fields
//! and field names of every kind of call, by any role, (1) no call answers 5xx, (2) the audit
//! chain still verifies, and (3) neither an audit entry nor an error answer holds a caller's
//! string: what they name is a name the policy declares, an id the vault issued, or a fixed
//! marker.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use proptest::prelude::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{Harness, Kind};

/// Every hostile string carries this, so a copy of it anywhere in the audit is found.
const MARK: &str = "Zq9hostile";

/// Text a caller may send: the marker, then characters chosen to break encodings (list
/// separators, quotes, escapes, NUL, newlines, percent signs, multi-byte), sometimes 64 KiB.
fn hostile() -> impl Strategy<Value = String> {
    let tricky = prop_oneof![
        Just(','),
        Just('"'),
        Just('\''),
        Just('\\'),
        Just('\0'),
        Just('\n'),
        Just('\r'),
        Just('\t'),
        Just(';'),
        Just('='),
        Just('&'),
        Just('%'),
        Just('#'),
        Just('/'),
        Just('?'),
        Just('+'),
        Just(' '),
        Just('é'),
        Just('ß'),
        Just('\u{202e}'),
        Just('🙂'),
        proptest::char::range('a', 'z'),
    ];
    prop_oneof![
        8 => proptest::collection::vec(tricky, 0..24)
            .prop_map(|cs| format!("{MARK}{}", cs.into_iter().collect::<String>())),
        1 => Just(format!("{MARK},{}", "x,\"\0".repeat(16 * 1024))),
    ]
}

/// One call, with hostile text where the call carries text.
#[derive(Debug, Clone)]
enum Call {
    SearchParam {
        name: String,
        value: String,
    },
    ReadPurpose(String),
    ReadId(String),
    /// A path id of another kind of record: `route` picks which.
    RecordId {
        route: usize,
        id: String,
    },
    /// An erasure (or a rectification) naming the request it answers.
    AnswerRequest(String),
    Create {
        field: String,
        value: String,
    },
    Rectify {
        field: String,
        value: String,
    },
    Enroll(String),
    Consent {
        purpose: String,
        channel: String,
        evidence: String,
    },
    Relation {
        kind: String,
        other: String,
    },
    Request {
        kind: String,
        subject: String,
    },
    Hold {
        reason: String,
        until: String,
    },
    Disclosure {
        recipient: String,
        category: String,
        reason: String,
    },
    Breach {
        description: String,
        category: String,
        cause: String,
    },
    Key {
        role: String,
        name: String,
        holder: String,
    },
    AuditFilter {
        name: String,
        value: String,
    },
}

/// Routes that name a record by a path id other than a subject's.
static RECORD_ROUTES: std::sync::LazyLock<[(Method, &str); 8]> = std::sync::LazyLock::new(|| {
    [
        (Method::GET, "/v1/requests/{id}"),
        (Method::GET, "/v1/disclosures/{id}"),
        (Method::POST, "/v1/disclosures/{id}/approve"),
        (Method::GET, "/v1/breaches/{id}"),
        (Method::GET, "/v1/breaches/{id}/notices"),
        (Method::DELETE, "/v1/subjects/{subject}/holds/{id}"),
        (Method::DELETE, "/v1/keys/{id}"),
        (Method::GET, "/v1/subjects/{id}/consents?purpose=admission"),
    ]
});

fn call() -> impl Strategy<Value = Call> {
    let h = hostile;
    prop_oneof![
        (h(), h()).prop_map(|(name, value)| Call::SearchParam { name, value }),
        h().prop_map(Call::ReadPurpose),
        h().prop_map(Call::ReadId),
        (0..RECORD_ROUTES.len(), h()).prop_map(|(route, id)| Call::RecordId { route, id }),
        h().prop_map(Call::AnswerRequest),
        (h(), h()).prop_map(|(field, value)| Call::Create { field, value }),
        (h(), h()).prop_map(|(field, value)| Call::Rectify { field, value }),
        h().prop_map(Call::Enroll),
        (h(), h(), h()).prop_map(|(purpose, channel, evidence)| Call::Consent {
            purpose,
            channel,
            evidence
        }),
        (h(), h()).prop_map(|(kind, other)| Call::Relation { kind, other }),
        (h(), h()).prop_map(|(kind, subject)| Call::Request { kind, subject }),
        (h(), h()).prop_map(|(reason, until)| Call::Hold { reason, until }),
        (h(), h(), h()).prop_map(|(recipient, category, reason)| Call::Disclosure {
            recipient,
            category,
            reason
        }),
        (h(), h(), h()).prop_map(|(description, category, cause)| Call::Breach {
            description,
            category,
            cause
        }),
        (h(), h(), h()).prop_map(|(role, name, holder)| Call::Key { role, name, holder }),
        (h(), h()).prop_map(|(name, value)| Call::AuditFilter { name, value }),
    ]
}

/// Text in a URL is cut to 4 KiB: an HTTP client cannot send a target over 64 KiB, and the
/// bodies carry the long strings.
fn cut(s: &str) -> String {
    s.chars().take(4096).collect()
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(cut(s).as_bytes()).collect()
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(&cut(k), &cut(v));
    }
    q.finish()
}

/// Sends one call as `key`; returns the status (the body is checked only for its type).
async fn send(h: &Harness, key: &str, subject: &str, c: &Call) -> StatusCode {
    let (method, path, body): (Method, String, Option<Value>) = match c {
        Call::SearchParam { name, value } => (
            Method::GET,
            format!(
                "/v1/subjects?{}",
                query(&[("purpose", "admission"), (name, value)])
            ),
            None,
        ),
        Call::ReadPurpose(p) => (
            Method::GET,
            format!("/v1/subjects/{subject}?{}", query(&[("purpose", p)])),
            None,
        ),
        Call::ReadId(id) => (
            Method::GET,
            format!("/v1/subjects/{}?purpose=admission", enc(id)),
            None,
        ),
        Call::RecordId { route, id } => {
            let (method, template) = &RECORD_ROUTES[*route];
            (
                method.clone(),
                template
                    .replace("{subject}", subject)
                    .replace("{id}", &enc(id)),
                None,
            )
        }
        Call::AnswerRequest(request) => (
            Method::DELETE,
            format!("/v1/subjects/{subject}?{}", query(&[("request", request)])),
            None,
        ),
        Call::Create { field, value } => (
            Method::POST,
            "/v1/subjects?purpose=admission".into(),
            Some(json!({"fields": {"full_name": value, "email": "h@example.id", field: value}})),
        ),
        Call::Rectify { field, value } => (
            Method::PATCH,
            format!("/v1/subjects/{subject}?purpose=admission"),
            Some(json!({"fields": {field: value}})),
        ),
        Call::Enroll(purpose) => (
            Method::POST,
            format!("/v1/subjects/{subject}/purposes"),
            Some(json!({"purpose": purpose})),
        ),
        Call::Consent {
            purpose,
            channel,
            evidence,
        } => (
            Method::POST,
            format!("/v1/subjects/{subject}/consents"),
            Some(
                json!({"purpose": purpose, "granted": true, "channel": channel,
                        "evidence": evidence, "contact_channels": [channel]}),
            ),
        ),
        Call::Relation { kind, other } => (
            Method::POST,
            format!("/v1/subjects/{subject}/relations"),
            Some(json!({"kind": kind, "subject_id": other, "evidence": kind})),
        ),
        Call::Request { kind, subject: s } => (
            Method::POST,
            "/v1/requests".into(),
            Some(json!({"subject_id": s, "kind": kind, "details": {kind: s}})),
        ),
        Call::Hold { reason, until } => (
            Method::POST,
            format!("/v1/subjects/{subject}/holds"),
            Some(json!({"reason": reason, "until": until})),
        ),
        Call::Disclosure {
            recipient,
            category,
            reason,
        } => (
            Method::POST,
            "/v1/disclosures".into(),
            Some(json!({"recipient": recipient, "purpose": "admission",
                        "subject_ids": [subject, category], "categories": ["full_name", category],
                        "reason": reason, "reference": reason})),
        ),
        Call::Breach {
            description,
            category,
            cause,
        } => (
            Method::POST,
            "/v1/breaches".into(),
            Some(
                json!({"detected_at": "2026-11-23T01:00:00Z", "description": description,
                        "categories": ["email", category], "subject_ids": [subject, cause],
                        "cause": cause}),
            ),
        ),
        Call::Key { role, name, holder } => (
            Method::POST,
            "/v1/keys".into(),
            Some(json!({"role": role, "name": name, "holder": holder})),
        ),
        Call::AuditFilter { name, value } => (
            Method::GET,
            format!("/v1/audit?{}", query(&[(name, value)])),
            None,
        ),
    };
    let (status, ctype, answer) =
        support::send(&h.client, &h.base, method, &path, key, body.clone()).await;
    assert!(
        !status.is_server_error(),
        "{c:?} answered {status} (body {body:?})"
    );
    if !status.is_success() {
        assert_eq!(ctype.as_deref(), Some("application/problem+json"), "{c:?}");
        // An error names what was wrong, never by repeating the caller's text: the text may be
        // personal data (an e-mail sent as an id) and clients guess encodings (a lone `\\`
        // after a multi-byte character reads as an invalid escape in Shift-JIS).
        assert!(
            !answer.to_string().contains(MARK),
            "{c:?} answered {status} with the caller's text: {answer}"
        );
    }
    status
}

async fn run(calls: Vec<(usize, Call)>) {
    let h = support::start(Kind::Sqlite, 0).await;
    let subject = h.adult(1).await;
    let keys = [
        &h.k.admin,
        &h.k.officer,
        &h.k.clerk,
        &h.k.marketer,
        &h.k.dpo,
        &h.k.registrar,
        &h.k.pic,
        &h.k.owner,
    ];
    for (who, c) in &calls {
        send(&h, keys[who % keys.len()], &subject, c).await;
    }
    let (s, v) = h.get("/v1/audit/verify", &h.k.admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["ok"], json!(true), "after {calls:?}: {v}");
    let entries = h.audit().await;
    for e in &entries {
        let text = e.to_string();
        assert!(
            !text.contains(MARK),
            "a caller's string reached the audit: {text}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn hostile_text_anywhere_keeps_the_audit_verifiable_and_out_of_it(
        calls in proptest::collection::vec((0..8usize, call()), 1..24)
    ) {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(run(calls));
    }
}
