//! What the load consists of: the workloads, the generated subjects (valid and unique per run),
//! and the HTTP request each operation sends.
//!
//! Subjects have 5 fields (full_name, email, whatsapp, nik, birth_date; the university preset
//! indexes email, whatsapp and nik, all unique). Values are generated valid: Indonesian mobile
//! numbers and NIKs that pass the core normalizers, unique per run.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{anyhow, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{header, Method, Request, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::target::Target;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// POST a new subject (5 fields, 3 blind-indexed).
    Create,
    /// Search by email (blind index): decrypt, purpose check, audit append.
    Lookup,
    /// Read one subject by id.
    Get,
    /// 80 % reads (lookup and get, half each), 20 % creates.
    Mixed,
    /// Erase seeded subjects (crypto-shredding), each once; stops when all are erased.
    Erase,
    /// `GET /healthz`: no vault work at all, the HTTP ceiling of this server on this machine.
    Healthz,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Create => "create",
            Workload::Lookup => "lookup",
            Workload::Get => "get",
            Workload::Mixed => "mixed",
            Workload::Erase => "erase",
            Workload::Healthz => "healthz",
        }
    }

    /// Whether the run needs subjects created before it measures.
    pub fn needs_subjects(self) -> bool {
        !matches!(self, Workload::Create | Workload::Healthz)
    }

    /// Whether the run needs the ids of the seeded subjects (not only their values).
    pub fn needs_ids(self) -> bool {
        matches!(self, Workload::Get | Workload::Mixed | Workload::Erase)
    }

    /// The next operation of this workload.
    pub fn next_op(self, rng: &mut Rng) -> Op {
        match self {
            Workload::Create => Op::Create,
            Workload::Lookup => Op::Lookup,
            Workload::Get => Op::Get,
            Workload::Mixed => match rng.below(10) {
                0 | 1 => Op::Create,
                2..=5 => Op::Lookup,
                _ => Op::Get,
            },
            Workload::Erase => Op::Erase,
            Workload::Healthz => Op::Healthz,
        }
    }
}

/// One request's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Create,
    Lookup,
    Get,
    Erase,
    Healthz,
}

// ------------------------------------------------------------------------------ test data

const NAMES: [&str; 8] = [
    "Budi Santoso",
    "Siti Rahmawati",
    "Agus Wijaya",
    "Dewi Lestari",
    "Ahmad Hidayat",
    "Rina Kurniawati",
    "Putu Ayu Saraswati",
    "Yohanes Simanjuntak",
];
const PROVINCES: [u8; 38] = [
    11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 31, 32, 33, 34, 35, 36, 51, 52, 53, 61, 62, 63, 64, 65,
    71, 72, 73, 74, 75, 76, 81, 82, 91, 92, 93, 94, 95, 96,
];
/// Telkomsel, Indosat and XL mobile prefixes (after +62).
const MOBILE: [u16; 9] = [811, 812, 813, 821, 822, 823, 851, 856, 857];
/// Values per run; a run draws a random offset so repeated runs against one server rarely meet.
pub const SPACE: u64 = 900_000_000;

