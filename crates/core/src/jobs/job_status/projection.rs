//! How queue events become JobStatus writes: pure functions from a batch of
//! [`JobEvent`]s to MongoDB update statements, so the rules can be read (and tested) in one place.
//!
//! A record's state fields are last-writer-wins by the job's version: every event carries the
//! job's full state after its transition and the version that transition gave it, and a record
//! takes an event's state only if its own version is lower. So replays, duplicates and events
//! seen out of order (by two projector processes, or after a claim) never move a record
//! backwards. What is not state accumulates idempotently: the enqueue facts (user, trigger,
//! enqueue time) are set from the `enqueued` event whenever it is seen, and each failed attempt's
//! error is added to a set (`$addToSet` of a value fixed by the event).
//!
//! Within a batch only each job's newest event is written (plus the errors and enqueue facts of
//! all its events): a burst of progress events costs one statement.

use std::collections::HashMap;
use std::time::Duration;

use mongodb::bson::{self, Bson, Document, doc};
use sellersync_queue::events::{EventKind, JobEvent};
use serde::Deserialize;

use super::{Status, public_account_message, public_deferred_reason, public_message};
use crate::jobs::refresh::RefreshReport;

/// How long records are kept (their `expireAt`), per status.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub completed: Duration,
    pub failed: Duration,
    /// Queued, active and retrying records: long enough for any real backlog; bounds orphans.
    pub pending: Duration,
}

impl Retention {
    /// A queue's records kept as long as the queue keeps its finished jobs, pending ones for
    /// `pending` (`job_status.pending_retention_ms`).
    pub fn of(config: &sellersync_queue::QueueConfig, pending: Duration) -> Self {
        Self {
            completed: Duration::from_millis(config.completed_max_age_ms),
            failed: Duration::from_millis(config.failed_max_age_ms),
            pending,
        }
    }

    fn for_status(&self, status: Status) -> Duration {
        match status {
            Status::Completed => self.completed,
            Status::Failed | Status::Removed => self.failed,
            Status::Queued | Status::Active | Status::Retrying => self.pending,
        }
    }
}

/// One job's writes for one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct JobWrite {
    pub job_id: String,
    /// The newest state-changing event's version and fields, if the batch had one.
    pub state: Option<(u64, Document)>,
    /// Enqueue facts (from an `enqueued` event of the batch).
    pub enqueued: Document,
    /// Failed attempts' errors.
    pub errors: Vec<Bson>,
}

impl JobWrite {
    /// The main statement: state if newer, plus the facts; creates the record if it is missing.
    pub fn guarded_statement(&self) -> Option<Document> {
        let (version, state) = self.state.as_ref()?;
        let mut set = state.clone();
        set.extend(self.enqueued.clone());
        let mut update = doc! { "$set": set };
        if !self.errors.is_empty() {
            update.insert("$addToSet", doc! { "errors": { "$each": self.errors.clone() } });
        }
        Some(doc! {
            "q": { "_id": &self.job_id, "v": { "$lt": *version as i64 } },
            "u": update,
            "upsert": true,
        })
    }

    /// The whole record, for a job whose enqueue is in this batch (usually a new record, which
    /// an insert writes far faster than an upsert). `None` without the enqueue facts.
    pub fn new_record(&self) -> Option<Document> {
        let (_, state) = self.state.as_ref()?;
        if self.enqueued.is_empty() {
            return None;
        }
        let mut record = doc! { "_id": &self.job_id };
        record.extend(self.enqueued.clone());
        record.extend(state.clone());
        record.insert("errors", self.errors.clone());
        Some(record)
    }

    /// The facts alone, for a record that is already newer than this batch (or when the batch
    /// changed no state): never touches the state fields.
    pub fn facts_statement(&self) -> Option<Document> {
        if self.enqueued.is_empty() && self.errors.is_empty() {
            return None;
        }
        let mut update = Document::new();
        if !self.enqueued.is_empty() {
            update.insert("$set", self.enqueued.clone());
        }
        if !self.errors.is_empty() {
            update.insert("$addToSet", doc! { "errors": { "$each": self.errors.clone() } });
        }
        update.insert("$setOnInsert", doc! { "v": 0_i64 });
        Some(doc! { "q": { "_id": &self.job_id }, "u": update, "upsert": true })
    }
}

