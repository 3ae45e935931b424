//! The memory of the server under test, read from Linux's `/proc/PID/status`: its peak
//! (`VmHWM`) and, with `--sample-rss`, its resident set (`VmRSS`) at a fixed interval while the
//! load runs, so a soak shows whether memory stays flat; and its CPU time (`/proc/PID/stat`), so
//! a run says what each request cost the server whatever else shared the machine.

use std::time::{Duration, Instant};

use crate::report::RssSample;

/// A value in kB of a `/proc/PID/status` text (`VmHWM`, `VmRSS`, ...), in KiB.
pub fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

fn read_mib(pid: u32, key: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_kib(&status, key).map(|kib| kib as f64 / 1024.0)
}

/// Peak resident set of process `pid` in MiB (Linux only).
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    read_mib(pid, "VmHWM")
}

/// Current resident set of process `pid` in MiB (Linux only).
pub fn rss_mib(pid: u32) -> Option<f64> {
    read_mib(pid, "VmRSS")
}

/// Linux reports a process's CPU times in clock ticks of `USER_HZ`, 100 on every architecture
/// it exports them for.
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU time of a `/proc/PID/stat` text, in seconds, every thread included.
pub fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces: count after its end.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state (3) ... utime (14), stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// CPU time process `pid` has used so far, in seconds (Linux only).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    stat_cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The CPU time `pid` uses between `from` and `until`, in seconds.
pub fn spawn_cpu_meter(
    pid: u32,
    from: Instant,
    until: Instant,
) -> tokio::task::JoinHandle<Option<f64>> {
    tokio::spawn(async move {
        tokio::time::sleep_until(from.into()).await;
        let start = cpu_seconds(pid)?;
        tokio::time::sleep_until(until.into()).await;
        Some(cpu_seconds(pid)? - start)
    })
}

/// Samples the resident set of `pid` every `every` from `start` until `until` (one sample at
/// each end), printing each on stderr as it is taken so a long run shows its progress.
pub fn spawn_sampler(
    pid: u32,
    every: Duration,
    start: Instant,
    until: Instant,
) -> tokio::task::JoinHandle<Vec<RssSample>> {
    tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut at = start;
        loop {
            tokio::time::sleep_until(at.into()).await;
            let Some(rss) = rss_mib(pid) else {
                eprintln!("amanah-bench: process {pid} has no /proc status: RSS sampling stopped");
                break;
            };
            let t_s = at.saturating_duration_since(start).as_secs_f64();
            eprintln!("amanah-bench: {t_s:>6.0} s  server RSS {rss:.1} MiB");
            samples.push(RssSample { t_s, rss_mib: rss });
            if at >= until {
                break;
            }
            at = (at + every).min(until);
        }
        samples
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn cpu_time_is_user_plus_system_after_the_command_name() {
        // A command name with spaces and a parenthesis must not shift the fields.
        let stat = "4242 (amanah (x) y) S 1 2 3 4 5 6 7 8 9 10 250 125 11 12 20 0 9 0 100 0 0";
        assert_eq!(stat_cpu_seconds(stat), Some(3.75));
        assert_eq!(stat_cpu_seconds("4242 (amanah) S 1 2"), None);
        assert_eq!(stat_cpu_seconds("no parenthesis"), None);
        // This very process has used some CPU, and never less later.
        let own = std::process::id();
        let before = cpu_seconds(own).unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds(own).unwrap() >= before);
    }

    #[test]
    fn status_values_are_read_by_key() {
        let status =
            "Name:\tamanah\nVmPeak:\t  900000 kB\nVmHWM:\t   51234 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(status_kib(status, "VmHWM"), Some(51_234));
        assert_eq!(status_kib(status, "VmRSS"), Some(40_000));
        assert_eq!(status_kib(status, "VmRSS2"), None);
        assert_eq!(status_kib("Name:\tx\n", "VmHWM"), None);
        assert_eq!(status_kib("VmHWM:\t12 MB\n", "VmHWM"), None);
        // This very process has both.
        let own = std::process::id();
        assert!(peak_rss_mib(own).unwrap() > 0.0);
        assert!(rss_mib(own).unwrap() > 0.0);
    }

    #[tokio::test]
    async fn the_sampler_takes_a_sample_at_each_end() {
        let start = Instant::now();
        let samples = spawn_sampler(
            std::process::id(),
            Duration::from_millis(20),
            start,
            start + Duration::from_millis(50),
        )
        .await
        .unwrap();
        let times: Vec<f64> = samples.iter().map(|s| s.t_s).collect();
        assert_eq!(times, [0.0, 0.02, 0.04, 0.05], "{samples:?}");
        assert!(samples.iter().all(|s| s.rss_mib > 0.0));
    }
}
