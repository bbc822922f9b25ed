//! Dead letters: queue events the JobStatus projector set aside because MongoDB refuses them for
//! a reason retrying cannot fix (a poison event: a document over MongoDB's size limit, a field it
//! will not store). The projector narrows a refused batch down by halves until each refused event
//! is alone, keeps that event here with the refusal and moves on, so one bad event can neither
//! stop the projection nor pin the event stream's trim floor.
//!
//! Kept in `job_status_dead_letters` (one document per event, the event whole), counted
//! (`sellersync_job_status_dead_letters_total`), listed for admins
//! (`GET /api/admin/job-status/dead-letters`) and replayed once the cause is fixed
//! (`POST /api/admin/job-status/dead-letters/replay`): an event MongoDB takes is projected and
//! its dead letter deleted; one it still refuses stays, with the new refusal.

use chrono::Utc;
use futures::TryStreamExt;
use mongodb::Database;
use mongodb::bson::{self, Document, doc};
use sellersync_queue::Queue;
use sellersync_queue::events::JobEvent;
use serde::{Deserialize, Serialize};

use super::projection::Retention;
use super::projector::project;
use crate::infra::error::{CoreError, CoreResult};

pub const DEAD_LETTERS: &str = "job_status_dead_letters";

/// Most of an event's payload or result stored when the whole event is itself refused.
const TRUNCATED_BYTES: usize = 64 * 1024;

/// One event set aside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// `<stream id>/<job id>/<kind>/<version>`: the event's identity.
    #[serde(rename = "_id")]
    pub id: String,
    pub queue: String,
    pub job_id: String,
    /// The transition (`completed`, `failed`, ...).
    pub kind: String,
    pub stream_id: String,
    /// Why MongoDB refused it (its latest refusal).
    pub error: String,
    /// When it was set aside (ms since the epoch).
    pub kept_at_ms: i64,
    /// Replays that MongoDB refused again.
    #[serde(default)]
    pub replays: u32,
    /// The payload or result was cut to fit (the event could not be kept whole).
    #[serde(default)]
    pub truncated: bool,
    /// The event, as the queue recorded it.
    #[schema(value_type = Object)]
    pub event: JobEvent,
}

fn letter_id(event: &JobEvent) -> String {
    format!(
        "{}/{}/{}/{}",
        event.stream_id,
        event.job_id,
        event.kind.as_str(),
        event.version
    )
}

/// Keeps `event` of `queue` as a dead letter refused with `error` (cut to fit if even that is
/// refused), and counts it.
pub async fn keep(db: &Database, queue: &str, event: &JobEvent, error: &CoreError) -> CoreResult<()> {
    tracing::error!(queue, job_id = %event.job_id, kind = event.kind.as_str(), stream_id = %event.stream_id, %error, "MongoDB refuses a queue event; kept as a JobStatus dead letter");
    let whole = letter(queue, event, error, false);
    match put(db, &whole).await {
        Err(refused) if refused.is_refusal() => {
            put(db, &letter(queue, &truncated(event), error, true)).await?
        }
        other => other?,
    }
    metrics::counter!(crate::infra::metrics::JOB_STATUS_DEAD_LETTERS, "queue" => queue.to_owned())
        .increment(1);
    Ok(())
}

fn letter(queue: &str, event: &JobEvent, error: &CoreError, truncated: bool) -> DeadLetter {
    DeadLetter {
        id: letter_id(event),
        queue: queue.to_owned(),
        job_id: event.job_id.clone(),
        kind: event.kind.as_str().to_owned(),
        stream_id: event.stream_id.clone(),
        error: error.to_string(),
        kept_at_ms: Utc::now().timestamp_millis(),
        replays: 0,
        truncated,
        event: event.clone(),
    }
}

/// `event` with its payload and result cut to [`TRUNCATED_BYTES`].
fn truncated(event: &JobEvent) -> JobEvent {
    let cut = |text: &Option<String>| {
        text.as_ref().map(|t| {
            let mut end = t.len().min(TRUNCATED_BYTES);
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            t[..end].to_owned()
        })
    };
    JobEvent {
        data: cut(&event.data),
        result: cut(&event.result),
        ..event.clone()
    }
}

async fn put(db: &Database, letter: &DeadLetter) -> CoreResult<()> {
    let document = bson::to_document(letter).map_err(|e| CoreError::Encode {
        what: "dead letter",
        reason: e.to_string(),
    })?;
    db.collection::<Document>(DEAD_LETTERS)
        .replace_one(doc! { "_id": &letter.id }, document)
        .upsert(true)
        .await?;
    Ok(())
}

/// The dead letters of every queue, oldest first, at most `limit`.
pub async fn list(db: &Database, limit: i64) -> CoreResult<Vec<DeadLetter>> {
    Ok(db
        .collection::<DeadLetter>(DEAD_LETTERS)
        .find(doc! {})
        .sort(doc! { "keptAtMs": 1, "_id": 1 })
        .limit(limit)
        .await?
        .try_collect()
        .await?)
}

/// What a replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Replayed {
    /// Projected and deleted.
    pub replayed: usize,
    /// Refused again (kept, with the new refusal).
    pub still_refused: usize,
}

/// Projects the dead letters of `queue` one by one: those MongoDB now takes are deleted, the rest
/// stay with their new refusal. A failure that is not a refusal (MongoDB away) stops the replay.
pub async fn replay(db: &Database, queue: &Queue, retention: &Retention) -> CoreResult<Replayed> {
    let letters: Vec<DeadLetter> = db
        .collection::<DeadLetter>(DEAD_LETTERS)
        .find(doc! { "queue": queue.name() })
        .sort(doc! { "keptAtMs": 1, "_id": 1 })
        .await?
        .try_collect()
        .await?;
    let mut done = Replayed::default();
    let collection = db.collection::<Document>(DEAD_LETTERS);
    for letter in letters {
        match project(db, queue, retention, std::slice::from_ref(&letter.event)).await {
            Ok(_) => {
                collection.delete_one(doc! { "_id": &letter.id }).await?;
                done.replayed += 1;
            }
            Err(error) if error.is_refusal() => {
                let update = doc! { "$set": { "error": error.to_string() }, "$inc": { "replays": 1 } };
                collection.update_one(doc! { "_id": &letter.id }, update).await?;
                done.still_refused += 1;
            }
            Err(error) => return Err(error),
        }
    }
    Ok(done)
}
