//! The standard `process_*` metrics (the names every Prometheus client
//! library uses), read from `/proc/self` at each scrape by a
//! prometheus-client `Collector`: CPU seconds, resident and virtual memory,
//! open and maximum file descriptors, start time.
//!
//! prometheus-client has no process collector of its own. Where `/proc` is
//! missing or unreadable (not Linux), the metrics it would give are left out
//! rather than reported as zero.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
};

/// What one reading of `/proc/self` gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ProcessSample {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size, in bytes.
    pub resident_bytes: u64,
    /// Virtual memory size, in bytes.
    pub virtual_bytes: u64,
    /// Start time, in seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

/// Parses `/proc/self/stat` (see proc(5)) given the clock ticks per second,
/// the page size and the system boot time (`btime` of `/proc/stat`).
pub(crate) fn parse_stat(stat: &str, ticks: f64, page: u64, btime: u64) -> Option<ProcessSample> {
    // The command name (field 2) is in parentheses and may hold spaces or
    // parentheses: the fields after it start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state) of proc(5).
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let utime = field(14)?;
    let stime = field(15)?;
    let starttime = field(22)?;
    let vsize = field(23)?;
    let rss = field(24)?;
    if ticks <= 0.0 {
        return None;
    }
    Some(ProcessSample {
        cpu_seconds: (utime + stime) as f64 / ticks,
        resident_bytes: rss.saturating_mul(page),
        virtual_bytes: vsize,
        start_time_seconds: btime as f64 + starttime as f64 / ticks,
    })
}

/// The `btime` line of `/proc/stat`.
pub(crate) fn parse_btime(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn read_sample() -> Option<ProcessSample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let btime = parse_btime(&std::fs::read_to_string("/proc/stat").ok()?)?;
    // SAFETY: sysconf reads a configuration value; it has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    parse_stat(
        &stat,
        ticks as f64,
        u64::try_from(page).ok().filter(|p| *p > 0)?,
        btime,
    )
}

fn open_fds() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

fn max_fds() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    Some(limit.rlim_cur)
}

fn gauge(v: u64) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
}

/// Encodes the `process_*` metrics at each scrape.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(s) = read_sample() {
            let cpu = ConstCounter::new(s.cpu_seconds);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                cpu.metric_type(),
            )?)?;
            for (name, help, value) in [
                (
                    "process_resident_memory_bytes",
                    "Resident memory size in bytes",
                    s.resident_bytes,
                ),
                (
                    "process_virtual_memory_bytes",
                    "Virtual memory size in bytes",
                    s.virtual_bytes,
                ),
            ] {
                let g = gauge(value);
                g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
            }
            let start = ConstGauge::new(s.start_time_seconds);
            start.encode(encoder.encode_descriptor(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                None,
                start.metric_type(),
            )?)?;
        }
        for (name, help, value) in [
            (
                "process_open_fds",
                "Number of open file descriptors",
                open_fds(),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors (soft RLIMIT_NOFILE)",
                max_fds(),
            ),
        ] {
            if let Some(value) = value {
                let g = gauge(value);
                g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_the_command_name() {
        // A command name with a space and a parenthesis; utime 250, stime
        // 150, starttime 1000, vsize 4096000, rss 300 pages.
        let stat = "4242 (cata (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 150 0 0 20 0 3 0 1000 4096000 300 18446744073709551615";
        let s = parse_stat(stat, 100.0, 4096, 1_700_000_000).expect("parsed");
        assert_eq!(s.cpu_seconds, 4.0);
        assert_eq!(s.resident_bytes, 300 * 4096);
        assert_eq!(s.virtual_bytes, 4_096_000);
        assert_eq!(s.start_time_seconds, 1_700_000_010.0);
        assert_eq!(parse_stat("garbage", 100.0, 4096, 0), None);
    }

    #[test]
    fn btime_is_read_from_proc_stat() {
        assert_eq!(
            parse_btime("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_btime("cpu 1\n"), None);
    }

    #[test]
    fn this_process_is_measured() {
        let s = read_sample().expect("/proc/self/stat");
        assert!(s.resident_bytes > 0);
        assert!(s.start_time_seconds > 1_000_000_000.0);
        assert!(open_fds().is_some_and(|n| n >= 3));
    }
}
