//! `amanah bench`: a load generator for the HTTP API. It starts its own server on a throwaway
//! data directory (university preset, purpose `admission`) or targets `--url`, which must be a
//! loopback address: it never sends load anywhere else. N connections (HTTP/1.1 keep-alive)
//! run one workload for a bounded time; the report gives throughput, latency percentiles and
//! errors, as text or JSON.
//!
//! Subjects have 5 fields (full_name, email, whatsapp, nik, birth_date; the preset indexes
//! email, whatsapp and nik, all unique). Values are generated valid: Indonesian mobile numbers
//! and NIKs that pass the core normalizers, unique per run.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amanah_vault::{ImportOptions, ImportRow};
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{header, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::cli::{operator, DataArgs, DEMO_POLICY};
use crate::setup::init;

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
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Create => "create",
            Workload::Lookup => "lookup",
            Workload::Get => "get",
            Workload::Mixed => "mixed",
            Workload::Erase => "erase",
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "create")]
    workload: Workload,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// How long to measure, e.g. 10s, 500ms, 1m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Load before measuring (not reported).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Subjects created before a lookup, get, mixed or erase run.
    #[arg(long, default_value_t = 10_000)]
    subjects: u64,
    /// Total requests per second to offer, paced evenly over the connections (latency counts
    /// from each request's scheduled time, so a stalled server is not hidden). Default: as
    /// fast as the server answers.
    #[arg(long)]
    rate: Option<f64>,
    /// Target a running server (loopback only), e.g. http://127.0.0.1:8080; its policy needs
    /// the five categories above under `--purpose`. Default: start one on a temporary directory.
    #[arg(long, requires = "key")]
    url: Option<String>,
    /// API key for --url (admin, or a role granted the purpose).
    #[arg(long, env = "AMANAH_BENCH_KEY", hide_env_values = true)]
    key: Option<String>,
    #[arg(long, default_value = "admission")]
    purpose: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Parses `10s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: use e.g. 10s, 500ms, 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("invalid duration unit in {s:?}: use ms, s or m")),
    };
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("duration {s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Where to send load: a loopback socket address and the Host header for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
}

/// Accepts only `http://` URLs whose host is a loopback address or `localhost`; names are not
/// resolved, so nothing but this machine can be targeted.
pub fn loopback_target(url: &str) -> Result<Target> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("--url must be an http:// URL on a loopback address, e.g. http://127.0.0.1:8080");
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let path = &rest[authority.len()..];
    if !(path.is_empty() || path == "/") {
        bail!("--url must be the server's base URL, without a path");
    }
    if authority.contains('@') {
        bail!("--url must not contain credentials");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| anyhow!("--url has an unclosed IPv6 address"))?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port: u16 = match port {
        None => 80,
        Some(p) => p
            .parse()
            .map_err(|_| anyhow!("--url has an invalid port {p:?}"))?,
    };
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse().map_err(|_| {
            anyhow!("refusing to load-test {host:?}: amanah bench only targets loopback addresses (127.0.0.0/8, ::1, localhost)")
        })?
    };
    if !ip.is_loopback() {
        bail!("refusing to load-test {ip}: amanah bench only targets loopback addresses (127.0.0.0/8, ::1, localhost)");
    }
    Ok(Target {
        addr: SocketAddr::new(ip, port),
        host: authority.to_owned(),
    })
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
const SPACE: u64 = 900_000_000;

/// The five field values of subject number `m` (0 <= m < 900,000,000), all valid and unique
/// in email, phone and NIK for distinct `m`.
pub fn subject_values(run: u32, m: u64) -> [(&'static str, String); 5] {
    let m = (m + u64::from(run) * 211) % SPACE;
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
        ("email", email(run, m)),
        ("whatsapp", phone),
        ("nik", nik),
        ("birth_date", format!("{year}-{month:02}-{day:02}")),
    ]
}

fn email(run: u32, m: u64) -> String {
    format!("b{run:x}.{m}@bench.example.id")
}

