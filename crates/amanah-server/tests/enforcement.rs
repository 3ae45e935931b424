//! The holes a review found in enforcement, each replayed against the university preset as a
//! new user would run it, on SQLite and PostgreSQL. Every test is named after the hole.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use amanah_testkit::on_both_stores;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::preset::{start, Preset, UNIVERSITY};
use support::Kind;

/// A 16-year-old applicant (the clock stands at 2026-11-23).
fn minor() -> Value {
    json!({"fields": {"full_name": "Adik Muda", "birth_date": "2010-06-01", "email": "adik@example.id"}})
}

fn adult(n: u32) -> Value {
    json!({"fields": {"full_name": format!("Applicant {n}"), "birth_date": "1999-02-03",
                      "email": format!("applicant{n}@example.id")}})
}

async fn last_refusal(p: &Preset, since: u64) -> Value {
    let refusals = p.refusals_since(since).await;
    assert_eq!(
        refusals.len(),
        1,
        "exactly one refusal on record: {refusals:?}"
    );
    refusals[0].clone()
}

async fn a_patch_cannot_remove_a_minors_protection(kind: Kind) {
    let p = start(kind, UNIVERSITY).await;
    let officer = p.role("admissions_officer").await;
    let id = p.create("admission", minor()).await;
    let path = format!("/v1/subjects/{id}?purpose=admission");
    let (s, _) = p.get(&path, &officer).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let before = p.chain_len().await;
    let (s, v) = p
        .patch(
            &path,
            &officer,
            json!({"fields": {"birth_date": "1990-01-01"}}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(last_refusal(&p, before).await["action"], "subject.update");
    let (s, _) = p.get(&path, &officer).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the minor is still protected");
    // Nor can an adult be made a minor's record by someone not cleared for it.
    let grown = p.create("admission", adult(1)).await;
    let (s, _) = p
        .patch(
            &format!("/v1/subjects/{grown}?purpose=admission"),
            &officer,
            json!({"fields": {"birth_date": "2011-01-01"}}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A role cleared for specific data corrects it.
    let registrar = p.role("registrar").await;
    let (s, v) = p
        .patch(
            &path,
            &registrar,
            json!({"fields": {"birth_date": "2009-06-01"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn only_named_roles_end_a_relationship(kind: Kind) {
    let p = start(kind, UNIVERSITY).await;
    let id = p.create("admission", adult(1)).await;
    let end = format!("/v1/subjects/{id}/end");
    for role in ["marketing", "admissions_officer", "customer_service"] {
        let key = p.role(role).await;
        let before = p.chain_len().await;
        let (s, v) = p.post(&end, &key, json!({})).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{role}: {v}");
        assert_eq!(last_refusal(&p, before).await["action"], "subject.end");
    }
    let registrar = p.role("registrar").await;
    let (s, v) = p.post(&end, &registrar, json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
}

async fn consent_history_needs_a_purpose_of_the_subject(kind: Kind) {
    let p = start(kind, UNIVERSITY).await;
    let id = p.create("admission", adult(1)).await;
    let marketing = p.role("marketing").await;
    let before = p.chain_len().await;
    let (s, v) = p
        .get(&format!("/v1/subjects/{id}/consents"), &marketing)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(v.get("minor").is_none());
    assert_eq!(last_refusal(&p, before).await["action"], "consent.read");
    let officer = p.role("admissions_officer").await;
    let (s, v) = p
        .get(&format!("/v1/subjects/{id}/consents"), &officer)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn relations_need_a_purpose_of_both_subjects(kind: Kind) {
    let p = start(kind, UNIVERSITY).await;
    let child = p.create("admission", minor()).await;
    let stranger = p.create("admission", adult(2)).await;
    let marketing = p.role("marketing").await;
    let before = p.chain_len().await;
    let (s, v) = p
        .post(
            &format!("/v1/subjects/{child}/relations"),
            &marketing,
            json!({"kind": "guardian", "subject_id": stranger}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(last_refusal(&p, before).await["action"], "relation.create");
    let (s, _) = p
        .get(&format!("/v1/subjects/{child}/relations"), &marketing)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

async fn purposes_are_tied_to_the_subject(kind: Kind) {
    let p = start(kind, UNIVERSITY).await;
    let id = p.create("admission", adult(1)).await;
    let cs = p.role("customer_service").await;
    let read = format!("/v1/subjects/{id}?purpose=enquiries");
    let before = p.chain_len().await;
    let (s, v) = p.get(&read, &cs).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(last_refusal(&p, before).await["action"], "subject.read");
    let (s, v) = p
        .get(
            "/v1/subjects?purpose=enquiries&email=applicant1@example.id",
            &cs,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["subjects"], json!([]), "found as if not there");
    // A PATCH under another purpose neither writes nor enrols.
    let officer = p.role("admissions_officer").await;
    let (s, _) = p
        .patch(&read, &officer, json!({"fields": {"full_name": "Renamed"}}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = p.get(&read, &cs).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "still not enrolled");
    // Enrolling is explicit, audited, and needs a ground (enquiries is compatible with
    // admission; direct marketing needs a consent).
    let (s, v) = p
        .post(
            &format!("/v1/subjects/{id}/purposes"),
            &officer,
            json!({"purpose": "enquiries"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["ground"], "compatible with admission");
    let (s, v) = p.get(&read, &cs).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["fields"]["full_name"], "Applicant 1");
    let (s, v) = p
        .post(
            &format!("/v1/subjects/{id}/purposes"),
            &p.admin,
            json!({"purpose": "tax_records"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "no ground: {v}");
    let (s, v) = p
        .post(
            &format!("/v1/subjects/{id}/purposes"),
            &p.admin,
            json!({"purpose": "direct_marketing",
                   "consent": {"granted": true, "channel": "web_form", "evidence": "form 9"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // The export lists the purposes.
    let dpo = p.role("dpo").await;
    let (s, v) = p.get(&format!("/v1/subjects/{id}/export"), &dpo).await;
    assert_eq!(s, StatusCode::OK);
    let mut purposes: Vec<&str> = v["purposes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["purpose"].as_str().unwrap())
        .collect();
    purposes.sort_unstable();
    assert_eq!(purposes, ["admission", "direct_marketing", "enquiries"]);
}

async fn disclosures_release_only_what_the_requester_sees_in_clear(kind: Kind) {
    let p = start(kind, UNIVERSITY).await;
    let officer = p.role("admissions_officer").await;
    let adult_id = p
        .create(
            "admission",
            json!({"fields": {"full_name": "Budi", "birth_date": "1999-02-03", "nik": "3171014101900001"}}),
        )
        .await;
    let child = p.create("admission", minor()).await;
    for id in [&adult_id, &child] {
        let (s, v) = p
            .post(
                &format!("/v1/subjects/{id}/purposes"),
                &p.admin,
                json!({"purpose": "verification"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let ask = |ids: Vec<&String>, categories: Vec<&str>| {
        json!({"recipient": "verification_partners", "purpose": "verification",
               "subject_ids": ids, "categories": categories, "reason": "diploma check"})
    };
    // The officer sees the NIK masked: it may not send it in clear.
    let before = p.chain_len().await;
    let (s, v) = p
        .post(
            "/v1/disclosures",
            &officer,
            ask(vec![&adult_id], vec!["full_name", "nik"]),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(
        last_refusal(&p, before).await["action"],
        "disclosure.request"
    );
    // A minor's data needs specific clearance.
    let (s, v) = p
        .post(
            "/v1/disclosures",
            &officer,
            ask(vec![&child], vec!["full_name"]),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    // What it may see in clear, of an adult, goes; the approver sees what would be released.
    let (s, v) = p
        .post(
            "/v1/disclosures",
            &officer,
            ask(vec![&adult_id], vec!["full_name"]),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["release_preview"]["categories"], json!(["full_name"]));
    assert_eq!(v["release_preview"]["subjects"], 1);
    assert_eq!(v["release_preview"]["pseudonymized"], false);
}

/// An adult with a NIK, enrolled for verification, and a disclosure of `categories` of them
/// requested by `requester`; returns the disclosure's id.
async fn verification_disclosure(p: &Preset, requester: &str, categories: &[&str]) -> String {
    let id = p
        .create(
            "admission",
            json!({"fields": {"full_name": "Budi", "birth_date": "1999-02-03", "nik": "3171014101900001"}}),
        )
        .await;
    let (s, _) = p
        .post(
            &format!("/v1/subjects/{id}/purposes"),
            &p.admin,
            json!({"purpose": "verification"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = p
        .post(
            "/v1/disclosures",
            requester,
            json!({"recipient": "verification_partners", "purpose": "verification",
                   "subject_ids": [id], "categories": categories, "reason": "check"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

async fn four_eyes_count_people_not_keys(kind: Kind) {
    let p = start(kind, UNIVERSITY).await;
    // One person, Alice, holds a registrar key and a DPO key; the admin minted both.
    let alice_registrar = p.key("registrar", "Alice <alice@example.id>").await;
    let alice_second = p.key("registrar", "alice <ALICE@example.id>").await;
    let alice_dpo = p.key("dpo", "Alice <alice@example.id>").await;
    let bob = p.key("registrar", "Bob <bob@example.id>").await;
    let carol = p.key("dpo", "Carol <carol@example.id>").await;
    let d = verification_disclosure(&p, &alice_registrar, &["full_name", "nik"]).await;
    let before = p.chain_len().await;
    let (s, v) = p
        .post(
            &format!("/v1/disclosures/{d}/approve"),
            &alice_second,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "same person, another key: {v}");
    assert_eq!(
        last_refusal(&p, before).await["action"],
        "disclosure.approve"
    );
    let (s, v) = p
        .post(&format!("/v1/disclosures/{d}/approve"), &bob, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = p
        .post(
            &format!("/v1/disclosures/{d}/authorize"),
            &alice_dpo,
            json!({}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "the requester cannot authorize: {v}"
    );
    // The admin never takes a step.
    let (s, _) = p
        .post(
            &format!("/v1/disclosures/{d}/authorize"),
            &p.admin,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = p
        .post(&format!("/v1/disclosures/{d}/authorize"), &carol, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // And a policy may not give one role both steps.
    let both = UNIVERSITY.replace(
        "approve_disclosures = true         # approves disclosures (PIC)",
        "approve_disclosures = true\nauthorize_disclosures = true",
    );
    let errors = amanah_core::policy::Policy::parse(&both).unwrap_err();
    assert!(
        errors.render("p").contains("four eyes"),
        "{}",
        errors.render("p")
    );
}

async fn a_refused_write_is_audited_and_tells_nothing(kind: Kind) {
    let p = start(kind, UNIVERSITY).await;
    let officer = p.role("admissions_officer").await;
    let taken = "3171014101900001";
    p.create(
        "admission",
        json!({"fields": {"full_name": "Owner", "birth_date": "1999-02-03", "nik": taken}}),
    )
    .await;
    // The officer sees NIKs masked: writing one would tell whose it is through a conflict.
    let before = p.chain_len().await;
    let (s, v) = p
        .post(
            "/v1/subjects?purpose=admission",
            &officer,
            json!({"fields": {"full_name": "Prober", "nik": taken}}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(!v.to_string().contains(taken));
    let refusal = last_refusal(&p, before).await;
    assert_eq!(refusal["action"], "subject.create");
    // Nor a specific category it cannot see.
    let (s, _) = p
        .post(
            "/v1/subjects?purpose=admission",
            &officer,
            json!({"fields": {"full_name": "Prober", "religion": "Islam"}}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A cleared role's conflict is refused, on record, without the value.
    let registrar = p.role("registrar").await;
    // A document is uploaded as a file, never written as a field value: 422 naming the field.
    let (s, v) = p
        .post(
            "/v1/subjects?purpose=admission",
            &registrar,
            json!({"fields": {"full_name": "Prober", "health_certificate": "fit"}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "health_certificate", "{v}");
    assert!(
        v["detail"]
            .as_str()
            .is_some_and(|d| d.contains("uploaded as a file") && !d.contains("fit")),
        "{v}"
    );
    let before = p.chain_len().await;
    let (s, v) = p
        .post(
            "/v1/subjects?purpose=admission",
            &registrar,
            json!({"fields": {"full_name": "Twin", "nik": taken}}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["type"], "urn:amanah:problem:unique-value-taken");
    let refusal = last_refusal(&p, before).await;
    assert_eq!(refusal["action"], "subject.create");
    assert!(!refusal.to_string().contains(taken), "{refusal}");
}

async fn restriction_blocks_writes_not_only_reads(kind: Kind) {
    let p = start(kind, UNIVERSITY).await;
    let id = p.create("admission", adult(1)).await;
    let other = p.create("admission", adult(2)).await;
    let dpo = p.role("dpo").await;
    let registrar = p.role("registrar").await;
    let (s, _) = p
        .post(
            &format!("/v1/subjects/{id}/restriction"),
            &dpo,
            json!({"reason": "contested"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let path = format!("/v1/subjects/{id}?purpose=admission");
    let before = p.chain_len().await;
    let (s, v) = p
        .patch(
            &path,
            &registrar,
            json!({"fields": {"full_name": "Changed"}}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(last_refusal(&p, before).await["action"], "subject.update");
    let (s, v) = p
        .post(
            &format!("/v1/subjects/{id}/consents"),
            &p.admin,
            json!({"purpose": "direct_marketing", "granted": true, "channel": "web_form", "evidence": "e"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = p
        .post(
            &format!("/v1/subjects/{id}/relations"),
            &registrar,
            json!({"kind": "emergency_contact", "subject_id": other}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    // The DPO's rectification answering the person's request goes through.
    let (s, r) = p
        .post(
            "/v1/requests",
            &dpo,
            json!({"subject_id": id, "type": "rectification"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let req = r["id"].as_str().unwrap();
    let (s, v) = p
        .patch(
            &format!("{path}&request={req}"),
            &dpo,
            json!({"fields": {"full_name": "Corrected"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Not by a role that does not handle requests.
    let (s, _) = p
        .patch(
            &format!("{path}&request={req}"),
            &registrar,
            json!({"fields": {"full_name": "Again"}}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

async fn authorization_comes_before_validation(kind: Kind) {
    let p = start(kind, UNIVERSITY).await;
    let id = p.create("admission", adult(1)).await;
    let marketing = p.role("marketing").await;
    let before = p.chain_len().await;
    let (s, v) = p
        .post(
            "/v1/requests",
            &marketing,
            json!({"subject_id": id, "type": "no-such-type"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "an audited 403, not a 422: {v}");
    assert_eq!(last_refusal(&p, before).await["action"], "request.create");
    let before = p.chain_len().await;
    let (s, v) = p
        .patch(
            &format!("/v1/requests/{}", uuid::Uuid::new_v4()),
            &marketing,
            json!({"status": "no-such-status"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(last_refusal(&p, before).await["action"], "request.update");
}

async fn a_guardian_field_cannot_probe_who_exists_or_is_a_minor(kind: Kind) {
    let p = start(kind, UNIVERSITY).await;
    let id = p.create("admission", adult(1)).await;
    let unseen = p
        .create(
            "tax_records",
            json!({"fields": {"full_name": "Taxpayer", "npwp": "012345678901000"}}),
        )
        .await;
    let child = p.create("admission", minor()).await;
    let visible = p.create("admission", adult(2)).await;
    let officer = p.role("admissions_officer").await;
    let consent = |guardian: &str| {
        json!({"purpose": "prospect_information", "granted": true, "channel": "web_form",
               "evidence": "form 7", "given_by": "guardian",
               "guardian": {"subject_id": guardian}})
    };
    let path = format!("/v1/subjects/{id}/consents");
    let mut answers = Vec::new();
    let absent = uuid::Uuid::new_v4().to_string();
    for guardian in [&absent, &unseen, &child] {
        let before = p.chain_len().await;
        let (s, v) = p.post(&path, &officer, consent(guardian)).await;
        assert!(s.is_client_error(), "{v}");
        assert_eq!(last_refusal(&p, before).await["action"], "consent.grant");
        answers.push((s, v["detail"].clone()));
    }
    assert_eq!(
        answers[0], answers[1],
        "a subject it may not see reads as absent"
    );
    assert_eq!(
        answers[0], answers[2],
        "a minor it may not see reads as absent"
    );
    // The check is real: a guardian the officer may see gets past it (and meets the next rule).
    let (s, v) = p.post(&path, &officer, consent(&visible)).await;
    assert_ne!((s, v["detail"].clone()), answers[0], "{v}");
}

async fn key_holders_are_people_with_an_address(kind: Kind) {
    let p = start(kind, UNIVERSITY).await;
    for holder in ["Alice", "<alice@example.id>", "Alice <not an address>", ""] {
        let before = p.chain_len().await;
        let (s, v) = p
            .post(
                "/v1/keys",
                &p.admin,
                json!({"role": "registrar", "holder": holder}),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{holder:?}: {v}");
        assert_eq!(p.chain_len().await, before, "bad input changes nothing");
    }
    // Two display names for one address are one person to four eyes.
    let alice = p.key("registrar", "Alice <alice@example.id>").await;
    let alias = p.key("registrar", "A. Wonder <alice@example.id>").await;
    let d = verification_disclosure(&p, &alice, &["full_name"]).await;
    let (s, v) = p
        .post(&format!("/v1/disclosures/{d}/approve"), &alias, json!({}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "same address, another name: {v}");
}

async fn an_invalid_write_to_a_subject_out_of_reach_is_a_refusal(kind: Kind) {
    let p = start(kind, UNIVERSITY).await;
    let id = p.create("admission", adult(1)).await;
    let cs = p.role("customer_service").await;
    let before = p.chain_len().await;
    let (s, v) = p
        .patch(
            &format!("/v1/subjects/{id}?purpose=enquiries"),
            &cs,
            json!({"fields": {"email": "not an address"}}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "decided before validated: {v}");
    assert_eq!(last_refusal(&p, before).await["action"], "subject.update");
}

async fn a_miss_on_holds_and_keys_is_on_record(kind: Kind) {
    let p = start(kind, UNIVERSITY).await;
    let id = p.create("admission", adult(1)).await;
    let dpo = p.role("dpo").await;
    let before = p.chain_len().await;
    let (s, v) = p
        .call(
            Method::DELETE,
            &format!("/v1/subjects/{id}/holds/{}", uuid::Uuid::new_v4()),
            &dpo,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(last_refusal(&p, before).await["action"], "hold.release");
    let before = p.chain_len().await;
    let (s, v) = p
        .call(Method::DELETE, "/v1/keys/key-0123456789ab", &p.admin, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(last_refusal(&p, before).await["action"], "apikey.revoke");
}

on_both_stores!(
    a_patch_cannot_remove_a_minors_protection,
    only_named_roles_end_a_relationship,
    consent_history_needs_a_purpose_of_the_subject,
    relations_need_a_purpose_of_both_subjects,
    purposes_are_tied_to_the_subject,
    disclosures_release_only_what_the_requester_sees_in_clear,
    four_eyes_count_people_not_keys,
    a_refused_write_is_audited_and_tells_nothing,
    restriction_blocks_writes_not_only_reads,
    authorization_comes_before_validation,
    a_guardian_field_cannot_probe_who_exists_or_is_a_minor,
    key_holders_are_people_with_an_address,
    an_invalid_write_to_a_subject_out_of_reach_is_a_refusal,
    a_miss_on_holds_and_keys_is_on_record,
);
