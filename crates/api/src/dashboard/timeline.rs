//! A job's timeline: each transition (enqueued, started, retrying or deferred, completed or
//! failed, removed, ...) with its time, attempt, worker and error. Read from the queue's event
//! stream while it holds the job's events (the stream is trimmed behind the JobStatus projector,
//! within seconds of a transition); what the stream no longer holds comes from the job's JobStatus
//! record (its enqueue, each failed attempt, the last start and the end). The scan of the stream
//! starts at the job's enqueue time and is bounded ([`MAX_SCANNED`] entries).

use chrono::{DateTime, Utc};
use sellersync_core::jobs::job_status::{JobStatusRecord, Status};
use sellersync_queue::events::{EventKind, JobEvent, StreamId};
use sellersync_queue::{JobInfo, Queue};

use super::view::{self, Timeline, TimelineRow};
use crate::error::ApiError;

/// Stream entries one read takes.
const SCAN_BATCH: usize = 1000;
/// Most stream entries one timeline reads.
pub const MAX_SCANNED: usize = 20_000;
/// A finished job's events all come within this long after its end (the scan stops there).
const AFTER_END_MS: u64 = 60_000;

/// One transition, from either source.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    at_ms: u64,
    event: String,
    state: String,
    attempt: Option<u32>,
    worker: String,
    detail: String,
}

/// The timeline of job `id` of `queue`, from what Redis holds of it (`live`) and its record.
pub async fn of_job(
    queue: &Queue,
    id: &str,
    live: Option<&JobInfo>,
    record: Option<&JobStatusRecord>,
) -> Result<Timeline, ApiError> {
    let enqueued_ms = live
        .and_then(|j| j.created_at_ms)
        .or_else(|| record.and_then(|r| r.enqueued_at).map(ms));
    let until_ms = end_of(live, record).map(|end| end + AFTER_END_MS);
    let streamed = scan(queue, id, enqueued_ms, until_ms).await?;
    let recorded = record.map(recorded_steps).unwrap_or_default();
    Ok(merge(recorded, streamed))
}

/// When a finished job ended (no end for a job that may still move).
fn end_of(live: Option<&JobInfo>, record: Option<&JobStatusRecord>) -> Option<u64> {
    match live {
        Some(job) => job.finished_at_ms,
        None => record.and_then(|r| r.updated_at).map(ms),
    }
}

/// The job's events in the stream, from its enqueue time on.
async fn scan(
    queue: &Queue,
    id: &str,
    enqueued_ms: Option<u64>,
    until_ms: Option<u64>,
) -> Result<Vec<Step>, ApiError> {
    let mut conn = queue.connection();
    let mut after = enqueued_ms.map_or(StreamId::ZERO, |ms| StreamId { ms, seq: 0 }.before());
    let mut steps = Vec::new();
    let mut scanned = 0;
    while scanned < MAX_SCANNED && until_ms.is_none_or(|until| after.ms <= until) {
        let batch = queue
            .read_events_after(&mut conn, after, SCAN_BATCH, None)
            .await?;
        let ids = batch.stream_ids();
        let Some(last) = ids.last().and_then(|id| StreamId::parse(id).ok()) else {
            break;
        };
        scanned += ids.len();
        steps.extend(
            batch
                .events
                .iter()
                .filter(|e| e.job_ids.iter().any(|j| j == id))
                .filter(|e| until_ms.is_none_or(|until| e.at_ms <= until))
                .map(streamed_step),
        );
        after = last;
    }
    Ok(steps)
}

fn streamed_step(event: &JobEvent) -> Step {
    let snapshot = &event.snapshot;
    let error = snapshot.last_error.clone().unwrap_or_default();
    let due = || view::ms(snapshot.due_ms);
    let detail = match event.kind {
        EventKind::Retrying => format!("{error}; runs again at {}", due()),
        EventKind::Deferred => format!(
            "{}; runs again at {}",
            event.reason.clone().unwrap_or_default(),
            due()
        ),
        EventKind::Completed => event
            .duration_ms
            .map(|d| format!("took {d} ms"))
            .unwrap_or_default(),
        EventKind::Failed => format!(
            "{error} (failed by {})",
            event.failed_by.as_deref().unwrap_or("worker")
        ),
        EventKind::Stalled => "its lease expired (the worker died or stalled)".to_owned(),
        EventKind::Progress => format!("{}%", snapshot.progress),
        EventKind::Cleaned => "deleted from Redis by retention".to_owned(),
        _ => String::new(),
    };
    Step {
        at_ms: event.at_ms,
        event: event.kind.as_str().to_owned(),
        state: snapshot.state.clone(),
        attempt: (event.version > 0).then_some(snapshot.attempt),
        worker: snapshot.worker_id.clone().unwrap_or_default(),
        detail,
    }
}

