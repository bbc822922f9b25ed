//! The status reads users poll (`status/user/:id`, `status/job/:id`, the dashboard's user pages):
//! from the read model when it has the answer, else from MongoDB, which also fills the read model
//! for the next read ([`super::read_model`]).

use mongodb::Database;

use super::read_model::ReadModel;
use super::{JobStatusRecord, find, for_user};
use crate::domain::accounts::{self, UserFreshness};
use crate::infra::error::CoreResult;

/// A user's freshness (`None` when there is no such user) and latest jobs, newest first.
pub type UserStatus = (Option<UserFreshness>, Vec<JobStatusRecord>);

/// The user's freshness and latest `limit` jobs.
pub async fn user_status(
    db: &Database,
    read_model: Option<&ReadModel>,
    user_id: &str,
    limit: usize,
) -> CoreResult<UserStatus> {
    let Some(read_model) = read_model else {
        return from_mongo(db, user_id, limit).await;
    };
    if let Some(answer) = read_model.user(user_id, limit).await? {
        return Ok(answer_of(answer));
    }
    // No entry: fill it from MongoDB (merged with the jobs the read model already holds, which
    // may be newer than MongoDB's) and answer from the merged picture.
    if let Some(user) = accounts::find_user(db, user_id).await? {
        read_model.load_user(db, Some(&user), user_id).await?;
        if let Some(answer) = read_model.user(user_id, limit).await? {
            return Ok(answer_of(answer));
        }
    }
    from_mongo(db, user_id, limit).await
}

fn answer_of((freshness, jobs): (UserFreshness, Vec<JobStatusRecord>)) -> UserStatus {
    (Some(freshness), jobs)
}

async fn from_mongo(db: &Database, user_id: &str, limit: usize) -> CoreResult<UserStatus> {
    let (user, jobs) = tokio::try_join!(
        accounts::find_user(db, user_id),
        for_user(db, user_id, limit as i64)
    )?;
    Ok((user.as_ref().map(UserFreshness::of), jobs))
}

/// One job's record.
pub async fn job(
    db: &Database,
    read_model: Option<&ReadModel>,
    job_id: &str,
) -> CoreResult<Option<JobStatusRecord>> {
    if let Some(record) = match read_model {
        Some(read_model) => read_model.job(job_id).await?,
        None => None,
    } {
        return Ok(Some(record));
    }
    find(db, job_id).await
}