/// Folds a batch into one write per job, in the order jobs first appear.
pub fn plan(
    queue: &str,
    default_max_attempts: u32,
    retention: &Retention,
    events: &[JobEvent],
) -> Vec<JobWrite> {
    let mut order: Vec<String> = Vec::new();
    let mut writes: HashMap<String, JobWrite> = HashMap::new();
    for event in events.iter().filter(|e| changes_record(e.kind)) {
        let write = writes.entry(event.job_id.clone()).or_insert_with(|| {
            order.push(event.job_id.clone());
            JobWrite {
                job_id: event.job_id.clone(),
                state: None,
                enqueued: Document::new(),
                errors: Vec::new(),
            }
        });
        if event.kind == EventKind::Enqueued {
            write.enqueued = enqueue_facts(queue, default_max_attempts, event);
        }
        if let Some(error) = attempt_error(event) {
            write.errors.push(error);
        }
        if write.state.as_ref().is_none_or(|(v, _)| *v < event.version) {
            write.state = Some((event.version, state_fields(event, retention)));
        }
    }
    order.into_iter().filter_map(|id| writes.remove(&id)).collect()
}

/// Deduplications change nothing; cleaning removes a finished job from Redis, not its outcome;
/// a new priority changes no field of the record (and must not turn `retrying` into `queued`).
fn changes_record(kind: EventKind) -> bool {
    !matches!(
        kind,
        EventKind::Deduplicated | EventKind::Cleaned | EventKind::Prioritized
    )
}

/// The status a record shows for the job's state after `event`.
pub fn status_of(event: &JobEvent) -> Status {
    match event.snapshot.state.as_str() {
        "active" => Status::Active,
        "completed" => Status::Completed,
        "failed" => Status::Failed,
        "removed" => Status::Removed,
        "delayed" if event.kind == EventKind::Retrying => Status::Retrying,
        _ => Status::Queued,
    }
}

fn time(ms: u64) -> bson::DateTime {
    bson::DateTime::from_millis(ms as i64)
}

fn optional_time(ms: Option<u64>) -> Bson {
    ms.map_or(Bson::Null, |ms| Bson::DateTime(time(ms)))
}

fn optional_text(text: &Option<String>) -> Bson {
    text.as_ref().map_or(Bson::Null, |t| Bson::String(t.clone()))
}

/// Every state field, so the newest event alone determines them.
fn state_fields(event: &JobEvent, retention: &Retention) -> Document {
    let s = &event.snapshot;
    let status = status_of(event);
    let finished = |wanted: Status| {
        if status == wanted {
            optional_time(s.finished_at_ms.or(Some(event.at_ms)))
        } else {
            Bson::Null
        }
    };
    let expire = event.at_ms + retention.for_status(status).as_millis() as u64;
    let mut fields = doc! {
        "v": event.version as i64,
        "status": status.as_str(),
        "attempts": i64::from(s.attempt),
        "progress": i32::from(if status == Status::Completed { 100 } else { s.progress }),
        "workerId": optional_text(&s.worker_id),
        "startedAt": optional_time(s.started_at_ms),
        "nextRunAt": if s.state == "delayed" { optional_time(s.due_ms) } else { Bson::Null },
        "lastError": optional_text(&s.last_error),
        "publicError": optional_text(&s.last_error.as_deref().map(|e| public_message(e, failed_after(event)))),
        "stalls": i64::from(s.stalls),
        "retries": i64::from(s.retries),
        "completedAt": finished(Status::Completed),
        "failedAt": finished(Status::Failed),
        "removedAt": finished(Status::Removed),
        "deferredReason": optional_text(&event.reason),
        "publicDeferredReason": optional_text(&event.reason.as_deref().map(public_deferred_reason)),
        "failedBy": optional_text(&event.failed_by),
        "updatedAt": time(event.at_ms),
        "expireAt": time(expire),
    };
    if event.kind == EventKind::Completed {
        fields.extend(completion_fields(event));
    }
    fields
}

