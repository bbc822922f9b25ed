//! The audit log of admin actions (`admin_audit`): who (the token's `sub` and role), what (the
//! action and what it did), which jobs and users, when, from where (the client's address), and
//! through what (the dashboard or the JSON API). An entry is written once the action is done and
//! expires `audit.retention_days` later (TTL index on `expireAt`).
//!
//! Entry ids are `<ms since the epoch, 13 digits>-<random>`: they sort by time, so the newest
//! come first by `_id` alone and a page of older entries starts `before` an id.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::Database;
use mongodb::bson::{self, Document, doc};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};

use crate::infra::error::CoreResult;
use crate::infra::settings::Invalid;

pub const ADMIN_AUDIT: &str = "admin_audit";

/// Most job ids one entry lists; an action over more (a bulk action over a filter) lists the
/// first ones and counts them all in `jobCount`.
pub const MAX_LISTED_JOBS: usize = 1000;

/// Longest `audit.retention_days` (ten years).
const MAX_RETENTION_DAYS: u32 = 3650;

/// The audit log's settings (`[audit]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// An entry is deleted this many days after it was written.
    pub retention_days: u32,
}

impl AuditSettings {
    pub fn validate(&self) -> Result<(), Invalid> {
        if !(1..=MAX_RETENTION_DAYS).contains(&self.retention_days) {
            return Err(Invalid::new(
                "audit.retention_days",
                format!(
                    "must be between 1 and {MAX_RETENTION_DAYS}, got {}",
                    self.retention_days
                ),
            ));
        }
        Ok(())
    }

    pub fn retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.retention_days) * 86_400)
    }
}

/// Who acted, and how they reached us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The token's `sub`.
    pub sub: String,
    pub role: String,
    /// `dashboard` or `api`.
    pub via: &'static str,
    /// The client's address (with `X-Forwarded-For` as a proxy sent it).
    pub from: String,
}

/// What was done, to what.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Action {
    /// e.g. `retry`, `remove`, `promote`, `bulk-retry`, `pause`, `clean`, `enqueue`.
    pub name: String,
    pub queue: Option<String>,
    pub job_ids: Vec<String>,
    pub user_ids: Vec<String>,
    /// What it did ("12 jobs done, 3 skipped"), and for an action over a filter, the filter.
    pub detail: String,
}

impl Action {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    pub fn queue(mut self, queue: &str) -> Self {
        self.queue = Some(queue.to_owned());
        self
    }

    pub fn jobs(mut self, ids: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.job_ids.extend(ids.into_iter().map(Into::into));
        self
    }

    pub fn users(mut self, ids: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.user_ids.extend(ids.into_iter().map(Into::into));
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
}

/// One entry as stored and as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Sorts by time: `<ms>-<random>`.
    #[serde(rename(deserialize = "_id"))]
    pub id: String,
    #[serde(deserialize_with = "bson_time")]
    pub at: DateTime<Utc>,
    /// The token's subject.
    pub sub: String,
    /// `admin` (only admins act).
    pub role: String,
    /// `dashboard` or `api`.
    pub via: String,
    /// `retry`, `remove`, `promote`, `priority`, `bulk-retry`, `bulk-remove`, `bulk-promote`,
    /// `pause`, `resume`, `clean`, `retry-failed`, `enqueue`, `revoke-sessions`,
    /// `replay-dead-letters`.
    pub action: String,
    #[serde(default)]
    pub queue: Option<String>,
    /// The jobs it covered (the first 1,000).
    #[serde(default)]
    pub job_ids: Vec<String>,
    /// How many jobs it covered.
    #[serde(default)]
    pub job_count: u64,
    #[serde(default)]
    pub user_ids: Vec<String>,
    /// What it did, e.g. "12 jobs done, 3 skipped"; for an action over a filter, the filter.
    #[serde(default)]
    pub detail: String,
    /// The client's address (and `X-Forwarded-For` as a proxy sent it).
    #[serde(default)]
    pub from: String,
}

