//! Enqueueing user refreshes: bulk enqueue with one pending job per user. Used by the hourly
//! producer, the API's manual enqueue and the CLI. (Their JobStatus records follow from the
//! queue's `enqueued` events, written by the projector.)

use std::time::Duration;

use sellersync_queue::{NewJob, Queue};
use serde::Serialize;

use crate::infra::error::CoreResult;
use crate::jobs::payload::{RefreshUser, Trigger};

/// A user and the job that refreshes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserJob {
    pub user_id: String,
    pub job_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EnqueueReport {
    /// New jobs.
    pub enqueued: Vec<UserJob>,
    /// Users that already had a pending job, with that job.
    pub duplicates: Vec<UserJob>,
}

/// When and how urgently the enqueued refreshes run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Placement {
    /// 0 is the most urgent (the queue's `priority_levels` bound it).
    pub priority: u32,
    /// Run no sooner than this from now.
    pub delay: Option<Duration>,
}

/// Enqueues a refresh for each user, `batch_size` per round trip (seed default 50).
pub async fn enqueue_refresh(
    queue: &Queue,
    user_ids: &[String],
    trigger: Trigger,
    batch_size: usize,
) -> CoreResult<EnqueueReport> {
    enqueue_scheduled(queue, user_ids, trigger, batch_size, Placement::default()).await
}

/// Like [`enqueue_refresh`], with a priority and a delay. A user whose refresh is already
/// pending keeps that job as it is (reported as a duplicate).
pub async fn enqueue_scheduled(
    queue: &Queue,
    user_ids: &[String],
    trigger: Trigger,
    batch_size: usize,
    placement: Placement,
) -> CoreResult<EnqueueReport> {
    enqueue_refresh_for_tick(queue, user_ids, trigger, batch_size, None, placement).await
}

/// Like [`enqueue_scheduled`]; with a producer tick, each job's id is `<user>@<tick>`, so
/// running the same tick again enqueues nothing new even after the first jobs finished.
pub async fn enqueue_refresh_for_tick(
    queue: &Queue,
    user_ids: &[String],
    trigger: Trigger,
    batch_size: usize,
    tick: Option<&str>,
    placement: Placement,
) -> CoreResult<EnqueueReport> {
    let mut report = EnqueueReport::default();
    for batch in user_ids.chunks(batch_size.max(1)) {
        let jobs = batch
            .iter()
            .map(|user_id| {
                let job = RefreshUser {
                    user_id: user_id.clone(),
                    trigger,
                };
                let mut options = job.options();
                options.job_id = tick.map(|tick| format!("{user_id}@{tick}"));
                options.priority = placement.priority;
                options.delay = placement.delay;
                NewJob::new(&job, options)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let results = queue.enqueue_bulk(&jobs).await?;
        for (user_id, result) in batch.iter().zip(results) {
            let entry = UserJob {
                user_id: user_id.clone(),
                job_id: result.id,
            };
            if result.duplicate {
                report.duplicates.push(entry);
            } else {
                report.enqueued.push(entry);
            }
        }
    }
    Ok(report)
}