/// The handler's outcome, decoded into its type; a result that does not decode is recorded as
/// such, never as zero accounts.
fn completion_fields(event: &JobEvent) -> Document {
    let mut fields = doc! { "durationMs": event.duration_ms.map_or(Bson::Null, |d| Bson::Int64(d as i64)) };
    let Some(raw) = event.result.as_deref().filter(|r| *r != "null") else {
        return fields;
    };
    match serde_json::from_str::<RefreshReport>(raw) {
        Ok(outcome) => {
            fields.insert("accountsTotal", outcome.accounts_total as i64);
            fields.insert("accountsProcessed", outcome.accounts_processed as i64);
            fields.insert("accountsFailed", outcome.accounts_failed as i64);
            fields.insert(
                "accountsAwaitingSeller",
                outcome.accounts_awaiting_reauthorization as i64,
            );
            fields.insert("allAccountsRefreshed", outcome.all_accounts_refreshed());
            let errors: Vec<Bson> = outcome
                .errors
                .iter()
                .map(|e| {
                    let mut error = doc! {
                        "accountId": &e.account_id, "sellerId": &e.seller_id,
                        "message": &e.message, "retryable": e.retryable,
                        "publicMessage": public_account_message(e.status(), e.retryable),
                    };
                    if let Some(role) = &e.missing_role {
                        error.insert("missingRole", role);
                    }
                    if let Some(id) = &e.request_id {
                        error.insert("requestId", id);
                    }
                    Bson::Document(error)
                })
                .collect();
            fields.insert("accountErrors", errors);
        }
        Err(error) => {
            tracing::warn!(job_id = %event.job_id, %error, "a completed job's result does not decode as a refresh outcome");
            fields.insert("resultError", format!("the result does not decode: {error}"));
        }
    }
    fields
}

/// What an enqueue payload says about its user (the user-data queue's `RefreshUser`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PayloadFacts {
    user_id: Option<String>,
    trigger: Option<String>,
}

fn enqueue_facts(queue: &str, default_max_attempts: u32, event: &JobEvent) -> Document {
    let payload: Option<PayloadFacts> = event.data.as_deref().and_then(|d| serde_json::from_str(d).ok());
    let (user_id, trigger) = payload.map_or((None, None), |p| (p.user_id, p.trigger));
    let max_attempts = event.snapshot.max_attempts.unwrap_or(default_max_attempts);
    doc! {
        "jobId": &event.job_id,
        "queue": queue,
        "userId": user_id.map_or(Bson::Null, Bson::String),
        "trigger": trigger.unwrap_or_else(|| "unknown".to_owned()),
        "maxAttempts": i64::from(max_attempts),
        "enqueuedAt": time(event.at_ms),
    }
}

/// The attempts of a job this event failed for good (`None` while it is retried).
fn failed_after(event: &JobEvent) -> Option<u32> {
    (status_of(event) == Status::Failed).then_some(event.snapshot.attempt)
}

/// A failed attempt's error, fixed by the event (so adding it twice adds it once).
fn attempt_error(event: &JobEvent) -> Option<Bson> {
    if !matches!(event.kind, EventKind::Retrying | EventKind::Failed) {
        return None;
    }
    let message = event.snapshot.last_error.clone()?;
    Some(Bson::Document(doc! {
        "attempt": i64::from(event.snapshot.attempt),
        "publicMessage": public_message(&message, failed_after(event)),
        "message": message,
        "at": time(event.at_ms),
    }))
}

#[cfg(test)]
mod tests {
    use sellersync_queue::events::JobSnapshot;

    use super::*;

    const RETENTION: Retention = Retention {
        completed: Duration::from_secs(100),
        failed: Duration::from_secs(200),
        pending: Duration::from_secs(300),
    };

    fn event(kind: EventKind, version: u64, state: &str) -> JobEvent {
        JobEvent {
            stream_id: format!("{version}-0"),
            kind,
            job_id: "j1".into(),
            job_ids: vec!["j1".into()],
            version,
            at_ms: 1_000 * version,
            snapshot: JobSnapshot {
                state: state.into(),
                attempt: 1,
                ..JobSnapshot::default()
            },
            data: None,
            result: None,
            duration_ms: None,
            reason: None,
            failed_by: None,
        }
    }

