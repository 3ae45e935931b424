//! `amanah-bench` (also run as `amanah bench`): a load generator for Amanah's HTTP API, kept out
//! of the shipped `amanah` binary. It starts its own `amanah serve` on a throwaway data
//! directory (university preset, purpose `admission`) or targets `--url`, which must be a
//! loopback address: it never sends load anywhere else. N connections (HTTP/1.1 keep-alive)
//! run one workload for a bounded time; the report gives throughput, latency percentiles,
//! errors and the server's memory, as text or JSON, and with `--ceiling` the server's
//! `GET /healthz` rate measured just before; `--report FILE.csv` appends it as a dated row.
//!
//! `workload.rs` is what is sent, `driver.rs` how, `report.rs` what is reported, `history.rs`
//! the CSV row, `server.rs` the server it starts, `memory.rs` that server's memory, `target.rs`
//! the loopback rule.

mod driver;
#[path = "../../amanah/src/duration.rs"]
mod duration;
mod history;
mod memory;
mod report;
mod server;
mod target;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use clap::Parser;

use crate::driver::{Setup, Window};
use crate::duration::parse_duration;
use crate::report::{histogram, Latency, Report};
use crate::workload::{Plan, Rng, Workload, SPACE};
use hdrhistogram::Histogram;

#[derive(Parser, Debug)]
#[command(
    name = "amanah-bench",
    version,
    about = "Load-test Amanah's HTTP API on loopback (also run as `amanah bench`) and report throughput, latency and server memory"
)]
struct BenchArgs {
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
    /// Record the server's resident memory (VmRSS) at this interval from the start of the load
    /// (warm-up included) to its end, e.g. 10s; each sample is also printed on stderr as taken.
    #[arg(long, value_parser = parse_duration)]
    sample_rss: Option<Duration>,
    /// With --url: the server's process id, to report its memory (peak, and --sample-rss).
    #[arg(long, requires = "url")]
    server_pid: Option<u32>,
    /// The `amanah` binary that serves when no --url is given. Default: the one next to this
    /// tool, then the first on PATH (`amanah bench` passes itself).
    #[arg(long, env = "AMANAH_BIN")]
    amanah: Option<PathBuf>,
    /// First measure `GET /healthz` on the same server with the same connections for this long
    /// (default 3s; after up to 1 s of warm-up), and report the workload's rate as a share of
    /// it: the HTTP ceiling of this server on this machine.
    #[arg(long, value_name = "DURATION", num_args = 0..=1, default_missing_value = "3s", value_parser = parse_duration)]
    ceiling: Option<Duration>,
    /// Append the run as one dated row to this CSV file (created with its header if missing),
    /// e.g. bench/history.csv: date, commit, machine, store, workload, figures, ceiling.
    #[arg(long, value_name = "FILE.csv")]
    report: Option<PathBuf>,
    /// With --url: what the server stores in, for the --report row (e.g. postgres). A server
    /// the tool starts is `sqlite`; a --url server not labelled is `unknown`.
    #[arg(long, value_name = "KIND", requires = "url")]
    store_kind: Option<String>,
    /// A free-text note for the --report row (e.g. what the run compares).
    #[arg(long, value_name = "TEXT", requires = "report", default_value = "")]
    report_note: String,
}

/// Up to this much warm-up before the ceiling is measured.
const CEILING_WARMUP: Duration = Duration::from_secs(1);

/// What the connections of one measured window counted together.
struct Measured {
    hist: Histogram<u64>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    /// Seconds from the start of measuring to its end (or the end of the work, for erase).
    secs: f64,
}

