//! Crash atomicity across the two SQLite files, proved on the real binary: `amanah serve` is
//! killed with SIGKILL, again and again, under a mixed load of creates and erasures. After each
//! kill the raw files are read (read-only, before recovery), the server is started again
//! (recovery runs at open), and the test checks that no acknowledged create was lost, no
//! subject is half-written (rows without a key, or a key without rows), no key outlives an
//! acknowledged erasure, the unique values of unacknowledged creates are free again (or held by
//! a readable subject), and the audit chain verifies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};

mod support;
use support::{run_ok, serve, Server};

/// Kills of the server; each follows a short burst of load.
const KILLS: usize = 55;
/// Concurrent clients during a burst.
const CLIENTS: usize = 6;

#[derive(Clone, Debug)]
struct Person {
    name: String,
    email: String,
}

/// What the clients were told, and what they were not.
#[derive(Default)]
struct Ledger {
    /// Acknowledged creates not (knowingly) erased: id -> values.
    alive: HashMap<String, Person>,
    /// Acknowledged erasures.
    erased: HashSet<String>,
    /// Creates sent without an answer.
    unanswered_creates: Vec<Person>,
    /// Erasures sent without an answer.
    unanswered_erasures: Vec<(String, Person)>,
    acked_creates: usize,
}

fn start(data: &Path, log: &Path) -> Server {
    serve([
        "--data",
        data.to_str().unwrap(),
        "--metrics-listen",
        "127.0.0.1:0",
    ])
    .log("warn")
    .stderr_to(log)
    .start()
}

