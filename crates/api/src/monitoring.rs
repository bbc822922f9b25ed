//! What the monitoring endpoints share: a snapshot of every queue's counts, the health rules
//! (seed 003: a queue with more failed or waiting jobs than the configured thresholds is an
//! issue; so is a JobStatus projection further behind than `job_status.max_lag_ms`, an active
//! job running longer than the job timeout (seed 003's stuck jobs), and a share of failed jobs
//! among those finished in the window above `monitoring.failure_rate_threshold` (seed 004)),
//! and the Prometheus text of the families read at scrape time for `/metrics`: queue depth,
//! throughput and durations, projection lag, the health rules' inputs, live workers and the
//! oldest active job (Redis), and users' freshness (MongoDB).

use std::collections::BTreeMap;
use std::fmt::Write;

use futures::future::try_join_all;
use sellersync_core::Settings;
use sellersync_core::config::MonitoringSettings;
use sellersync_core::infra::metrics::family;
use sellersync_core::jobs::job_status::projector::{GROUP as PROJECTOR_GROUP, READ_MODEL_GROUP};
use sellersync_queue::events::EventBacklog;
use sellersync_queue::{Counts, JobState, Queue, QueueMetrics};
use serde::Serialize;

use crate::error::ApiError;
use crate::state::Queues;

/// One queue's counts (seed 003's stats object).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueueStats {
    pub name: String,
    pub waiting: u64,
    pub active: u64,
    pub completed: u64,
    pub failed: u64,
    pub delayed: u64,
    /// Workers take no new jobs from a paused queue.
    pub paused: bool,
    pub total: u64,
}

impl QueueStats {
    fn new(name: &str, counts: Counts, paused: bool) -> Self {
        Self {
            name: name.to_owned(),
            // While paused, waiting jobs are counted as `paused`; they are still waiting here.
            waiting: counts.waiting + counts.paused,
            active: counts.active,
            completed: counts.completed,
            failed: counts.failed,
            delayed: counts.delayed,
            paused,
            total: counts.total,
        }
    }
}

pub async fn stats(queue: &Queue) -> Result<QueueStats, ApiError> {
    let (counts, paused) = queue.counts_and_pause().await?;
    Ok(QueueStats::new(queue.name(), counts, paused))
}

/// One queue's counts and pause flag, as read together in one round trip.
pub struct Snapshot {
    pub name: String,
    pub counts: Counts,
    pub paused: bool,
}

/// Every queue's snapshot (read concurrently), in name order. The routes derive both shapes
/// (seed 003's stats, seed 004's counts) from one read.
pub async fn snapshot(queues: &Queues) -> Result<Vec<Snapshot>, ApiError> {
    let read = try_join_all(queues.all().map(|q| q.counts_and_pause())).await?;
    Ok(queues
        .names()
        .into_iter()
        .zip(read)
        .map(|(name, (counts, paused))| Snapshot {
            name: name.to_owned(),
            counts,
            paused,
        })
        .collect())
}

/// Seed 003's stats, by name.
pub fn stats_by_name(snapshot: &[Snapshot]) -> BTreeMap<String, QueueStats> {
    snapshot
        .iter()
        .map(|s| (s.name.clone(), QueueStats::new(&s.name, s.counts, s.paused)))
        .collect()
}

/// Seed 004's counts (`paused` being a count), by name.
pub fn counts_by_name(snapshot: &[Snapshot]) -> BTreeMap<String, Counts> {
    snapshot.iter().map(|s| (s.name.clone(), s.counts)).collect()
}

/// Every queue's stats, by name.
pub async fn all_stats(queues: &Queues) -> Result<BTreeMap<String, QueueStats>, ApiError> {
    Ok(stats_by_name(&snapshot(queues).await?))
}

/// The issues of every queue, e.g. `"user-data: 150 failed jobs"`; empty when healthy.
pub fn issues<'a>(
    stats: impl IntoIterator<Item = &'a QueueStats>,
    thresholds: &MonitoringSettings,
) -> Vec<String> {
    let mut issues = Vec::new();
    for s in stats {
        if s.failed > thresholds.failed_threshold {
            issues.push(format!("{}: {} failed jobs", s.name, s.failed));
        }
        if s.waiting > thresholds.waiting_threshold {
            issues.push(format!("{}: {} waiting jobs", s.name, s.waiting));
        }
    }
    issues
}

