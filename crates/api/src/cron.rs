//! The hourly producer as a service of the API: it waits for each tick of `cron.schedule` in
//! `TIMEZONE` and runs it in its own task (request handling never waits for it). With several
//! API replicas each tick runs once (see `sellersync_core::jobs::producer`). A tick is driven until it is
//! done or the next tick is due: a failure is retried with backoff, and a replica that finds the
//! tick held by another keeps watching and takes it over as soon as the holder's lease expires.
//! At start-up the latest past tick is caught up if nobody completed it, and runs left `running`
//! by dead holders are marked abandoned.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sellersync_core::bootstrap::unless_stopping;
use sellersync_core::jobs::cron::{Schedule, TickRetry, last_tick, next_tick, tick_id};
use sellersync_core::jobs::notify::{EventType, Notification, Notifier};
use sellersync_core::jobs::producer::{Producer, TickOutcome};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

/// How the producer behaves besides its schedule.
#[derive(Clone)]
pub struct Options {
    pub retry: TickRetry,
    pub catch_up: bool,
    /// Told when a tick gives up (`tick.failed`).
    pub notifier: Option<Notifier>,
    /// Where ticks run, so that a stopping API can wait for them.
    pub ticks: TaskTracker,
}

/// Runs ticks until `stop` turns true; every wait (for a tick, for MongoDB while checking for
/// dead holders, for a tick under way) ends when it does.
pub async fn run(
    producer: Producer,
    schedule: Schedule,
    tz: Tz,
    options: Options,
    mut stop: watch::Receiver<bool>,
) {
    tracing::info!(instance = %producer.instance, timezone = %tz, "cron producer started");
    let ticks_stop = stop.clone();
    let spawn_drive = |tick| {
        let drive = drive(producer.clone(), schedule.clone(), tz, tick, options.clone());
        let mut stop = ticks_stop.clone();
        options.ticks.spawn(async move {
            if unless_stopping(&mut stop, drive).await.is_none() {
                // Its lease runs out; then another replica, or this one's catch-up at its next
                // start, runs it again (its jobs' ids carry the tick: nothing is enqueued twice).
                tracing::info!(
                    tick = tick_id(tick),
                    "stopping during a tick; it runs again once its lease expires"
                );
            }
        })
    };
    if unless_stopping(&mut stop, reap(&producer)).await.is_none() {
        return;
    }
    if options.catch_up
        && let Some(tick) = last_tick(&schedule, tz, Utc::now())
    {
        spawn_drive(tick);
    }
    loop {
        let Some(tick) = next_tick(&schedule, tz, Utc::now()) else {
            tracing::error!("the schedule has no next tick; cron producer stopped");
            return;
        };
        let wait = (tick - Utc::now()).to_std().unwrap_or_default();
        if unless_stopping(&mut stop, tokio::time::sleep(wait))
            .await
            .is_none()
            || unless_stopping(&mut stop, reap(&producer)).await.is_none()
        {
            return;
        }
        spawn_drive(tick);
    }
}

async fn reap(producer: &Producer) {
    if let Err(error) = producer.reap_abandoned().await {
        tracing::warn!(%error, "could not check cron runs for dead holders");
    }
}

async fn drive(producer: Producer, schedule: Schedule, tz: Tz, tick: DateTime<Utc>, options: Options) {
    let until = next_tick(&schedule, tz, tick).unwrap_or(tick + chrono::TimeDelta::hours(1));
    match producer.drive_tick(tick, until, options.retry).await {
        Ok(TickOutcome::Ran(_) | TickOutcome::AlreadyDone) => {}
        Ok(TickOutcome::HeldElsewhere) => {
            tracing::warn!(
                tick = tick_id(tick),
                "another instance still held the tick when the next was due"
            );
        }
        Err(error) => {
            tracing::error!(tick = tick_id(tick), %error, "cron tick failed for good");
            if let Some(notifier) = &options.notifier {
                let id = tick_id(tick);
                let notification = Notification::new(
                    EventType::TickFailed,
                    &id,
                    format!("the hourly tick {id} failed until the next tick was due: {error}"),
                    serde_json::json!({ "tickId": id, "error": error.to_string() }),
                );
                if let Err(error) = notifier.notify(&[notification]).await {
                    tracing::warn!(%error, "could not enqueue a tick.failed notification");
                }
            }
        }
    }
}
