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
    /// The page has the live feed (error pages do not: no session is looked up for them).
    pub live: bool,
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
            live: true,
        }
    }

    /// For a page shown without looking up a session (an error page): the navigation only.
    pub fn anonymous(state: &AppState) -> Self {
        let dashboard = &state.settings.dashboard;
        Self {
            base: dashboard.public_path(),
            events_url: String::new(),
            user: String::new(),
            role: "",
            admin: false,
            csrf: String::new(),
            queues: state.queues.names().into_iter().map(str::to_owned).collect(),
            notice: None,
            live: false,
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/error.html")]
pub struct ErrorPage {
    pub ctx: Ctx,
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

#[derive(Template)]
#[template(path = "dashboard/login.html")]
pub struct LoginPage {
    pub base: String,
    pub error: Option<String>,
    /// The browser did not keep the session cookie it was given: why, and what to do.
    pub cookie_refused: Option<String>,
    /// The cookie is `Secure`: the page warns (with its script) when it is not on HTTPS.
    pub secure_cookie: bool,
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
    /// The list is a state's, not a search's: its count follows the live feed.
    pub counted: bool,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub this_page: String,
    /// Most jobs one action over the filter covers.
    pub max_matching: usize,
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
    pub attempt: u32,
    pub max_attempts: u32,
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
            attempt: job.attempts,
            max_attempts: job.max_attempts,
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
    pub timeline: Timeline,
    /// Admin actions on this job.
    pub audit: Vec<AuditRow>,
}

/// The job as Redis holds it right now.
pub struct JobLive {
    pub state: String,
    pub progress: u8,
    pub attempt: u32,
    pub max_attempts: u32,
    /// (label, live key, value): the live feed updates the fields with a key.
    pub fields: Vec<(&'static str, &'static str, String)>,
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
    /// Admin actions on this user.
    pub audit: Vec<AuditRow>,
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
    /// The account's latest stored figures.
    pub summary: Option<SummaryView>,
}

/// An account's latest figures, formatted: amounts in their currency's minor unit.
pub struct SummaryView {
    /// When they were refreshed.
    pub refreshed: String,
    /// The job that refreshed them ("" when unknown) and its page.
    pub job_id: String,
    pub job_link: String,
    pub window: String,
    pub orders: u64,
    pub cancelled: String,
    pub units: u64,
    /// "USD 1,234.50" per currency.
    pub revenue: Vec<String>,
    pub average_order_value: Vec<String>,
    /// "SKU-1: 12 units".
    pub top_skus: Vec<String>,
    /// "SKU-1: 3 left, 3.5 days of cover (0.86 a day)".
    pub stockout_risk: Vec<String>,
    /// Why the inventory is missing ("" when it was read).
    pub inventory_unavailable: String,
}

/// A job's transitions, oldest first, and where they were read.
pub struct Timeline {
    pub source: String,
    pub rows: Vec<TimelineRow>,
}

pub struct TimelineRow {
    pub at: String,
    pub event: String,
    pub state: String,
    pub attempt: String,
    pub worker: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "dashboard/audit.html")]
pub struct AuditPage {
    pub ctx: Ctx,
    pub search: AuditSearch,
    pub rows: Vec<AuditRow>,
    pub next: Option<String>,
    pub retention_days: u32,
}

#[derive(Default)]
pub struct AuditSearch {
    pub sub: String,
    pub action: String,
    pub job: String,
    pub user: String,
}

pub struct AuditRow {
    pub at: String,
    pub who: String,
    pub via: String,
    pub from: String,
    pub action: String,
    pub queue: String,
    /// (job id, its page), the first few.
    pub jobs: Vec<(String, String)>,
    /// Jobs covered beyond those listed.
    pub more_jobs: u64,
    /// (user id, their page).
    pub users: Vec<(String, String)>,
    pub detail: String,
}

/// Job links an audit row shows.
const AUDIT_JOBS_SHOWN: usize = 10;

impl AuditRow {
    pub fn new(base: &str, entry: &sellersync_core::domain::audit::AuditEntry) -> Self {
        let queue = entry.queue.clone().unwrap_or_default();
        let jobs: Vec<(String, String)> = entry
            .job_ids
            .iter()
            .take(AUDIT_JOBS_SHOWN)
            .map(|id| (id.clone(), format!("{base}/queues/{queue}/jobs/{}", encode(id))))
            .collect();
        Self {
            at: time(entry.at),
            who: format!("{} ({})", entry.sub, entry.role),
            via: entry.via.clone(),
            from: entry.from.clone(),
            action: entry.action.clone(),
            more_jobs: entry.job_count.saturating_sub(jobs.len() as u64),
            jobs,
            users: entry
                .user_ids
                .iter()
                .map(|u| (u.clone(), format!("{base}/users/{}", encode(u))))
                .collect(),
            detail: entry.detail.clone(),
            queue,
        }
    }
}

/// A path segment or query value, percent-encoded.
pub fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `amount` minor units of `currency` as "USD 1,234.50" (JPY has no minor unit, KWD three).
pub fn money(currency: &str, amount: i64) -> String {
    let digits = sellersync_core::domain::analysis::minor_unit_digits(currency);
    let scale = 10_i64.pow(digits);
    let (sign, amount) = if amount < 0 {
        ("-", amount.unsigned_abs())
    } else {
        ("", amount as u64)
    };
    let (whole, fraction) = (amount / scale as u64, amount % scale as u64);
    let digits_of_whole = whole.to_string();
    let mut grouped = String::new();
    for (i, digit) in digits_of_whole.chars().enumerate() {
        if i > 0 && (digits_of_whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match digits {
        0 => format!("{currency} {sign}{grouped}"),
        d => format!(
            "{currency} {sign}{grouped}.{fraction:0width$}",
            width = d as usize
        ),
    }
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
    fn money_is_shown_in_its_currency_minor_unit() {
        assert_eq!(money("USD", 4050), "USD 40.50");
        assert_eq!(money("USD", 123_456_789), "USD 1,234,567.89");
        assert_eq!(money("JPY", 4000), "JPY 4,000");
        assert_eq!(money("KWD", 1500), "KWD 1.500");
        assert_eq!(money("EUR", -550), "EUR -5.50");
        assert_eq!(money("EUR", 5), "EUR 0.05");
        assert_eq!(money("GBP", 100_000), "GBP 1,000.00");
    }

    #[test]
    fn pages_escape_what_they_show() {
        let ctx = Ctx {
            base: "/admin".into(),
            events_url: String::new(),
            user: String::new(),
            role: "",
            admin: false,
            csrf: String::new(),
            queues: vec!["user-data".into()],
            notice: None,
            live: false,
        };
        let page = ErrorPage {
            ctx,
            status: 400,
            code: "bad_request",
            message: "<script>alert(1)</script>".into(),
        };
        let html = page.render().unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(
            html.contains(r#"href="/admin/queues/user-data/jobs""#),
            "navigation: {html}"
        );
        assert!(!html.contains("javascript:"), "{html}");
        assert!(
            html.contains("&lt;script&gt;") || html.contains("&#60;script&#62;"),
            "{html}"
        );
    }
}