/// The data file with the key store attached, read-only (no checkpoint, no recovery).
fn inspect(data: &Path) -> Connection {
    let conn = Connection::open_with_flags(
        data.join("amanah.db"),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.execute(
        "ATTACH DATABASE ?1 AS keys",
        [data.join("amanah-keys.db").to_str().unwrap()],
    )
    .unwrap();
    conn
}

fn column(conn: &Connection, sql: &str) -> HashSet<String> {
    let mut st = conn.prepare(sql).unwrap();
    let rows = st.query_map([], |r| r.get(0)).unwrap();
    rows.collect::<Result<HashSet<String>, _>>().unwrap()
}

/// The two files as they are: (subjects with rows, subjects with a key, tombstoned subjects).
fn files(data: &Path) -> (HashSet<String>, HashSet<String>, HashSet<String>) {
    let conn = inspect(data);
    (
        column(&conn, "SELECT id FROM main.subjects"),
        column(&conn, "SELECT subject_id FROM keys.data_keys"),
        column(&conn, "SELECT subject_id FROM main.erasures"),
    )
}

async fn create(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    p: &Person,
) -> Result<(StatusCode, Value), reqwest::Error> {
    let resp = client
        .post(format!("{base}/v1/subjects?purpose=admission"))
        .bearer_auth(key)
        .json(&json!({"fields": {"full_name": p.name, "email": p.email}}))
        .send()
        .await?;
    let status = resp.status();
    Ok((status, resp.json().await?))
}

async fn erase(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    id: &str,
) -> Result<StatusCode, reqwest::Error> {
    let resp = client
        .delete(format!("{base}/v1/subjects/{id}"))
        .bearer_auth(key)
        .send()
        .await?;
    let status = resp.status();
    resp.bytes().await?;
    Ok(status)
}

async fn get(client: &reqwest::Client, base: &str, key: &str, path: &str) -> (StatusCode, Value) {
    let resp = client
        .get(format!("{base}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// One client's burst: two creates, then the erasure of a subject acknowledged earlier, until
/// the server dies under it.
async fn client_loop(
    base: String,
    key: String,
    ledger: Arc<Mutex<Ledger>>,
    kill: usize,
    me: usize,
) {
    let client = reqwest::Client::new();
    let mut n = 0usize;
    loop {
        for _ in 0..2 {
            n += 1;
            let p = Person {
                name: format!("Crash Person {kill} {me} {n}"),
                email: format!("k{kill}.c{me}.n{n}@example.id"),
            };
            match create(&client, &base, &key, &p).await {
                Ok((StatusCode::CREATED, v)) => {
                    let id = v["id"].as_str().unwrap().to_owned();
                    let mut l = ledger.lock().unwrap();
                    l.alive.insert(id, p);
                    l.acked_creates += 1;
                }
                Ok((s, v)) => panic!("create answered {s}: {v}"),
                Err(_) => {
                    ledger.lock().unwrap().unanswered_creates.push(p);
                    return;
                }
            }
        }
        let victim = {
            let mut l = ledger.lock().unwrap();
            let id = l.alive.keys().next().cloned();
            id.and_then(|id| l.alive.remove_entry(&id))
        };
        if let Some((id, p)) = victim {
            match erase(&client, &base, &key, &id).await {
                Ok(StatusCode::NO_CONTENT) => {
                    ledger.lock().unwrap().erased.insert(id);
                }
                Ok(s) => panic!("erasure of {id} answered {s}"),
                Err(_) => {
                    ledger.lock().unwrap().unanswered_erasures.push((id, p));
                    return;
                }
            }
        }
    }
}

async fn read_back(client: &reqwest::Client, base: &str, key: &str, id: &str, p: &Person) {
    let (s, v) = get(
        client,
        base,
        key,
        &format!("/v1/subjects/{id}?purpose=admission"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "acknowledged subject {id} lost: {v}");
    assert_eq!(v["fields"]["full_name"], p.name.as_str(), "{v}");
    assert_eq!(v["fields"]["email"], p.email.as_str(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_creates_and_erasures_never_half_commits() {
    // reqwest is built with rustls for the TLS tests; give it a provider even for plain HTTP.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("vault");
    let policy = dir.path().join("policy.toml");
    let log = dir.path().join("server.log");
    std::fs::write(&policy, amanah_testkit::policies::CONTACTS).unwrap();
    let d = data.to_str().unwrap().to_owned();
    run_ok(&["init", "--data", &d, "--policy", policy.to_str().unwrap()]);
    let out = run_ok(&[
        "apikey",
        "create",
        "--data",
        &d,
        "--role",
        "admin",
        "--name",
        "admin",
        "--holder",
        "Admin <admin@example.id>",
    ]);
    let key = out.lines().last().unwrap().trim().to_owned();
    let client = reqwest::Client::new();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let (mut orphan_keys_seen, mut keyless_rows_seen) = (0usize, 0usize);

    let mut server = start(&data, &log);
    for kill in 0..KILLS {
        // A burst: the clients run until the server is killed under them, after a pause that
        // varies with the round (so kills land at every point of a batch).
        let clients: Vec<_> = (0..CLIENTS)
            .map(|me| {
                tokio::spawn(client_loop(
                    server.base().to_owned(),
                    key.clone(),
                    ledger.clone(),
                    kill,
                    me,
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(60 + (kill as u64 * 37) % 180)).await;
        server.kill();
        for c in clients {
            c.await.unwrap();
        }

        // The files as the crash left them, before any recovery.
        let (rows, keys, tombstones) = files(&data);
        {
            let l = ledger.lock().unwrap();
            for id in l.alive.keys() {
                assert!(rows.contains(id), "acknowledged create {id} has no rows");
                assert!(keys.contains(id), "acknowledged create {id} has no key");
            }
            for id in &l.erased {
                assert!(
                    !keys.contains(id),
                    "the key of {id} outlived its acknowledged erasure"
                );
                assert!(
                    tombstones.contains(id),
                    "acknowledged erasure of {id} not recorded"
                );
            }
        }
        orphan_keys_seen += keys.difference(&rows).count();
        keyless_rows_seen += rows.difference(&keys).count();

        // Recovery runs as the server opens the store.
        server = start(&data, &log);
        let (rows, keys, tombstones) = files(&data);
        let keyless: Vec<_> = rows.difference(&keys).collect();
        let rowless: Vec<_> = keys.difference(&rows).collect();
        assert!(
            keyless.is_empty() && rowless.is_empty(),
            "after recovery (kill {kill}): subjects without a key {keyless:?}, keys without a subject {rowless:?}"
        );
        assert!(
            tombstones.is_disjoint(&keys),
            "a tombstoned subject kept its key"
        );
        let (alive, unanswered_creates, unanswered_erasures) = {
            let mut l = ledger.lock().unwrap();
            (
                l.alive.clone(),
                std::mem::take(&mut l.unanswered_creates),
                std::mem::take(&mut l.unanswered_erasures),
            )
        };
        // Acknowledged creates read back, with their values (all of them at the last round).
        let check_all = kill + 1 == KILLS;
        for (id, p) in &alive {
            if check_all || p.email.starts_with(&format!("k{kill}.")) {
                read_back(&client, server.base(), &key, id, p).await;
            }
        }
        for id in ledger.lock().unwrap().erased.iter() {
            assert!(!keys.contains(id));
        }
        // An unanswered erasure either happened (410, key gone) or did not (readable).
        for (id, p) in unanswered_erasures {
            let (s, v) = get(
                &client,
                server.base(),
                &key,
                &format!("/v1/subjects/{id}?purpose=admission"),
            )
            .await;
            match s {
                StatusCode::OK => {
                    ledger.lock().unwrap().alive.insert(id, p);
                }
                StatusCode::GONE => {
                    assert!(!keys.contains(&id));
                    ledger.lock().unwrap().erased.insert(id);
                }
                s => panic!("unanswered erasure of {id}: {s} {v}"),
            }
        }
        // An unanswered create's unique value is held by a readable subject, or free again.
        for p in unanswered_creates {
            let (s, found) = get(
                &client,
                server.base(),
                &key,
                &format!("/v1/subjects?purpose=admission&email={}", p.email),
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{found}");
            let hits = found["subjects"].as_array().unwrap();
            let id = match hits.as_slice() {
                [hit] => {
                    let id = hit["id"].as_str().unwrap().to_owned();
                    read_back(&client, server.base(), &key, &id, &p).await;
                    id
                }
                [] => {
                    let (s, v) = create(&client, server.base(), &key, &p).await.unwrap();
                    assert_eq!(
                        s,
                        StatusCode::CREATED,
                        "the unique value of an unanswered create stayed taken: {v}"
                    );
                    v["id"].as_str().unwrap().to_owned()
                }
                _ => panic!("one unique email, several subjects: {found}"),
            };
            ledger.lock().unwrap().alive.insert(id, p);
        }
        let (s, v) = get(&client, server.base(), &key, "/v1/audit/verify").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["ok"], true, "audit chain after kill {kill}: {v}");
    }
    server.kill();
    let l = ledger.lock().unwrap();
    let recoveries = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("crash recovery settled")
        .count();
    eprintln!(
        "{KILLS} kills: {} acknowledged creates, {} acknowledged erasures; before recovery {orphan_keys_seen} keys without rows and {keyless_rows_seen} rows without a key; {recoveries} recoveries",
        l.acked_creates,
        l.erased.len()
    );
    assert!(l.acked_creates > KILLS, "the load ran");
}
