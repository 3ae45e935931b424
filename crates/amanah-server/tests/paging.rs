//! One `limit` rule on every paged route: an integer from 1 to the route's maximum, anything
//! else a 422 naming `limit`; the rest of the query is checked as strictly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use amanah_testkit::on_both_stores;

use reqwest::StatusCode;
use serde_json::json;
use support::preset::{start, UNIVERSITY};
use support::Kind;

async fn one_limit_rule(kind: Kind) {
    let p = start(kind, UNIVERSITY).await;
    let dpo = p.role("dpo").await;
    let marketing = p.role("marketing").await;
    let (s, breach) = p
        .post(
            "/v1/breaches",
            &dpo,
            json!({"detected_at": "2026-11-22T10:00:00Z", "description": "lost laptop",
                   "categories": ["email"], "all_subjects": true, "cause": "theft",
                   "measures": "remote wipe"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{breach}");
    let notices = format!("/v1/breaches/{}/notices?", breach["id"].as_str().unwrap());
    let routes: [(&str, &String, usize); 7] = [
        ("/v1/requests?", &dpo, 1_000),
        ("/v1/disclosures?", &dpo, 1_000),
        ("/v1/breaches?", &dpo, 1_000),
        (&notices, &dpo, 1_000),
        (
            "/v1/consents/stale?purpose=direct_marketing&",
            &marketing,
            1_000,
        ),
        (
            "/v1/contactable?purpose=direct_marketing&channel=email&",
            &marketing,
            1_000,
        ),
        ("/v1/audit?", &p.admin, 10_000),
    ];
    for (route, key, max) in routes {
        for bad in [
            "0".to_owned(),
            "-1".into(),
            "abc".into(),
            (max + 1).to_string(),
        ] {
            let (s, v) = p.get(&format!("{route}limit={bad}"), key).await;
            assert_eq!(
                s,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{route}limit={bad}: {v}"
            );
            assert_eq!(v["field"], "limit", "{v}");
        }
        for good in ["1".to_owned(), max.to_string()] {
            let (s, v) = p.get(&format!("{route}limit={good}"), key).await;
            assert_eq!(s, StatusCode::OK, "{route}limit={good}: {v}");
        }
        let (s, v) = p.get(&format!("{route}colour=red"), key).await;
        assert_eq!(
            s,
            StatusCode::BAD_REQUEST,
            "{route}: an unknown parameter: {v}"
        );
    }
}

on_both_stores!(one_limit_rule);
