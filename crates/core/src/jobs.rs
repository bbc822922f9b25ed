//! Job payloads: what travels through the queues, declared once and used by producers (cron,
//! API, CLI) and the worker alike.

use serde::{Deserialize, Serialize};

use sellersync_queue::EnqueueOptions;

/// What caused a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Cron,
    Manual,
    Api,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cron => "cron",
            Self::Manual => "manual",
            Self::Api => "api",
        }
    }
}

/// Refresh one user's seller data (`process_user_data`), on the `user-data` queue, at most one
/// pending job per user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshUser {
    pub user_id: String,
    pub trigger: Trigger,
}

impl RefreshUser {
    pub const QUEUE: &'static str = crate::config::USER_DATA_QUEUE;

    /// One pending job per user: enqueueing the same user again returns the pending job.
    pub fn dedup_key(&self) -> String {
        format!("user:{}", self.user_id)
    }

    pub fn options(&self) -> EnqueueOptions {
        EnqueueOptions {
            dedup_key: Some(self.dedup_key()),
            ..EnqueueOptions::default()
        }
    }
}