fn subject_json(run: u32, m: u64) -> String {
    let mut fields = Map::new();
    for (k, v) in subject_values(run, m) {
        fields.insert(k.to_owned(), Value::String(v));
    }
    serde_json::json!({ "fields": fields }).to_string()
}

/// xorshift64*: enough to spread requests over seeded subjects.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn seed_from_clock(i: u64) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    (t ^ (i.wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1
}

// ------------------------------------------------------------------------------ report

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// From a histogram of microseconds.
    pub fn from_histogram(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub workload: Workload,
    pub target: String,
    pub connections: usize,
    pub duration_s: f64,
    /// Subjects created before measuring (lookup, get, mixed).
    pub seeded_subjects: u64,
    /// Successful requests in the measured window.
    pub requests: u64,
    pub errors: u64,
    pub throughput_rps: f64,
    pub latency: Latency,
    /// The first error seen, if any (status or transport error; never a response body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Offered load (`--rate`), if paced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offered_rps: Option<f64>,
    /// Peak resident memory of the server the bench started (Linux `VmHWM`), in MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_peak_rss_mib: Option<f64>,
}

impl Report {
    pub fn text(&self) -> String {
        let l = &self.latency;
        let mut out = format!(
            "workload {} against {}: {} connections, {:.1} s measured{}\n",
            self.workload.name(),
            self.target,
            self.connections,
            self.duration_s,
            if self.seeded_subjects > 0 {
                format!(", {} subjects seeded", self.seeded_subjects)
            } else {
                String::new()
            }
        );
        out.push_str(&format!(
            "  requests    {} ok, {} errors\n  throughput  {:.0} req/s\n  latency     p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (mean {:.2} ms)\n",
            self.requests, self.errors, self.throughput_rps, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.mean_ms
        ));
        if let Some(rate) = self.offered_rps {
            out.push_str(&format!("  offered     {rate:.0} req/s\n"));
        }
        if let Some(rss) = self.server_peak_rss_mib {
            out.push_str(&format!("  server RSS  {rss:.1} MiB peak\n"));
        }
        if let Some(e) = &self.first_error {
            out.push_str(&format!("  first error {e}\n"));
        }
        out
    }
}

// ------------------------------------------------------------------------------ HTTP

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// What every connection shares.
struct Plan {
    target: Target,
    auth: String,
    purpose: String,
    run: u32,
    /// Next subject number to create.
    next: AtomicU64,
    /// Subjects 0..seeded exist (numbers), with these ids.
    seeded: u64,
    ids: Vec<String>,
    /// Next seeded subject to erase (index into `ids`).
    next_erase: AtomicU64,
}

#[derive(Clone, Copy)]
enum Op {
    Create,
    Lookup,
    Get,
    Erase,
}

impl Plan {
    /// `POST /v1/subjects` for subject number `m`.
    fn create_request(&self, m: u64) -> Result<Request<Full<Bytes>>> {
        Ok(Request::builder()
            .method(Method::POST)
            .uri(format!("/v1/subjects?purpose={}", self.purpose))
            .header(header::HOST, &self.target.host)
            .header(header::AUTHORIZATION, &self.auth)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(subject_json(self.run, m))))?)
    }

    /// The request for `op`, or `None` when there is nothing left to do (every seeded subject
    /// erased).
    fn request(&self, op: Op, rng: &mut Rng) -> Result<Option<(Request<Full<Bytes>>, StatusCode)>> {
        let builder = Request::builder()
            .header(header::HOST, &self.target.host)
            .header(header::AUTHORIZATION, &self.auth);
        Ok(Some(match op {
            Op::Create => (
                self.create_request(self.next.fetch_add(1, Ordering::Relaxed))?,
                StatusCode::CREATED,
            ),
            Op::Lookup => {
                let m = rng.below(self.seeded);
                (
                    builder
                        .method(Method::GET)
                        .uri(format!(
                            "/v1/subjects?purpose={}&email={}",
                            self.purpose,
                            email(self.run, m)
                        ))
                        .body(Full::new(Bytes::new()))?,
                    StatusCode::OK,
                )
            }
            Op::Get => {
                let id = self
                    .ids
                    .get(rng.below(self.ids.len() as u64) as usize)
                    .ok_or_else(|| anyhow!("no seeded subject ids"))?;
                (
                    builder
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
                    builder
                        .method(Method::DELETE)
                        .uri(format!("/v1/subjects/{id}"))
                        .body(Full::new(Bytes::new()))?,
                    StatusCode::NO_CONTENT,
                )
            }
        }))
    }
}

