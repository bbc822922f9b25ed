//! [`StaleUsers`]: the users due for a refresh at a tick, streamed from MongoDB in batches.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use futures::TryStreamExt;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::{Cursor, Database};

use crate::domain::accounts::{self, SELLER_ACCOUNTS, USERS};
use crate::infra::error::CoreResult;

/// Users due for a refresh, read in batches from a cursor.
pub struct StaleUsers {
    cursor: Cursor<Document>,
    db: Database,
    /// The tick plus the tolerance: a user is due if its interval has passed by then.
    due_by: DateTime<Utc>,
    /// Users waiting for re-authorization whose credentials changed: due again.
    reauthorized: Vec<String>,
}

impl StaleUsers {
    /// Users due at `tick`, with `tolerance` (see the module documentation).
    pub async fn open(
        db: &Database,
        tick: DateTime<Utc>,
        tolerance: std::time::Duration,
    ) -> CoreResult<Self> {
        let due_by = tick + TimeDelta::from_std(tolerance).unwrap_or_default();
        // Nothing refreshed within a minute of `due_by` can be due (intervals are whole minutes).
        let recent = bson::DateTime::from_millis((due_by - TimeDelta::minutes(1)).timestamp_millis());
        let filter = doc! {
            "active": true,
            "needsReauthorization": { "$ne": true },
            "$or": [ { "lastDataUpdateAt": null }, { "lastDataUpdateAt": { "$lt": recent } } ],
        };
        let cursor = db
            .collection::<Document>(USERS)
            .find(filter)
            .projection(doc! { "_id": 1, "lastDataUpdateAt": 1, "updateIntervalMinutes": 1 })
            // In id order, so each batch's accounts are one range of the `userId` index.
            .sort(doc! { "_id": 1 })
            .batch_size(1000)
            .await?;
        Ok(Self {
            cursor,
            db: db.clone(),
            due_by,
            reauthorized: accounts::reauthorized_users(db).await?,
        })
    }

    /// Up to `size` more stale users with an enabled seller account (possibly none in this
    /// batch); `None` when done.
    pub async fn next_batch(&mut self, size: usize) -> CoreResult<Option<Vec<String>>> {
        if !self.reauthorized.is_empty() {
            // Checked to have enabled accounts when they were found.
            return Ok(Some(std::mem::take(&mut self.reauthorized)));
        }
        let mut candidates = Vec::with_capacity(size);
        while candidates.len() < size {
            let Some(user) = self.cursor.try_next().await? else {
                break;
            };
            if self.is_due(&user) {
                candidates.extend(user.get_str("_id").ok().map(str::to_owned));
            }
        }
        let (Some(first), Some(last)) = (candidates.first(), candidates.last()) else {
            return Ok(None);
        };
        // One range scan of the accounts of the batch's id range (far cheaper than `$in`).
        let range = doc! { "userId": { "$gte": first, "$lte": last }, "enabled": true };
        let with_accounts: HashSet<String> = self
            .db
            .collection::<Document>(SELLER_ACCOUNTS)
            .find(range)
            .projection(doc! { "userId": 1, "_id": 0 })
            .await?
            .try_collect::<Vec<Document>>()
            .await?
            .iter()
            .filter_map(|a| a.get_str("userId").ok().map(str::to_owned))
            .collect();
        candidates.retain(|id| with_accounts.contains(id));
        Ok(Some(candidates))
    }

    fn is_due(&self, user: &Document) -> bool {
        let interval = user.get("updateIntervalMinutes").and_then(minutes).unwrap_or(60);
        match user.get_datetime("lastDataUpdateAt") {
            Ok(last) => last.timestamp_millis() + interval * 60_000 <= self.due_by.timestamp_millis(),
            Err(_) => true,
        }
    }
}

/// An interval stored as any integer or double.
fn minutes(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Int64(v) => Some(*v),
        Bson::Double(v) => Some(*v as i64),
        _ => None,
    }
}