/// What a queue's jobs have been doing lately, for the rules beyond counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    /// Active jobs that started longer ago than the job timeout (`worker.job_timeout_ms`).
    pub stuck_active: u64,
    /// Jobs completed or failed for good within `monitoring.failure_rate_window_ms`.
    pub finished_in_window: u64,
    pub failed_in_window: u64,
    /// `failed_in_window / finished_in_window` (0 when nothing finished).
    pub failure_rate: f64,
}

/// Most active jobs inspected for the stuck rule (far more than a fleet runs at once).
const ACTIVE_SCAN: usize = 1000;

/// `queue`'s activity by Redis's clock: stuck active jobs and the failure rate of the window.
pub async fn activity(queue: &Queue, settings: &Settings) -> Result<Activity, ApiError> {
    let now = queue.redis_now_ms().await?;
    let stuck_after = settings.worker.job_timeout.as_millis() as u64;
    let stuck_active = queue
        .list(JobState::Active, 0, ACTIVE_SCAN)
        .await?
        .iter()
        .filter(|job| {
            job.started_at_ms
                .is_some_and(|at| now.saturating_sub(at) > stuck_after)
        })
        .count() as u64;
    let (completed, failed) = finished_in_window(
        queue,
        now,
        settings.monitoring.failure_rate_window.as_millis() as u64,
    )
    .await?;
    let finished = completed + failed;
    Ok(Activity {
        stuck_active,
        finished_in_window: finished,
        failed_in_window: failed,
        failure_rate: if finished == 0 {
            0.0
        } else {
            failed as f64 / finished as f64
        },
    })
}

/// Jobs completed and failed within the window ending `now`. Retention keeps only the newest
/// `keep_completed` / `keep_failed`; when a set is full, the window starts no earlier than its
/// oldest kept job, so both counts cover the same (shorter, recent) span and their ratio stays
/// true under a load that finishes more jobs per window than retention keeps.
async fn finished_in_window(queue: &Queue, now: u64, window_ms: u64) -> Result<(u64, u64), ApiError> {
    let config = queue.config();
    let counts = queue.counts().await?;
    let mut start = now.saturating_sub(window_ms);
    for (state, kept, keep) in [
        (JobState::Completed, counts.completed, config.keep_completed),
        (JobState::Failed, counts.failed, config.keep_failed),
    ] {
        if kept >= keep
            && let Some(oldest) = queue.oldest_finished_ms(state).await?
        {
            start = start.max(oldest);
        }
    }
    let span = now.saturating_sub(start) + 1;
    let in_window = |state| queue.finished_per_bucket(state, start, span, 1);
    let (completed, failed) =
        futures::try_join!(in_window(JobState::Completed), in_window(JobState::Failed))?;
    Ok((completed.iter().sum(), failed.iter().sum()))
}

/// Every queue's activity, by name.
pub async fn activities(
    queues: &Queues,
    settings: &Settings,
) -> Result<BTreeMap<String, Activity>, ApiError> {
    let read = try_join_all(queues.all().map(|q| activity(q, settings))).await?;
    Ok(queues.names().into_iter().map(str::to_owned).zip(read).collect())
}

/// An issue per queue with stuck active jobs, or failing more than the threshold's share of
/// at least `failure_rate_min_finished` jobs finished in the window.
pub fn activity_issues(
    activities: &BTreeMap<String, Activity>,
    thresholds: &MonitoringSettings,
) -> Vec<String> {
    let mut issues = Vec::new();
    for (name, a) in activities {
        if a.stuck_active > 0 {
            issues.push(format!(
                "{name}: {} active jobs running longer than the job timeout",
                a.stuck_active
            ));
        }
        if a.finished_in_window >= thresholds.failure_rate_min_finished
            && a.failure_rate > thresholds.failure_rate_threshold
        {
            issues.push(format!(
                "{name}: {:.0}% of the {} jobs finished in the last {} min failed",
                a.failure_rate * 100.0,
                a.finished_in_window,
                thresholds.failure_rate_window.as_secs() / 60
            ));
        }
    }
    issues
}

