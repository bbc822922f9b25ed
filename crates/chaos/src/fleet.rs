//! Worker processes of one chaos run: the real `sellersync-worker` binary, configured through
//! its environment like a deployment, logging to files the report points at.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sellersync_core::testing::{config_dir, sigterm, wait_exit};

/// Where the workspace's binaries are: `SELLERSYNC_BIN_DIR`, else beside (or one level above)
/// the running executable, as in `target/debug` and `target/debug/deps`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SELLERSYNC_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("own path");
    let here = exe.parent().expect("a directory").to_path_buf();
    if here.join("sellersync-worker").exists() {
        return here;
    }
    here.parent().map(Path::to_path_buf).unwrap_or(here)
}

/// Where Debian's libfaketime (package `libfaketime`, pulled in by `faketime`) keeps its
/// thread-safe library.
const LIBFAKETIME: [&str; 2] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
];

/// The running workers and how to start more.
pub struct Fleet {
    binary: PathBuf,
    env: Vec<(String, String)>,
    logs: PathBuf,
    workers: Vec<Child>,
    started: usize,
    /// Pids of the workers SIGKILLed (worker ids contain `-<pid>-`).
    pub killed: Vec<u32>,
}

impl Fleet {
    /// `env`: the settings every worker gets; logs go to `logs/worker-<n>.log`.
    pub fn new(env: Vec<(String, String)>, logs: PathBuf) -> Self {
        let binary = bin_dir().join("sellersync-worker");
        assert!(
            binary.exists(),
            "{} not found: build the workspace first (or set SELLERSYNC_BIN_DIR)",
            binary.display()
        );
        std::fs::create_dir_all(&logs).expect("a log directory");
        Self {
            binary,
            env,
            logs,
            workers: Vec::new(),
            started: 0,
            killed: Vec::new(),
        }
    }

    pub fn start(&mut self) {
        let command = Command::new(&self.binary);
        self.spawn(command);
    }

    /// Starts a worker whose wall clock is `skew_secs` off (libfaketime preloaded into the worker
    /// itself, so its pid is the worker's), if libfaketime is installed (`scripts/services
    /// test-tools`); returns false (and starts a plain one) if not.
    pub fn start_skewed(&mut self, skew_secs: i64) -> bool {
        let Some(library) = LIBFAKETIME.iter().find(|path| Path::new(path).exists()) else {
            self.start();
            return false;
        };
        let mut command = Command::new(&self.binary);
        command
            .env("LD_PRELOAD", library)
            .env("FAKETIME", format!("{skew_secs:+}s"))
            // Only the wall clock: timers and intervals run on the monotonic clock as usual.
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        self.spawn(command);
        true
    }

    fn spawn(&mut self, mut command: Command) {
        let name = format!("worker-{}.log", self.started);
        let log = std::fs::File::create(self.logs.join(name)).expect("a log file");
        let child = command
            .env("SELLERSYNC_ENV", "test")
            .env("SELLERSYNC_CONFIG_DIR", config_dir())
            .env("LOG_LEVEL", "info")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("the worker starts");
        self.workers.push(child);
        self.started += 1;
    }

    /// SIGKILLs the oldest running worker (its jobs are recovered by the others).
    pub fn kill_one(&mut self) {
        if !self.workers.is_empty() {
            let mut victim = self.workers.remove(0);
            self.killed.push(victim.id());
            let _ = victim.kill();
            let _ = victim.wait();
        }
    }

    /// SIGTERMs the oldest running worker and waits for its drain (its jobs finish or go back).
    pub fn drain_one(&mut self) {
        if !self.workers.is_empty() {
            let mut worker = self.workers.remove(0);
            sigterm(&worker);
            wait_exit(&mut worker, Duration::from_secs(60));
        }
    }

    /// SIGTERMs every worker and waits for each to exit.
    pub fn stop_all(&mut self) {
        for worker in &self.workers {
            sigterm(worker);
        }
        for mut worker in self.workers.drain(..) {
            wait_exit(&mut worker, Duration::from_secs(60));
        }
    }
}

/// The panics the workers of a run logged, as `payload at location`, read from the JSON log
/// lines in `logs` (a panic is one `tracing_panic` event; see `sellersync_core::infra::telemetry`).
pub fn logged_panics(logs: &Path) -> Vec<String> {
    let Ok(files) = std::fs::read_dir(logs) else {
        return Vec::new();
    };
    files
        .flatten()
        .filter_map(|file| std::fs::read_to_string(file.path()).ok())
        .flat_map(|text| text.lines().filter_map(panic_of).collect::<Vec<_>>())
        .collect()
}

/// `payload at location` when `line` is a logged panic.
fn panic_of(line: &str) -> Option<String> {
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    (event["target"] == "tracing_panic").then(|| {
        let field = |name: &str| event[name].as_str().unwrap_or("?").to_owned();
        format!("{} at {}", field("panic.payload"), field("panic.location"))
    })
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for mut worker in self.workers.drain(..) {
            let _ = worker.kill();
            let _ = worker.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::panic_of;

    #[test]
    fn only_a_logged_panic_counts_as_one() {
        let panic = r#"{"level":"ERROR","panic.payload":"boom","panic.location":"src/a.rs:1:2","target":"tracing_panic"}"#;
        assert_eq!(panic_of(panic).as_deref(), Some("boom at src/a.rs:1:2"));
        let warning = r#"{"level":"WARN","message":"fetch failed","target":"sellersync_queue::apalis"}"#;
        assert_eq!(panic_of(warning), None);
        assert_eq!(panic_of("not json"), None);
    }
}