/// Sends one request; the body if the status is the expected one.
async fn send(
    sender: &mut Option<Sender>,
    addr: SocketAddr,
    req: Request<Full<Bytes>>,
    expect: StatusCode,
) -> std::result::Result<Bytes, String> {
    if sender.as_ref().is_none_or(|s| s.is_closed()) {
        *sender = Some(connect(addr).await.map_err(|e| e.to_string())?);
    }
    let Some(s) = sender.as_mut() else {
        return Err("no connection".into());
    };
    let outcome = async {
        s.ready().await?;
        let resp = s.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok::<_, hyper::Error>((status, body))
    }
    .await;
    match outcome {
        Ok((status, body)) if status == expect => Ok(body),
        Ok((status, _)) => Err(format!("HTTP {status}")),
        Err(e) => {
            *sender = None;
            Err(format!("transport: {e}"))
        }
    }
}

struct Tally {
    hist: Histogram<u64>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 120_000_000, 3).map_err(|e| anyhow!("histogram: {e}"))
}

async fn connection(
    plan: Arc<Plan>,
    workload: Workload,
    index: u64,
    measure_from: Instant,
    until: Instant,
    interval: Option<Duration>,
) -> Result<Tally> {
    let mut rng = Rng(seed_from_clock(index));
    let mut tally = Tally {
        hist: histogram()?,
        ok: 0,
        errors: 0,
        first_error: None,
    };
    let mut sender = None;
    // Paced connections start at staggered offsets so the offered load is even.
    let mut scheduled = Instant::now()
        + interval.map_or(Duration::ZERO, |i| {
            i.mul_f64((rng.below(1_000) as f64) / 1_000.0)
        });
    loop {
        let start = match interval {
            Some(i) => {
                tokio::time::sleep_until(scheduled.into()).await;
                let at = scheduled;
                scheduled += i;
                at
            }
            None => Instant::now(),
        };
        if start >= until {
            break;
        }
        let op = match workload {
            Workload::Create => Op::Create,
            Workload::Lookup => Op::Lookup,
            Workload::Get => Op::Get,
            Workload::Mixed => match rng.below(10) {
                0 | 1 => Op::Create,
                2..=5 => Op::Lookup,
                _ => Op::Get,
            },
            Workload::Erase => Op::Erase,
        };
        let Some((req, expect)) = plan.request(op, &mut rng)? else {
            break;
        };
        let result = send(&mut sender, plan.target.addr, req, expect).await;
        let end = Instant::now();
        if start < measure_from || end > until {
            continue;
        }
        match result {
            Ok(_) => {
                tally.ok += 1;
                tally
                    .hist
                    .saturating_record((end - start).as_micros().max(1) as u64);
            }
            Err(e) => {
                tally.errors += 1;
                if tally.first_error.is_none() {
                    tally.first_error = Some(e);
                }
            }
        }
    }
    Ok(tally)
}