fn bson_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let value: bson::DateTime = Deserialize::deserialize(d)?;
    DateTime::from_timestamp_millis(value.timestamp_millis())
        .ok_or_else(|| serde::de::Error::custom("a time out of range"))
}

/// Writes an entry for `action` by `actor`, kept for `retention`; returns its id.
pub async fn record(
    db: &Database,
    actor: &Actor,
    action: &Action,
    retention: Duration,
) -> CoreResult<String> {
    let now = Utc::now();
    let id = entry_id(now);
    let expire = now + chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(365));
    let listed: Vec<&String> = action.job_ids.iter().take(MAX_LISTED_JOBS).collect();
    let entry = doc! {
        "_id": &id,
        "at": bson::DateTime::from_millis(now.timestamp_millis()),
        "expireAt": bson::DateTime::from_millis(expire.timestamp_millis()),
        "sub": &actor.sub,
        "role": &actor.role,
        "via": actor.via,
        "from": &actor.from,
        "action": &action.name,
        "queue": action.queue.as_deref(),
        "jobIds": listed,
        "jobCount": action.job_ids.len() as i64,
        "userIds": &action.user_ids,
        "detail": &action.detail,
    };
    db.collection::<Document>(ADMIN_AUDIT).insert_one(entry).await?;
    Ok(id)
}

fn entry_id(at: DateTime<Utc>) -> String {
    let mut random = [0u8; 6];
    rand::rng().fill_bytes(&mut random);
    let random: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("{:013}-{random}", at.timestamp_millis().max(0))
}

/// Which entries to read; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub sub: Option<String>,
    pub action: Option<String>,
    pub job_id: Option<String>,
    pub user_id: Option<String>,
    /// Only entries older than this entry id (the next page).
    pub before: Option<String>,
}

impl Filter {
    fn query(&self) -> Document {
        let mut query = doc! {};
        let fields = [
            ("sub", &self.sub),
            ("action", &self.action),
            ("jobIds", &self.job_id),
            ("userIds", &self.user_id),
        ];
        for (field, value) in fields {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                query.insert(field, value);
            }
        }
        if let Some(before) = self.before.as_deref().filter(|v| !v.is_empty()) {
            query.insert("_id", doc! { "$lt": before });
        }
        query
    }
}

/// Up to `limit` entries matching `filter`, newest first.
pub async fn list(db: &Database, filter: &Filter, limit: i64) -> CoreResult<Vec<AuditEntry>> {
    let entries = db
        .collection::<AuditEntry>(ADMIN_AUDIT)
        .find(filter.query())
        .sort(doc! { "_id": -1 })
        .limit(limit)
        .await?
        .try_collect()
        .await?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_do_not_repeat() {
        let early = DateTime::from_timestamp_millis(999).unwrap();
        let late = DateTime::from_timestamp_millis(1_000_000).unwrap();
        assert!(entry_id(early) < entry_id(late));
        assert_ne!(entry_id(late), entry_id(late));
        assert_eq!(entry_id(late).len(), 13 + 1 + 12);
    }

    #[test]
    fn a_filter_narrows_by_each_field_it_has() {
        let filter = Filter {
            sub: Some("ops".into()),
            job_id: Some("42".into()),
            user_id: Some(String::new()),
            before: Some("0000000001000-aa".into()),
            ..Filter::default()
        };
        assert_eq!(
            filter.query(),
            doc! { "sub": "ops", "jobIds": "42", "_id": { "$lt": "0000000001000-aa" } }
        );
        assert_eq!(Filter::default().query(), doc! {});
    }

    #[test]
    fn retention_is_checked() {
        for (days, ok) in [(0, false), (1, true), (3650, true), (3651, false)] {
            let settings = AuditSettings { retention_days: days };
            assert_eq!(settings.validate().is_ok(), ok, "{days}");
        }
    }
}
