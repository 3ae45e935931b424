//! The vault's use cases through its public API, on SQLite and on PostgreSQL, with a manual
//! clock: each test drives the vault as the server and the command line do (a principal from
//! `Vault::authenticate` or `Vault::operator`, a permit from `Vault::authorize`, then the
//! operation) over the test kit's policy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audit;
mod consent;
mod disclosures;
mod keys;
mod rights;

use amanah_core::{Error, Result};
use amanah_testkit::policies::TEST;
use amanah_testkit::{Kind, TestVault};
use amanah_vault::{act, ConsentInput, GuardianInput, Principal, SubjectView, Target};
use serde_json::{Map, Value};

/// A vault under the test policy.
async fn vault(kind: Kind) -> TestVault {
    TestVault::new(kind, "vault", TEST).await
}

fn fields(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// Creates a subject under `purpose` (which must not rest on consent); returns its id.
async fn create(v: &TestVault, who: &Principal, purpose: &str, values: Value) -> String {
    let permit = v
        .permit::<act::SubjectCreate>(who, Target::purpose(purpose))
        .await;
    v.create_subject(&permit, &fields(values)).await.unwrap()
}

/// An adult applicant collected under admission by the officer.
async fn adult(v: &TestVault, n: u32) -> String {
    let officer = v.principal("officer").await;
    create(
        v,
        &officer,
        "admission",
        serde_json::json!({"full_name": format!("Person {n}"), "email": format!("p{n}@example.id"),
                           "birth_date": "1990-05-01"}),
    )
    .await
}

/// Reads a subject under `purpose`: authorization and the per-subject decision together.
async fn read(v: &TestVault, who: &Principal, id: &str, purpose: &str) -> Result<SubjectView> {
    let permit = v
        .authorize::<act::SubjectRead>(who, Target::subject_under(id, purpose))
        .await?;
    v.read_subject(&permit).await
}

/// Changes fields of a subject under `purpose` (not answering a request).
async fn update(
    v: &TestVault,
    who: &Principal,
    id: &str,
    purpose: &str,
    values: Value,
) -> Result<()> {
    let permit = v
        .authorize::<act::SubjectUpdate>(who, Target::subject_under(id, purpose))
        .await?;
    v.rectify_subject(&permit, &fields(values), None).await
}

/// The subject's own grant of `purpose` on a web form, for contact by e-mail.
fn grant(purpose: &str) -> ConsentInput {
    ConsentInput {
        purpose: purpose.to_owned(),
        granted: true,
        channel: "web_form".to_owned(),
        evidence: Some("form #1".to_owned()),
        given_by: "subject".to_owned(),
        guardian: None,
        contact_channels: vec!["email".to_owned()],
    }
}

/// A grant by a guardian recorded by their details.
fn guardian_grant(purpose: &str) -> ConsentInput {
    ConsentInput {
        given_by: "guardian".to_owned(),
        channel: "paper".to_owned(),
        evidence: Some("signed form 77".to_owned()),
        guardian: Some(GuardianInput::Details {
            name: "Wombatia Parentis".to_owned(),
            relationship: "mother".to_owned(),
            contact: None,
        }),
        ..grant(purpose)
    }
}

fn withdrawal(purpose: &str) -> ConsentInput {
    ConsentInput {
        granted: false,
        channel: "email_link".to_owned(),
        evidence: None,
        contact_channels: Vec::new(),
        ..grant(purpose)
    }
}

/// Records a consent decision (a grant or a withdrawal, as `input` says).
async fn consent(v: &TestVault, who: &Principal, id: &str, input: &ConsentInput) -> Result<()> {
    let target = Target::subject_under(id, &input.purpose);
    if input.granted {
        let permit = v.authorize::<act::ConsentGrant>(who, target).await?;
        v.record_consent(&permit, input).await.map(|_| ())
    } else {
        let permit = v.authorize::<act::ConsentWithdraw>(who, target).await?;
        v.record_consent(&permit, input).await.map(|_| ())
    }
}

/// The error's message, for a refusal that must have happened.
fn refused<T: std::fmt::Debug>(r: Result<T>) -> Error {
    match r {
        Ok(v) => panic!("allowed: {v:?}"),
        Err(e) => e,
    }
}