/// Creates `count` subjects over HTTP (numbers 0..count), returning their ids in order.
async fn seed_http(plan: &Arc<Plan>, count: u64, connections: usize) -> Result<Vec<String>> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1) {
        let plan = plan.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut sender = None;
            let mut out = Vec::new();
            loop {
                let m = next.fetch_add(1, Ordering::Relaxed);
                if m >= count {
                    break;
                }
                let req = plan.create_request(m)?;
                let body = send(&mut sender, plan.target.addr, req, StatusCode::CREATED)
                    .await
                    .map_err(|e| anyhow!("seeding subject {m}: {e}"))?;
                let v: Value = serde_json::from_slice(&body)?;
                let id = v["id"]
                    .as_str()
                    .ok_or_else(|| anyhow!("create response without an id"))?;
                out.push((m, id.to_owned()));
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut all = Vec::with_capacity(count as usize);
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_by_key(|(m, _)| *m);
    Ok(all.into_iter().map(|(_, id)| id).collect())
}

/// Creates subjects 0..count through the bulk import path, returning their ids in order.
async fn seed_import(
    vault: &amanah_vault::Vault,
    run: u32,
    count: u64,
    purpose: &str,
) -> Result<Vec<String>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let producer = tokio::task::spawn_blocking(move || {
        let mut m = 0u64;
        while m < count {
            let end = (m + 2_048).min(count);
            let chunk = (m..end)
                .map(|i| {
                    let mut fields = Map::new();
                    for (k, v) in subject_values(run, i) {
                        fields.insert(k.to_owned(), Value::String(v));
                    }
                    Ok(ImportRow {
                        line: i + 1,
                        fields,
                    })
                })
                .collect();
            if tx.blocking_send(chunk).is_err() {
                break;
            }
            m = end;
        }
    });
    let permit = operator::<amanah_vault::act::SubjectImport>(vault).await?;
    let outcome = vault
        .import_subjects(
            &permit,
            purpose,
            rx,
            ImportOptions {
                collect_ids: true,
                ..ImportOptions::default()
            },
        )
        .await?;
    producer.await?;
    // Start the server on database files, not on the import's write-ahead log.
    vault.flush().await?;
    if let Some(r) = outcome.rejected.first() {
        bail!(
            "seeding failed: {} rows rejected, first at {}: {}",
            outcome.rejected.len(),
            r.line,
            r.message
        );
    }
    Ok(outcome.ids)
}

/// A server started by the bench; killed when dropped.
struct OwnServer {
    child: Child,
    _dir: tempfile::TempDir,
}

impl OwnServer {
    /// Peak resident set of the server process (Linux only).
    fn peak_rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        peak_rss_kib(&status).map(|kib| kib as f64 / 1024.0)
    }
}

/// `VmHWM` (peak resident set) of a `/proc/PID/status` text, in KiB.
fn peak_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Initializes a throwaway vault, seeds it, and starts `amanah serve` on it.
async fn start_server(
    run: u32,
    seed: u64,
    purpose: &str,
    connections: usize,
) -> Result<(OwnServer, Target, String, Vec<String>)> {
    let dir = tempfile::Builder::new()
        .prefix("amanah-bench-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let (data_dir, key_file) = (dir.path().join("data"), dir.path().join("master.key"));
    let data = DataArgs {
        data: Some(data_dir.clone()),
        key_file: Some(key_file.clone()),
        store: None,
    };
    let (token, ids) = {
        let vault = init(&data, DEMO_POLICY).await?;
        let permit = operator::<amanah_vault::act::KeyCreate>(&vault).await?;
        let issued = vault
            .create_api_key(
                &permit,
                amanah_core::policy::ADMIN_ROLE,
                "bench",
                "Load tool <bench@amanah.invalid>",
            )
            .await?;
        let ids = if seed > 0 {
            seed_import(&vault, run, seed, purpose).await?
        } else {
            Vec::new()
        };
        (issued.token.to_string(), ids)
    };
    let exe = std::env::current_exe().context("cannot find the amanah binary")?;
    let mut child = Command::new(exe)
        .arg("serve")
        .arg("--data")
        .arg(&data_dir)
        .arg("--key-file")
        .arg(&key_file)
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        // Every connection may have a request in progress: none is shed.
        .arg("--max-concurrent-requests")
        .arg(connections.max(512).to_string())
        .env("AMANAH_LOG", "warn")
        .env_remove("AMANAH_LISTEN")
        .env_remove("AMANAH_DATABASE_URL")
        .env_remove("AMANAH_TLS_CERT")
        .env_remove("AMANAH_TLS_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start amanah serve")?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no stdout from amanah serve"))?;
    let server = OwnServer { child, _dir: dir };
    let addr = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let addr = lines.find_map(|l| {
            l.ok()?
                .trim()
                .strip_prefix("listening on http://")
                .map(str::to_owned)
        });
        // Keep draining so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        addr
    })
    .await?
    .ok_or_else(|| anyhow!("amanah serve did not report its address"))?;
    let target = loopback_target(&format!("http://{addr}"))?;
    Ok((server, target, token, ids))
}

