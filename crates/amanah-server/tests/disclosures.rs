//! Disclosures over HTTP with the real store: four eyes, approve -> authorize -> release,
//! rejection, excluded categories, pseudonymized packages, consent exclusions, authority orders,
//! transfers abroad, and the subject's export.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use amanah_testkit::on_both_stores;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{start, strings, test_policy, Harness, Kind};

on_both_stores!(
    four_eyes_then_the_owner_then_bounded_releases,
    rejection_at_either_step,
    categories_beyond_the_recipient_or_purpose_are_named,
    pseudonymized_packages_carry_tokens_and_no_identifiers,
    consent_based_disclosures_exclude_or_refuse,
    authority_orders_need_a_legal_obligation_and_a_reference,
    a_foreign_recipient_without_a_transfer_basis_is_refused,
);
async fn request(h: &Harness, key: &str, body: Value) -> (StatusCode, Value) {
    h.post("/v1/disclosures", key, body).await
}

async fn pending(h: &Harness, body: Value) -> String {
    let (s, v) = request(h, &h.k.officer, body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "pending_approval");
    v["id"].as_str().unwrap().to_owned()
}

async fn step(h: &Harness, key: &str, id: &str, step: &str) -> (StatusCode, Value) {
    h.post(&format!("/v1/disclosures/{id}/{step}"), key, json!({}))
        .await
}

fn to_verifier(subjects: &[&str]) -> Value {
    json!({"recipient": "verifier", "purpose": "admission", "subject_ids": subjects,
           "categories": ["full_name", "nik"], "reason": "identity verification of applicants",
           "reference": "contract V-7", "max_releases": 2})
}

async fn four_eyes_then_the_owner_then_bounded_releases(kind: Kind) {
    let h = start(kind, 0).await;
    let a = h
        .create(
            &h.k.officer,
            json!({"full_name": "Ani Lestari", "email": "ani@example.id", "nik": "3171014101900001"}),
        )
        .await;
    let id = pending(&h, to_verifier(&[&a])).await;

    // Nothing can be released before both steps.
    let (s, _) = h
        .get(&format!("/v1/disclosures/{id}/package"), &h.k.officer)
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // The owner cannot authorize before the PIC approved.
    let (s, v) = step(&h, &h.k.owner, &id, "authorize").await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("approve it first"));
    // A role without approve_disclosures may not approve.
    let (s, _) = step(&h, &h.k.clerk, &id, "approve").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = step(&h, &h.k.owner, &id, "approve").await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Four eyes: the PIC's own request cannot be approved with the PIC's key.
    h.clock.advance(time::Duration::minutes(1));
    let own = {
        let (s, v) = request(&h, &h.k.pic, to_verifier(&[&a])).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_owned()
    };
    let (s, v) = step(&h, &h.k.pic, &own, "approve").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("four eyes"), "{v}");

    let (s, v) = step(&h, &h.k.pic, &id, "approve").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "approved");
    let (s, _) = step(&h, &h.k.pic, &id, "approve").await;
    assert_eq!(s, StatusCode::CONFLICT, "approved once");
    let (s, _) = h
        .get(&format!("/v1/disclosures/{id}/package"), &h.k.officer)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "not authorized yet");
    let (s, v) = step(&h, &h.k.owner, &id, "authorize").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "authorized");

    // Only the requester (or the admin) releases.
    let (s, _) = h
        .get(&format!("/v1/disclosures/{id}/package"), &h.k.clerk)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, p) = h
        .get(&format!("/v1/disclosures/{id}/package"), &h.k.officer)
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["release"], 1);
    assert_eq!(p["pseudonymized"], false);
    assert_eq!(p["subjects"][0]["id"], a.as_str());
    let fields = p["subjects"][0]["fields"].as_object().unwrap();
    assert_eq!(fields["full_name"], "Ani Lestari");
    assert_eq!(fields["nik"], "3171014101900001");
    assert!(
        !fields.contains_key("email"),
        "only the requested categories"
    );

    // CSV, second and last release.
    let resp = h
        .client
        .get(format!("{}/v1/disclosures/{id}/package?format=csv", h.base))
        .header("authorization", format!("Bearer {}", h.k.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let csv = resp.text().await.unwrap();
    assert!(csv.starts_with("subject,full_name,nik\n"), "{csv}");
    assert!(csv.contains(&format!("{a},Ani Lestari,3171014101900001")));
    let (s, v) = h
        .get(&format!("/v1/disclosures/{id}/package"), &h.k.officer)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "bounded: {v}");
    assert_eq!(v["type"], "urn:amanah:problem:release-limit-reached");

    // Each release is audited per subject, without values.
    let audit = h.audit().await;
    let releases: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "disclosure.release" && e["outcome"] == "allowed")
        .collect();
    assert_eq!(releases.len(), 2);
    assert!(releases.iter().all(|e| e["subject"] == a.as_str()));
    assert!(!audit.iter().any(|e| e.to_string().contains("Ani Lestari")));
    for action in [
        "disclosure.request",
        "disclosure.approve",
        "disclosure.authorize",
    ] {
        assert!(audit.iter().any(|e| e["action"] == action), "{action}");
    }

    // Visible by subject, and in the subject's export.
    let (s, v) = h
        .get(&format!("/v1/disclosures?subject={a}"), &h.k.dpo)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let listed: Vec<&str> = v["disclosures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![own.as_str(), id.as_str()]);
    assert_eq!(v["disclosures"][1]["releases"], 2);
    let (s, _) = h
        .get(&format!("/v1/disclosures?subject={a}"), &h.k.marketer)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, export) = h.get(&format!("/v1/subjects/{a}/export"), &h.k.dpo).await;
    assert_eq!(s, StatusCode::OK);
    let d = &export["disclosures"];
    assert_eq!(d.as_array().unwrap().len(), 1, "released ones: {d}");
    assert_eq!(d[0]["recipient"], "verifier");
    assert_eq!(d[0]["purpose"], "admission");
    assert_eq!(d[0]["country"], "ID");
    assert_eq!(d[0]["time"], "2026-11-23T03:01:00Z");
}

