//! `amanah-bench` (and `amanah bench`, which runs it) as a user runs them: the real binaries,
//! each run against an `amanah serve` the tool starts on a throwaway data directory.
//!
//! The server is the `amanah` binary next to this crate's (`target/debug/amanah`):
//! `cargo test --workspace` builds it; with `cargo test -p amanah-bench` alone, build it first
//! (`cargo build -p amanah`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

fn amanah_bin() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_amanah-bench"));
    let amanah = bench.with_file_name("amanah");
    assert!(
        amanah.is_file(),
        "{} is missing: these tests run the server binary; build it with `cargo build -p amanah` (cargo test --workspace does)",
        amanah.display()
    );
    amanah
}

fn bench() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_amanah-bench"));
    cmd.env("AMANAH_BIN", amanah_bin());
    cmd
}

#[test]
fn amanah_bench_help_is_the_tools_help() {
    let out = Command::new(amanah_bin())
        .args(["bench", "--help"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Usage: amanah-bench"), "{help}");
    for flag in [
        "--workload",
        "--connections",
        "--duration",
        "--json",
        "--sample-rss",
        "--ceiling",
        "--report",
    ] {
        assert!(help.contains(flag), "{flag} missing: {help}");
    }
}

#[test]
fn sampling_memory_of_a_server_at_a_url_needs_its_pid() {
    let out = bench()
        .args([
            "--url",
            "http://127.0.0.1:9",
            "--key",
            "x",
            "--sample-rss",
            "10s",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("give --server-pid PID"), "{stderr}");
}

#[test]
fn bench_erases_every_seeded_subject_once_and_reports_server_memory() {
    let out = bench()
        .args([
            "--workload",
            "erase",
            "--duration",
            "20s",
            "--warmup",
            "0s",
            "--connections",
            "3",
            "--subjects",
            "25",
            "--json",
        ])
        .env_remove("AMANAH_BENCH_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["workload"], "erase");
    // Each seeded subject is erased exactly once (a second DELETE would answer 410, an error).
    assert_eq!(report["requests"], 25, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    // The run ends when the subjects do, and the rate is over that time, not the 20 s asked.
    assert!(report["duration_s"].as_f64().unwrap() < 20.0, "{report}");
    assert!(
        report["server_peak_rss_mib"].as_f64().unwrap() > 1.0,
        "{report}"
    );
}

#[test]
fn bench_paces_the_offered_load() {
    let out = bench()
        .args([
            "--workload",
            "get",
            "--rate",
            "40",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--connections",
            "2",
            "--subjects",
            "10",
            "--json",
        ])
        .env_remove("AMANAH_BENCH_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["offered_rps"], 40.0);
    let n = report["requests"].as_u64().unwrap();
    // Unpaced, a server answers gets by the thousand per second; paced, 40 in 1 s (plus at
    // most one per connection from the staggered start).
    assert!((1..=42).contains(&n), "{report}");
    assert_eq!(report["errors"], 0, "{report}");
}

/// The documented command, `amanah bench`, runs this tool with its arguments and the server it
/// starts is that same `amanah`; with `--sample-rss` the report carries the server's memory
/// over the run.
#[test]
fn amanah_bench_runs_a_mixed_load_and_samples_server_memory() {
    let out = Command::new(amanah_bin())
        .args([
            "bench",
            "--workload",
            "mixed",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--connections",
            "4",
            "--subjects",
            "50",
            "--sample-rss",
            "500ms",
            "--json",
        ])
        .env_remove("AMANAH_BENCH_KEY")
        .env_remove("AMANAH_BIN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["workload"], "mixed");
    assert_eq!(report["connections"], 4);
    assert_eq!(report["seeded_subjects"], 50);
    assert_eq!(report["errors"], 0, "{report}");
    assert!(report["requests"].as_u64().unwrap() > 0);
    assert!(report["throughput_rps"].as_f64().unwrap() > 0.0);
    for p in ["mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms"] {
        assert!(
            report["latency"][p].as_f64().is_some(),
            "{p} missing: {report}"
        );
    }
    let l = &report["latency"];
    assert!(
        l["p50_ms"].as_f64() <= l["p99_ms"].as_f64()
            && l["p99_ms"].as_f64() <= l["max_ms"].as_f64()
    );
    // Samples at 0, 0.5 and 1 s of load, each a live server's resident set.
    let samples = report["server_rss_samples"].as_array().unwrap();
    let times: Vec<f64> = samples.iter().map(|s| s["t_s"].as_f64().unwrap()).collect();
    assert_eq!(times, [0.0, 0.5, 1.0], "{report}");
    let peak = report["server_peak_rss_mib"].as_f64().unwrap();
    for s in samples {
        let rss = s["rss_mib"].as_f64().unwrap();
        assert!(rss > 1.0 && rss <= peak, "{report}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("server RSS").count(),
        3,
        "each sample is printed as taken: {stderr}"
    );
}

/// `--ceiling` measures `GET /healthz` on the same server first and reports the workload as a
/// share of it; `--report` appends one dated row per run to a CSV file, its header once.
#[test]
fn bench_measures_the_ceiling_and_appends_rows_to_a_history_file() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history.csv");
    let run = |args: &[&str]| {
        let out = bench()
            .args([
                "--duration",
                "500ms",
                "--warmup",
                "0s",
                "--connections",
                "2",
            ])
            .args(["--json", "--report"])
            .arg(&history)
            .args(args)
            .env_remove("AMANAH_BENCH_KEY")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let get = run(&[
        "--workload",
        "get",
        "--subjects",
        "10",
        "--ceiling",
        "500ms",
        "--report-note",
        "get, with \"ceiling\"",
    ]);
    let ceiling = get["ceiling_rps"].as_f64().unwrap();
    assert!(ceiling > 0.0, "{get}");
    let share = get["share_of_ceiling"].as_f64().unwrap();
    // The report's figures are each rounded to JSON's shortest form: equal to the last bits.
    let expected = get["throughput_rps"].as_f64().unwrap() / ceiling;
    assert!(
        (share - expected).abs() <= expected * 1e-12,
        "{share} vs {expected}"
    );
    let probe = run(&["--workload", "healthz"]);
    assert_eq!(probe["workload"], "healthz");
    assert_eq!(probe["errors"], 0, "{probe}");
    assert!(probe.get("ceiling_rps").is_none(), "{probe}");

    let mut csv = csv::Reader::from_path(&history).unwrap();
    let header: Vec<String> = csv.headers().unwrap().iter().map(str::to_owned).collect();
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2, "one row per run, the header once");
    let cell = |row: &csv::StringRecord, name: &str| {
        let i = header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {name}"));
        row[i].to_owned()
    };
    let (g, p) = (&rows[0], &rows[1]);
    assert_eq!(cell(g, "workload"), "get");
    assert_eq!(cell(p, "workload"), "healthz");
    for row in [g, p] {
        assert_eq!(cell(row, "store"), "sqlite");
        assert_eq!(cell(row, "connections"), "2");
        assert_eq!(cell(row, "errors"), "0");
        // Outside a repository the commit is not known.
        assert_eq!(cell(row, "commit"), "unknown");
        assert!(cell(row, "nproc").parse::<usize>().unwrap() >= 1);
        let date = cell(row, "date");
        assert!(date.len() == 20 && date.ends_with('Z'), "{date}");
    }
    assert_eq!(cell(g, "requests"), get["requests"].to_string());
    let recorded = cell(g, "ceiling_rps").parse::<f64>().unwrap();
    assert!(
        (recorded - ceiling).abs() <= 0.051,
        "{recorded} vs {ceiling}"
    );
    assert!(cell(g, "share_of_ceiling").parse::<f64>().unwrap() > 0.0);
    assert_eq!(cell(g, "note"), "get, with \"ceiling\"");
    assert_eq!(cell(p, "ceiling_rps"), "");
    assert_eq!(cell(p, "note"), "");
}

#[test]
fn bench_refuses_non_loopback_targets() {
    let out = bench()
        .args([
            "--url",
            "http://192.0.2.10:8080",
            "--key",
            "x",
            "--duration",
            "1s",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only targets loopback"));
}
