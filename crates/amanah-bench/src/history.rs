//! `--report FILE.csv`: one dated row per run appended to a CSV file kept in the repository
//! (`bench/history.csv`), so that a regression shows as a drop between rows. A row says when,
//! which commit, on which machine (and how loaded it was), against which store, and what the run
//! measured, including the `GET /healthz` ceiling when `--ceiling` measured it.
//!
//! The file starts with one header line; rows are RFC 4180 (cells holding a comma, a quote or a
//! line break are quoted, quotes doubled), lines end in `\n`. A file whose header is not this
//! tool's is left untouched and refused, so the columns never shift under older rows.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::report::Report;

/// The columns, in order.
pub const HEADER: [&str; 21] = [
    "date",
    "commit",
    "nproc",
    "cpu_model",
    "mem_total_gib",
    "loadavg_1m",
    "store",
    "workload",
    "connections",
    "duration_s",
    "seeded_subjects",
    "requests",
    "errors",
    "throughput_rps",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "offered_rps",
    "ceiling_rps",
    "share_of_ceiling",
    "note",
];

/// The machine a run happened on.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// Processors this process may use (what `nproc` prints).
    pub nproc: usize,
    /// The first `model name` of `/proc/cpuinfo`.
    pub cpu_model: Option<String>,
    /// `MemTotal` of `/proc/meminfo`, in GiB.
    pub mem_total_gib: Option<f64>,
    /// The 1-minute load average before the run (the machine may be shared).
    pub loadavg_1m: Option<f64>,
}

impl Machine {
    /// This machine, as Linux describes it (fields it cannot read are left empty).
    pub fn current() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model: cpu_model(&read("/proc/cpuinfo")),
            mem_total_gib: mem_total_gib(&read("/proc/meminfo")),
            loadavg_1m: read("/proc/loadavg")
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok()),
        }
    }
}

/// The first `model name : ...` of a `/proc/cpuinfo` text.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name" && !value.trim().is_empty()).then(|| value.trim().to_owned())
    })
}

/// `MemTotal: N kB` of a `/proc/meminfo` text, in GiB.
fn mem_total_gib(meminfo: &str) -> Option<f64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / (1024.0 * 1024.0))
}

/// The short hash of the commit checked out in the repository holding `file`, or `unknown`
/// (not a repository, or no `git`).
pub fn commit_of(file: &Path) -> String {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--short", "HEAD"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The date a row carries: RFC 3339, UTC, whole seconds.
pub fn rfc3339_utc(at: OffsetDateTime) -> Result<String> {
    at.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .map_err(|e| anyhow!("date: {e}"))?
        .format(&Rfc3339)
        .map_err(|e| anyhow!("date: {e}"))
}

/// What a row says besides the report itself.
pub struct RowContext<'a> {
    pub date: String,
    pub commit: String,
    pub machine: Machine,
    /// `sqlite`, `postgres`, ... (`unknown` for a server at `--url` not labelled).
    pub store: &'a str,
    pub note: &'a str,
}

/// One row's cells, in the order of `HEADER`; absent figures are empty cells.
pub fn row(report: &Report, ctx: &RowContext<'_>) -> Vec<String> {
    let opt =
        |v: Option<f64>, places: usize| v.map_or_else(String::new, |v| format!("{v:.places$}"));
    let m = &ctx.machine;
    let l = &report.latency;
    vec![
        ctx.date.clone(),
        ctx.commit.clone(),
        m.nproc.to_string(),
        m.cpu_model.clone().unwrap_or_default(),
        opt(m.mem_total_gib, 1),
        opt(m.loadavg_1m, 2),
        ctx.store.to_owned(),
        report.workload.name().to_owned(),
        report.connections.to_string(),
        format!("{:.2}", report.duration_s),
        report.seeded_subjects.to_string(),
        report.requests.to_string(),
        report.errors.to_string(),
        format!("{:.1}", report.throughput_rps),
        format!("{:.3}", l.p50_ms),
        format!("{:.3}", l.p99_ms),
        format!("{:.3}", l.max_ms),
        opt(report.offered_rps, 1),
        opt(report.ceiling_rps, 1),
        opt(report.share_of_ceiling, 4),
        ctx.note.to_owned(),
    ]
}

