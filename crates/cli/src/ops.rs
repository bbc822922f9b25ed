//! Operations commands: queue statistics, live workers, jobs, queue control and tokens. Human
//! tables by default, `--json` for scripts.

use std::time::Duration;

use redis::aio::ConnectionManager;
use sellersync_core::Settings;
use sellersync_core::auth::{self, Role};
use sellersync_core::config::USER_DATA_QUEUE;
use sellersync_core::connections::connect_redis;
use sellersync_queue::{JobState, Queue};
use serde_json::json;

#[derive(clap::Subcommand)]
pub enum JobsCommand {
    /// Jobs in a state, newest first.
    List {
        #[arg(long, default_value = USER_DATA_QUEUE)]
        queue: String,
        #[arg(long, default_value = "failed")]
        state: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One job, whole.
    Show {
        id: String,
        #[arg(long, default_value = USER_DATA_QUEUE)]
        queue: String,
    },
    /// Put a failed job back to waiting.
    Retry {
        id: String,
        #[arg(long, default_value = USER_DATA_QUEUE)]
        queue: String,
    },
    /// Delete a job that is not running.
    Remove {
        id: String,
        #[arg(long, default_value = USER_DATA_QUEUE)]
        queue: String,
    },
    /// Override the priority of a waiting or delayed job (0 is the most urgent).
    Priority {
        id: String,
        priority: u32,
        #[arg(long, default_value = USER_DATA_QUEUE)]
        queue: String,
    },
    /// Make a delayed job due now.
    Promote {
        id: String,
        #[arg(long, default_value = USER_DATA_QUEUE)]
        queue: String,
    },
}

#[derive(clap::Subcommand)]
pub enum QueuesCommand {
    /// Workers stop taking jobs from the queue; running jobs finish.
    Pause {
        name: String,
    },
    Resume {
        name: String,
    },
    /// Delete finished jobs older than an age.
    Clean {
        name: String,
        #[arg(long, default_value = "completed")]
        state: String,
        #[arg(long, default_value_t = 3600)]
        older_than_secs: u64,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Print a signed API token (HS256 with JWT_SECRET).
    Mint {
        /// The token's subject: a user id, or an operator name for admin tokens.
        #[arg(long)]
        sub: String,
        #[arg(long, value_parser = ["user", "viewer", "admin"], default_value = "user")]
        role: String,
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
    },
}

pub struct Ops {
    settings: Settings,
    redis: ConnectionManager,
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
        let config = self.settings.queue(name).ok_or_else(|| {
            let known: Vec<&str> = self.settings.queues.keys().map(String::as_str).collect();
            format!("unknown queue {name:?} (configured: {})", known.join(", "))
        })?;
        Ok(Queue::new(
            self.redis.clone(),
            &self.settings.redis.key_prefix,
            name,
            config,
        ))
    }

    fn print(&self, value: serde_json::Value, headers: &[&str], rows: Vec<Vec<String>>) {
        if self.json {
            println!("{value}");
        } else {
            print_table(headers, &rows);
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
            JobsCommand::List { queue, state, limit } => {
                let state: JobState = state.parse()?;
                let jobs = self.queue(&queue)?.list(state, 0, limit).await.map_err(e)?;
                let rows = jobs
                    .iter()
                    .map(|j| {
                        vec![
                            j.id.clone(),
                            j.state.clone(),
                            format!("{}/{}", j.attempts, j.max_attempts),
                            j.progress.to_string(),
                            j.data.to_string(),
                            j.last_error.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                self.print(
                    json!(jobs),
                    &["id", "state", "attempts", "progress", "data", "last error"],
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
            JobsCommand::Remove { id, queue } => {
                self.queue(&queue)?.remove(&id).await.map_err(e)?;
                self.done(json!({ "removed": id }), &format!("job {id} removed"));
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
                older_than_secs,
                limit,
            } => {
                let state: JobState = state.parse()?;
                let age = Duration::from_secs(older_than_secs);
                let deleted = self.queue(&name)?.clean(state, age, limit).await.map_err(e)?;
                self.done(
                    json!({ "deleted": deleted }),
                    &format!("deleted {deleted} {} jobs from {name}", state.as_str()),
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
    let TokenCommand::Mint { sub, role, ttl_secs } = command;
    let role = match role.as_str() {
        "admin" => Role::Admin,
        "viewer" => Role::Viewer,
        _ => Role::User,
    };
    let token = auth::mint(&settings.auth, &sub, role, Duration::from_secs(ttl_secs)).map_err(e)?;
    println!("{token}");
    Ok(())
}

/// Left-aligned columns separated by two spaces.
fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    if rows.is_empty() {
        println!("(none)");
    }
}
