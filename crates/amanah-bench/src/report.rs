//! What a run reports: throughput, latency percentiles, errors, and the memory of the server
//! under test, as text for people or JSON for scripts.

use anyhow::{anyhow, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::workload::Workload;

/// A histogram of latencies in microseconds, from 1 µs to 120 s at 3 significant digits.
pub fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 120_000_000, 3).map_err(|e| anyhow!("histogram: {e}"))
}

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

/// The server's resident memory (`VmRSS`) at `t_s` seconds after the load started (warm-up
/// included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RssSample {
    pub t_s: f64,
    pub rss_mib: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub workload: Workload,
    pub target: String,
    pub connections: usize,
    pub duration_s: f64,
    /// Subjects created before measuring (lookup, get, mixed, erase).
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
    /// `GET /healthz` per second on the same server and connections just before the run
    /// (`--ceiling`): what this machine serves over HTTP with no vault work at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling_rps: Option<f64>,
    /// `throughput_rps / ceiling_rps`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_of_ceiling: Option<f64>,
    /// Peak resident memory of the server under test (Linux `VmHWM`), in MiB: the server the
    /// bench started, or `--server-pid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_peak_rss_mib: Option<f64>,
    /// The server's resident memory every `--sample-rss` interval.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server_rss_samples: Vec<RssSample>,
    /// The server's CPU time (user + system, every thread) in the measured window divided by
    /// the requests answered, in microseconds: what a request costs the server, which a machine
    /// shared with other work changes far less than the rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_us_per_request: Option<f64>,
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
        if let (Some(ceiling), Some(share)) = (self.ceiling_rps, self.share_of_ceiling) {
            out.push_str(&format!(
                "  ceiling     GET /healthz {ceiling:.0} req/s: this workload runs at {:.1} % of it\n",
                share * 100.0
            ));
        }
        if let Some(rss) = self.server_peak_rss_mib {
            out.push_str(&format!("  server RSS  {rss:.1} MiB peak\n"));
        }
        if let Some(cpu) = self.server_cpu_us_per_request {
            out.push_str(&format!("  server CPU  {cpu:.0} µs per request\n"));
        }
        for row in self.server_rss_samples.chunks(6) {
            let cells: Vec<String> = row
                .iter()
                .map(|s| format!("{:>5.0} s {:>6.1} MiB", s.t_s, s.rss_mib))
                .collect();
            out.push_str(&format!("  RSS         {}\n", cells.join("  ")));
        }
        if let Some(e) = &self.first_error {
            out.push_str(&format!("  first error {e}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::Value;

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
        let mut r = Report {
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
            ceiling_rps: None,
            share_of_ceiling: None,
            server_peak_rss_mib: Some(42.5),
            server_rss_samples: Vec::new(),
            server_cpu_us_per_request: None,
        };
        let text = r.text();
        assert!(text.starts_with("workload lookup against http://127.0.0.1:1: 8 connections, 2.0 s measured, 100 subjects seeded\n"), "{text}");
        assert!(text.contains("1000 ok, 2 errors"), "{text}");
        assert!(text.contains("500 req/s"), "{text}");
        assert!(
            text.contains("p50 0.50 ms  p90 0.90 ms  p99 0.99 ms  max 1.00 ms"),
            "{text}"
        );
        assert!(!text.contains("RSS    "), "no samples, no series: {text}");
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
        assert!(json.get("server_rss_samples").is_none(), "{json}");
        assert!(!text.contains("ceiling"), "no ceiling measured: {text}");
        assert!(json.get("ceiling_rps").is_none(), "{json}");
        assert!(!text.contains("server CPU"), "{text}");
        assert!(json.get("server_cpu_us_per_request").is_none(), "{json}");

        r.server_cpu_us_per_request = Some(212.4);
        let text = r.text();
        assert!(
            text.contains("  server CPU  212 µs per request\n"),
            "{text}"
        );
        let json: Value = serde_json::to_value(&r).unwrap();
        assert_eq!(json["server_cpu_us_per_request"], 212.4);

        r.ceiling_rps = Some(4000.0);
        r.share_of_ceiling = Some(0.125);
        let text = r.text();
        assert!(
            text.contains(
                "  ceiling     GET /healthz 4000 req/s: this workload runs at 12.5 % of it\n"
            ),
            "{text}"
        );
        let json: Value = serde_json::to_value(&r).unwrap();
        assert_eq!(json["ceiling_rps"], 4000.0);
        assert_eq!(json["share_of_ceiling"], 0.125);

        r.server_rss_samples = (0..7)
            .map(|i| RssSample {
                t_s: f64::from(i) * 10.0,
                rss_mib: 30.0 + f64::from(i) / 10.0,
            })
            .collect();
        let text = r.text();
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("  RSS ")).collect();
        assert_eq!(rows.len(), 2, "six samples a row: {text}");
        assert!(rows[0].contains("    0 s   30.0 MiB") && rows[0].contains("   50 s   30.5 MiB"));
        assert!(rows[1].contains("   60 s   30.6 MiB"), "{text}");
        let json: Value = serde_json::to_value(&r).unwrap();
        assert_eq!(json["server_rss_samples"][6]["t_s"], 60.0);
        assert_eq!(json["server_rss_samples"][6]["rss_mib"], 30.6);
    }
}
