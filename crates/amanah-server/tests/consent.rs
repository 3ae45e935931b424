//! Consent over HTTP: the real router on a loopback port, a real store (each test runs on
//! SQLite and on PostgreSQL), and a manual clock, so withdrawal grace periods, coming of age
//! and re-consent are tested without sleeping.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use amanah_testkit::on_both_stores;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{marketing_with_phone, sorted, start, strings, test_policy, Kind};
use time::macros::datetime;
use time::Duration;

on_both_stores!(
    a_grant_allows_reads_and_a_withdrawal_stops_them_at_once,
    with_a_grace_period_processing_stops_when_it_ends,
    a_child_under_the_minimum_age_cannot_be_created,
    a_minor_needs_a_guardian_and_a_role_cleared_for_specific_data,
    a_purpose_change_makes_consents_stale_until_given_again,
    contact_lists_exclude_withdrawn_stale_and_wrong_channel_subjects,
    consent_requests_are_validated,
    relations_link_subjects_and_let_a_linked_guardian_act,
    evidence_and_guardian_details_stay_encrypted,
);

fn state<'a>(history: &'a Value, purpose: &str) -> &'a Value {
    history["current"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purpose"] == purpose)
        .unwrap()
}

async fn a_grant_allows_reads_and_a_withdrawal_stops_them_at_once(kind: Kind) {
    let h = start(kind, 0).await;
    let id = h.adult(1).await;
    let (s, v) = h.read(&h.k.marketer, &id, "marketing").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["type"], "urn:amanah:problem:consent-required");
    assert!(
        v["detail"].as_str().unwrap().starts_with("no consent"),
        "{v}"
    );

    let recorded = h.grant(&id, &["email"]).await;
    let receipt = &recorded["receipt"];
    assert_eq!(receipt["subject_id"], id.as_str());
    assert_eq!(receipt["purpose"], "marketing");
    assert_eq!(receipt["policy_version"], "v1");
    assert_eq!(receipt["controller"]["name"], "Universitas Contoh");
    assert_eq!(receipt["channel"], "web_form");
    assert_eq!(receipt["purpose_version"].as_str().unwrap().len(), 64);
    assert_eq!(receipt["evidence_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(recorded["consent"]["given_by"], "subject");
    // The receipt points at the audit entry that records the decision.
    let audit = h.audit().await;
    let entry = audit
        .iter()
        .find(|e| e["seq"] == receipt["audit"]["seq"])
        .unwrap();
    assert_eq!(entry["hash"], receipt["audit"]["hash"]);
    assert_eq!(entry["action"], "consent.grant");
    assert_eq!(entry["basis"], "consent");
    assert!(!entry.to_string().contains("form #1"));

    let (s, v) = h.read(&h.k.marketer, &id, "marketing").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["fields"]["email"], "p1@example.id");
    let consent_id = recorded["consent"]["id"].as_str().unwrap();
    let last = h.audit().await.into_iter().last().unwrap();
    assert_eq!(last["action"], "subject.read");
    assert_eq!(last["basis"], "consent");
    assert_eq!(last["reason"], format!("consent {consent_id}"));

    h.withdraw(&id).await;
    let (s, v) = h.read(&h.k.marketer, &id, "marketing").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("consent withdrawn on 2026-11-23"),
        "{v}"
    );
    // Other bases do not depend on consent, and still name their basis.
    let (s, _) = h.read(&h.k.officer, &id, "admission").await;
    assert_eq!(s, StatusCode::OK);
    let last = h.audit().await.into_iter().last().unwrap();
    assert_eq!(last["basis"], "contract");
    // Writes under the purpose stop too.
    let (s, v) = h
        .call(
            Method::PATCH,
            &format!("/v1/subjects/{id}?purpose=marketing"),
            &h.k.marketer,
            Some(json!({"fields": {"full_name": "New Name"}})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");

    let (s, hist) = h
        .get(&format!("/v1/subjects/{id}/consents"), &h.k.marketer)
        .await;
    assert_eq!(s, StatusCode::OK);
    let history = hist["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["granted"], true);
    assert_eq!(history[1]["granted"], false);
    assert!(
        history[0].get("evidence").is_none(),
        "only the admin sees evidence"
    );
    assert_eq!(state(&hist, "marketing")["state"], "withdrawn");
    assert!(
        hist["current"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["purpose"] != "research"),
        "a role sees only the purposes it holds"
    );
    let (_, hist) = h
        .get(&format!("/v1/subjects/{id}/consents"), &h.k.admin)
        .await;
    assert_eq!(hist["history"][0]["evidence"], "form #1");
    assert_eq!(state(&hist, "research")["state"], "none");
}

async fn with_a_grace_period_processing_stops_when_it_ends(kind: Kind) {
    let h = start(kind, 2).await;
    let id = h.adult(1).await;
    h.grant(&id, &["email"]).await;
    h.withdraw(&id).await;
    let (s, _) = h.read(&h.k.marketer, &id, "marketing").await;
    assert_eq!(s, StatusCode::OK, "inside the grace period");
    let (_, hist) = h
        .get(&format!("/v1/subjects/{id}/consents"), &h.k.marketer)
        .await;
    let st = state(&hist, "marketing");
    assert_eq!(st["state"], "withdrawal_pending");
    assert_eq!(st["processing_stops_at"], "2026-11-25T03:00:00Z");
    // Contact stops at once, whatever the grace period.
    assert!(h
        .contactable(&h.k.marketer, "channel=email")
        .await
        .is_empty());

    h.clock.advance(Duration::days(2) - Duration::seconds(1));
    let (s, _) = h.read(&h.k.marketer, &id, "marketing").await;
    assert_eq!(s, StatusCode::OK);
    h.clock.advance(Duration::seconds(1));
    let (s, v) = h.read(&h.k.marketer, &id, "marketing").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(v["detail"]
        .as_str()
        .unwrap()
        .contains("withdrawn on 2026-11-23"));

    // Consenting again restores access.
    h.grant(&id, &["email"]).await;
    let (s, _) = h.read(&h.k.marketer, &id, "marketing").await;
    assert_eq!(s, StatusCode::OK);
}

async fn a_child_under_the_minimum_age_cannot_be_created(kind: Kind) {
    let h = start(kind, 0).await;
    let before = h.audit().await.len();
    let (s, v) = h
        .post(
            "/v1/subjects?purpose=admission",
            &h.k.clerk,
            json!({"fields": {"full_name": "Kid", "email": "kid@example.id", "birth_date": "2014-01-01"}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "birth_date");
    assert!(v["detail"].as_str().unwrap().contains("minimum_age"), "{v}");
    assert!(
        !v.to_string().contains("2014"),
        "no value in the error: {v}"
    );
    // Nothing stored: the email is free, and no create was recorded.
    let (s, found) = h
        .get(
            "/v1/subjects?purpose=admission&email=kid@example.id",
            &h.k.clerk,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(found["subjects"].as_array().unwrap().is_empty());
    let audit = h.audit().await;
    assert!(audit[before..]
        .iter()
        .all(|e| e["action"] != "subject.create"));
    // Thirteen today is old enough.
    let id = h
        .create(
            &h.k.clerk,
            json!({"full_name": "Teen", "birth_date": "2013-11-23"}),
        )
        .await;
    assert!(!id.is_empty());
}

async fn a_minor_needs_a_guardian_and_a_role_cleared_for_specific_data(kind: Kind) {
    let h = start(kind, 0).await;
    let minor = json!({"full_name": "Ani", "email": "ani@example.id", "birth_date": "2010-06-15"});
    // A child's data is specific data: a role without that clearance cannot collect it.
    let (s, v) = h
        .post(
            "/v1/subjects?purpose=admission",
            &h.k.officer,
            json!({ "fields": minor }),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("minor"), "{v}");
    let id = h.create(&h.k.clerk, minor).await;
    let (s, _) = h.read(&h.k.officer, &id, "admission").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = h.read(&h.k.clerk, &id, "admission").await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // The minor alone cannot consent.
    let (s, v) = h
        .consent(
            &h.k.clerk,
            &id,
            json!({"purpose": "marketing", "granted": true, "channel": "web_form", "evidence": "ticked box",
                   "given_by": "subject", "contact_channels": ["email"]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("guardian consent required"),
        "{v}"
    );
    let audit = h.audit().await;
    let refused = audit.last().unwrap();
    assert_eq!(refused["action"], "consent.grant");
    assert_eq!(refused["outcome"], "denied");

    // A guardian who is a minor cannot act either.
    let young = h
        .create(
            &h.k.clerk,
            json!({"full_name": "Sibling", "birth_date": "2011-01-01"}),
        )
        .await;
    let (s, v) = h
        .consent(
            &h.k.clerk,
            &id,
            json!({"purpose": "marketing", "granted": true, "channel": "web_form", "evidence": "form",
                   "given_by": "guardian", "guardian": {"subject_id": young}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    // A parent recorded by their details, with evidence.
    let (s, v) = h
        .consent(
            &h.k.clerk,
            &id,
            json!({"purpose": "marketing", "granted": true, "channel": "paper", "evidence": "signed form 77",
                   "given_by": "guardian",
                   "guardian": {"name": "Wombatia Parentis", "relationship": "mother", "contact": "+62 812 0000 1111"},
                   "contact_channels": ["email"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["consent"]["given_by"], "guardian");
    assert!(!v.to_string().contains("Wombatia"));
    let (s, _) = h.read(&h.k.clerk, &id, "marketing").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = h.read(&h.k.marketer, &id, "marketing").await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "the marketer is not cleared for a child's data"
    );
    assert!(h
        .contactable(&h.k.marketer, "channel=email")
        .await
        .is_empty());
    assert_eq!(
        h.contactable(&h.k.clerk, "channel=email").await,
        std::slice::from_ref(&id)
    );
    let (_, hist) = h
        .get(&format!("/v1/subjects/{id}/consents"), &h.k.admin)
        .await;
    assert_eq!(hist["minor"], true);
    assert_eq!(hist["history"][0]["guardian"]["name"], "Wombatia Parentis");

    // Coming of age: the guardian's consent stays valid, and the subject now acts alone.
    h.clock.set(datetime!(2028-06-15 00:00 UTC));
    let (s, _) = h.read(&h.k.marketer, &id, "marketing").await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = h
        .consent(
            &h.k.marketer,
            &id,
            json!({"purpose": "marketing", "granted": true, "channel": "web_form", "evidence": "app toggle",
                   "contact_channels": ["email", "whatsapp"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // ... and a guardian may no longer decide for an adult who has none linked.
    let (s, _) = h
        .consent(
            &h.k.marketer,
            &id,
            json!({"purpose": "marketing", "granted": false, "channel": "paper", "given_by": "guardian",
                   "guardian": {"name": "Wombatia Parentis", "relationship": "mother"}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn a_purpose_change_makes_consents_stale_until_given_again(kind: Kind) {
    let h = start(kind, 0).await;
    let a = h.adult(1).await;
    let b = h.adult(2).await;
    let c = h.adult(3).await;
    for id in [&a, &b, &c] {
        h.grant(id, &["email"]).await;
    }
    let (_, v) = h
        .get("/v1/consents/stale?purpose=marketing", &h.k.marketer)
        .await;
    assert!(v["subjects"].as_array().unwrap().is_empty(), "{v}");

    // Same purpose text under a new policy version: consents stay valid.
    h.apply_policy(&test_policy("v1.1", 0)).await;
    let (s, _) = h.read(&h.k.marketer, &a, "marketing").await;
    assert_eq!(s, StatusCode::OK);

    // The purpose now covers the phone number: everyone must be asked again.
    h.apply_policy(&marketing_with_phone("v2")).await;
    let (s, v) = h.read(&h.k.marketer, &a, "marketing").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("consent predates policy version \"v2\""),
        "{v}"
    );
    assert!(h
        .contactable(&h.k.marketer, "channel=email")
        .await
        .is_empty());

    let (s, page1) = h
        .get(
            "/v1/consents/stale?purpose=marketing&limit=2",
            &h.k.marketer,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page1["subjects"].as_array().unwrap().len(), 2);
    assert_eq!(page1["subjects"][0]["policy_version"], "v1");
    let next = page1["next"].as_str().unwrap();
    let (_, page2) = h
        .get(
            &format!("/v1/consents/stale?purpose=marketing&limit=2&after={next}"),
            &h.k.marketer,
        )
        .await;
    assert_eq!(page2["subjects"].as_array().unwrap().len(), 1);
    assert!(page2.get("next").is_none());
    let mut all: Vec<String> = page1["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["subjects"].as_array().unwrap())
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    all.sort();
    assert_eq!(all, sorted(vec![a.clone(), b.clone(), c.clone()]));

    h.grant(&a, &["email"]).await;
    let (s, _) = h.read(&h.k.marketer, &a, "marketing").await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = h
        .get("/v1/consents/stale?purpose=marketing", &h.k.marketer)
        .await;
    let ids: Vec<&str> = v["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&a.as_str()) && ids.len() == 2, "{v}");
    assert_eq!(
        h.contactable(&h.k.marketer, "channel=email").await,
        std::slice::from_ref(&a)
    );

    // Only roles holding the purpose may list, and only consent purposes have consents.
    let (s, _) = h
        .get("/v1/consents/stale?purpose=research", &h.k.marketer)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = h
        .get("/v1/consents/stale?purpose=admission", &h.k.officer)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, _) = h.get("/v1/consents/stale", &h.k.marketer).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

async fn contact_lists_exclude_withdrawn_stale_and_wrong_channel_subjects(kind: Kind) {
    let h = start(kind, 3).await;
    let email = h.adult(1).await;
    let whatsapp = h.adult(2).await;
    let withdrawn = h.adult(3).await;
    let never = h.adult(4).await;
    let both = h.adult(5).await;
    h.grant(&email, &["email"]).await;
    h.grant(&whatsapp, &["whatsapp"]).await;
    h.grant(&withdrawn, &["email", "whatsapp"]).await;
    h.withdraw(&withdrawn).await;
    h.grant(&both, &["whatsapp", "email"]).await;
    let _ = never;

    let before = h.audit().await.len();
    assert_eq!(
        sorted(h.contactable(&h.k.marketer, "channel=email").await),
        sorted(vec![email.clone(), both.clone()])
    );
    assert_eq!(
        sorted(h.contactable(&h.k.marketer, "channel=whatsapp").await),
        sorted(vec![whatsapp.clone(), both.clone()])
    );
    assert!(h.contactable(&h.k.marketer, "channel=sms").await.is_empty());
    // One audit entry per listing, plus ours.
    let audit = h.audit().await;
    let listings: Vec<&Value> = audit[before..]
        .iter()
        .filter(|e| e["action"] == "consent.contactable")
        .collect();
    assert_eq!(listings.len(), 3);
    assert_eq!(
        listings[0]["reason"],
        "2 subjects contactable on channel email"
    );
    assert_eq!(listings[0]["purpose"], "marketing");

    // Paging.
    let (_, p1) = h
        .get(
            "/v1/contactable?purpose=marketing&channel=email&limit=1",
            &h.k.marketer,
        )
        .await;
    let first = strings(&p1["subjects"]);
    assert_eq!(first.len(), 1);
    let (_, p2) = h
        .get(
            &format!(
                "/v1/contactable?purpose=marketing&channel=email&limit=1&after={}",
                p1["next"].as_str().unwrap()
            ),
            &h.k.marketer,
        )
        .await;
    let second = strings(&p2["subjects"]);
    assert_eq!(
        sorted([first, second].concat()),
        sorted(vec![email.clone(), both.clone()])
    );

    // A channel the purpose does not use, a purpose not granted, a bad parameter.
    let (s, v) = h
        .get(
            "/v1/contactable?purpose=marketing&channel=post",
            &h.k.marketer,
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "channel");
    let (s, _) = h
        .get(
            "/v1/contactable?purpose=research&channel=email",
            &h.k.marketer,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = h
        .get(
            "/v1/contactable?purpose=marketing&channel=email&limit=0",
            &h.k.marketer,
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = h
        .get(
            "/v1/contactable?purpose=marketing&channel=email&colour=red",
            &h.k.marketer,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

async fn consent_requests_are_validated(kind: Kind) {
    let h = start(kind, 0).await;
    let id = h.adult(1).await;
    let base =
        json!({"purpose": "marketing", "granted": true, "channel": "web_form", "evidence": "form"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (body, field) in [
        (with("purpose", json!("astrology")), "purpose"),
        (with("purpose", json!("admission")), "purpose"),
        (with("channel", json!("Web Form!")), "channel"),
        (with("given_by", json!("neighbour")), "given_by"),
        (
            with("contact_channels", json!(["post"])),
            "contact_channels",
        ),
        (with("guardian", json!({"subject_id": id})), "guardian"),
        (
            base.as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k != "evidence")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            "evidence",
        ),
    ] {
        let (s, v) = h.consent(&h.k.officer, &id, body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
    }
    let (_, v) = h
        .consent(&h.k.officer, &id, with("purpose", json!("admission")))
        .await;
    assert!(
        v["detail"].as_str().unwrap().contains("\"contract\""),
        "{v}"
    );
    let (s, _) = h
        .consent(&h.k.officer, "no-such-subject", base.clone())
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = h
        .consent(&h.k.officer, &id, with("surprise", json!(1)))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = h
        .consent(&h.k.marketer, &id, with("purpose", json!("research")))
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "the marketer does not hold research"
    );
    let (s, hist) = h
        .get(&format!("/v1/subjects/{id}/consents"), &h.k.admin)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        hist["history"].as_array().unwrap().is_empty(),
        "nothing recorded: {hist}"
    );

    // Collecting data under a consent purpose needs the consent with it.
    let (s, v) = h
        .post(
            "/v1/subjects?purpose=marketing",
            &h.k.marketer,
            json!({"fields": {"email": "new@example.id"}}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["type"], "urn:amanah:problem:consent-required");
    let (s, v) = h
        .post(
            "/v1/subjects?purpose=marketing",
            &h.k.marketer,
            json!({"fields": {"email": "new@example.id"},
                   "consent": {"granted": true, "channel": "landing_page", "evidence": "double opt-in 9",
                               "contact_channels": ["email"]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["consent_receipt"]["purpose"], "marketing");
    let new_id = v["id"].as_str().unwrap();
    assert_eq!(
        h.contactable(&h.k.marketer, "channel=email").await,
        [new_id.to_owned()]
    );
    let (s, _) = h.read(&h.k.marketer, new_id, "marketing").await;
    assert_eq!(s, StatusCode::OK);
    // A consent cannot ride along with data collected under another basis.
    let (s, _) = h
        .post(
            "/v1/subjects?purpose=admission",
            &h.k.officer,
            json!({"fields": {"email": "x@example.id"},
                   "consent": {"granted": true, "channel": "web_form", "evidence": "e"}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn relations_link_subjects_and_let_a_linked_guardian_act(kind: Kind) {
    let h = start(kind, 0).await;
    let applicant = h.adult(1).await;
    let parent = h.adult(2).await;
    let (s, v) = h
        .post(
            &format!("/v1/subjects/{applicant}/relations"),
            &h.k.officer,
            json!({"kind": "parent", "subject_id": parent, "evidence": "listed by the applicant on form A-12"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["kind"], "parent");
    assert!(v.get("evidence").is_none());
    for who in [&applicant, &parent] {
        let (s, v) = h
            .get(&format!("/v1/subjects/{who}/relations"), &h.k.officer)
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["relations"][0]["related_subject_id"], parent.as_str());
    }
    let (_, v) = h
        .get(&format!("/v1/subjects/{parent}/relations"), &h.k.admin)
        .await;
    assert_eq!(
        v["relations"][0]["evidence"],
        "listed by the applicant on form A-12"
    );

    for (body, status) in [
        (
            json!({"kind": "cousin", "subject_id": parent}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"kind": "parent", "subject_id": applicant}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"kind": "parent", "subject_id": "nobody"}),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (s, v) = h
            .post(
                &format!("/v1/subjects/{applicant}/relations"),
                &h.k.officer,
                body,
            )
            .await;
        assert_eq!(s, status, "{v}");
    }

    // An adult's consent comes from a guardian only when one is linked as guardian.
    let guardian_consent = json!({"purpose": "marketing", "granted": true, "channel": "paper", "evidence": "court order 5",
                                  "given_by": "guardian", "guardian": {"subject_id": parent}});
    let (s, _) = h
        .consent(&h.k.officer, &applicant, guardian_consent.clone())
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = h
        .post(
            &format!("/v1/subjects/{applicant}/relations"),
            &h.k.officer,
            json!({"kind": "guardian", "subject_id": parent, "evidence": "court order 5"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = h.consent(&h.k.officer, &applicant, guardian_consent).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["consent"]["guardian_subject_id"], parent.as_str());
}

async fn evidence_and_guardian_details_stay_encrypted(kind: Kind) {
    let h = start(kind, 0).await;
    let id = h
        .create(
            &h.k.clerk,
            json!({"full_name": "Budi", "birth_date": "2009-02-02"}),
        )
        .await;
    let evidence = "EvidenceMarkerQuokka";
    let guardian = "GuardianMarkerNumbat";
    let (s, _) = h
        .consent(
            &h.k.clerk,
            &id,
            json!({"purpose": "marketing", "granted": true, "channel": "paper", "evidence": evidence,
                   "given_by": "guardian", "guardian": {"name": guardian, "relationship": "father"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let other = h.adult(2).await;
    let relation_evidence = "RelationMarkerBilby";
    let (s, _) = h
        .post(
            &format!("/v1/subjects/{id}/relations"),
            &h.k.clerk,
            json!({"kind": "emergency_contact", "subject_id": other, "evidence": relation_evidence}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let audit = serde_json::to_string(&h.audit().await).unwrap();
    let mut files = vec![("audit".to_owned(), audit.into_bytes())];
    let mut at_rest: Vec<_> = std::fs::read_dir(h.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    if let Some(url) = &h.pg_url {
        at_rest.extend(amanah_testkit::cluster().database_files(url));
    }
    for p in at_rest {
        // A file may vanish meanwhile (a recycled log segment of the shared cluster).
        if let Ok(bytes) = std::fs::read(&p) {
            files.push((p.display().to_string(), bytes));
        }
    }
    for (name, bytes) in &files {
        for marker in [evidence, guardian, relation_evidence] {
            assert!(
                memchr::memmem::find(bytes, marker.as_bytes()).is_none(),
                "{name} holds {marker}"
            );
        }
    }
}