/// Every health rule over every queue: the issues (empty when healthy), and what the rules
/// beyond counts read. `stats` are the queues' stats, read by the caller.
pub async fn health(
    queues: &Queues,
    settings: &Settings,
    stats: &BTreeMap<String, QueueStats>,
) -> Result<(Vec<String>, BTreeMap<String, Activity>), ApiError> {
    let mut issues = issues(stats.values(), &settings.monitoring);
    let max_lag_ms = settings.job_status.max_lag.as_millis() as u64;
    issues.extend(projection_issues(&backlogs(queues).await?, max_lag_ms));
    if settings.job_status.read_model_on() {
        let behind = read_model_backlogs(queues).await?;
        issues.extend(
            behind
                .iter()
                .filter(|(_, b)| b.oldest_age_ms > max_lag_ms)
                .map(|(name, b)| {
                    format!(
                        "{name}: the status read model is {} s behind the queue ({} events not yet read)",
                        b.oldest_age_ms / 1000,
                        b.total()
                    )
                }),
        );
    }
    let activities = activities(queues, settings).await?;
    issues.extend(activity_issues(&activities, &settings.monitoring));
    Ok((issues, activities))
}

/// How far each queue's JobStatus projection is behind its events, by name.
pub async fn backlogs(queues: &Queues) -> Result<BTreeMap<String, EventBacklog>, ApiError> {
    group_backlogs(queues, PROJECTOR_GROUP).await
}

/// How far each queue's status read model is behind its events, by name.
pub async fn read_model_backlogs(queues: &Queues) -> Result<BTreeMap<String, EventBacklog>, ApiError> {
    group_backlogs(queues, READ_MODEL_GROUP).await
}

async fn group_backlogs(queues: &Queues, group: &str) -> Result<BTreeMap<String, EventBacklog>, ApiError> {
    let read = try_join_all(queues.all().map(|q| q.event_backlog(group))).await?;
    Ok(queues.names().into_iter().map(str::to_owned).zip(read).collect())
}

/// An issue per queue whose JobStatus projection is more than `max_lag_ms` behind.
pub fn projection_issues(backlogs: &BTreeMap<String, EventBacklog>, max_lag_ms: u64) -> Vec<String> {
    backlogs
        .iter()
        .filter(|(_, b)| b.oldest_age_ms > max_lag_ms)
        .map(|(name, b)| {
            format!(
                "{name}: JobStatus is {} s behind the queue ({} events not yet recorded)",
                b.oldest_age_ms / 1000,
                b.total()
            )
        })
        .collect()
}

/// The families of `/metrics` read from Redis and MongoDB (the expensive part of a scrape: up to
/// [`ACTIVE_SCAN_LIMIT`] job hashes per queue, two `count_documents`), computed at most once per
/// `server.metrics_cache_ms`: scrapes that arrive while it is being computed wait for that one
/// computation instead of starting their own, so any number of scrapers (or a flood of
/// scrapes) costs Redis and MongoDB one computation per period.
pub struct ScrapeCache {
    ttl: std::time::Duration,
    last: tokio::sync::Mutex<Option<(std::time::Instant, std::sync::Arc<str>)>>,
    computations: std::sync::atomic::AtomicU64,
}

impl ScrapeCache {
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            last: tokio::sync::Mutex::new(None),
            computations: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `sellersync_api_metrics_computations_total`: how often this process computed the
    /// families (scrapes served from the cache do not count).
    pub fn computations_text(&self) -> String {
        let name = "sellersync_api_metrics_computations_total";
        let mut out = String::new();
        family(
            &mut out,
            name,
            "counter",
            "Computations of the Redis and MongoDB families of /metrics by this API process.",
        );
        let n = self.computations.load(std::sync::atomic::Ordering::Relaxed);
        let _ = writeln!(out, "{name} {n}");
        out
    }

