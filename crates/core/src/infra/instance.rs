//! Process identity: a unique id per running process (`host-pid-random`), used as the worker id in
//! logs, leases and JobStatus documents.

use rand::Rng;
use rand::distr::Alphanumeric;

/// `host-pid-random`, e.g. `web-3-41233-k3x9qa`; unique across restarts and hosts.
pub fn instance_id() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let suffix: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(6)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect();
    format!("{host}-{}-{suffix}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_host_and_pid_and_differ() {
        let (a, b) = (instance_id(), instance_id());
        assert_ne!(a, b);
        assert!(a.contains(&format!("-{}-", std::process::id())), "{a}");
    }
}
