//! What the templates show: one struct per page (askama, HTML-escaped), built by `pages` from
//! plain rows whose values are already formatted, so the templates hold no logic beyond loops.

use askama::Template;
use axum::response::Html;
use chrono::{DateTime, Utc};
use sellersync_queue::JobInfo;

use super::session::Session;
use crate::state::AppState;

/// Renders a page; a template error is a bug, shown as a generic 500 page body.
pub fn render(page: &impl Template) -> Html<String> {
    Html(page.render().unwrap_or_else(|error| {
        tracing::error!(%error, "dashboard template failed");
        "<!doctype html><title>error</title><p>internal error; the logs have the details</p>".to_owned()
    }))
}

/// What every signed-in page needs: where it lives, who is looking, the CSRF token.
pub struct Ctx {
    /// The dashboard's public path, e.g. `/admin` or `/sellersync/admin`.
    pub base: String,
    /// The live feed's URL.
    pub events_url: String,
    pub user: String,
    pub role: &'static str,
    pub admin: bool,
    pub csrf: String,
    pub queues: Vec<String>,
    /// What the last action did (from `?notice=`).
    pub notice: Option<String>,
}

impl Ctx {
    pub fn new(state: &AppState, session: &Session, notice: Option<String>) -> Self {
        let dashboard = &state.settings.dashboard;
        Self {
            base: dashboard.public_path(),
            events_url: format!("{}/api/events", dashboard.public_prefix),
            user: session.sub.clone(),
            role: session.role.as_str(),
            admin: session.is_admin(),
            csrf: session.csrf.clone(),
            queues: state.queues.names().into_iter().map(str::to_owned).collect(),
            notice,
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/error.html")]
pub struct ErrorPage {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

#[derive(Template)]
#[template(path = "dashboard/login.html")]
pub struct LoginPage {
    pub base: String,
    pub error: Option<String>,
    /// The form's token, also in its cookie (double submit).
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "dashboard/confirm.html")]
pub struct ConfirmPage {
    pub ctx: Ctx,
    pub action: String,
    pub question: String,
    /// The form's fields, sent again with `confirmed=yes`.
    pub fields: Vec<(String, String)>,
    pub back: String,
}

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
pub struct OverviewPage {
    pub ctx: Ctx,
    pub issues: Vec<String>,
    pub queues: Vec<QueueCard>,
    pub cron_runs: Vec<CronRow>,
}

pub struct QueueCard {
    pub name: String,
    pub paused: bool,
    /// (state, count) in display order.
    pub counts: Vec<(&'static str, u64)>,
    pub workers: Vec<WorkerRow>,
    pub projection: String,
    pub chart: Chart,
}

pub struct WorkerRow {
    pub id: String,
    pub seen: String,
    pub info: String,
}

/// Completed and failed jobs per minute over the last hour, as SVG bars.
pub struct Chart {
    pub bars: Vec<Bar>,
    pub completed: u64,
    pub failed: u64,
    pub failure_rate: String,
    pub peak: u64,
}

pub struct Bar {
    pub x: u32,
    /// Heights and tops in the 0–100 viewBox.
    pub completed_y: u32,
    pub completed_h: u32,
    pub failed_y: u32,
    pub failed_h: u32,
    pub title: String,
}

pub struct CronRow {
    pub tick: String,
    pub status: String,
    pub instance: String,
    pub selected: String,
    pub enqueued: String,
    pub duplicates: String,
    pub duration: String,
    pub error: String,
}

#[derive(Template)]
#[template(path = "dashboard/jobs.html")]
pub struct JobsPage {
    pub ctx: Ctx,
    pub queue: String,
    pub state: String,
    pub states: Vec<(&'static str, u64)>,
    pub search: Search,
    pub rows: Vec<JobRow>,
    pub total: String,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub this_page: String,
}

#[derive(Default)]
pub struct Search {
    pub id: String,
    pub user: String,
    pub error: String,
}

pub struct JobRow {
    pub id: String,
    pub link: String,
    pub state: String,
    pub user: String,
    pub attempts: String,
    pub progress: u8,
    pub created: String,
    pub finished: String,
    pub error: String,
}

impl JobRow {
    pub fn new(base: &str, job: &JobInfo) -> Self {
        Self {
            link: format!("{base}/queues/{}/jobs/{}", job.queue, job.id),
            id: job.id.clone(),
            state: job.state.to_string(),
            user: user_of(job),
            attempts: format!("{}/{}", job.attempts, job.max_attempts),
            progress: job.progress,
            created: ms(job.created_at_ms),
            finished: ms(job.finished_at_ms),
            error: job.last_error.clone().map(|e| clip(&e, 120)).unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/job.html")]
pub struct JobPage {
    pub ctx: Ctx,
    pub queue: String,
    pub id: String,
    pub this_page: String,
    pub live: Option<JobLive>,
    pub user: String,
    pub user_link: String,
    /// (label, value) of the JobStatus record.
    pub record: Vec<(&'static str, String)>,
    pub attempts: Vec<AttemptRow>,
    pub account_errors: Vec<(String, String)>,
    pub history: Vec<StatusRow>,
}

/// The job as Redis holds it right now.
pub struct JobLive {
    pub state: String,
    pub progress: u8,
    pub fields: Vec<(&'static str, String)>,
    pub payload: String,
    pub raw: String,
    pub can_retry: bool,
    pub can_remove: bool,
    pub can_promote: bool,
}

pub struct AttemptRow {
    pub attempt: u32,
    pub at: String,
    pub message: String,
}

pub struct StatusRow {
    pub job_id: String,
    pub link: String,
    pub status: String,
    pub trigger: String,
    pub enqueued: String,
    pub finished: String,
    pub duration: String,
    pub error: String,
}

#[derive(Template)]
#[template(path = "dashboard/users.html")]
pub struct UsersPage {
    pub ctx: Ctx,
    pub filter: String,
    pub rows: Vec<UserRow>,
    pub prev: Option<String>,
    pub next: Option<String>,
}

pub struct UserRow {
    pub id: String,
    pub link: String,
    pub active: bool,
    pub stale: bool,
    pub needs_reauthorization: bool,
    pub last_update: String,
    pub last_attempt: String,
    pub interval: i64,
    pub accounts: String,
}

#[derive(Template)]
#[template(path = "dashboard/user.html")]
pub struct UserPage {
    pub ctx: Ctx,
    pub this_page: String,
    pub user: UserRow,
    pub accounts: Vec<AccountRow>,
    pub history: Vec<StatusRow>,
}

pub struct AccountRow {
    pub id: String,
    pub status: String,
    pub at: String,
    /// When its data was last refreshed.
    pub refreshed: String,
    /// Amazon operations the seller did not grant the role for.
    pub missing_roles: String,
    pub error: String,
    /// Amazon's request id of the failing answer.
    pub request_id: String,
}

/// The `userId` of a job's payload, if it has one.
pub fn user_of(job: &JobInfo) -> String {
    job.data
        .get("userId")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

/// A time in ms since the epoch, as `YYYY-MM-DD HH:MM:SS` UTC ("" when unset).
pub fn ms(value: Option<u64>) -> String {
    value
        .and_then(|v| DateTime::<Utc>::from_timestamp_millis(v as i64))
        .map(time)
        .unwrap_or_default()
}

pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub fn opt_time(t: Option<DateTime<Utc>>) -> String {
    t.map(time).unwrap_or_default()
}

/// At most `max` characters, with an ellipsis when cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_clipping() {
        assert_eq!(ms(Some(0)), "1970-01-01 00:00:00");
        assert_eq!(ms(None), "");
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("abc", 3), "abc");
    }

    #[test]
    fn pages_escape_what_they_show() {
        let page = ErrorPage {
            status: 400,
            code: "bad_request",
            message: "<script>alert(1)</script>".into(),
        };
        let html = page.render().unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(
            html.contains("&lt;script&gt;") || html.contains("&#60;script&#62;"),
            "{html}"
        );
    }
}