    /// The families, from the last computation when it is younger than the TTL.
    pub async fn text(
        &self,
        queues: &Queues,
        settings: &Settings,
        db: &mongodb::Database,
    ) -> Result<std::sync::Arc<str>, ApiError> {
        if self.ttl.is_zero() {
            return self.compute(queues, settings, db).await;
        }
        let mut last = self.last.lock().await;
        if let Some((at, text)) = last.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(text.clone());
        }
        let text = self.compute(queues, settings, db).await?;
        *last = Some((std::time::Instant::now(), text.clone()));
        Ok(text)
    }

    async fn compute(
        &self,
        queues: &Queues,
        settings: &Settings,
        db: &mongodb::Database,
    ) -> Result<std::sync::Arc<str>, ApiError> {
        self.computations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut text = prometheus_text(queues, settings).await?;
        text.push_str(&freshness_text(db).await);
        Ok(text.into())
    }
}

/// The queue families of `/metrics`, read from Redis at scrape time, so they are the same
/// whichever API replica is scraped and include every worker's work.
pub async fn prometheus_text(queues: &Queues, settings: &Settings) -> Result<String, ApiError> {
    let stats = all_stats(queues).await?;
    let metrics = try_join_all(queues.all().map(|q| q.metrics())).await?;
    let mut out = render(&stats, &queues.names(), &metrics);
    render_backlogs(&mut out, &backlogs(queues).await?);
    if settings.job_status.read_model_on() {
        render_read_model_backlogs(&mut out, &read_model_backlogs(queues).await?);
    }
    render_activities(&mut out, &activities(queues, settings).await?);
    let liveness = try_join_all(queues.all().map(liveness)).await?;
    render_liveness(&mut out, &queues.names(), &liveness);
    Ok(out)
}

fn render_activities(out: &mut String, activities: &BTreeMap<String, Activity>) {
    let gauges: [Gauge<Activity>; 3] = [
        (
            "sellersync_queue_stuck_active_jobs",
            "Active jobs that started longer ago than the job timeout.",
            |a| a.stuck_active as f64,
        ),
        (
            "sellersync_queue_finished_in_window_jobs",
            "Jobs completed or failed for good within monitoring.failure_rate_window_ms.",
            |a| a.finished_in_window as f64,
        ),
        (
            "sellersync_queue_failure_rate",
            "Share of the jobs finished within monitoring.failure_rate_window_ms that failed for good.",
            |a| a.failure_rate,
        ),
    ];
    render_gauges(
        out,
        &gauges,
        activities.iter().map(|(queue, a)| (queue.as_str(), a)),
    );
}

/// Who works a queue and whether its running jobs move: live workers, and the age of the
/// longest-running active job (0 when none runs).
struct Liveness {
    workers: usize,
    oldest_active_seconds: f64,
    /// Entries in the queue's event stream, against its cap.
    stream_entries: u64,
}

/// Active jobs read to find the oldest: more than workers × concurrency ever hold.
const ACTIVE_SCAN_LIMIT: usize = 10_000;

async fn liveness(queue: &Queue) -> Result<Liveness, ApiError> {
    let (workers, active, now_ms, stream_entries) = futures::try_join!(
        queue.workers(),
        queue.list(JobState::Active, 0, ACTIVE_SCAN_LIMIT),
        queue.redis_now_ms(),
        queue.event_stream_len(),
    )?;
    let oldest_ms = active
        .iter()
        .filter_map(|job| job.started_at_ms)
        .map(|started| now_ms.saturating_sub(started))
        .max()
        .unwrap_or(0);
    Ok(Liveness {
        workers: workers.len(),
        oldest_active_seconds: oldest_ms as f64 / 1000.0,
        stream_entries,
    })
}

fn render_liveness(out: &mut String, names: &[&str], liveness: &[Liveness]) {
    let gauges: [Gauge<Liveness>; 4] = [
        (
            "sellersync_queue_workers",
            "Workers that sent a heartbeat within three lease periods.",
            |l| l.workers as f64,
        ),
        (
            "sellersync_queue_oldest_active_job_age_seconds",
            "How long the longest-running active job has run (0 when none runs).",
            |l| l.oldest_active_seconds,
        ),
        (
            "sellersync_queue_event_stream_entries",
            "Entries in the queue's event stream.",
            |l| l.stream_entries as f64,
        ),
        (
            "sellersync_queue_event_stream_cap",
            "Most entries the event stream keeps: beyond it the oldest go, read or not.",
            |_| sellersync_queue::events::EVENT_STREAM_CAP as f64,
        ),
    ];
    render_gauges(out, &gauges, names.iter().copied().zip(liveness));
}

