//! Does JobStatus tell the truth? Every job's record against its entry in the queue.

use mongodb::Database;
use sellersync_core::jobs::job_status::{self, JobStatusRecord, Status};
use sellersync_queue::{JobInfo, Queue};

/// The statuses a record may show for a job in `state` (`None`: the job is gone from Redis,
/// which in a run without retention means an admin removed it).
fn allowed(state: Option<&str>) -> &'static [Status] {
    match state {
        None => &[Status::Removed],
        Some("waiting") => &[Status::Queued],
        Some("delayed") => &[Status::Queued, Status::Retrying],
        Some("active") => &[Status::Active],
        Some("completed") => &[Status::Completed],
        Some("failed") => &[Status::Failed],
        Some(_) => &[],
    }
}

/// One job whose record disagrees with the queue.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Mismatch {
    pub job_id: String,
    pub queue_state: Option<String>,
    pub queue_attempts: Option<u32>,
    pub record_status: Option<String>,
    pub record_attempts: Option<u32>,
}

impl Mismatch {
    fn of(job_id: &str, job: Option<&JobInfo>, record: Option<&JobStatusRecord>) -> Option<Self> {
        let state = job.map(|j| j.state.as_str());
        let agrees = match record {
            None => false,
            Some(r) => allowed(state).contains(&r.status) && job.is_none_or(|j| j.attempts == r.attempts),
        };
        (!agrees).then(|| Self {
            job_id: job_id.to_owned(),
            queue_state: state.map(str::to_owned),
            queue_attempts: job.map(|j| j.attempts),
            record_status: record.map(|r| r.status.as_str().to_owned()),
            record_attempts: record.map(|r| r.attempts),
        })
    }
}

/// Every job of `job_ids` whose JobStatus record disagrees with the queue.
pub async fn mismatches(queue: &Queue, db: &Database, job_ids: &[String]) -> Result<Vec<Mismatch>, String> {
    let mut found = Vec::new();
    for id in job_ids {
        let job = queue.get(id).await.map_err(|e| e.to_string())?;
        let record = job_status::find(db, id).await.map_err(|e| e.to_string())?;
        found.extend(Mismatch::of(id, job.as_ref(), record.as_ref()));
    }
    Ok(found)
}
