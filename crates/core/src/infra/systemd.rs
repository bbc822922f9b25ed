//! systemd integration (`Type=notify` units): readiness, stopping, and the watchdog, through
//! `sd_notify(3)`'s socket. Outside systemd (`NOTIFY_SOCKET` unset: PM2, a terminal, tests)
//! every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

/// The service is up (connected, listening): `systemctl start` returns, dependents start.
pub fn ready() {
    send(&[NotifyState::Ready, NotifyState::Status("ready")]);
}

/// The service began its drain: systemd shows it as deactivating.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// A human-readable status line (`systemctl status`).
pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

/// Feeds the watchdog: systemd restarts the service if this stops for `WatchdogSec`.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to feed the watchdog (half its timeout), when the unit has one.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|timeout| timeout / 2)
}

fn send(states: &[NotifyState]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(%error, "could not notify systemd");
    }
}

/// Feeds the watchdog from a timer task, when the unit has one: proof that the process's
/// runtime still schedules tasks (the API; workers feed it from their heartbeats instead).
pub fn spawn_watchdog_timer() {
    let Some(interval) = watchdog_interval() else {
        return;
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            watchdog();
        }
    });
}