/// The five field values of subject number `m` (0 <= m < 900,000,000), all valid and unique
/// in email, phone and NIK for distinct `m`.
pub fn subject_values(run: u32, m: u64) -> [(&'static str, String); 5] {
    let m = number(run, m);
    let phone = format!(
        "+62{}{:08}",
        MOBILE[(m / 100_000_000) as usize % MOBILE.len()],
        m % 100_000_000
    );
    // NIK: province, regency, district, birth date (day + 40 for women), serial.
    let serial = m % 9_999 + 1;
    let district = (m / 9_999) % 99 + 1;
    let regency = (m / (9_999 * 99)) % 99 + 1;
    let province = PROVINCES[((m / (9_999 * 99 * 99)) as usize) % PROVINCES.len()];
    let day = m % 28 + 1;
    let month = (m / 28) % 12 + 1;
    // Adults only (born 1945-2004): the policy refuses people under its minimum age, and
    // minors' records need roles cleared for specific data.
    let year = 1945 + (m / 336) % 60;
    let yy = year % 100;
    let female = m % 2 == 1;
    let nik = format!(
        "{province:02}{regency:02}{district:02}{:02}{month:02}{yy:02}{serial:04}",
        if female { day + 40 } else { day }
    );
    [
        (
            "full_name",
            NAMES[(m % NAMES.len() as u64) as usize].to_owned(),
        ),
        ("email", format!("b{run:x}.{m}@bench.example.id")),
        ("whatsapp", phone),
        ("nik", nik),
        ("birth_date", format!("{year}-{month:02}-{day:02}")),
    ]
}

/// Where subject `m` of `run` falls in the value space.
fn number(run: u32, m: u64) -> u64 {
    (m + u64::from(run) * 211) % SPACE
}

/// The e-mail address of subject number `m` of `run` (the lookup workload's key: the same
/// value as its `email` field, so every lookup finds its subject).
pub fn email(run: u32, m: u64) -> String {
    format!("b{run:x}.{}@bench.example.id", number(run, m))
}

/// Subject number `m` as a JSON object of category -> value (a create body's `fields`, or one
/// line of an import file).
pub fn subject_fields(run: u32, m: u64) -> Value {
    let mut fields = Map::new();
    for (k, v) in subject_values(run, m) {
        fields.insert(k.to_owned(), Value::String(v));
    }
    Value::Object(fields)
}

/// xorshift64*: enough to spread requests over seeded subjects.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from the clock and `stream` (distinct streams differ).
    pub fn from_clock(stream: u64) -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Rng((t ^ (stream.wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

// ------------------------------------------------------------------------------ requests

pub type Body = Full<Bytes>;

/// What every connection shares.
pub struct Plan {
    pub target: Target,
    pub auth: String,
    pub purpose: String,
    pub run: u32,
    /// Next subject number to create.
    pub next: AtomicU64,
    /// Subjects 0..seeded exist (numbers), with these ids (when the workload needs them).
    pub seeded: u64,
    pub ids: Vec<String>,
    /// Next seeded subject to erase (index into `ids`).
    pub next_erase: AtomicU64,
}

impl Plan {
    fn builder(&self) -> hyper::http::request::Builder {
        Request::builder()
            .header(header::HOST, &self.target.host)
            .header(header::AUTHORIZATION, &self.auth)
    }

    /// `POST /v1/subjects` for subject number `m`.
    pub fn create_request(&self, m: u64) -> Result<Request<Body>> {
        let body = serde_json::json!({ "fields": subject_fields(self.run, m) }).to_string();
        Ok(self
            .builder()
            .method(Method::POST)
            .uri(format!("/v1/subjects?purpose={}", self.purpose))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?)
    }

    /// `GET /v1/subjects?purpose=P&email=E` for subject number `m`.
    pub fn lookup_request(&self, m: u64) -> Result<Request<Body>> {
        Ok(self
            .builder()
            .method(Method::GET)
            .uri(format!(
                "/v1/subjects?purpose={}&email={}",
                self.purpose,
                email(self.run, m)
            ))
            .body(Full::new(Bytes::new()))?)
    }

    /// The request for `op` and the status that counts as success, or `None` when there is
    /// nothing left to do (every seeded subject erased).
    pub fn request(&self, op: Op, rng: &mut Rng) -> Result<Option<(Request<Body>, StatusCode)>> {
        Ok(Some(match op {
            Op::Create => (
                self.create_request(self.next.fetch_add(1, Ordering::Relaxed))?,
                StatusCode::CREATED,
            ),
            Op::Lookup => (self.lookup_request(rng.below(self.seeded))?, StatusCode::OK),
            Op::Get => {
                let id = self
                    .ids
                    .get(rng.below(self.ids.len() as u64) as usize)
                    .ok_or_else(|| anyhow!("no seeded subject ids"))?;
                (
                    self.builder()
                        .method(Method::GET)
                        .uri(format!("/v1/subjects/{id}?purpose={}", self.purpose))
                        .body(Full::new(Bytes::new()))?,
                    StatusCode::OK,
                )
            }
            Op::Erase => {
                let i = self.next_erase.fetch_add(1, Ordering::Relaxed);
                let Some(id) = self.ids.get(i as usize) else {
                    return Ok(None);
                };
                (
                    self.builder()
                        .method(Method::DELETE)
                        .uri(format!("/v1/subjects/{id}"))
                        .body(Full::new(Bytes::new()))?,
                    StatusCode::NO_CONTENT,
                )
            }
            Op::Healthz => (
                self.builder()
                    .method(Method::GET)
                    .uri("/healthz")
                    .body(Full::new(Bytes::new()))?,
                StatusCode::OK,
            ),
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use amanah_core::fields::{normalize_str, FieldType};

    #[test]
    fn generated_values_are_valid_and_unique() {
        let mut seen = std::collections::HashSet::new();
        let types = [
            FieldType::Name,
            FieldType::Email,
            FieldType::Phone,
            FieldType::Nik,
            FieldType::Date,
        ];
        // Spread over the whole space: every province, prefix, sex and date shape.
        for i in 0..3_000u64 {
            let m = i * 299_993 + i % 7;
            let values = subject_values(7, m);
            for ((name, v), ty) in values.iter().zip(types) {
                let n = normalize_str(ty, v).unwrap_or_else(|e| panic!("{name} {v}: {e}"));
                if *name == "birth_date" {
                    // Adults born in the past: the preset refuses people under 13 and minors'
                    // records need specific-data roles.
                    let year: i32 = n[..4].parse().unwrap();
                    assert!((1945..=2004).contains(&year), "birth date {n}");
                } else if *name != "full_name" {
                    assert!(seen.insert(n), "duplicate {name} {v}");
                }
            }
        }
    }

    #[test]
    fn a_lookup_searches_for_the_subjects_own_email() {
        for (run, m) in [(0, 0), (7, 5), (0xFFFF_FFFE, 123_456), (42, SPACE - 1)] {
            assert_eq!(
                subject_fields(run, m)["email"].as_str(),
                Some(email(run, m).as_str()),
                "run {run} subject {m}"
            );
        }
    }

    #[test]
    fn mixed_is_one_fifth_creates_and_the_rest_reads() {
        let mut rng = Rng::from_clock(3);
        let mut counts = [0u32; 3];
        for _ in 0..10_000 {
            match Workload::Mixed.next_op(&mut rng) {
                Op::Create => counts[0] += 1,
                Op::Lookup => counts[1] += 1,
                Op::Get => counts[2] += 1,
                Op::Erase | Op::Healthz => panic!("mixed never erases nor probes"),
            }
        }
        // 2,000 / 4,000 / 4,000 expected; xorshift* is uniform enough for ±10 %.
        assert!((1_800..=2_200).contains(&counts[0]), "{counts:?}");
        assert!((3_600..=4_400).contains(&counts[1]), "{counts:?}");
        assert!((3_600..=4_400).contains(&counts[2]), "{counts:?}");
        assert_eq!(Workload::Lookup.next_op(&mut rng), Op::Lookup);
        assert!(Workload::Mixed.needs_ids() && !Workload::Lookup.needs_ids());
        assert!(!Workload::Create.needs_subjects());
        assert!(!Workload::Healthz.needs_subjects() && !Workload::Healthz.needs_ids());
        assert_eq!(Workload::Healthz.next_op(&mut rng), Op::Healthz);
    }
}
