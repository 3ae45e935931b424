//! The binary's hardening as an operator meets it: log files without colour codes (and JSON
//! logs on request), `serve`'s limits and metrics flags, and rows forged into the database
//! with the `sqlite3` shell that would grant access.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

mod support;
use support::{crm_vault, run_ok};

/// A guard against a hung test, far beyond any expected wait; never the thing asserted.
const HANG: Duration = Duration::from_secs(60);

/// `amanah serve` on `data` with `extra` arguments, logging at debug level; to be started.
fn serve(data: &Path, extra: &[&str]) -> support::Serve {
    support::serve(["--data", data.to_str().unwrap()].iter().chain(extra)).log("debug")
}

/// One HTTP/1.1 request on a fresh connection; the raw response.
fn http(addr: &str, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn get(addr: &str, path: &str) -> String {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"),
    )
}

#[test]
fn logs_to_a_file_carry_no_colour_codes_and_json_on_request() {
    let (dir, data) = crm_vault();
    for format in ["plain", "json"] {
        let log = dir.path().join(format!("{format}.log"));
        let mut args = vec!["--metrics-listen", "off"];
        if format == "json" {
            args.extend(["--log-format", "json"]);
        }
        let mut srv = serve(&data, &args).stderr_to(&log).start();
        let addr = srv.addr().to_owned();
        assert!(get(&addr, "/healthz").starts_with("HTTP/1.1 200"));
        srv.stop();
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("serving HTTP"), "{text}");
        assert!(
            !text.contains('\x1b'),
            "escape codes in {format} logs: {text:?}"
        );
        if format == "json" {
            for line in text.lines() {
                let v: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                assert!(v["level"].is_string(), "{line}");
            }
        }
    }
}

/// `amanah apikey create` on `data`: (id, token).
fn issue(data: &Path, role: &str) -> (String, String) {
    let out = run_ok(&[
        "apikey",
        "create",
        "--data",
        data.to_str().unwrap(),
        "--role",
        role,
        "--holder",
        "Admin <admin@example.id>",
    ]);
    let mut lines = out.lines();
    let id = lines.next().unwrap().split_whitespace().nth(1).unwrap();
    (id.to_owned(), lines.next().unwrap().trim().to_owned())
}

fn sqlite3(data: &Path, sql: &str) {
    let out = Command::new("sqlite3")
        .arg(data.join("amanah.db"))
        .arg(sql)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sqlite3 {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn get_as(addr: &str, path: &str, token: &str) -> String {
    http(
        addr,
        &format!(
            "GET {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
        ),
    )
}

#[test]
fn rows_forged_into_the_database_grant_nothing() {
    let (dir, data) = crm_vault();
    let (_, admin) = issue(&data, "admin");
    let (agent_id, agent) = issue(&data, "support_agent");
    let log = dir.path().join("serve.log");
    let mut srv = serve(&data, &["--metrics-listen", "off"])
        .stderr_to(&log)
        .start();
    let addr = srv.addr().to_owned();
    assert!(get_as(&addr, "/v1/audit/verify", &admin).starts_with("HTTP/1.1 200"));
    assert!(get_as(&addr, "/v1/audit/verify", &agent).starts_with("HTTP/1.1 403"));

    // An admin key of one's own: a row with the SHA-256 of a token one chose.
    let forged = "forged-token-0123456789abcdef0123456789abcdef";
    let hash = amanah_crypto::token::hash(forged);
    sqlite3(
        &data,
        &format!(
            "INSERT INTO api_keys (id, name, role, holder, token_hash, created_at)
             VALUES ('forged', 'forged', 'admin', 'Eve <eve@example.id>', '{hash}', 1)"
        ),
    );
    assert!(get_as(&addr, "/v1/audit/verify", forged).starts_with("HTTP/1.1 401"));
    // A genuine key raised to admin. The server verified it already and keeps it in memory
    // under its genuine role (until a revocation moves the store's epoch): still refused, as
    // the support agent it is; read afresh (below, after a restart), it is refused as absent.
    sqlite3(
        &data,
        &format!("UPDATE api_keys SET role = 'admin' WHERE id = '{agent_id}'"),
    );
    assert!(get_as(&addr, "/v1/audit/verify", &agent).starts_with("HTTP/1.1 403"));
    // A policy version of one's own, newer than the one in force.
    let before = get_as(&addr, "/v1/policy", &admin);
    sqlite3(
        &data,
        "INSERT INTO policy_versions (seq, version, source, sha256, applied_at)
         SELECT seq + 1, 'forged', source, sha256, applied_at FROM policy_versions
         ORDER BY seq DESC LIMIT 1",
    );
    // Past the server's policy reload interval (2 s), the forged version is not in force.
    std::thread::sleep(Duration::from_secs(3));
    let after = get_as(&addr, "/v1/policy", &admin);
    assert!(after.starts_with("HTTP/1.1 200"), "{after}");
    assert!(!after.contains("\"forged\""), "{after}");
    assert_eq!(
        before.split("\r\n\r\n").nth(1),
        after.split("\r\n\r\n").nth(1)
    );
    // The genuine admin key still works, and the refusals are in the log, without the token.
    assert!(get_as(&addr, "/v1/audit/verify", &admin).starts_with("HTTP/1.1 200"));
    srv.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("a policy version row failed its integrity check"),
        "{text}"
    );
    assert!(!text.contains(forged));

    // A server that reads the raised key afresh refuses it as absent (its MAC fails), and
    // logs the refusal.
    let log = dir.path().join("serve-again.log");
    let mut again = serve(&data, &["--metrics-listen", "off"])
        .stderr_to(&log)
        .start();
    let addr = again.addr().to_owned();
    assert!(get_as(&addr, "/v1/audit/verify", &agent).starts_with("HTTP/1.1 401"));
    assert!(get_as(&addr, "/v1/audit/verify", &admin).starts_with("HTTP/1.1 200"));
    again.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("an API key row failed its integrity check"),
        "{text}"
    );
    assert!(!text.contains(forged));
}

