//! Which jobs of a queue a job list shows: a state's list, or a search by job id, by user (their
//! JobStatus records) or by error text (the newest failed and delayed jobs). The list page shows
//! one page of them; an action over the filter ("retry every failed job of this user") takes
//! them all, up to [`MAX_MATCHING`].

use futures::future::try_join_all;
use sellersync_core::jobs::job_status;
use sellersync_queue::{JobInfo, JobState, Queue};

use crate::error::ApiError;
use crate::state::AppState;

/// Failed and delayed jobs searched for an error text, newest first.
pub const ERROR_SEARCH_SCAN: usize = 1000;
/// JobStatus records a search by user looks at.
const USER_SEARCH_RECORDS: i64 = 200;
/// Most jobs one action over a filter covers (newest first); more are left for another run.
pub const MAX_MATCHING: usize = 10_000;

/// A job list's filter: the state's list unless a search field is filled (the first of id,
/// user, error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFilter {
    pub state: JobState,
    pub id: String,
    pub user: String,
    pub error: String,
}

impl JobFilter {
    pub fn new(state: JobState, id: &str, user: &str, error: &str) -> Self {
        Self {
            state,
            id: id.trim().to_owned(),
            user: user.trim().to_owned(),
            error: error.trim().to_owned(),
        }
    }

    /// Whether a search (not the state's list) selects the jobs.
    pub fn is_search(&self) -> bool {
        !(self.id.is_empty() && self.user.is_empty() && self.error.is_empty())
    }

    /// What it selects, in words ("failed jobs", "jobs of user u1").
    pub fn describe(&self) -> String {
        if !self.id.is_empty() {
            format!("job {}", self.id)
        } else if !self.user.is_empty() {
            format!("jobs of user {}", self.user)
        } else if !self.error.is_empty() {
            format!("failed and delayed jobs whose error contains {:?}", self.error)
        } else {
            format!("{} jobs", self.state.as_str())
        }
    }

    /// One page (`offset`, `size`) of the matching jobs; with the total when it is a state's list.
    pub async fn page(
        &self,
        state: &AppState,
        queue: &Queue,
        (offset, size): (usize, usize),
    ) -> Result<(Vec<JobInfo>, Option<u64>), ApiError> {
        if !self.is_search() {
            let total = crate::routes::jobs::count_in(&queue.counts().await?, Some(self.state));
            return Ok((queue.list(self.state, offset, size).await?, Some(total)));
        }
        let found = self.search(state, queue).await?;
        Ok((found.into_iter().skip(offset).take(size).collect(), None))
    }

    /// Every matching job, newest first, up to [`MAX_MATCHING`]; and how many match in all
    /// (more than it returns when the bound cut them).
    pub async fn all(&self, state: &AppState, queue: &Queue) -> Result<(Vec<JobInfo>, u64), ApiError> {
        let (jobs, total) = self.page(state, queue, (0, MAX_MATCHING)).await?;
        let total = total.unwrap_or(jobs.len() as u64).max(jobs.len() as u64);
        Ok((jobs, total))
    }

    async fn search(&self, state: &AppState, queue: &Queue) -> Result<Vec<JobInfo>, ApiError> {
        if !self.id.is_empty() {
            return Ok(queue.get(&self.id).await?.into_iter().collect());
        }
        if !self.user.is_empty() {
            let records = job_status::for_user(&state.mongo, &self.user, USER_SEARCH_RECORDS).await?;
            let ids = records
                .iter()
                .filter(|r| r.queue == queue.name())
                .map(|r| queue.get(&r.job_id));
            return Ok(try_join_all(ids).await?.into_iter().flatten().collect());
        }
        let needle = self.error.to_lowercase();
        let mut hits = Vec::new();
        for searched in [JobState::Failed, JobState::Delayed] {
            let jobs = queue.list(searched, 0, ERROR_SEARCH_SCAN).await?;
            hits.extend(jobs.into_iter().filter(|j| {
                j.last_error
                    .as_deref()
                    .is_some_and(|e| e.to_lowercase().contains(&needle))
            }));
        }
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_says_what_it_selects() {
        let state_list = JobFilter::new(JobState::Failed, " ", "", "");
        assert!(!state_list.is_search());
        assert_eq!(state_list.describe(), "failed jobs");
        let by_user = JobFilter::new(JobState::Failed, "", " u1 ", "503");
        assert!(by_user.is_search());
        assert_eq!(
            by_user.describe(),
            "jobs of user u1",
            "the first search field wins"
        );
        let by_error = JobFilter::new(JobState::Waiting, "", "", "SP-API");
        assert!(by_error.describe().contains("\"SP-API\""));
    }
}
