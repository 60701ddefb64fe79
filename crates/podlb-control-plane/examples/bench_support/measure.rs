//! A process's CPU time and memory, read from `/proc`, and the order
//! statistics the reports print. Reads only; starts and stops nothing.
//!
//! CPU time is the sum of every thread's `se.sum_exec_runtime` in
//! `/proc/PID/task/*/sched` (nanosecond accounting), because `utime` and
//! `stime` in `/proc/PID/stat` count 10 ms ticks, too coarse for one
//! catalog change. Where `sched` is missing it falls back to the ticks.

use std::path::Path;
use std::time::Duration;

/// What a process has used so far.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    /// CPU time, user and system, of its live threads.
    pub(crate) cpu: Duration,
    /// Resident memory now (`VmRSS`), KiB.
    pub(crate) rss_kb: u64,
    /// The most it was ever resident (`VmHWM`), KiB.
    pub(crate) peak_kb: u64,
    /// Minor page faults so far (`minflt`): pages the kernel had to map
    /// and zero, a cost `cpu` includes but does not name.
    pub(crate) minor_faults: u64,
}

/// The usage of process `pid`; zeros for what cannot be read.
pub(crate) fn usage(pid: u32) -> Usage {
    let proc = format!("/proc/{pid}");
    let status = std::fs::read_to_string(format!("{proc}/status")).unwrap_or_default();
    Usage {
        cpu: cpu_time(Path::new(&proc)),
        rss_kb: status_kb(&status, "VmRSS:"),
        peak_kb: status_kb(&status, "VmHWM:"),
        minor_faults: stat_field(Path::new(&proc), 7),
    }
}

/// The usage of this process.
pub(crate) fn own_usage() -> Usage {
    usage(std::process::id())
}

fn status_kb(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn cpu_time(proc: &Path) -> Duration {
    let mut total = Duration::ZERO;
    let mut threads = 0;
    if let Ok(tasks) = std::fs::read_dir(proc.join("task")) {
        for task in tasks.flatten() {
            let Ok(sched) = std::fs::read_to_string(task.path().join("sched")) else {
                continue;
            };
            if let Some(ms) = sum_exec_runtime_ms(&sched) {
                total += Duration::from_secs_f64(ms / 1000.0);
                threads += 1;
            }
        }
    }
    if threads > 0 {
        return total;
    }
    stat_ticks(proc)
}

fn sum_exec_runtime_ms(sched: &str) -> Option<f64> {
    sched
        .lines()
        .find(|line| line.starts_with("se.sum_exec_runtime"))
        .and_then(|line| line.split(':').nth(1))
        .and_then(|value| value.trim().parse().ok())
}

/// utime + stime from `/proc/PID/stat`, at the usual 100 ticks a second.
fn stat_ticks(proc: &Path) -> Duration {
    let ticks = stat_field(proc, 11) + stat_field(proc, 12);
    Duration::from_millis(ticks * 10)
}

/// Field `index` of `/proc/PID/stat`, counted from the one after the
/// command name (0 is the state); 0 when it cannot be read.
fn stat_field(proc: &Path, index: usize) -> u64 {
    let stat = std::fs::read_to_string(proc.join("stat")).unwrap_or_default();
    // The command name may hold spaces; the fields follow its ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(index))
        .and_then(|field| field.parse().ok())
        .unwrap_or(0)
}

/// The `q`-quantile (0..=1) of `values`, nearest rank; zero when empty.
pub(crate) fn quantile(values: &[Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of `values`.
pub(crate) fn median(values: &[Duration]) -> Duration {
    quantile(values, 0.5)
}

/// The largest of `values`.
pub(crate) fn max(values: &[Duration]) -> Duration {
    values.iter().copied().max().unwrap_or_default()
}

/// Milliseconds, for printing.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// KiB as MiB, for printing.
pub(crate) fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// This machine, for the report: CPUs, model, kernel, and the date.
pub(crate) fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split(':').nth(1))
        .map_or("unknown CPU".to_string(), |m| m.trim().to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_default();
    format!("{cpus} CPUs ({model}), Linux {}, {date}", kernel.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let values: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(median(&values), Duration::from_millis(5));
        assert_eq!(quantile(&values, 0.9), Duration::from_millis(9));
        assert_eq!(quantile(&values, 0.99), Duration::from_millis(10));
        assert_eq!(max(&values), Duration::from_millis(10));
    }
}