async fn rejection_at_either_step(kind: Kind) {
    let h = start(kind, 0).await;
    let a = h.adult(1).await;
    let id = pending(&h, to_verifier(&[&a])).await;
    let (s, v) = step(&h, &h.k.pic, &id, "reject").await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a reason is needed: {v}"
    );
    let (s, v) = h
        .post(
            &format!("/v1/disclosures/{id}/reject"),
            &h.k.pic,
            json!({"reason": "not covered by the contract"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "rejected");
    assert_eq!(v["rejection_reason"], "not covered by the contract");
    let (s, _) = step(&h, &h.k.pic, &id, "approve").await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = h
        .get(&format!("/v1/disclosures/{id}/package"), &h.k.officer)
        .await;
    assert_eq!(s, StatusCode::CONFLICT);

    // The owner rejects an approved one.
    let id = pending(&h, to_verifier(&[&a])).await;
    assert_eq!(step(&h, &h.k.pic, &id, "approve").await.0, StatusCode::OK);
    let (s, v) = h
        .post(
            &format!("/v1/disclosures/{id}/reject"),
            &h.k.owner,
            json!({"reason": "the customer objects"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "rejected");
    let (s, _) = step(&h, &h.k.owner, &id, "authorize").await;
    assert_eq!(s, StatusCode::CONFLICT);
}

async fn categories_beyond_the_recipient_or_purpose_are_named(kind: Kind) {
    let h = start(kind, 0).await;
    let a = h.adult(1).await;
    let (s, v) = request(
        &h,
        &h.k.officer,
        json!({"recipient": "partner_university", "purpose": "admission", "subject_ids": [a],
               "categories": ["birth_date", "email", "nik"], "reason": "exchange programme"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "categories");
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains("email, nik"), "{detail}");
    assert!(
        detail.contains("allowed: full_name, birth_date"),
        "{detail}"
    );
    // A recipient not declared for the purpose, an unknown one, a purpose the role lacks.
    let (s, v) = request(
        &h,
        &h.k.officer,
        json!({"recipient": "mailer", "purpose": "admission", "subject_ids": [a],
               "categories": ["email"], "reason": "x"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, _) = request(
        &h,
        &h.k.officer,
        json!({"recipient": "nobody", "purpose": "admission", "subject_ids": [a],
               "categories": ["email"], "reason": "x"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = request(
        &h,
        &h.k.marketer,
        json!({"recipient": "verifier", "purpose": "admission", "subject_ids": [a],
               "categories": ["email"], "reason": "x"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let refusals = h
        .audit()
        .await
        .into_iter()
        .filter(|e| e["action"] == "disclosure.request" && e["outcome"] == "denied")
        .count();
    assert_eq!(refusals, 4, "every refusal is audited");
}

async fn pseudonymized_packages_carry_tokens_and_no_identifiers(kind: Kind) {
    let h = start(kind, 0).await;
    let a = h.adult(1).await;
    let b = h.adult(2).await;
    let body = json!({"recipient": "partner_university", "purpose": "admission", "subject_ids": [a, b],
                      "categories": ["full_name", "birth_date"], "reason": "cohort study"});
    let first = pending(&h, body.clone()).await;
    let second = pending(&h, body).await;
    for id in [&first, &second] {
        assert_eq!(step(&h, &h.k.pic, id, "approve").await.0, StatusCode::OK);
        assert_eq!(
            step(&h, &h.k.owner, id, "authorize").await.0,
            StatusCode::OK
        );
    }
    let (s, p1) = h
        .get(&format!("/v1/disclosures/{first}/package"), &h.k.officer)
        .await;
    assert_eq!(s, StatusCode::OK, "{p1}");
    assert_eq!(p1["pseudonymized"], true);
    assert_eq!(p1["country"], "AU");
    assert_eq!(strings(&p1["categories"]), vec!["birth_date"]);
    assert_eq!(strings(&p1["withheld_categories"]), vec!["full_name"]);
    let text = p1.to_string();
    for leak in [a.as_str(), b.as_str(), "Person 1", "p1@example.id"] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
    let tokens1: Vec<String> = p1["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tokens1.len(), 2);
    assert!(tokens1.iter().all(|t| t.starts_with("ps-")));
    assert_eq!(p1["subjects"][0]["fields"]["birth_date"], "1990-05-01");
    // Stable within a disclosure, unlinkable across disclosures.
    let (_, again) = h
        .get(&format!("/v1/disclosures/{first}/package"), &h.k.officer)
        .await;
    let (_, p2) = h
        .get(&format!("/v1/disclosures/{second}/package"), &h.k.officer)
        .await;
    let ids = |p: &Value| -> Vec<String> {
        p["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&again), tokens1);
    assert!(ids(&p2).iter().all(|t| !tokens1.contains(t)));
}

async fn consent_based_disclosures_exclude_or_refuse(kind: Kind) {
    let h = start(kind, 0).await;
    let with = h.adult(1).await;
    let without = h.adult(2).await;
    h.grant(&with, &["email"]).await;
    let body = json!({"recipient": "mailer", "purpose": "marketing", "subject_ids": [with, without],
                      "categories": ["email"], "reason": "newsletter delivery"});
    let (s, v) = request(&h, &h.k.marketer, body.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["consent_check"], "subjects_excluded");
    assert_eq!(strings(&v["subject_ids"]), vec![with.clone()]);
    assert_eq!(v["excluded"][0]["subject_id"], without.as_str());
    assert!(v["excluded"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("consent"));
    assert_eq!(v["country"], "SG");
    assert_eq!(v["transfer_basis"], "consent");

    let mut refuse = body.clone();
    refuse["if_consent_missing"] = json!("refuse");
    let (s, v) = request(&h, &h.k.marketer, refuse).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["type"], "urn:amanah:problem:consent-required");
    assert!(v["detail"].as_str().unwrap().contains(&without));

    let mut only_without = body;
    only_without["subject_ids"] = json!([without]);
    let (s, v) = request(&h, &h.k.marketer, only_without).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");

    // Everyone has consent: said so.
    let (s, v) = request(
        &h,
        &h.k.marketer,
        json!({"recipient": "mailer", "purpose": "marketing", "subject_ids": [with],
               "categories": ["email"], "reason": "newsletter delivery"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["consent_check"], "all_valid");
    // Consent withdrawn before the release: the subject is left out of the package.
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(step(&h, &h.k.pic, &id, "approve").await.0, StatusCode::OK);
    assert_eq!(
        step(&h, &h.k.owner, &id, "authorize").await.0,
        StatusCode::OK
    );
    h.withdraw(&with).await;
    let (s, p) = h
        .get(&format!("/v1/disclosures/{id}/package"), &h.k.marketer)
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["left_out"], 1);
    assert!(p["subjects"].as_array().unwrap().is_empty());
}

async fn authority_orders_need_a_legal_obligation_and_a_reference(kind: Kind) {
    let h = start(kind, 0).await;
    let a = h
        .create(
            &h.k.officer,
            json!({"full_name": "Budi", "email": "budi@example.id", "nik": "3171014101900001"}),
        )
        .await;
    let (s, v) = h.enroll(&h.k.registrar, &a, "government_orders").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let order = |reference: Option<&str>| {
        json!({"recipient": "ministry", "purpose": "government_orders", "subject_ids": [a],
               "categories": ["full_name", "nik"], "reason": "court order",
               "reference": reference, "defer_notification_until": "2027-01-31",
               "deferral_reason": "ongoing investigation"})
    };
    let (s, v) = request(&h, &h.k.registrar, order(None)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "reference");
    let (s, v) = request(&h, &h.k.registrar, order(Some("B/123/XI/2026"))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["recipient_kind"], "authority");
    assert_eq!(v["notification_deferred_until"], "2027-01-31");
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(step(&h, &h.k.pic, &id, "approve").await.0, StatusCode::OK);
    assert_eq!(
        step(&h, &h.k.owner, &id, "authorize").await.0,
        StatusCode::OK
    );
    let (s, p) = h
        .get(&format!("/v1/disclosures/{id}/package"), &h.k.registrar)
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["reference"], "B/123/XI/2026");
    // Deferred: not in the export until the day comes, but listed for the DPO.
    let (_, export) = h.get(&format!("/v1/subjects/{a}/export"), &h.k.dpo).await;
    assert!(export["disclosures"].as_array().unwrap().is_empty());
    let (_, v) = h
        .get(&format!("/v1/disclosures?subject={a}"), &h.k.dpo)
        .await;
    assert_eq!(
        v["disclosures"][0]["deferral_reason"],
        "ongoing investigation"
    );
    h.clock.set(time::macros::datetime!(2027-01-31 01:00 UTC));
    let (_, export) = h.get(&format!("/v1/subjects/{a}/export"), &h.k.dpo).await;
    assert_eq!(export["disclosures"][0]["recipient"], "ministry");
    assert_eq!(export["disclosures"][0]["reference"], "B/123/XI/2026");

    // Deferral is for authority orders only.
    let mut other = to_verifier(&[&a]);
    other["defer_notification_until"] = json!("2027-01-31");
    other["deferral_reason"] = json!("x");
    let (s, v) = request(&h, &h.k.officer, other).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
}

async fn a_foreign_recipient_without_a_transfer_basis_is_refused(kind: Kind) {
    let h = start(kind, 0).await;
    let bad = test_policy("v2", 0).replace(
        "transfer_basis = \"safeguards\"\npseudonymize = true\n",
        "pseudonymize = true\n",
    );
    assert_ne!(bad, test_policy("v2", 0));
    let resp = h
        .client
        .put(format!("{}/v1/policy", h.base))
        .header("authorization", format!("Bearer {}", h.k.admin))
        .body(bad)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = resp.json().await.unwrap();
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains("partner_university"), "{detail}");
    assert!(detail.contains("UU PDP Art. 56"), "{detail}");
    // The policy in force still has its basis; disclosures to it keep working.
    let a = h.adult(1).await;
    pending(
        &h,
        json!({"recipient": "partner_university", "purpose": "admission", "subject_ids": [a],
               "categories": ["birth_date"], "reason": "cohort study"}),
    )
    .await;
}
