//! What the queue's own history says about a run: every event of the run, read through a
//! consumer group of the suite's own (created before the first job, never acknowledged, so the
//! stream keeps everything until the run ends).

use std::collections::HashMap;
use std::time::Duration;

use sellersync_queue::Queue;
use sellersync_queue::RedisConnection;
use sellersync_queue::events::{EventKind, JobEvent, ReadFrom};

pub const GROUP: &str = "chaos-audit";

/// Leases lost by workers that were alive: each is an attempt the reaper took away while it
/// might still have been running (a double run, and two attempts of one user at once, unless the
/// fencing stopped it). A SIGKILLed worker's leases are expected to be lost.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Audit {
    pub events: usize,
    pub stalls_of_killed_workers: usize,
    pub stalls_of_live_workers: usize,
    /// Jobs whose lease was lost by a live worker.
    pub stalled_jobs: Vec<String>,
}

/// Reads every event of the run and audits the stalls. `killed`: pids of SIGKILLed workers.
pub async fn audit(queue: &Queue, conn: &mut RedisConnection, killed: &[u32]) -> Result<Audit, String> {
    let mut events: Vec<JobEvent> = Vec::new();
    loop {
        let batch = queue
            .read_events(
                conn,
                GROUP,
                "auditor",
                ReadFrom::New,
                1000,
                Duration::from_millis(10),
            )
            .await
            .map_err(|e| e.to_string())?;
        if batch.is_empty() {
            break;
        }
        events.extend(batch.events);
    }
    let killed_ids: Vec<String> = killed.iter().map(|pid| format!("-{pid}-")).collect();
    let mut last_holder: HashMap<&str, &str> = HashMap::new();
    let mut audit = Audit {
        events: events.len(),
        ..Audit::default()
    };
    for event in &events {
        if event.kind == EventKind::Active {
            let worker = event.snapshot.worker_id.as_deref().unwrap_or("");
            last_holder.insert(&event.job_id, worker);
            continue;
        }
        let reaped = event.kind == EventKind::Stalled
            || (event.kind == EventKind::Failed && event.failed_by.as_deref() == Some("reaper"));
        if !reaped {
            continue;
        }
        let holder = last_holder.get(event.job_id.as_str()).copied().unwrap_or("");
        if killed_ids.iter().any(|id| holder.contains(id.as_str())) {
            audit.stalls_of_killed_workers += 1;
        } else {
            audit.stalls_of_live_workers += 1;
            audit.stalled_jobs.push(event.job_id.clone());
        }
    }
    Ok(audit)
}