#[test]
fn serve_sheds_load_beyond_its_limit_and_serves_metrics_apart() {
    let (_dir, data) = crm_vault();
    // A real key: an unauthenticated request is refused before its body is read, so it would
    // not hold the slot.
    let key = run_ok(&[
        "apikey",
        "create",
        "--data",
        data.to_str().unwrap(),
        "--role",
        "admin",
        "--holder",
        "Admin <admin@example.id>",
    ]);
    let key = key.lines().last().unwrap().trim().to_owned();
    let mut srv = serve(
        &data,
        &[
            "--max-concurrent-requests",
            "1",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    )
    .start();
    let addr = srv.addr().to_owned();
    let metrics = srv.metrics().strip_prefix("http://").unwrap().to_owned();
    // A request whose body never comes holds the only slot. It is in progress once it goes
    // unanswered (no other request competes while it is sent, so it is not itself shed).
    let deadline = std::time::Instant::now() + HANG;
    let stalled = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the stalled request was always answered"
        );
        let mut stalled = std::net::TcpStream::connect(&addr).unwrap();
        stalled
            .write_all(
                format!(
                    "PUT /v1/policy HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\ncontent-length: 100\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap();
        stalled
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut byte = [0u8; 1];
        match std::io::Read::read(&mut stalled, &mut byte) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break stalled
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let deadline = std::time::Instant::now() + HANG;
    let shed = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the stalled request never took the slot"
        );
        let r = get(&addr, "/healthz");
        if r.starts_with("HTTP/1.1 503") {
            break r;
        }
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        std::thread::sleep(Duration::from_millis(10));
    };
    let lower = shed.to_lowercase();
    assert!(lower.contains("retry-after: 1"), "{shed}");
    assert!(
        lower.contains("content-type: application/problem+json"),
        "{shed}"
    );
    assert!(shed.contains("urn:amanah:problem:overloaded"), "{shed}");
    // Metrics are not behind the limit's slot holder, and not on the API.
    let m = get(&metrics, "/metrics");
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    assert!(m.contains("amanah_http_shed_total"), "{m}");
    drop(stalled);
    let deadline = std::time::Instant::now() + HANG;
    let api_metrics = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the slot was never released"
        );
        let r = get(&addr, "/metrics");
        if !r.starts_with("HTTP/1.1 503") {
            break r;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(api_metrics.starts_with("HTTP/1.1 404"), "{api_metrics}");
    srv.stop();
}
