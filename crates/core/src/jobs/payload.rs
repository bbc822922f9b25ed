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
///
/// Its payload also carries the trace context of the code that enqueued it (`traceparent`, W3C
/// Trace Context) when OpenTelemetry export is on, so the enqueueing request and the job's
/// attempts form one trace; the queue's backend hands it to the worker with the lease.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshUser {
    pub user_id: String,
    pub trigger: Trigger,
}

impl Serialize for RefreshUser {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Payload<'a> {
            user_id: &'a str,
            trigger: Trigger,
            #[serde(skip_serializing_if = "Option::is_none")]
            traceparent: Option<String>,
        }
        Payload {
            user_id: &self.user_id,
            trigger: self.trigger,
            traceparent: crate::infra::telemetry::current_traceparent(),
        }
        .serialize(serializer)
    }
}

impl RefreshUser {
    pub const QUEUE: &'static str = USER_DATA_QUEUE;

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

/// The queue of per-user data refresh jobs.
pub const USER_DATA_QUEUE: &str = "user-data";