    #[test]
    fn a_batch_writes_each_job_once_with_its_newest_state_and_every_error() {
        let mut enqueued = event(EventKind::Enqueued, 1, "waiting");
        enqueued.data = Some(r#"{"userId":"u1","trigger":"cron"}"#.into());
        let active = event(EventKind::Active, 2, "active");
        let mut retrying = event(EventKind::Retrying, 3, "delayed");
        retrying.snapshot.last_error = Some("boom".into());
        retrying.snapshot.due_ms = Some(9_000);
        let writes = plan("q", 3, &RETENTION, &[enqueued, active, retrying]);
        assert_eq!(writes.len(), 1);
        let (version, state) = writes[0].state.clone().unwrap();
        assert_eq!(version, 3);
        assert_eq!(state.get_str("status").unwrap(), "retrying");
        assert_eq!(state.get_datetime("nextRunAt").unwrap().timestamp_millis(), 9_000);
        assert_eq!(writes[0].enqueued.get_str("userId").unwrap(), "u1");
        assert_eq!(writes[0].enqueued.get_str("trigger").unwrap(), "cron");
        assert_eq!(writes[0].errors.len(), 1);
        assert_eq!(state.get_str("lastError").unwrap(), "boom", "the internal detail");
        assert_eq!(
            state.get_str("publicError").unwrap(),
            super::super::public::WILL_RETRY
        );
        let error = writes[0].errors[0].as_document().unwrap();
        assert_eq!(error.get_str("message").unwrap(), "boom");
        assert_eq!(
            error.get_str("publicMessage").unwrap(),
            super::super::public::WILL_RETRY
        );
        let statement = writes[0].guarded_statement().unwrap();
        assert_eq!(
            statement
                .get_document("q")
                .unwrap()
                .get_document("v")
                .unwrap()
                .get_i64("$lt")
                .unwrap(),
            3
        );
    }

    #[test]
    fn every_status_gets_the_expiry_of_its_state() {
        let expire = |e: &JobEvent| {
            state_fields(e, &RETENTION)
                .get_datetime("expireAt")
                .unwrap()
                .timestamp_millis()
        };
        let completed = event(EventKind::Completed, 4, "completed");
        let failed = event(EventKind::Failed, 4, "failed");
        let queued = event(EventKind::Retried, 4, "waiting");
        assert_eq!(expire(&completed), 4_000 + 100_000);
        assert_eq!(expire(&failed), 4_000 + 200_000);
        assert_eq!(expire(&queued), 4_000 + 300_000);
        let retried = state_fields(&queued, &RETENTION);
        assert_eq!(
            retried.get("failedAt"),
            Some(&Bson::Null),
            "a retry clears the failure"
        );
        assert_eq!(retried.get_str("status").unwrap(), "queued");
    }

    #[test]
    fn a_failed_job_stores_the_internal_detail_and_the_public_message_apart() {
        let mut failed = event(EventKind::Failed, 5, "failed");
        failed.snapshot.attempt = 3;
        let detail = "Kind: I/O error: Connection refused (os error 111)";
        failed.snapshot.last_error = Some(detail.into());
        let fields = state_fields(&failed, &RETENTION);
        assert_eq!(fields.get_str("lastError").unwrap(), detail);
        assert_eq!(fields.get_str("publicError").unwrap(), "failed after 3 attempts");
        let error = attempt_error(&failed).unwrap();
        let error = error.as_document().unwrap();
        assert_eq!(error.get_str("message").unwrap(), detail);
        assert_eq!(error.get_str("publicMessage").unwrap(), "failed after 3 attempts");
    }

    #[test]
    fn an_undecodable_result_is_flagged_not_zeroed() {
        let mut completed = event(EventKind::Completed, 4, "completed");
        completed.result = Some(r#"{"unexpected":true}"#.into());
        let fields = state_fields(&completed, &RETENTION);
        assert!(fields.get("accountsTotal").is_none());
        assert!(fields.get_str("resultError").is_ok());
    }

    #[test]
    fn deduplications_and_cleanups_write_nothing() {
        let writes = plan(
            "q",
            3,
            &RETENTION,
            &[
                event(EventKind::Deduplicated, 0, ""),
                event(EventKind::Cleaned, 0, ""),
            ],
        );
        assert!(writes.is_empty());
    }
}
