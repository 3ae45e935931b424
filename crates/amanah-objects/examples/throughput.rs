//! Write and read throughput of one large object, on a local directory and on the test S3
//! server: `cargo run --release -p amanah-objects --example throughput [MiB]` (256 by default).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use amanah_objects::{ObjectName, Objects, S3Options};
use bytes::Bytes;
use futures_util::StreamExt;

const PIECE: usize = 64 * 1024 + 16;

async fn measure(label: &str, objects: &Objects, mib: usize) {
    let piece = Bytes::from(vec![0x5a_u8; PIECE]);
    let total = mib * 1024 * 1024;
    let name = ObjectName::random();
    let start = Instant::now();
    let mut w = objects.writer(&name).await.unwrap();
    let mut written = 0;
    while written < total {
        let n = PIECE.min(total - written);
        w.write(piece.slice(..n)).await.unwrap();
        written += n;
    }
    w.finish().await.unwrap();
    let write = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut stream = objects.read(&name, None).await.unwrap();
    let mut read = 0;
    while let Some(chunk) = stream.next().await {
        read += chunk.unwrap().len();
    }
    let read_s = start.elapsed().as_secs_f64();
    assert_eq!(read, total);
    objects.delete(&name).await.unwrap();
    println!(
        "{label}: {mib} MiB, write {:.0} MB/s, read {:.0} MB/s",
        total as f64 / write / 1e6,
        total as f64 / read_s / 1e6
    );
}

#[tokio::main]
async fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(256);
    let tmp = tempfile::tempdir().unwrap();
    let local = Objects::local(&tmp.path().join("objects")).unwrap();
    measure("local directory", &local, mib).await;
    let s = amanah_tests3::server();
    let bucket = s.bucket("throughput");
    let options = S3Options {
        endpoint: Some(s.endpoint()),
        region: Some(s.region().to_owned()),
        access_key_id: Some(s.access_key().to_owned()),
        secret_access_key: Some(s.secret_key().to_owned()),
        session_token: None,
        allow_http: true,
    };
    let s3 = Objects::s3_with(&format!("s3://{bucket}"), &options).unwrap();
    measure("SeaweedFS (loopback)", &s3, mib).await;
}
