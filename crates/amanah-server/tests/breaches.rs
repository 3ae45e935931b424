//! The breach register over HTTP with the real store and an injected clock: the 72-hour
//! deadline, overdue listings and gauges, notices per subject and for the agency in Bahasa
//! Indonesia and English, marking them sent; and the record of processing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use amanah_testkit::on_both_stores;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{start_metered, Kind};

on_both_stores!(breach_deadlines_notices_and_the_record_of_processing);

/// The gauges are process-wide: the two stores' runs take turns.
static GAUGES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn gauge(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The gauges after the server's periodic metrics task has run (a scrape reads no counts).
async fn metrics(h: &support::Harness) -> String {
    h.metrics_upkeep().await;
    h.scrape().await
}

/// One test: the gauges are process-wide, so no other test of this binary may move them.
async fn breach_deadlines_notices_and_the_record_of_processing(kind: Kind) {
    let _turn = GAUGES.lock().await;
    let h = start_metered(kind, 0).await;
    let ani = h
        .create(
            &h.k.officer,
            json!({"full_name": "Ani Lestari", "email": "ani@example.id", "phone": "+62 812-3456-7890"}),
        )
        .await;
    let budi = h.adult(2).await;

    // Recorded by the DPO one hour after detection; due 72 hours after detection.
    let body = json!({"detected_at": "2026-11-23T02:00:00Z",
                      "description": "A misconfigured export job wrote a file to a public bucket.",
                      "categories": ["email", "phone"], "subject_ids": [ani, budi],
                      "cause": "a storage permission set by mistake.",
                      "measures": "The bucket was closed, the file deleted and access logs reviewed."});
    let (s, _) = h.post("/v1/breaches", &h.k.officer, body.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the DPO's register");
    let (s, b) = h.post("/v1/breaches", &h.k.dpo, body).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["notify_by"], "2026-11-26T02:00:00Z");
    assert_eq!(b["overdue"], false);
    let id = b["id"].as_str().unwrap().to_owned();

    // Bad reports.
    let (s, v) = h
        .post(
            "/v1/breaches",
            &h.k.dpo,
            json!({"detected_at": "2026-11-24T00:00:00Z", "description": "d", "categories": ["email"],
                   "all_subjects": true, "cause": "c", "measures": "m"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "future: {v}");
    let (s, v) = h
        .post(
            "/v1/breaches",
            &h.k.dpo,
            json!({"detected_at": "2026-11-23T00:00:00Z", "description": "d", "categories": ["iban"],
                   "all_subjects": true, "cause": "c", "measures": "m"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("iban"));

    // Not overdue until the deadline has passed.
    h.clock.set(time::macros::datetime!(2026-11-26 02:00 UTC));
    let (_, v) = h.get("/v1/breaches?overdue=true", &h.k.dpo).await;
    assert!(v["breaches"].as_array().unwrap().is_empty(), "{v}");
    let m = metrics(&h).await;
    assert_eq!(gauge(&m, "amanah_breaches_overdue"), Some(0.0), "{m}");
    assert_eq!(gauge(&m, "amanah_breaches_unnotified"), Some(1.0), "{m}");
    h.clock.advance(time::Duration::minutes(1));
    let (_, v) = h.get("/v1/breaches?overdue=true", &h.k.dpo).await;
    assert_eq!(v["breaches"][0]["id"], id.as_str());
    assert_eq!(v["breaches"][0]["overdue"], true);
    let m = metrics(&h).await;
    assert_eq!(gauge(&m, "amanah_breaches_overdue"), Some(1.0), "{m}");

    // Notices: one per subject, one for the agency, both languages.
    let (s, n) = h.get(&format!("/v1/breaches/{id}/notices"), &h.k.dpo).await;
    assert_eq!(s, StatusCode::OK, "{n}");
    let notices = n["notices"].as_array().unwrap();
    assert_eq!(notices.len(), 3);
    let for_ani = notices
        .iter()
        .find(|x| x["subject_id"] == ani.as_str())
        .unwrap();
    assert_eq!(for_ani["audience"], "subject");
    let send_to: Vec<&str> = for_ani["send_to"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(send_to.contains(&"ani@example.id"), "{send_to:?}");
    assert!(send_to.contains(&"+6281234567890"), "{send_to:?}");
    for lang in ["id", "en"] {
        let body = for_ani[lang]["body"].as_str().unwrap();
        assert!(body.contains("Ani Lestari"), "{body}");
        assert!(body.contains("email, phone"), "{body}");
        assert!(body.contains("2026-11-23 02:00 UTC"), "{body}");
        assert!(body.contains("public bucket"), "{body}");
        assert!(body.contains("storage permission"), "{body}");
        assert!(body.contains("bucket was closed"), "{body}");
        assert!(body.contains("dpo@contoh.ac.id"), "{body}");
    }
    assert!(for_ani["id"]["body"]
        .as_str()
        .unwrap()
        .contains("Pasal 46 UU No. 27 Tahun 2022"));
    assert!(for_ani["en"]["title"]
        .as_str()
        .unwrap()
        .starts_with("Notice of a personal data breach"));
    let agency = notices.iter().find(|x| x["audience"] == "agency").unwrap();
    assert!(agency["id"]["body"]
        .as_str()
        .unwrap()
        .contains("Jumlah subjek data terdampak: 2"));
    assert!(agency["en"]["body"]
        .as_str()
        .unwrap()
        .contains("Data subjects affected: 2"));
    assert!(!agency.to_string().contains("ani@example.id"));
    // Contact details were decrypted into the notices only: the audit names categories.
    let audit = h.audit().await;
    let reads: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "breach.notice" && e["subject"] == ani.as_str())
        .collect();
    assert_eq!(reads.len(), 1);
    assert!(!audit
        .iter()
        .any(|e| e.to_string().contains("ani@example.id")));

    // Marked sent: no longer overdue, once only.
    let (s, v) = h
        .post(
            &format!("/v1/breaches/{id}/notices/sent"),
            &h.k.dpo,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["overdue"], false);
    assert_eq!(v["notified_at"], "2026-11-26T02:01:00Z");
    let (s, _) = h
        .post(
            &format!("/v1/breaches/{id}/notices/sent"),
            &h.k.dpo,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (_, v) = h.get("/v1/breaches?overdue=true", &h.k.dpo).await;
    assert!(v["breaches"].as_array().unwrap().is_empty());
    let m = metrics(&h).await;
    assert_eq!(gauge(&m, "amanah_breaches_overdue"), Some(0.0), "{m}");

    // A breach of all subjects reaches everyone.
    let (s, b) = h
        .post(
            "/v1/breaches",
            &h.k.admin,
            json!({"detected_at": "2026-11-26T00:00:00Z", "description": "Laptop stolen.",
                   "categories": ["full_name"], "all_subjects": true, "cause": "theft.",
                   "measures": "Disk encrypted; credentials revoked."}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (_, n) = h
        .get(
            &format!("/v1/breaches/{}/notices", b["id"].as_str().unwrap()),
            &h.k.dpo,
        )
        .await;
    assert_eq!(n["notices"].as_array().unwrap().len(), 3);
    assert!(n.get("next").is_none(), "{n}");

    // Notices come a page of subjects at a time; the agency's, counting everyone, comes first.
    let notices = format!("/v1/breaches/{}/notices", b["id"].as_str().unwrap());
    let before = h.audit().await.len();
    let (s, first) = h.get(&format!("{notices}?limit=1"), &h.k.dpo).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    let items = first["notices"].as_array().unwrap();
    assert_eq!(items.len(), 2, "one subject and the agency: {first}");
    assert_eq!(items[1]["audience"], "agency");
    let agency = items[1]["en"]["body"].as_str().unwrap();
    assert!(agency.contains("Data subjects affected: 2."), "{agency}");
    let next = first["next"].as_str().unwrap();
    let (_, second) = h
        .get(&format!("{notices}?limit=1&after={next}"), &h.k.dpo)
        .await;
    let items = second["notices"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{second}");
    assert_eq!(items[0]["audience"], "subject");
    assert_ne!(items[0]["subject_id"], first["notices"][0]["subject_id"]);
    // One entry per subject noticed and one per call (and the audit read itself).
    let entries = h.audit().await;
    let noticed = entries[before..]
        .iter()
        .filter(|e| e["action"] == "breach.notice")
        .count();
    assert_eq!(noticed, 4);
    let (s, _) = h.get(&format!("{notices}?limit=0"), &h.k.dpo).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // The record of processing, from the policy and live data.
    let (s, r) = h.get("/v1/ropa", &h.k.dpo).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["controller"]["contact"], "dpo@contoh.ac.id");
    let admission = r["activities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["purpose"] == "admission")
        .unwrap();
    assert_eq!(admission["subjects"], 2);
    assert_eq!(admission["legal_basis"], "contract");
    assert!(admission["recipients"]
        .to_string()
        .contains("\"transfer_basis\":\"safeguards\""));
    let resp = h
        .client
        .get(format!("{}/v1/ropa?format=md", h.base))
        .header("authorization", format!("Bearer {}", h.k.dpo))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let md = resp.text().await.unwrap();
    assert!(md.contains("# Record of processing activities"), "{md}");
    assert!(md.contains("partner_university (third_party, AU, transfer: safeguards)"));
    let (s, _) = h.get("/v1/ropa", &h.k.marketer).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}
