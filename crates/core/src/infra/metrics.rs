//! The one owner of sellersync's Prometheus metrics scheme: every family is named
//! `sellersync_<subsystem>_<what>_<unit>` (counters end in `_total`, durations are histograms
//! in seconds with the buckets below), per-queue families carry a `queue` label, and the API
//! and the workers record through the same process-wide recorder ([`recorder`]).
//!
//! Besides the names, this module renders what the `metrics` facade cannot: `build_info` and
//! the process families (`process_*`, read from `/proc` at scrape time, as the Prometheus
//! client libraries name them).

use std::fmt::Write;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Histogram buckets (seconds) for every duration: 1 ms to 10 min, so HTTP requests, SP-API
/// calls, rate-limit waits and whole job attempts all fall inside.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    600.0,
];

/// How often recorded histogram samples are folded into buckets between scrapes.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// HTTP requests served by the API, by method, route template and status.
pub const HTTP_REQUESTS: &str = "sellersync_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "sellersync_http_request_duration_seconds";
/// Job attempts this worker process finished, by queue and outcome (completed, retrying,
/// failed, deferred).
pub const WORKER_ATTEMPTS: &str = "sellersync_worker_job_attempts_total";
/// Duration of this worker process's attempts, by queue.
pub const WORKER_ATTEMPT_DURATION: &str = "sellersync_worker_job_attempt_duration_seconds";
/// Jobs running in this worker process now, by queue.
pub const WORKER_IN_FLIGHT: &str = "sellersync_worker_jobs_in_flight";
/// Jobs this worker process runs at once at most, by queue.
pub const WORKER_CONCURRENCY: &str = "sellersync_worker_concurrency";
/// SP-API (and LWA token) calls, by operation and HTTP status (`timeout`, `error` when there
/// was no response).
pub const SPAPI_REQUESTS: &str = "sellersync_spapi_requests_total";
pub const SPAPI_REQUEST_DURATION: &str = "sellersync_spapi_request_duration_seconds";
/// Time calls waited for a rate-limit token, by operation.
pub const SPAPI_RATE_LIMIT_WAIT: &str = "sellersync_spapi_rate_limit_wait_seconds";
/// Calls given up because the rate limit would make them wait too long, by operation.
pub const SPAPI_RATE_BOUND: &str = "sellersync_spapi_rate_bound_total";
/// Queue events the JobStatus projector set aside because MongoDB refuses them, by queue.
pub const JOB_STATUS_DEAD_LETTERS: &str = "sellersync_job_status_dead_letters_total";

/// The process-wide recorder with histogram buckets for every duration, installed on first use
/// (tests build many apps in one process; all share it). Render it with [`render`].
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(DURATION_BUCKETS)
                .expect("the buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; metrics go there");
            }
            // Folds recorded histogram samples into their buckets even when nobody scrapes, so
            // memory stays bounded (rendering does it too).
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_INTERVAL);
                        upkeep.run_upkeep();
                    }
                })
                .expect("a metrics upkeep thread");
            handle
        })
        .clone()
}

/// This process's metrics as Prometheus text: `build_info`, the process families, and
/// everything recorded through the facade.
pub fn render(handle: &PrometheusHandle, binary: &str) -> String {
    handle.run_upkeep();
    let mut out = String::new();
    render_build_info(&mut out, binary);
    render_process(&mut out);
    out.push_str(&handle.render());
    out
}

/// Writes a `# HELP`/`# TYPE` header.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn render_build_info(out: &mut String, binary: &str) {
    family(
        out,
        "sellersync_build_info",
        "gauge",
        "Always 1; the labels say which binary and version runs.",
    );
    let _ = writeln!(
        out,
        "sellersync_build_info{{binary=\"{binary}\",version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
}

/// `process_*` from `/proc/self` (Linux); nothing elsewhere.
fn render_process(out: &mut String) {
    let Some(process) = ProcessStats::read() else {
        return;
    };
    let families = [
        (
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
            process.cpu_seconds,
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            process.resident_bytes,
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            process.virtual_bytes,
        ),
        (
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            process.open_fds,
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
            process.start_time_seconds,
        ),
    ];
    for (name, kind, help, value) in families {
        family(out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
}

/// What `/proc` says about this process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    pub virtual_bytes: f64,
    pub open_fds: f64,
    pub start_time_seconds: f64,
}

/// Clock ticks per second of `/proc`'s times (USER_HZ; 100 on every Linux platform we run on).
const TICKS_PER_SECOND: f64 = 100.0;
const PAGE_SIZE: f64 = 4096.0;

impl ProcessStats {
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot_time = std::fs::read_to_string("/proc/stat").ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
        Self::parse(&stat, &boot_time, open_fds)
    }

    /// `stat`: `/proc/self/stat`; `system`: `/proc/stat` (for the boot time).
    fn parse(stat: &str, system: &str, open_fds: f64) -> Option<Self> {
        // The command name (field 2) may contain spaces: fields are counted after its ')'.
        let after_name = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // Fields 3.. of proc(5), so field N is fields[N - 3].
        let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
        let boot_seconds = system
            .lines()
            .find_map(|line| line.strip_prefix("btime "))?
            .trim()
            .parse::<f64>()
            .ok()?;
        Some(Self {
            cpu_seconds: (field(14)? + field(15)?) / TICKS_PER_SECOND,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * PAGE_SIZE,
            open_fds,
            start_time_seconds: boot_seconds + field(22)? / TICKS_PER_SECOND,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_parses_with_spaces_in_the_command_name() {
        let stat = "4242 (sellersync worker) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 \
                    9 0 12000 104857600 2560 18446744073709551615";
        let system = "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n";
        let stats = ProcessStats::parse(stat, system, 12.0).unwrap();
        assert_eq!(stats.cpu_seconds, 4.0);
        assert_eq!(stats.virtual_bytes, 104_857_600.0);
        assert_eq!(stats.resident_bytes, 2560.0 * 4096.0);
        assert_eq!(stats.start_time_seconds, 1_700_000_120.0);
        assert_eq!(stats.open_fds, 12.0);
    }

    #[test]
    fn this_process_is_described() {
        let text = render(&recorder(), "test");
        assert!(text.contains("sellersync_build_info{binary=\"test\""), "{text}");
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
    }
}
