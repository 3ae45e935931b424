//! Documents through the real binary: a 1 GB file uploads and downloads with the server's
//! memory flat (its resident set grows by less than 64 MB), byte for byte, and the object in the
//! default place (`DATA/documents`) holds none of it in clear.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::StreamExt;
use support::{preset, run_ok, serve};

const GIB: u64 = 1 << 30;
/// What the file repeats: a PDF header once, then this line (found nowhere at rest).
const LINE: &[u8] = b"% MEMORYMARKER-7c1f a line of a large scanned document................\n";

/// The server's resident set, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// Samples the resident set every 20 ms until stopped; the highest seen.
fn sample(pid: u32) -> (Arc<AtomicBool>, Arc<AtomicU64>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let (s, p) = (stop.clone(), peak.clone());
    let handle = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            p.fetch_max(rss(pid), Ordering::Relaxed);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    (stop, peak, handle)
}

/// The file, generated as it is sent: 1 GiB, in 1 MiB pieces.
fn body() -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let mut piece = b"%PDF-1.7\n".to_vec();
    while piece.len() < 1 << 20 {
        piece.extend_from_slice(LINE);
    }
    piece.truncate(1 << 20);
    let rest = {
        let mut r = Vec::with_capacity(1 << 20);
        while r.len() < 1 << 20 {
            r.extend_from_slice(LINE);
        }
        r.truncate(1 << 20);
        r
    };
    futures_util::stream::iter(
        (0..1024).map(move |i| Ok(if i == 0 { piece.clone() } else { rest.clone() })),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigabyte_streams_through_with_flat_memory() {
    // reqwest is built with rustls and no default provider in this workspace.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("v");
    let data_arg = data.to_str().unwrap();
    // A category that takes a gigabyte: the university preset with a larger limit.
    let policy = std::fs::read_to_string(preset("university.toml"))
        .unwrap()
        .replace("max_size = \"20MB\"", "max_size = \"2GB\"");
    assert!(
        policy.contains("\"2GB\""),
        "the preset's academic documents limit moved"
    );
    let policy_file = dir.path().join("policy.toml");
    std::fs::write(&policy_file, policy).unwrap();
    run_ok(&[
        "init",
        "--data",
        data_arg,
        "--policy",
        policy_file.to_str().unwrap(),
    ]);
    let admin = run_ok(&[
        "apikey",
        "create",
        "--data",
        data_arg,
        "--role",
        "admin",
        "--name",
        "a",
        "--holder",
        "Admin <admin@example.id>",
    ]);
    let admin = admin.lines().last().unwrap().trim().to_owned();
    let server = serve(["--data", data_arg]).start();
    let pid = server.pid();
    let client = reqwest::Client::new();
    let auth = format!("Bearer {admin}");
    let resp = client
        .post(format!("{}/v1/subjects?purpose=admission", server.base()))
        .header("authorization", &auth)
        .json(&serde_json::json!({"fields": {"full_name": "Big File", "email": "big@example.id"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let before = rss(pid);
    let (stop, peak, sampler) = sample(pid);
    let resp = client
        .put(format!(
            "{}/v1/subjects/{id}/documents/academic_documents?purpose=admission",
            server.base()
        ))
        .header("authorization", &auth)
        .header("content-type", "application/pdf")
        .header("content-length", GIB)
        .body(reqwest::Body::wrap_stream(body()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(created["size"], GIB);
    let document = created["document_id"].as_str().unwrap().to_owned();

    let resp = client
        .get(format!(
            "{}/v1/subjects/{id}/documents/{document}?purpose=admission",
            server.base()
        ))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut received = 0u64;
    let mut sent = body();
    let mut expected: Vec<u8> = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(part) = stream.next().await {
        let part = part.unwrap();
        while expected.len() < part.len() {
            expected.extend_from_slice(&sent.next().await.unwrap().unwrap());
        }
        assert_eq!(&part[..], &expected[..part.len()], "at byte {received}");
        expected.drain(..part.len());
        received += part.len() as u64;
    }
    assert_eq!(received, GIB);
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let grew = peak.load(Ordering::Relaxed).saturating_sub(before);
    eprintln!(
        "1 GiB up and down: resident set {} MiB before, peak {} MiB",
        before >> 20,
        peak.load(Ordering::Relaxed) >> 20
    );
    assert!(
        grew < 64 << 20,
        "the server's resident set grew by {} MiB (from {} MiB)",
        grew >> 20,
        before >> 20
    );

    // The object sits in DATA/documents, a ciphertext a little longer than the file.
    let objects: Vec<std::path::PathBuf> = std::fs::read_dir(data.join("documents"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(objects.len(), 1, "{objects:?}");
    let object = std::fs::read(&objects[0]).unwrap();
    assert!(object.len() as u64 > GIB);
    assert!(memchr::memmem::find(&object, b"MEMORYMARKER").is_none());
}
