//! What `process_user_data` reads from and writes to MongoDB, coalesced across the refreshes a
//! process runs at once: loading users (with their accounts) and recording attempts (summaries
//! and the user's record) each go out as one bulk call for every refresh waiting at that moment.
//! A refresh alone still costs four round trips; under load, a round trip serves many.

use std::collections::HashMap;
use std::time::Duration;

use mongodb::Database;

use crate::domain::accounts::{self, Fence, RefreshRecord, SellerAccount, SummaryWrite, User};
use crate::domain::analysis::Summary;
use crate::infra::coalesce::Coalescer;
use crate::infra::connections::mongo_op;
use crate::infra::error::CoreResult;

/// Most refreshes one bulk call serves.
const MAX_BATCH: usize = 200;

/// One finished attempt to record.
pub struct Attempt {
    pub user_id: String,
    /// The attempt's fence: nothing older than what is stored is written.
    pub fence: Fence,
    /// The job the attempt ran for (stored with each summary).
    pub job_id: Option<String>,
    /// The accounts refreshed, with their new summaries.
    pub summaries: Vec<(SellerAccount, Summary)>,
    pub record: RefreshRecord,
}

/// A user and its enabled accounts, or `None` if there is no such user.
pub type Loaded = Option<(User, Vec<SellerAccount>)>;

#[derive(Clone)]
pub struct RefreshStore {
    db: Database,
    load: Coalescer<String, Loaded>,
    record: Coalescer<Attempt, ()>,
}

/// The bound on one bulk call when none is configured (`mongo.operation_timeout_ms`'s default).
const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

impl RefreshStore {
    /// Starts the batching tasks (needs a Tokio runtime).
    pub fn new(db: Database) -> Self {
        Self::with_operation_timeout(db, DEFAULT_OPERATION_TIMEOUT)
    }

    /// Like [`Self::new`], each bulk call bounded by `timeout` (`mongo.operation_timeout_ms`).
    pub fn with_operation_timeout(db: Database, timeout: Duration) -> Self {
        let loader = db.clone();
        let load = Coalescer::spawn(MAX_BATCH, move |ids: Vec<String>| {
            let db = loader.clone();
            async move { mongo_op(timeout, load_many(&db, ids)).await }
        });
        let recorder = db.clone();
        let record = Coalescer::spawn(MAX_BATCH, move |attempts: Vec<Attempt>| {
            let db = recorder.clone();
            async move { mongo_op(timeout, record_many(&db, attempts)).await }
        });
        Self { db, load, record }
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    pub async fn load(&self, user_id: &str) -> CoreResult<Loaded> {
        self.load.call(user_id.to_owned()).await
    }

    pub async fn record(&self, attempt: Attempt) -> CoreResult<()> {
        self.record.call(attempt).await
    }
}

async fn load_many(db: &Database, ids: Vec<String>) -> CoreResult<Vec<Loaded>> {
    let mut loaded: HashMap<String, (User, Vec<SellerAccount>)> = accounts::load_users(db, &ids).await?;
    Ok(ids.iter().map(|id| loaded.remove(id)).collect())
}

async fn record_many(db: &Database, attempts: Vec<Attempt>) -> CoreResult<Vec<()>> {
    let summaries: Vec<SummaryWrite> = attempts
        .iter()
        .flat_map(|a| {
            a.summaries.iter().map(|(account, summary)| SummaryWrite {
                account,
                summary,
                fence: a.fence,
                job_id: a.job_id.as_deref(),
            })
        })
        .collect();
    accounts::save_summaries(db, &summaries).await?;
    let records: Vec<(&str, &RefreshRecord, Fence)> = attempts
        .iter()
        .map(|a| (a.user_id.as_str(), &a.record, a.fence))
        .collect();
    accounts::record_refreshes(db, &records).await?;
    Ok(vec![(); attempts.len()])
}