pub async fn run(args: BenchArgs) -> Result<ExitCode> {
    if args.connections == 0 || args.connections > 10_000 {
        bail!("--connections must be between 1 and 10000");
    }
    if args.duration.is_zero() {
        bail!("--duration must be more than 0");
    }
    let run = (seed_from_clock(0) % 0xFFFF_FFFF) as u32;
    let needs_seed = args.workload != Workload::Create;
    let seed = if needs_seed { args.subjects.max(1) } else { 0 };
    if seed > SPACE / 2 {
        bail!("--subjects must be at most {}", SPACE / 2);
    }
    let (server, target, token, mut ids, label) = match &args.url {
        Some(url) => {
            let target = loopback_target(url)?;
            let token = args
                .key
                .clone()
                .ok_or_else(|| anyhow!("--url needs --key (or AMANAH_BENCH_KEY)"))?;
            (None, target, token, Vec::new(), url.clone())
        }
        None => {
            let (server, target, token, ids) =
                start_server(run, seed, &args.purpose, args.connections).await?;
            let label = format!("own server {}", target.addr);
            (Some(server), target, token, ids, label)
        }
    };
    let mut plan = Plan {
        target,
        auth: format!("Bearer {token}"),
        purpose: args.purpose.clone(),
        run,
        next: AtomicU64::new(seed),
        seeded: seed,
        ids: Vec::new(),
        next_erase: AtomicU64::new(0),
    };
    if server.is_none() && seed > 0 {
        let p = Arc::new(plan);
        ids = seed_http(&p, seed, args.connections).await?;
        plan = Arc::try_unwrap(p).map_err(|_| anyhow!("seeding did not finish"))?;
    }
    plan.ids = ids;
    let plan = Arc::new(plan);
    let measure_from = Instant::now() + args.warmup;
    let until = measure_from + args.duration;
    let interval = match args.rate {
        Some(rate) if rate.is_finite() && rate > 0.0 => {
            Some(Duration::from_secs_f64(args.connections as f64 / rate))
        }
        Some(_) => bail!("--rate must be a positive number of requests per second"),
        None => None,
    };
    let mut tasks = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        tasks.push(tokio::spawn(connection(
            plan.clone(),
            args.workload,
            i as u64,
            measure_from,
            until,
            interval,
        )));
    }
    let mut hist = histogram()?;
    let (mut ok, mut errors, mut first_error) = (0, 0, None);
    for t in tasks {
        let tally = t.await??;
        hist.add(&tally.hist)
            .map_err(|e| anyhow!("histogram: {e}"))?;
        ok += tally.ok;
        errors += tally.errors;
        if first_error.is_none() {
            first_error = tally.first_error;
        }
    }
    // An erase run ends when the seeded subjects do: the rate is over the time it took.
    let ended = Instant::now().min(until);
    let server_peak_rss_mib = server.as_ref().and_then(OwnServer::peak_rss_mib);
    drop(server);
    let secs = ended
        .saturating_duration_since(measure_from)
        .as_secs_f64()
        .max(1e-3);
    let report = Report {
        workload: args.workload,
        target: label,
        connections: args.connections,
        duration_s: secs,
        seeded_subjects: seed,
        requests: ok,
        errors,
        throughput_rps: ok as f64 / secs,
        latency: Latency::from_histogram(&hist),
        first_error,
        offered_rps: args.rate,
        server_peak_rss_mib,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use amanah_core::fields::{normalize_str, FieldType};

    #[test]
    fn only_loopback_targets() {
        let t = loopback_target("http://127.0.0.1:8080").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.host, "127.0.0.1:8080");
        assert!(loopback_target("http://127.1.2.3:80/").is_ok());
        assert_eq!(
            loopback_target("http://[::1]:9000").unwrap().addr,
            "[::1]:9000".parse().unwrap()
        );
        assert_eq!(
            loopback_target("http://localhost:1").unwrap().addr,
            "127.0.0.1:1".parse().unwrap()
        );
        for bad in [
            "http://10.0.0.1:8080",
            "http://192.168.1.2",
            "http://[2001:db8::1]:80",
            "http://example.com:8080",
            "http://0.0.0.0:8080",
            "https://127.0.0.1:8443",
            "127.0.0.1:8080",
            "http://127.0.0.1:8080/v1",
            "http://user@127.0.0.1:8080",
            "http://127.0.0.1:port",
        ] {
            assert!(loopback_target(bad).is_err(), "{bad} must be refused");
        }
        let e = loopback_target("http://10.1.2.3:80")
            .unwrap_err()
            .to_string();
        assert!(e.contains("only targets loopback"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        for bad in ["", "s", "10h", "-1s", "abc"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

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
    fn percentiles_and_report_format() {
        let mut h = histogram().unwrap();
        // 1 us .. 1 ms, uniform; below 2048 the histogram is exact.
        for us in 1..=1000u64 {
            h.record(us).unwrap();
        }
        let l = Latency::from_histogram(&h);
        assert_eq!(
            (l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms),
            (0.5, 0.9, 0.99, 1.0),
            "{l:?}"
        );
        let r = Report {
            workload: Workload::Lookup,
            target: "http://127.0.0.1:1".into(),
            connections: 8,
            duration_s: 2.0,
            seeded_subjects: 100,
            requests: 1000,
            errors: 2,
            throughput_rps: 500.0,
            latency: l,
            first_error: Some("HTTP 500 Internal Server Error".into()),
            offered_rps: Some(600.0),
            server_peak_rss_mib: Some(42.5),
        };
        let text = r.text();
        assert!(text.starts_with("workload lookup against http://127.0.0.1:1: 8 connections, 2.0 s measured, 100 subjects seeded\n"), "{text}");
        assert!(text.contains("1000 ok, 2 errors"), "{text}");
        assert!(text.contains("500 req/s"), "{text}");
        assert!(
            text.contains("p50 0.50 ms  p90 0.90 ms  p99 0.99 ms  max 1.00 ms"),
            "{text}"
        );
        let json: Value = serde_json::to_value(&r).unwrap();
        assert_eq!(json["workload"], "lookup");
        assert_eq!(
            json["latency"]["p99_ms"].as_f64().unwrap(),
            r.latency.p99_ms
        );
        assert_eq!(json["errors"], 2);
        assert!(text.contains("offered     600 req/s"), "{text}");
        assert!(text.contains("server RSS  42.5 MiB peak"), "{text}");
        assert_eq!(json["server_peak_rss_mib"], 42.5);
    }

    #[test]
    fn peak_rss_is_read_from_proc_status() {
        let status =
            "Name:\tamanah\nVmPeak:\t  900000 kB\nVmHWM:\t   51234 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(peak_rss_kib(status), Some(51_234));
        assert_eq!(peak_rss_kib("Name:\tx\n"), None);
        assert_eq!(peak_rss_kib("VmHWM:\t12 MB\n"), None);
        // This very process has one.
        let own = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(peak_rss_kib(&own).unwrap() > 0);
    }
}
