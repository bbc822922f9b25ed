//! Operations commands: queue statistics, live workers, jobs, queue control and tokens. Human
//! tables by default, `--json` for scripts.

use sellersync_core::Settings;
use sellersync_core::domain::auth::{self, Role};
use sellersync_core::infra::connections::connect_redis;
use sellersync_queue::RedisConnection;
use sellersync_queue::{JobInfo, JobState, Queue};
use serde_json::json;

use crate::args::{JobsCommand, QueuesCommand, TokenCommand, TokenRole};
use crate::output::{Progress, print_table};

pub struct Ops {
    settings: Settings,
    redis: RedisConnection,
    json: bool,
}

fn e(error: impl std::fmt::Display) -> String {
    error.to_string()
}

impl Ops {
    pub async fn connect(settings: &Settings, json: bool) -> Result<Self, String> {
        let redis = connect_redis(&settings.redis).await.map_err(e)?;
        Ok(Self {
            settings: settings.clone(),
            redis,
            json,
        })
    }

    fn queue(&self, name: &str) -> Result<Queue, String> {
        self.settings.open_queue(self.redis.clone(), name).ok_or_else(|| {
            let known: Vec<&str> = self.settings.queues.keys().map(String::as_str).collect();
            format!("unknown queue {name:?} (configured: {})", known.join(", "))
        })
    }

    fn print(&self, value: serde_json::Value, headers: &[&str], rows: Vec<Vec<String>>) {
        if self.json {
            println!("{value}");
        } else {
            print_table(headers, rows);
        }
    }

    pub async fn stats(&self) -> Result<(), String> {
        let mut all = serde_json::Map::new();
        let mut rows = Vec::new();
        for name in self.settings.queues.keys() {
            let counts = self.queue(name)?.counts().await.map_err(e)?;
            let c = [
                counts.waiting,
                counts.active,
                counts.delayed,
                counts.completed,
                counts.failed,
                counts.paused,
                counts.total,
            ];
            rows.push(
                std::iter::once(name.clone())
                    .chain(c.iter().map(u64::to_string))
                    .collect(),
            );
            all.insert(name.clone(), json!(counts));
        }
        let headers = [
            "queue",
            "waiting",
            "active",
            "delayed",
            "completed",
            "failed",
            "paused",
            "total",
        ];
        self.print(json!(all), &headers, rows);
        Ok(())
    }

    pub async fn workers(&self) -> Result<(), String> {
        let now = chrono::Utc::now().timestamp_millis() as u64;
        let mut listed = Vec::new();
        let mut rows = Vec::new();
        for name in self.settings.queues.keys() {
            for worker in self.queue(name)?.workers().await.map_err(e)? {
                let info = &worker.info;
                let started = info["startedAtMs"]
                    .as_i64()
                    .and_then(chrono::DateTime::from_timestamp_millis);
                rows.push(vec![
                    worker.id.clone(),
                    name.clone(),
                    info["host"].as_str().unwrap_or("").to_owned(),
                    info["pid"].to_string(),
                    started.map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M:%S").to_string()),
                    info["inFlight"].to_string(),
                    format!(
                        "{:.1}s ago",
                        now.saturating_sub(worker.last_heartbeat_ms) as f64 / 1000.0
                    ),
                ]);
                listed.push(json!({ "queue": name, "worker": worker }));
            }
        }
        let headers = [
            "worker",
            "queue",
            "host",
            "pid",
            "started",
            "in-flight",
            "last heartbeat",
        ];
        self.print(json!(listed), &headers, rows);
        Ok(())
    }

    pub async fn jobs(&self, command: JobsCommand) -> Result<(), String> {
        match command {
            JobsCommand::List {
                queue,
                state,
                limit,
                offset,
                user,
            } => {
                let queue = self.queue(&queue)?;
                let jobs = match user {
                    Some(user) => jobs_of_user(&queue, state.into(), &user, offset, limit).await?,
                    None => queue.list(state.into(), offset, limit).await.map_err(e)?,
                };
                let rows = jobs.iter().map(job_row).collect();
                self.print(
                    json!(jobs),
                    &["id", "state", "user", "attempts", "progress", "age", "last error"],
                    rows,
                );
            }
            JobsCommand::Show { id, queue } => {
                let job = self
                    .queue(&queue)?
                    .get(&id)
                    .await
                    .map_err(e)?
                    .ok_or(format!("job {id} not found"))?;
                println!(
                    "{}",
                    if self.json {
                        json!(job).to_string()
                    } else {
                        serde_json::to_string_pretty(&job).map_err(e)?
                    }
                );
            }
            JobsCommand::Retry { id, queue } => {
                self.queue(&queue)?.retry(&id).await.map_err(e)?;
                self.done(json!({ "retried": id }), &format!("job {id} is waiting again"));
            }
            JobsCommand::Priority { id, priority, queue } => {
                self.queue(&queue)?.set_priority(&id, priority).await.map_err(e)?;
                self.done(
                    json!({ "prioritized": id, "priority": priority }),
                    &format!("job {id} now has priority {priority}"),
                );
            }
            JobsCommand::Promote { id, queue } => {
                self.queue(&queue)?.promote(&id).await.map_err(e)?;
                self.done(json!({ "promoted": id }), &format!("job {id} is due now"));
            }
            JobsCommand::Remove { id, queue } => {
                self.queue(&queue)?.remove(&id).await.map_err(e)?;
                self.done(json!({ "removed": id }), &format!("job {id} removed"));
            }
        }
        Ok(())
    }

