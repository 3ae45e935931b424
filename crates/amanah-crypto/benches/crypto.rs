//! `cargo bench -p amanah-crypto`: throughput of the per-request crypto path (no external
//! harness: each case runs for a fixed time and prints operations per second).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use amanah_crypto::{DataKey, KeyRing};

fn bench(name: &str, mut f: impl FnMut()) {
    for _ in 0..1_000 {
        f();
    }
    let budget = Duration::from_millis(700);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..100 {
            f();
        }
        n += 100;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name:<44} {:>12.0} ops/s {:>9.0} ns/op",
        n as f64 / secs,
        secs * 1e9 / n as f64
    );
}

fn main() {
    let ring = KeyRing::generate().unwrap();
    let key = DataKey::generate(1).unwrap();
    let wrapped = ring.wrap(&key, "subject-1").unwrap();
    let value = b"siti.rahma@example.id";
    let sealed = key.seal_field("subject-1", "email", value).unwrap();
    let bidx = ring.blind_index_key("email");
    let audit = ring.audit_key();
    let entry = vec![7u8; 200];

    bench("data key generate + wrap", || {
        let k = DataKey::generate(1).unwrap();
        black_box(ring.wrap(&k, "subject-1").unwrap());
    });
    bench("data key unwrap", || {
        black_box(ring.unwrap(&wrapped, "subject-1").unwrap());
    });
    bench("field seal (21 B)", || {
        black_box(key.seal_field("subject-1", "email", value).unwrap());
    });
    bench("field open (21 B)", || {
        black_box(key.open_field("subject-1", "email", &sealed).unwrap());
    });
    bench("blind index term (cached key)", || {
        black_box(bidx.index(value));
    });
    bench("blind index term (key derived per call)", || {
        black_box(ring.blind_index_key("email").index(value));
    });
    bench("audit chain link (200 B entry)", || {
        black_box(audit.chain(&[0u8; 32], &entry));
    });
    bench("create path: key+wrap, 5 seals, 3 index terms", || {
        let k = DataKey::generate(1).unwrap();
        black_box(ring.wrap(&k, "s").unwrap());
        for f in ["full_name", "email", "phone", "nik", "birth_date"] {
            black_box(k.seal_field("s", f, value).unwrap());
        }
        for f in ["email", "phone", "nik"] {
            black_box(ring.blind_index_key(f).index(value));
        }
    });
    bench("read path: unwrap, 5 opens", || {
        let k = ring.unwrap(&wrapped, "subject-1").unwrap();
        for _ in 0..5 {
            black_box(k.open_field("subject-1", "email", &sealed).unwrap());
        }
    });
}