/// Runs `workload` over `connections` connections in `window` and adds up what they counted.
async fn measure(
    plan: &Arc<Plan>,
    workload: Workload,
    connections: usize,
    window: Window,
) -> Result<Measured> {
    let mut tasks = Vec::with_capacity(connections);
    for i in 0..connections {
        tasks.push(tokio::spawn(driver::connection(
            plan.clone(),
            workload,
            i as u64,
            window,
        )));
    }
    let mut m = Measured {
        hist: histogram()?,
        ok: 0,
        errors: 0,
        first_error: None,
        secs: 0.0,
    };
    for t in tasks {
        let tally = t.await??;
        m.hist
            .add(&tally.hist)
            .map_err(|e| anyhow!("histogram: {e}"))?;
        m.ok += tally.ok;
        m.errors += tally.errors;
        if m.first_error.is_none() {
            m.first_error = tally.first_error;
        }
    }
    // An erase run ends when the seeded subjects do: the rate is over the time it took.
    let ended = Instant::now().min(window.until);
    m.secs = ended
        .saturating_duration_since(window.measure_from)
        .as_secs_f64()
        .max(1e-3);
    Ok(m)
}

/// `GET /healthz` per second over `connections` connections for `duration`, unpaced.
async fn measure_ceiling(
    plan: &Arc<Plan>,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<f64> {
    let now = Instant::now();
    let warmup = warmup.min(CEILING_WARMUP);
    let window = Window {
        measure_from: now + warmup,
        until: now + warmup + duration,
        interval: None,
    };
    let m = measure(plan, Workload::Healthz, connections, window).await?;
    if m.errors > 0 || m.ok == 0 {
        bail!(
            "measuring the ceiling (GET /healthz): {} ok, {} errors{}",
            m.ok,
            m.errors,
            m.first_error
                .map(|e| format!(", first: {e}"))
                .unwrap_or_default()
        );
    }
    Ok(m.ok as f64 / m.secs)
}

fn main() -> ExitCode {
    let args = BenchArgs::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: BenchArgs) -> Result<()> {
    if args.connections == 0 || args.connections > 10_000 {
        bail!("--connections must be between 1 and 10000");
    }
    if args.duration.is_zero() {
        bail!("--duration must be more than 0");
    }
    if args.sample_rss.is_some_and(|d| d.is_zero()) {
        bail!("--sample-rss must be more than 0");
    }
    if let Some(file) = &args.report {
        history::check(file)?;
    }
    if args.ceiling.is_some_and(|d| d.is_zero()) {
        bail!("--ceiling must be more than 0");
    }
    if args
        .store_kind
        .as_deref()
        .is_some_and(|k| k.trim().is_empty())
    {
        bail!("--store-kind must not be empty");
    }
    if args.sample_rss.is_some() && args.url.is_some() && args.server_pid.is_none() {
        bail!("--sample-rss with --url needs the server's process id: give --server-pid PID");
    }
    let interval = match args.rate {
        Some(rate) if rate.is_finite() && rate > 0.0 => {
            Some(Duration::from_secs_f64(args.connections as f64 / rate))
        }
        Some(_) => bail!("--rate must be a positive number of requests per second"),
        None => None,
    };
    let run = (Rng::from_clock(0).next() % 0xFFFF_FFFF) as u32;
    let seed = if args.workload.needs_subjects() {
        args.subjects.max(1)
    } else {
        0
    };
    if seed > SPACE / 2 {
        bail!("--subjects must be at most {}", SPACE / 2);
    }
    let (own, target, token, label) = match &args.url {
        Some(url) => {
            let target = target::loopback_target(url)?;
            let token = args
                .key
                .clone()
                .ok_or_else(|| anyhow!("--url needs --key (or AMANAH_BENCH_KEY)"))?;
            (None, target, token, url.clone())
        }
        None => {
            let bin = server::find_amanah(args.amanah.as_deref())?;
            let own = server::start(&bin, run, seed, &args.purpose, args.connections).await?;
            let (target, token) = (own.target.clone(), own.token.clone());
            let label = format!("own server {}", target.addr);
            (Some(own), target, token, label)
        }
    };
    let pid = own.as_ref().map(server::OwnServer::pid).or(args.server_pid);
    let plan = Arc::new(Plan {
        target,
        auth: format!("Bearer {token}"),
        purpose: args.purpose.clone(),
        run,
        next: AtomicU64::new(seed),
        seeded: seed,
        ids: Vec::new(),
        next_erase: AtomicU64::new(0),
    });
    // Subjects come from the import of the server the bench started, or are created over HTTP;
    // ids are looked up when the workload needs them.
    let setup = match (own.is_some(), seed > 0, args.workload.needs_ids()) {
        (false, true, _) => Some(Setup::Create),
        (true, true, true) => Some(Setup::Find),
        _ => None,
    };
    let plan = match setup {
        Some(setup) => {
            let ids = driver::setup_ids(&plan, setup, seed, args.connections).await?;
            let mut plan = Arc::try_unwrap(plan).map_err(|_| anyhow!("setup did not finish"))?;
            plan.ids = ids;
            Arc::new(plan)
        }
        None => plan,
    };

    let ceiling_rps = match args.ceiling {
        Some(d) => Some(measure_ceiling(&plan, args.connections, args.warmup, d).await?),
        None => None,
    };

    // The machine as it was before the run: the load average then says whether it was shared,
    // not how busy this run made it.
    let machine = history::Machine::current();
    let started = Instant::now();
    let window = Window {
        measure_from: started + args.warmup,
        until: started + args.warmup + args.duration,
        interval,
    };
    let sampler = match (args.sample_rss, pid) {
        (Some(every), Some(pid)) => Some(memory::spawn_sampler(pid, every, started, window.until)),
        _ => None,
    };
    let cpu_meter = pid.map(|pid| memory::spawn_cpu_meter(pid, window.measure_from, window.until));
    let m = measure(&plan, args.workload, args.connections, window).await?;
    let server_cpu_seconds = match cpu_meter {
        Some(meter) => meter.await?,
        None => None,
    };
    let server_rss_samples = match sampler {
        // The series runs to the planned end even if an erase run stops early.
        Some(s) => s.await?,
        None => Vec::new(),
    };
    let server_peak_rss_mib = pid.and_then(memory::peak_rss_mib);
    drop(own);
    let throughput_rps = m.ok as f64 / m.secs;
    let report = Report {
        workload: args.workload,
        target: label,
        connections: args.connections,
        duration_s: m.secs,
        seeded_subjects: seed,
        requests: m.ok,
        errors: m.errors,
        throughput_rps,
        latency: Latency::from_histogram(&m.hist),
        first_error: m.first_error,
        offered_rps: args.rate,
        ceiling_rps,
        share_of_ceiling: ceiling_rps.map(|c| throughput_rps / c),
        server_peak_rss_mib,
        server_rss_samples,
        server_cpu_us_per_request: server_cpu_seconds
            .filter(|_| m.ok > 0)
            .map(|s| s * 1e6 / m.ok as f64),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    if let Some(file) = &args.report {
        let store = match (&args.store_kind, args.url.is_some()) {
            (Some(kind), _) => kind.trim(),
            (None, false) => "sqlite",
            (None, true) => "unknown",
        };
        let ctx = history::RowContext {
            date: history::rfc3339_utc(time::OffsetDateTime::now_utc())?,
            commit: history::commit_of(file),
            machine,
            store,
            note: &args.report_note,
        };
        history::append(file, &history::row(&report, &ctx))?;
        eprintln!("appended to {}", file.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        BenchArgs::command().debug_assert();
        let e = BenchArgs::try_parse_from(["amanah-bench", "--server-pid", "1"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        for needs_another in [
            &["amanah-bench", "--store-kind", "postgres"][..],
            &["amanah-bench", "--report-note", "x"][..],
        ] {
            let e = BenchArgs::try_parse_from(needs_another).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        }
        // --ceiling alone measures for 3 s; with a value, for that long.
        let a =
            BenchArgs::try_parse_from(["amanah-bench", "--ceiling", "--workload", "get"]).unwrap();
        assert_eq!(a.ceiling, Some(Duration::from_secs(3)));
        assert_eq!(a.workload, Workload::Get);
        let a = BenchArgs::try_parse_from(["amanah-bench", "--ceiling", "500ms"]).unwrap();
        assert_eq!(a.ceiling, Some(Duration::from_millis(500)));
        assert_eq!(
            BenchArgs::try_parse_from(["amanah-bench"]).unwrap().ceiling,
            None
        );
    }
}
