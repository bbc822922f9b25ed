//! The hourly producer as a service of the API: it waits for each tick of `cron.schedule` in
//! `TIMEZONE` and runs it in its own task (request handling never waits for it). With several
//! API replicas each tick runs once (see `sellersync_core::cron`); a replica that finds the tick
//! held by another keeps checking until it is completed, and takes it over if the holder died.

use std::time::Duration;

use chrono::Utc;
use chrono_tz::Tz;
use sellersync_core::cron::{Producer, Schedule, TickOutcome, next_tick, tick_id};
use tokio::sync::watch;

/// How long a replica keeps watching a tick another replica holds.
const TAKEOVER_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Runs ticks until `stop` turns true.
pub async fn run(producer: Producer, schedule: Schedule, tz: Tz, mut stop: watch::Receiver<bool>) {
    tracing::info!(instance = %producer.instance, timezone = %tz, "cron producer started");
    loop {
        let Some(tick) = next_tick(&schedule, tz, Utc::now()) else {
            tracing::error!("the schedule has no next tick; cron producer stopped");
            return;
        };
        let wait = (tick - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        tokio::spawn(run_tick(producer.clone(), tick));
    }
}

async fn run_tick(producer: Producer, tick: chrono::DateTime<Utc>) {
    let deadline = tokio::time::Instant::now() + TAKEOVER_WINDOW;
    let retry = producer.lease_ttl / 2;
    loop {
        match producer.run_tick(tick).await {
            Ok(TickOutcome::Ran(_) | TickOutcome::AlreadyDone) => return,
            Ok(TickOutcome::HeldElsewhere) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(retry).await;
            }
            Ok(TickOutcome::HeldElsewhere) => return,
            Err(error) => {
                tracing::error!(tick = tick_id(tick), %error, "cron tick failed");
                return;
            }
        }
    }
}
