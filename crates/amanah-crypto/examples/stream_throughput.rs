//! Throughput of document stream encryption and decryption:
//! `cargo run --release -p amanah-crypto --example stream_throughput [MiB]` (default 256).
//! The document is fed in 1 MiB slices, each slice's ciphertext straight to the decryptor, so it
//! is never held whole: memory stays at a few MiB whatever the size.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use amanah_crypto::{ciphertext_len, DataKey, DocumentContext};

const SLICE: usize = 1 << 20;

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("a size in MiB"))
        .unwrap_or(256);
    let key = DataKey::generate(1).unwrap();
    let ctx = DocumentContext {
        subject: "subject-1",
        category: "passport",
        document: "doc-1",
    };
    let slice: Vec<u8> = (0..SLICE).map(|i| (i % 251) as u8).collect();
    let mut enc = key.document_encryptor(&ctx).unwrap();
    let mut dec = key.document_decryptor(&ctx);
    let mut ct = Vec::with_capacity(2 * SLICE);
    let mut pt = Vec::with_capacity(2 * SLICE);
    let (mut enc_time, mut dec_time) = (Duration::ZERO, Duration::ZERO);
    let (mut written, mut read) = (0u64, 0u64);
    for i in 0..=mib {
        let t = Instant::now();
        if i < mib {
            enc.update(&slice, &mut ct).unwrap();
        } else {
            let last = std::mem::replace(&mut enc, key.document_encryptor(&ctx).unwrap());
            last.finish(&mut ct).unwrap();
        }
        enc_time += t.elapsed();
        written += ct.len() as u64;
        let t = Instant::now();
        dec.update(&ct, &mut pt).unwrap();
        dec_time += t.elapsed();
        read += pt.len() as u64;
        ct.clear();
        pt.clear();
    }
    let t = Instant::now();
    dec.finish(&mut pt).unwrap();
    dec_time += t.elapsed();
    read += pt.len() as u64;

    let total = (mib * SLICE) as u64;
    assert_eq!(written, ciphertext_len(total).unwrap());
    assert_eq!(read, total);
    let mb = total as f64 / 1e6;
    println!(
        "{mib} MiB in 1 MiB slices: encrypt {:.0} MB/s, decrypt {:.0} MB/s",
        mb / enc_time.as_secs_f64(),
        mb / dec_time.as_secs_f64()
    );
}