    pub async fn queues(&self, command: QueuesCommand) -> Result<(), String> {
        match command {
            QueuesCommand::Pause { name } => {
                self.queue(&name)?.pause().await.map_err(e)?;
                self.done(json!({ "paused": name }), &format!("queue {name} paused"));
            }
            QueuesCommand::Resume { name } => {
                self.queue(&name)?.resume().await.map_err(e)?;
                self.done(json!({ "resumed": name }), &format!("queue {name} resumed"));
            }
            QueuesCommand::Clean {
                name,
                state,
                older_than,
                limit,
            } => {
                let state: JobState = state.into();
                let spinner = Progress::spinner(self.json, &format!("cleaning {name}"));
                let deleted = self
                    .queue(&name)?
                    .clean(state, older_than, limit)
                    .await
                    .map_err(e)?;
                spinner.finish("done");
                self.done(
                    json!({ "deleted": deleted }),
                    &format!("deleted {deleted} {} jobs from {name}", state.as_str()),
                );
            }
            QueuesCommand::RetryFailed { name, limit } => {
                let retried = self.queue(&name)?.retry_failed(limit).await.map_err(e)?;
                self.done(
                    json!({ "retried": retried }),
                    &format!("{retried} failed jobs of {name} are waiting again"),
                );
            }
        }
        Ok(())
    }

    fn done(&self, value: serde_json::Value, text: &str) {
        if self.json {
            println!("{value}");
        } else {
            println!("{text}");
        }
    }
}

pub fn token(settings: &Settings, command: TokenCommand) -> Result<(), String> {
    let TokenCommand::Mint { sub, role, ttl } = command;
    let role = match role {
        TokenRole::Admin => Role::Admin,
        TokenRole::Viewer => Role::Viewer,
        TokenRole::User => Role::User,
    };
    let token = auth::mint(&settings.auth, &sub, role, ttl).map_err(e)?;
    println!("{token}");
    Ok(())
}

/// Jobs most looked through for `jobs list --user`.
const USER_SCAN_LIMIT: usize = 10_000;

/// The `user`'s jobs in `state`, newest first, skipping `offset` of them: pages through the
/// state's jobs (at most [`USER_SCAN_LIMIT`]) keeping that user's.
async fn jobs_of_user(
    queue: &Queue,
    state: JobState,
    user: &str,
    offset: usize,
    limit: usize,
) -> Result<Vec<JobInfo>, String> {
    const PAGE: usize = 500;
    let mut matching = Vec::new();
    let mut scanned = 0;
    while scanned < USER_SCAN_LIMIT && matching.len() < offset + limit {
        let page = queue.list(state, scanned, PAGE).await.map_err(e)?;
        let done = page.len() < PAGE;
        scanned += page.len();
        matching.extend(page.into_iter().filter(|job| job.data["userId"] == user));
        if done {
            break;
        }
    }
    Ok(matching.into_iter().skip(offset).take(limit).collect())
}

/// A job as a table row: id, state, user, attempts, progress, age, last error.
fn job_row(job: &JobInfo) -> Vec<String> {
    let now = chrono::Utc::now().timestamp_millis() as u64;
    let age = job
        .created_at_ms
        .map_or_else(String::new, |at| short_age(now.saturating_sub(at) / 1000));
    vec![
        job.id.clone(),
        job.state.to_string(),
        job.data["userId"].as_str().unwrap_or("").to_owned(),
        format!("{}/{}", job.attempts, job.max_attempts),
        format!("{}%", job.progress),
        age,
        job.last_error.clone().unwrap_or_default(),
    ]
}

/// An age in its largest unit: `45s`, `12m`, `3h`, `2d`.
fn short_age(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86400 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86400),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_are_short() {
        let ages: Vec<String> = [5, 125, 7300, 200_000].map(super::short_age).into();
        assert_eq!(ages, ["5s", "2m", "2h", "2d"]);
    }
}