/// `cells` as CSV lines (RFC 4180 quoting, `\n` after each).
fn csv_lines<'a>(lines: impl IntoIterator<Item = &'a [String]>) -> Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    for cells in lines {
        w.write_record(cells)?;
    }
    w.into_inner().map_err(|e| anyhow!("csv: {e}"))
}

/// The file's bytes so far (empty if it does not exist), if rows of this tool may be appended
/// to it: missing, empty, or starting with `HEADER`.
fn existing(path: &Path) -> Result<Vec<u8>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if bytes.is_empty() {
        return Ok(bytes);
    }
    let first = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes.as_slice())
        .records()
        .next()
        .transpose()
        .ok()
        .flatten();
    if first.as_ref().is_none_or(|r| r.iter().ne(HEADER)) {
        bail!(
            "{} does not start with this tool's header ({}): give --report a new file",
            path.display(),
            HEADER.join(",")
        );
    }
    Ok(bytes)
}

/// Whether a row can be appended to `path` (checked before a run, so a long run is not lost
/// to a wrong file): its directory exists and the file is missing, empty or of this tool.
pub fn check(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!(
            "--report {}: no directory {}",
            path.display(),
            dir.display()
        );
    }
    existing(path).map(drop)
}

/// Appends `cells` to the CSV file at `path`, writing the header first if the file is missing
/// or empty. A file whose first line is not `HEADER` is refused and left as it was. The bytes
/// of one call go out in one append, so a row is never interleaved with another writer's.
pub fn append(path: &Path, cells: &[String]) -> Result<()> {
    if cells.len() != HEADER.len() {
        bail!(
            "a row has {} cells, the header {}",
            cells.len(),
            HEADER.len()
        );
    }
    let existing = existing(path)?;
    let mut out = Vec::new();
    if existing.is_empty() {
        let header: Vec<String> = HEADER.iter().map(|&h| h.to_owned()).collect();
        out = csv_lines([header.as_slice()])?;
    } else if !existing.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend(csv_lines([cells])?);
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(&out))
        .with_context(|| format!("cannot append to {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::report::Latency;
    use crate::workload::Workload;

    fn report() -> Report {
        Report {
            workload: Workload::Lookup,
            target: "http://127.0.0.1:1".into(),
            connections: 8,
            duration_s: 10.004,
            seeded_subjects: 10_000,
            requests: 120_345,
            errors: 0,
            throughput_rps: 12_029.66,
            latency: Latency {
                mean_ms: 0.6,
                p50_ms: 0.5,
                p90_ms: 0.9,
                p99_ms: 2.25,
                max_ms: 14.5,
            },
            first_error: None,
            offered_rps: None,
            ceiling_rps: Some(70_000.0),
            share_of_ceiling: Some(12_029.66 / 70_000.0),
            server_peak_rss_mib: None,
            server_rss_samples: Vec::new(),
            server_cpu_us_per_request: None,
        }
    }

    fn ctx<'a>(cpu: &str, note: &'a str) -> RowContext<'a> {
        RowContext {
            date: "2026-12-01T15:41:08Z".into(),
            commit: "0135c73".into(),
            machine: Machine {
                nproc: 2,
                cpu_model: Some(cpu.into()),
                mem_total_gib: Some(23.43),
                loadavg_1m: Some(1.5),
            },
            store: "sqlite",
            note,
        }
    }

    #[test]
    fn a_row_has_every_column_in_order() {
        let cells = row(&report(), &ctx("AMD EPYC 7B13", ""));
        assert_eq!(cells.len(), HEADER.len());
        let line = String::from_utf8(csv_lines([cells.as_slice()]).unwrap()).unwrap();
        assert_eq!(
            line,
            "2026-12-01T15:41:08Z,0135c73,2,AMD EPYC 7B13,23.4,1.50,sqlite,lookup,8,10.00,10000,\
             120345,0,12029.7,0.500,2.250,14.500,,70000.0,0.1719,\n"
        );
    }

    #[test]
    fn the_header_is_written_once_and_rows_are_appended() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("history.csv");
        append(&file, &row(&report(), &ctx("cpu one", "first"))).unwrap();
        append(&file, &row(&report(), &ctx("cpu two", "second"))).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], HEADER.join(","));
        assert!(lines[1].contains(",cpu one,") && lines[1].ends_with(",first"));
        assert!(lines[2].contains(",cpu two,") && lines[2].ends_with(",second"));
        assert!(text.ends_with('\n'));

        // An empty file (e.g. created by hand) gets the header too.
        let empty = dir.path().join("empty.csv");
        std::fs::write(&empty, "").unwrap();
        append(&empty, &row(&report(), &ctx("c", ""))).unwrap();
        let text = std::fs::read_to_string(&empty).unwrap();
        assert!(
            text.starts_with(&format!("{}\n", HEADER.join(","))),
            "{text}"
        );
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn cells_with_commas_quotes_and_line_breaks_are_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("h.csv");
        let cpu = "Intel(R) Xeon(R) CPU @ 2.20GHz, \"rev\" 3";
        let note = "two servers,\none cluster";
        append(&file, &row(&report(), &ctx(cpu, note))).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains(",\"Intel(R) Xeon(R) CPU @ 2.20GHz, \"\"rev\"\" 3\","),
            "{text}"
        );
        assert!(text.ends_with(",\"two servers,\none cluster\"\n"), "{text}");
        // Read back, the row has every column and the values as written.
        let mut r = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>(), HEADER);
        let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(&rows[0][3], cpu);
        assert_eq!(&rows[0][20], note);
        assert_eq!(&rows[0][13], "12029.7");
    }

    #[test]
    fn a_file_with_other_columns_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("other.csv");
        std::fs::write(&file, "date,rps\n2026-01-01T00:00:00Z,5\n").unwrap();
        let e = append(&file, &row(&report(), &ctx("c", "")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not start with this tool's header"), "{e}");
        // Found before the run, too.
        let e = check(&file).unwrap_err().to_string();
        assert!(e.contains("does not start with this tool's header"), "{e}");
        let e = check(&dir.path().join("no/such/dir.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no directory"), "{e}");
        check(&dir.path().join("new.csv")).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "date,rps\n2026-01-01T00:00:00Z,5\n"
        );
        // A file of this tool missing its last line break still gets whole lines.
        let cut = dir.path().join("cut.csv");
        std::fs::write(&cut, HEADER.join(",")).unwrap();
        append(&cut, &row(&report(), &ctx("c", "x"))).unwrap();
        let text = std::fs::read_to_string(&cut).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("2026-12-01T15:41:08Z,"));
    }

    #[test]
    fn the_machine_is_read_from_proc() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model("processor : 0\nBogoMIPS : 48.00\n"), None);
        let gib = mem_total_gib("MemTotal:       24576000 kB\nMemFree:  1 kB\n").unwrap();
        assert!((gib - 23.4375).abs() < 1e-9, "{gib}");
        assert_eq!(mem_total_gib("MemFree: 1 kB\n"), None);
        assert!(Machine::current().nproc >= 1);
    }

    #[test]
    fn dates_are_rfc3339_utc_in_whole_seconds() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_796_139_668_123_456_789)
            .unwrap()
            .to_offset(time::UtcOffset::from_hms(7, 0, 0).unwrap());
        assert_eq!(rfc3339_utc(at).unwrap(), "2026-12-01T15:41:08Z");
    }

    #[test]
    fn the_commit_is_unknown_outside_a_repository() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(commit_of(&dir.path().join("h.csv")), "unknown");
    }
}