/// The freshness families: active users and those refreshed within the last hour (their ratio
/// is the dashboard's freshness), enabled seller accounts and those refreshed within the hour. Read from MongoDB at scrape time; empty when it cannot be
/// read, so the queue families still reach Prometheus during a MongoDB outage.
pub async fn freshness_text(db: &mongodb::Database) -> String {
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let freshness = match sellersync_core::domain::accounts::freshness(db, since).await {
        Ok(freshness) => freshness,
        Err(error) => {
            tracing::warn!(%error, "user freshness not read; /metrics goes without it");
            return String::new();
        }
    };
    let mut out = String::new();
    for (name, help, value) in [
        ("sellersync_users_active", "Active users.", freshness.active),
        (
            "sellersync_users_refreshed_last_hour",
            "Active users whose data was refreshed within the last hour.",
            freshness.refreshed_since,
        ),
        (
            "sellersync_seller_accounts_enabled",
            "Enabled seller accounts.",
            freshness.accounts_enabled,
        ),
        (
            "sellersync_seller_accounts_refreshed_last_hour",
            "Seller accounts whose data was refreshed within the last hour (an account a refresh left out is not).",
            freshness.accounts_refreshed_since,
        ),
    ] {
        family(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    out
}

/// A per-queue gauge family: name, help, and how to read it from a queue's `T`.
type Gauge<T> = (&'static str, &'static str, fn(&T) -> f64);

/// Each gauge family, with one sample per queue of `per_queue`.
fn render_gauges<'a, T: 'a>(
    out: &mut String,
    gauges: &[Gauge<T>],
    per_queue: impl Iterator<Item = (&'a str, &'a T)> + Clone,
) {
    for (name, help, value) in gauges {
        family(out, name, "gauge", help);
        for (queue, of_queue) in per_queue.clone() {
            let _ = writeln!(out, "{name}{{queue=\"{queue}\"}} {}", value(of_queue));
        }
    }
}

fn render_backlogs(out: &mut String, backlogs: &BTreeMap<String, EventBacklog>) {
    let gauges: [Gauge<EventBacklog>; 2] = [
        (
            "sellersync_job_status_projection_backlog_events",
            "Queue events not yet recorded in JobStatus.",
            |b| b.total() as f64,
        ),
        (
            "sellersync_job_status_projection_lag_seconds",
            "Age of the oldest queue event not yet recorded in JobStatus (0 when caught up).",
            |b| b.oldest_age_ms as f64 / 1000.0,
        ),
    ];
    render_gauges(
        out,
        &gauges,
        backlogs.iter().map(|(queue, b)| (queue.as_str(), b)),
    );
}

fn render_read_model_backlogs(out: &mut String, backlogs: &BTreeMap<String, EventBacklog>) {
    let gauges: [Gauge<EventBacklog>; 2] = [
        (
            "sellersync_status_read_model_backlog_events",
            "Queue events the status read model has not read yet.",
            |b| b.total() as f64,
        ),
        (
            "sellersync_status_read_model_lag_seconds",
            "Age of the oldest queue event the status read model has not read (0 when caught up).",
            |b| b.oldest_age_ms as f64 / 1000.0,
        ),
    ];
    render_gauges(
        out,
        &gauges,
        backlogs.iter().map(|(queue, b)| (queue.as_str(), b)),
    );
}

fn render(stats: &BTreeMap<String, QueueStats>, names: &[&str], metrics: &[QueueMetrics]) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "sellersync_queue_jobs",
        "gauge",
        "Jobs in each queue by state.",
    );
    for s in stats.values() {
        for (state, value) in [
            ("waiting", s.waiting),
            ("active", s.active),
            ("delayed", s.delayed),
            ("completed", s.completed),
            ("failed", s.failed),
        ] {
            let _ = writeln!(
                out,
                "sellersync_queue_jobs{{queue=\"{}\",state=\"{state}\"}} {value}",
                s.name
            );
        }
    }
    family(
        &mut out,
        "sellersync_queue_paused",
        "gauge",
        "1 while the queue is paused.",
    );
    for s in stats.values() {
        let _ = writeln!(
            out,
            "sellersync_queue_paused{{queue=\"{}\"}} {}",
            s.name,
            u8::from(s.paused)
        );
    }
    let counters: [Counter; 4] = [
        (
            "sellersync_queue_jobs_completed_total",
            "Jobs completed, by all workers.",
            |m| m.completed_total,
        ),
        (
            "sellersync_queue_jobs_failed_total",
            "Jobs failed for good, by all workers.",
            |m| m.failed_total,
        ),
        (
            "sellersync_queue_jobs_retried_total",
            "Failed attempts scheduled to run again.",
            |m| m.retried_total,
        ),
        (
            "sellersync_queue_events_dropped_total",
            "Event stream entries trimmed at the stream's cap before every consumer read them.",
            |m| m.events_dropped_total,
        ),
    ];
    for (name, help, value) in counters {
        family(&mut out, name, "counter", help);
        for (queue, m) in names.iter().zip(metrics) {
            let _ = writeln!(out, "{name}{{queue=\"{queue}\"}} {}", value(m));
        }
    }
    let name = "sellersync_queue_job_duration_seconds";
    family(
        &mut out,
        name,
        "histogram",
        "Duration of completed jobs' last attempts, by all workers.",
    );
    for (queue, m) in names.iter().zip(metrics) {
        for (bound, count) in &m.duration.buckets {
            let le = if bound.is_finite() {
                bound.to_string()
            } else {
                "+Inf".to_owned()
            };
            let _ = writeln!(out, "{name}_bucket{{queue=\"{queue}\",le=\"{le}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_sum{{queue=\"{queue}\"}} {}", m.duration.sum_seconds);
        let _ = writeln!(out, "{name}_count{{queue=\"{queue}\"}} {}", m.duration.count);
    }
    out
}

/// A counter family: name, help, and how to read it from a queue's metrics.
type Counter = (&'static str, &'static str, fn(&QueueMetrics) -> u64);

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(name: &str, failed: u64, waiting: u64) -> QueueStats {
        QueueStats::new(
            name,
            Counts {
                failed,
                waiting,
                total: failed + waiting,
                ..Counts::default()
            },
            false,
        )
    }

    #[test]
    fn issues_name_the_queue_and_the_count_above_the_thresholds() {
        let thresholds = thresholds();
        let all = [stats("email", 150, 1200), stats("user-data", 10, 100)];
        assert_eq!(
            issues(&all, &thresholds),
            vec!["email: 150 failed jobs", "email: 1200 waiting jobs"]
        );
    }

    fn thresholds() -> MonitoringSettings {
        MonitoringSettings {
            failed_threshold: 10,
            waiting_threshold: 100,
            failure_rate_threshold: 0.1,
            failure_rate_window: std::time::Duration::from_secs(900),
            failure_rate_min_finished: 20,
        }
    }

    #[test]
    fn stuck_jobs_and_a_failure_rate_above_the_threshold_are_issues() {
        let activity = |stuck_active, finished, failed| Activity {
            stuck_active,
            finished_in_window: finished,
            failed_in_window: failed,
            failure_rate: failed as f64 / finished.max(1) as f64,
        };
        let all = BTreeMap::from([
            ("a".to_owned(), activity(2, 100, 11)),
            ("b".to_owned(), activity(0, 100, 10)),
            ("c".to_owned(), activity(0, 19, 19)),
        ]);
        assert_eq!(
            activity_issues(&all, &thresholds()),
            vec![
                "a: 2 active jobs running longer than the job timeout",
                "a: 11% of the 100 jobs finished in the last 15 min failed",
            ],
            "10% is not above 10%; 19 finished jobs are too few to judge"
        );
    }

    #[test]
    fn paused_waiting_jobs_are_still_reported_as_waiting() {
        let counts = Counts {
            paused: 7,
            total: 7,
            ..Counts::default()
        };
        let s = QueueStats::new("q", counts, true);
        assert_eq!((s.waiting, s.paused, s.total), (7, true, 7));
    }
}