/// What the record says happened: the enqueue, each failed attempt, the last start, the end.
fn recorded_steps(record: &JobStatusRecord) -> Vec<Step> {
    let step = |at: DateTime<Utc>, event: &str, state: &str, attempt: Option<u32>, detail: String| Step {
        at_ms: ms(at),
        event: event.to_owned(),
        state: state.to_owned(),
        attempt,
        worker: String::new(),
        detail,
    };
    let mut steps = Vec::new();
    if let Some(at) = record.enqueued_at {
        steps.push(step(
            at,
            "enqueued",
            "waiting",
            Some(0),
            format!("trigger {}", record.trigger),
        ));
    }
    for error in &record.errors {
        if let Some(at) = error.at {
            let message = error.message.clone().unwrap_or_default();
            steps.push(step(at, "attempt failed", "", Some(error.attempt), message));
        }
    }
    if let Some(at) = record.started_at {
        let mut started = step(at, "active", "active", Some(record.attempts), String::new());
        started.worker = record.worker_id.clone().unwrap_or_default();
        steps.push(started);
    }
    steps.extend(end_step(record));
    steps.sort_by_key(|s| s.at_ms);
    steps
}

fn end_step(record: &JobStatusRecord) -> Option<Step> {
    let (at, detail) = match record.status {
        Status::Completed => (
            record.completed_at?,
            record
                .duration_ms
                .map(|d| format!("took {d} ms"))
                .unwrap_or_default(),
        ),
        Status::Failed => (
            record.failed_at?,
            format!(
                "{} (failed by {})",
                record.last_error.clone().unwrap_or_default(),
                record.failed_by.as_deref().unwrap_or("worker")
            ),
        ),
        Status::Removed => (record.removed_at?, "removed by an admin".to_owned()),
        Status::Retrying => (
            record.next_run_at?,
            "due to run again (from the record)".to_owned(),
        ),
        Status::Queued | Status::Active => return None,
    };
    Some(Step {
        at_ms: ms(at),
        event: record.status.as_str().to_owned(),
        state: record.status.as_str().to_owned(),
        attempt: Some(record.attempts),
        worker: record.worker_id.clone().unwrap_or_default(),
        detail,
    })
}

/// The record's steps before the first event the stream still holds, then the stream's.
fn merge(recorded: Vec<Step>, streamed: Vec<Step>) -> Timeline {
    let first_streamed = streamed.first().map(|s| s.at_ms);
    let older: Vec<Step> = recorded
        .into_iter()
        .filter(|s| first_streamed.is_none_or(|first| s.at_ms < first))
        .collect();
    let source = match (older.is_empty(), streamed.is_empty()) {
        (true, true) => "nothing recorded yet",
        (true, false) => "the queue's event stream",
        (false, true) => "the JobStatus record (the event stream no longer holds this job's events)",
        (false, false) => "the JobStatus record, then the queue's event stream",
    };
    Timeline {
        source: source.to_owned(),
        rows: older.into_iter().chain(streamed).map(row).collect(),
    }
}

fn row(step: Step) -> TimelineRow {
    TimelineRow {
        at: view::ms(Some(step.at_ms)),
        event: step.event,
        state: step.state,
        attempt: step.attempt.map(|a| a.to_string()).unwrap_or_default(),
        worker: step.worker,
        detail: step.detail,
    }
}

fn ms(t: DateTime<Utc>) -> u64 {
    t.timestamp_millis().max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(at_ms: u64, event: &str) -> Step {
        Step {
            at_ms,
            event: event.into(),
            state: String::new(),
            attempt: None,
            worker: String::new(),
            detail: String::new(),
        }
    }

    #[test]
    fn the_record_fills_in_only_what_the_stream_no_longer_holds() {
        let recorded = vec![
            step(1, "enqueued"),
            step(5, "attempt failed"),
            step(9, "completed"),
        ];
        let streamed = vec![step(7, "active"), step(9, "completed")];
        let timeline = merge(recorded.clone(), streamed);
        let events: Vec<&str> = timeline.rows.iter().map(|r| r.event.as_str()).collect();
        assert_eq!(events, ["enqueued", "attempt failed", "active", "completed"]);
        assert!(timeline.source.contains("record, then"));
        assert!(
            merge(recorded, Vec::new())
                .source
                .starts_with("the JobStatus record")
        );
        assert_eq!(
            merge(Vec::new(), vec![step(1, "enqueued")]).source,
            "the queue's event stream"
        );
        assert_eq!(merge(Vec::new(), Vec::new()).source, "nothing recorded yet");
    }
}
