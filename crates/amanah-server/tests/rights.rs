//! Data-subject rights over HTTP (the real router, a real SQLite store, a manual clock):
//! requests and deadlines, export, restriction, holds, erasure and retention sweeps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use amanah_testkit::on_both_stores;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{start, Kind};
use time::Duration;

on_both_stores!(
    requests_move_through_their_states_and_become_overdue,
    rectification_can_answer_a_request,
    export_holds_everything_in_json_and_csv,
    restriction_stops_reads_except_admin_under_a_restricted_use_purpose,
    erasure_shreds_the_subject_unless_a_legal_hold_runs,
    retention_sweeps_erase_what_no_purpose_needs,
);

async fn request(h: &support::Harness, subject: &str, kind: &str) -> Value {
    let (s, v) = h
        .post(
            "/v1/requests",
            &h.k.dpo,
            json!({"subject_id": subject, "type": kind, "details": {"channel": "email", "note": "DetailMarkerKiwi"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

async fn patch(h: &support::Harness, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
    h.call(Method::PATCH, path, key, Some(body)).await
}

async fn delete(h: &support::Harness, path: &str, key: &str) -> (StatusCode, Value) {
    h.call(Method::DELETE, path, key, None).await
}

async fn requests_move_through_their_states_and_become_overdue(kind: Kind) {
    let h = start(kind, 0).await;
    let id = h.adult(1).await;
    let r = request(&h, &id, "access").await;
    assert_eq!(r["status"], "received");
    assert_eq!(r["received_at"], "2026-11-23T03:00:00Z");
    assert_eq!(r["due_at"], "2026-11-26T03:00:00Z", "3 x 24 hours");
    assert_eq!(r["overdue"], false);
    let rid = r["id"].as_str().unwrap();

    // Only the admin or the DPO handles requests.
    let (s, _) = h
        .post(
            "/v1/requests",
            &h.k.officer,
            json!({"subject_id": id, "type": "access"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for (body, status) in [
        (
            json!({"subject_id": id, "type": "teleport"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"subject_id": "nobody", "type": "access"}),
            StatusCode::NOT_FOUND,
        ),
        (json!({"subject_id": id}), StatusCode::BAD_REQUEST),
    ] {
        let (s, v) = h.post("/v1/requests", &h.k.dpo, body).await;
        assert_eq!(s, status, "{v}");
    }

    let (_, open) = h.get("/v1/requests?status=open", &h.k.dpo).await;
    assert_eq!(open["requests"].as_array().unwrap().len(), 1);
    let (_, overdue) = h
        .get("/v1/requests?status=open&overdue=true", &h.k.dpo)
        .await;
    assert!(overdue["requests"].as_array().unwrap().is_empty());
    h.clock.advance(Duration::hours(72) + Duration::seconds(1));
    let (_, overdue) = h
        .get("/v1/requests?status=open&overdue=true", &h.k.dpo)
        .await;
    let items = overdue["requests"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], rid);
    assert_eq!(items[0]["overdue"], true);
    assert!(
        items[0].get("details").is_none(),
        "listings carry no details"
    );
    let (_, one) = h.get(&format!("/v1/requests/{rid}"), &h.k.dpo).await;
    assert_eq!(one["details"]["note"], "DetailMarkerKiwi");

    let path = format!("/v1/requests/{rid}");
    let (s, v) = patch(&h, &path, &h.k.dpo, json!({"status": "completed"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "work starts first: {v}");
    assert_eq!(v["type"], "urn:amanah:problem:invalid-transition");
    let (s, v) = patch(&h, &path, &h.k.dpo, json!({"status": "in_progress"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "in_progress");
    let (s, v) = patch(&h, &path, &h.k.dpo, json!({"status": "refused"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v) = patch(
        &h,
        &path,
        &h.k.dpo,
        json!({"status": "refused", "refusal": {"reason": "because", "explanation": "x"}}),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"]
        .as_str()
        .unwrap()
        .contains("unverifiable_identity"));
    let (s, v) = patch(
        &h,
        &path,
        &h.k.dpo,
        json!({"status": "refused", "refusal": {"reason": "unverifiable_identity",
               "explanation": "The e-mail address does not match the account."}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["refusal"]["reason"], "unverifiable_identity");
    assert_eq!(
        v["refusal"]["explanation"],
        "The e-mail address does not match the account."
    );
    assert_eq!(v["closed_at"], "2026-11-26T03:00:01Z");
    let (s, _) = patch(&h, &path, &h.k.dpo, json!({"status": "in_progress"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "refused is final");
    let (_, open) = h.get("/v1/requests?status=open", &h.k.dpo).await;
    assert!(open["requests"].as_array().unwrap().is_empty());
    let (_, closed) = h.get("/v1/requests?status=refused", &h.k.dpo).await;
    assert_eq!(closed["requests"].as_array().unwrap().len(), 1);

    // Every transition is audited, without the texts.
    let audit = h.audit().await;
    let actions: Vec<&str> = audit
        .iter()
        .filter(|e| {
            e["subject"] == id.as_str() && e["action"].as_str().unwrap().starts_with("request.")
        })
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.iter().filter(|a| **a == "request.update").count() >= 2,
        "{actions:?}"
    );
    let text = serde_json::to_string(&audit).unwrap();
    assert!(!text.contains("DetailMarkerKiwi") && !text.contains("does not match"));
}

async fn rectification_can_answer_a_request(kind: Kind) {
    let h = start(kind, 0).await;
    let id = h.adult(1).await;
    let r = request(&h, &id, "rectification").await;
    let rid = r["id"].as_str().unwrap();
    let path = format!("/v1/subjects/{id}?purpose=admission&request={rid}");
    let (s, v) = patch(
        &h,
        &path,
        &h.k.officer,
        json!({"fields": {"full_name": "Corrected Name"}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let last = h.audit().await.into_iter().last().unwrap();
    assert_eq!(last["action"], "subject.rectify");
    assert_eq!(last["reason"], format!("rectification for request {rid}"));
    let access = request(&h, &id, "access").await;
    let path = format!(
        "/v1/subjects/{id}?purpose=admission&request={}",
        access["id"].as_str().unwrap()
    );
    let (s, _) = patch(
        &h,
        &path,
        &h.k.officer,
        json!({"fields": {"full_name": "Other"}}),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not a rectification request"
    );
}

async fn export_holds_everything_in_json_and_csv(kind: Kind) {
    let h = start(kind, 0).await;
    let id = h.adult(1).await;
    let parent = h.adult(2).await;
    h.grant(&id, &["email"]).await;
    let (s, _) = h
        .post(
            &format!("/v1/subjects/{id}/relations"),
            &h.k.officer,
            json!({"kind": "parent", "subject_id": parent}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = h.read(&h.k.marketer, &id, "marketing").await;
    assert_eq!(s, StatusCode::OK);

    let (s, _) = h
        .get(&format!("/v1/subjects/{id}/export"), &h.k.officer)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, e) = h.get(&format!("/v1/subjects/{id}/export"), &h.k.dpo).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["format"], "amanah-export/1");
    assert_eq!(e["fields"]["email"], "p1@example.id");
    assert_eq!(e["fields"]["birth_date"], "1990-05-01");
    assert_eq!(e["controller"]["name"], "Universitas Contoh");
    let purposes: Vec<&str> = e["purposes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["purpose"].as_str().unwrap())
        .collect();
    // The marketing consent enrolled the subject in marketing too.
    assert_eq!(purposes, ["admission", "marketing"]);
    assert_eq!(e["purposes"][0]["basis"], "contract");
    assert_eq!(e["consents"][0]["purpose"], "marketing");
    assert_eq!(e["consents"][0]["evidence"], "form #1");
    assert_eq!(e["relations"][0]["related_subject_id"], parent.as_str());
    let trail = e["processing"].as_array().unwrap();
    assert!(trail.iter().any(|t| t["action"] == "subject.read"
        && t["purpose"] == "marketing"
        && t["role"] == "marketer"));
    assert!(trail.iter().any(|t| t["action"] == "subject.create"));
    let last = h.audit().await.into_iter().last().unwrap();
    assert_eq!(last["action"], "subject.export");
    assert_eq!(last["subject"], id.as_str());

    let resp = h
        .client
        .get(format!("{}/v1/subjects/{id}/export?format=csv", h.base))
        .header("authorization", format!("Bearer {}", h.k.dpo))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = resp.text().await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("section,item,value"));
    assert!(
        csv.lines().any(|l| l == "fields,email,p1@example.id"),
        "{csv}"
    );
    assert!(csv.lines().any(|l| l.starts_with("consents,")), "{csv}");
    let (s, _) = h
        .get(&format!("/v1/subjects/{id}/export?format=xml"), &h.k.dpo)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

async fn restriction_stops_reads_except_admin_under_a_restricted_use_purpose(kind: Kind) {
    let h = start(kind, 0).await;
    let id = h.adult(1).await;
    h.grant(&id, &["email"]).await;
    // Legal claims may use the applicant's data (compatible with admission).
    let (s, v) = h.enroll(&h.k.admin, &id, "legal_claims").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _) = h
        .post(
            &format!("/v1/subjects/{id}/restriction"),
            &h.k.officer,
            json!({"reason": "accuracy contested"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the DPO restricts");
    let (s, v) = h
        .post(
            &format!("/v1/subjects/{id}/restriction"),
            &h.k.dpo,
            json!({"reason": "accuracy contested"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v) = h.read(&h.k.officer, &id, "admission").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("restricted since 2026-11-23"),
        "{v}"
    );
    let (s, _) = h.read(&h.k.admin, &id, "admission").await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "admission is not marked restricted_use"
    );
    let (s, v) = h.read(&h.k.admin, &id, "legal_claims").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, found) = h
        .get(
            "/v1/subjects?purpose=admission&email=p1@example.id",
            &h.k.officer,
        )
        .await;
    assert!(found["subjects"].as_array().unwrap().is_empty());
    assert!(h
        .contactable(&h.k.marketer, "channel=email")
        .await
        .is_empty());
    let (_, e) = h.get(&format!("/v1/subjects/{id}/export"), &h.k.dpo).await;
    assert_eq!(e["restriction"]["reason"], "accuracy contested");

    let (s, _) = delete(&h, &format!("/v1/subjects/{id}/restriction"), &h.k.dpo).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = delete(&h, &format!("/v1/subjects/{id}/restriction"), &h.k.dpo).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = h.read(&h.k.officer, &id, "admission").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h.contactable(&h.k.marketer, "channel=email").await,
        std::slice::from_ref(&id)
    );
}

async fn erasure_shreds_the_subject_unless_a_legal_hold_runs(kind: Kind) {
    let h = start(kind, 0).await;
    let id = h.adult(1).await;
    let other = h.adult(2).await;
    let (s, v) = h
        .post(
            &format!("/v1/subjects/{id}/holds"),
            &h.k.dpo,
            json!({"reason": "court case 12/PDT/2026", "until": "2026-12-01"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let hold = v["id"].as_str().unwrap().to_owned();
    for body in [
        json!({"reason": "r", "until": "2026-11-01"}),
        json!({"reason": "r", "until": "soon"}),
    ] {
        let (s, _) = h
            .post(&format!("/v1/subjects/{id}/holds"), &h.k.dpo, body)
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let path = format!("/v1/subjects/{id}");
    let (s, _) = delete(&h, &path, &h.k.officer).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = delete(&h, &path, &h.k.dpo).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["type"], "urn:amanah:problem:legal-hold-active");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("court case 12/PDT/2026"),
        "{v}"
    );
    let (s, _) = h.read(&h.k.officer, &id, "admission").await;
    assert_eq!(s, StatusCode::OK, "the refusal changed nothing");

    // The hold runs through its last day, then erasure goes ahead.
    h.clock.set(time::macros::datetime!(2026-12-01 23:00 UTC));
    let (s, _) = delete(&h, &path, &h.k.dpo).await;
    assert_eq!(s, StatusCode::CONFLICT);
    h.clock.set(time::macros::datetime!(2026-12-02 00:00 UTC));
    let r = request(&h, &id, "erasure").await;
    let rid = r["id"].as_str().unwrap();
    let (s, v) = delete(&h, &format!("{path}?request={rid}"), &h.k.dpo).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let _ = hold;

    let (s, v) = h.read(&h.k.officer, &id, "admission").await;
    assert_eq!(s, StatusCode::GONE, "{v}");
    assert!(v["detail"]
        .as_str()
        .unwrap()
        .contains("erased on 2026-12-02"));
    let (s, _) = delete(&h, &path, &h.k.dpo).await;
    assert_eq!(s, StatusCode::GONE);
    let (s, _) = h.get(&format!("/v1/subjects/{id}/export"), &h.k.dpo).await;
    assert_eq!(s, StatusCode::GONE);
    let (_, found) = h
        .get(
            "/v1/subjects?purpose=admission&email=p1@example.id",
            &h.k.officer,
        )
        .await;
    assert!(found["subjects"].as_array().unwrap().is_empty());
    // The unique email is free again; the other subject is untouched.
    h.create(
        &h.k.officer,
        json!({"full_name": "New", "email": "p1@example.id"}),
    )
    .await;
    let (s, _) = h.read(&h.k.officer, &other, "admission").await;
    assert_eq!(s, StatusCode::OK);
    // The request survives the erasure, and the chain still verifies.
    let (s, v) = h.get(&format!("/v1/requests/{rid}"), &h.k.dpo).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v.get("details").is_none(),
        "its sealed details went with the key"
    );
    let (_, verify) = h.get("/v1/audit/verify", &h.k.admin).await;
    assert_eq!(verify["ok"], true, "{verify}");

    // Releasing a hold.
    let (s, v) = h
        .post(
            &format!("/v1/subjects/{other}/holds"),
            &h.k.dpo,
            json!({"reason": "audit", "until": "2030-01-01"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let hold = v["id"].as_str().unwrap();
    let (s, _) = delete(&h, &format!("/v1/subjects/{other}/holds/{hold}"), &h.k.dpo).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, holds) = h
        .get(&format!("/v1/subjects/{other}/holds"), &h.k.dpo)
        .await;
    assert_eq!(holds["holds"][0]["active"], false);
    let (s, _) = delete(&h, &format!("/v1/subjects/{other}"), &h.k.dpo).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
}

async fn retention_sweeps_erase_what_no_purpose_needs(kind: Kind) {
    let h = start(kind, 0).await;
    // Collected under marketing only (2 years), with consent.
    let (s, v) = h
        .post(
            "/v1/subjects?purpose=marketing",
            &h.k.marketer,
            json!({"fields": {"full_name": "Lead", "email": "lead@example.id"},
                   "consent": {"granted": true, "channel": "web_form", "evidence": "e", "contact_channels": ["email"]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let lead = v["id"].as_str().unwrap().to_owned();
    // Admission (5 years, then de-identified) and marketing: marketing's categories are also
    // admission's, so nothing goes when marketing ends.
    let applicant = h
        .create(&h.k.officer, json!({"full_name": "Applicant", "email": "app@example.id", "birth_date": "1990-05-01", "nik": "3174096512990007"}))
        .await;
    h.grant(&applicant, &["email"]).await;
    // Account runs from the end of the relationship.
    let customer = h
        .create(&h.k.officer, json!({"email": "cust@example.id"}))
        .await;
    let (s, v) = h.enroll(&h.k.admin, &customer, "account").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let held = h
        .create(&h.k.officer, json!({"email": "held@example.id"}))
        .await;
    let (s, _) = h
        .post(
            &format!("/v1/subjects/{held}/holds"),
            &h.k.dpo,
            json!({"reason": "tax audit", "until": "2040-01-01"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);

    let (s, r) = h
        .post("/v1/retention/sweep?dry_run=true", &h.k.dpo, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["examined"], 4);
    assert!(r["items"].as_array().unwrap().is_empty(), "{r}");

    h.clock.advance(Duration::days(2 * 366));
    let (_, r) = h
        .post("/v1/retention/sweep?dry_run=true", &h.k.dpo, json!({}))
        .await;
    let items = r["items"].as_array().unwrap();
    let item = items
        .iter()
        .find(|i| i["subject_id"] == lead.as_str())
        .unwrap();
    assert_eq!(item["action"], "erase_subject");
    assert_eq!(item["expired_purposes"], json!(["marketing"]));
    let (s, v) = h.read(&h.k.admin, &lead, "marketing").await;
    assert_eq!(s, StatusCode::OK, "a dry run changes nothing: {v}");
    let (s, r) = h.post("/v1/retention/sweep", &h.k.dpo, json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["dry_run"], false);
    let (s, _) = h.read(&h.k.admin, &lead, "marketing").await;
    assert_eq!(s, StatusCode::GONE);
    let (s, v) = h.read(&h.k.officer, &applicant, "admission").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["fields"]["full_name"], "Applicant");

    // The customer's relationship ends: 30 days later the account data goes, and admission
    // still holds the email.
    let (s, _) = h
        .post(&format!("/v1/subjects/{customer}/end"), &h.k.dpo, json!({}))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    h.clock.advance(Duration::days(31));
    let (_, r) = h.post("/v1/retention/sweep", &h.k.dpo, json!({})).await;
    let item = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["subject_id"] == customer.as_str())
        .unwrap()
        .clone();
    assert_eq!(item["action"], "erase_categories", "{r}");
    assert_eq!(item["expired_purposes"], json!(["account"]));
    let (s, _) = h.read(&h.k.officer, &customer, "admission").await;
    assert_eq!(s, StatusCode::OK);

    // Five years on, admission ends: de-identified, except the held subject.
    h.clock.advance(Duration::days(5 * 366));
    let (_, r) = h.post("/v1/retention/sweep", &h.k.dpo, json!({})).await;
    let items = r["items"].as_array().unwrap();
    let of = |id: &str| {
        items
            .iter()
            .find(|i| i["subject_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(of(&applicant)["action"], "deidentify");
    assert_eq!(of(&held)["held_until"], "2040-01-01");
    let (s, _) = h.read(&h.k.officer, &applicant, "admission").await;
    assert_eq!(s, StatusCode::GONE);
    let (s, _) = h.read(&h.k.officer, &held, "admission").await;
    assert_eq!(s, StatusCode::OK, "a hold suspends the sweep");
    let audit = h.audit().await;
    assert!(audit
        .iter()
        .any(|e| e["action"] == "retention.apply" && e["subject"] == applicant.as_str()));
    assert!(audit.iter().any(|e| e["action"] == "retention.sweep"));
    let (s, _) = h.post("/v1/retention/sweep", &h.k.officer, json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}
