//! The dashboard's pages (GET): overview, jobs of a queue with paging and search, a job (with
//! its timeline), users and a user (with each account's latest figures), the audit log; and the
//! counts the live feed refreshes. Each reads what the JSON API reads and hands `view` formatted
//! rows.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures::TryStreamExt;
use futures::future::try_join_all;
use mongodb::bson::{Document, doc};
use sellersync_core::CoreError;
use sellersync_core::domain::accounts::{self, StoredSummary, USERS, User};
use sellersync_core::domain::audit;
use sellersync_core::jobs::job_status::{self, JobStatusRecord};
use sellersync_queue::{JobInfo, JobState, Queue};
use serde::Deserialize;

use super::matching::{JobFilter, MAX_MATCHING};
use super::view::{self, Ctx, JobRow, encode};
use super::{PageQuery as Query, PageResult, Signed, base};
use crate::error::ApiError;
use crate::extract::Path;
use crate::monitoring;
use crate::routes::admin::AuditQuery;
use crate::state::AppState;

/// JobStatus records shown as a user's history.
const HISTORY: i64 = 25;
/// Minutes in the overview's chart.
const CHART_MINUTES: usize = 60;
/// Audit entries per page, and on a job's or a user's page.
const AUDIT_PAGE: i64 = 50;
const AUDIT_ON_PAGE: i64 = 20;

#[derive(Deserialize, Default)]
pub struct Notice {
    notice: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    /// `refused`: the browser came back from signing in without the session cookie.
    cookie: Option<String>,
}

pub async fn login(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    let refused = (q.cookie.as_deref() == Some("refused")).then(|| cookie_refused(&state));
    login_page(&state, StatusCode::OK, None, refused)
}

/// Why the browser does not keep the dashboard's cookies (its session, or the sign-in form's),
/// and what to do.
pub fn cookie_refused(state: &AppState) -> String {
    if state.settings.dashboard.secure_cookie {
        "Your browser does not keep this dashboard's cookies, so signing in cannot last: \
         dashboard.secure_cookie is on, so they are marked Secure, and browsers keep Secure \
         cookies only over HTTPS, while this page was reached over plain HTTP. Open the dashboard \
         at its https:// address (behind your TLS proxy), or, for a local run over plain HTTP, set \
         dashboard.secure_cookie = false (SELLERSYNC_DASHBOARD__SECURE_COOKIE=false; outside \
         development and test also dashboard.allow_insecure_cookie = true)."
            .to_owned()
    } else {
        "Your browser does not keep this dashboard's cookies, so signing in cannot last: allow \
         cookies for this site and sign in again."
            .to_owned()
    }
}

/// The sign-in page with a fresh form token (and its cookie), the error of a refused try, and
/// why the browser did not keep its session.
pub fn login_page(
    state: &AppState,
    status: StatusCode,
    error: Option<String>,
    cookie_refused: Option<String>,
) -> Response {
    let (csrf, cookie) = super::session::login_token(state);
    let page = view::LoginPage {
        base: base(state),
        error,
        cookie_refused,
        secure_cookie: state.settings.dashboard.secure_cookie,
        csrf,
    };
    let mut response = (status, view::render(&page)).into_response();
    response.headers_mut().insert(SET_COOKIE, cookie);
    response
}

/// Each queue's counts by state, for the live feed to refresh the counts a page shows.
pub async fn counts(
    Signed(_session): Signed,
    State(state): State<AppState>,
) -> Result<axum::Json<BTreeMap<String, BTreeMap<&'static str, u64>>>, super::PageError> {
    let snapshot = monitoring::snapshot(&state.queues).await?;
    Ok(axum::Json(
        snapshot
            .iter()
            .map(|s| (s.name.clone(), shown_counts(&s.counts).into_iter().collect()))
            .collect(),
    ))
}

/// The counts a page shows, in display order (waiting includes a paused queue's).
fn shown_counts(c: &sellersync_queue::Counts) -> Vec<(&'static str, u64)> {
    vec![
        ("waiting", c.waiting + c.paused),
        ("active", c.active),
        ("delayed", c.delayed),
        ("completed", c.completed),
        ("failed", c.failed),
    ]
}

pub async fn overview(
    Signed(session): Signed,
    State(state): State<AppState>,
    Query(notice): Query<Notice>,
) -> PageResult {
    let snapshot = monitoring::snapshot(&state.queues).await?;
    let stats = monitoring::stats_by_name(&snapshot);
    let backlogs = monitoring::backlogs(&state.queues).await?;
    let (issues, _) = monitoring::health(&state.queues, &state.settings, &stats).await?;
    let cards = try_join_all(snapshot.iter().map(|s| {
        let queue = state.queues.by_path(&s.name).expect("a configured queue");
        queue_card(queue, s, backlogs.get(&s.name).copied().unwrap_or_default())
    }))
    .await?;
    let page = view::OverviewPage {
        ctx: Ctx::new(&state, &session, notice.notice),
        issues,
        queues: cards,
        cron_runs: cron_rows(&state).await?,
    };
    Ok(view::render(&page).into_response())
}

async fn queue_card(
    queue: &Queue,
    snapshot: &monitoring::Snapshot,
    backlog: sellersync_queue::events::EventBacklog,
) -> Result<view::QueueCard, ApiError> {
    let workers = queue.workers().await?;
    Ok(view::QueueCard {
        name: snapshot.name.clone(),
        paused: snapshot.paused,
        counts: shown_counts(&snapshot.counts),
        workers: workers
            .into_iter()
            .map(|w| view::WorkerRow {
                id: w.id,
                seen: view::ms(Some(w.last_heartbeat_ms)),
                info: view::clip(&w.info.to_string(), 160),
            })
            .collect(),
        projection: format!(
            "{} pending, {} undelivered, oldest {} ms",
            backlog.pending, backlog.undelivered, backlog.oldest_age_ms
        ),
        chart: chart(queue).await?,
    })
}

/// Completed and failed jobs per minute over the last hour.
async fn chart(queue: &Queue) -> Result<view::Chart, ApiError> {
    let minute = 60_000u64;
    let now = Utc::now().timestamp_millis() as u64;
    let start = (now / minute + 1 - CHART_MINUTES as u64) * minute;
    let (completed, failed) = futures::try_join!(
        queue.finished_per_bucket(JobState::Completed, start, minute, CHART_MINUTES),
        queue.finished_per_bucket(JobState::Failed, start, minute, CHART_MINUTES),
    )?;
    Ok(bars(start, minute, &completed, &failed))
}

/// Stacked bars in a 0–100 high, 4-per-minute wide viewBox.
pub fn bars(start: u64, bucket: u64, completed: &[u64], failed: &[u64]) -> view::Chart {
    let peak = completed
        .iter()
        .zip(failed)
        .map(|(c, f)| c + f)
        .max()
        .unwrap_or(0);
    let scale = |n: u64| {
        if peak == 0 {
            0
        } else {
            ((n * 100).div_ceil(peak)) as u32
        }
    };
    let bars = completed
        .iter()
        .zip(failed)
        .enumerate()
        .map(|(i, (&c, &f))| {
            let (ch, fh) = (scale(c), scale(f));
            view::Bar {
                x: i as u32 * 4,
                completed_y: 100 - ch,
                completed_h: ch,
                failed_y: 100 - ch - fh.min(100 - ch),
                failed_h: fh.min(100 - ch),
                title: format!(
                    "{}: {c} completed, {f} failed",
                    view::ms(Some(start + i as u64 * bucket))
                ),
            }
        })
        .collect();
    let (total_c, total_f): (u64, u64) = (completed.iter().sum(), failed.iter().sum());
    let rate = match total_c + total_f {
        0 => "–".to_owned(),
        all => format!("{:.1}%", total_f as f64 * 100.0 / all as f64),
    };
    view::Chart {
        bars,
        completed: total_c,
        failed: total_f,
        failure_rate: rate,
        peak,
    }
}

async fn cron_rows(state: &AppState) -> Result<Vec<view::CronRow>, ApiError> {
    let runs = crate::routes::admin::recent_cron_runs(&state.mongo, 5).await?;
    Ok(runs.iter().map(cron_row).collect())
}

fn cron_row(run: &Document) -> view::CronRow {
    let text = |key: &str| match run.get(key) {
        Some(mongodb::bson::Bson::DateTime(t)) => view::ms(Some(t.timestamp_millis() as u64)),
        Some(mongodb::bson::Bson::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    view::CronRow {
        tick: text("tickAt"),
        status: text("status"),
        instance: text("instance"),
        selected: text("selected"),
        enqueued: text("enqueued"),
        duplicates: text("duplicates"),
        duration: text("durationMs"),
        error: view::clip(&text("error"), 200),
    }
}

#[derive(Deserialize, Default)]
pub struct JobsQuery {
    state: Option<String>,
    #[serde(default)]
    page: usize,
    #[serde(default)]
    id: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    error: String,
    notice: Option<String>,
}

pub async fn jobs(
    Signed(session): Signed,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<JobsQuery>,
) -> PageResult {
    let queue = state.queues.by_path(&name)?;
    let job_state: JobState = match q.state.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => s.parse().map_err(ApiError::BadRequest)?,
        None => JobState::Failed,
    };
    let filter = JobFilter::new(job_state, &q.id, &q.user, &q.error);
    let size = state.settings.dashboard.page_size;
    let offset = super::offset(q.page, size)?;
    let (jobs, total) = filter.page(&state, queue, (offset, size)).await?;
    let ctx = Ctx::new(&state, &session, q.notice.clone());
    let link = |page: usize| {
        format!(
            "{}/queues/{name}/jobs?state={}&page={page}&id={}&user={}&error={}",
            ctx.base,
            job_state.as_str(),
            encode(&filter.id),
            encode(&filter.user),
            encode(&filter.error)
        )
    };
    let more = total.is_none_or(|t| offset + size < t as usize) && jobs.len() == size;
    let counts = queue.counts().await?;
    let page = view::JobsPage {
        queue: name.clone(),
        state: job_state.as_str().to_owned(),
        states: shown_counts(&counts),
        rows: jobs.iter().map(|j| JobRow::new(&ctx.base, j)).collect(),
        total: total.map_or_else(|| "search results".to_owned(), |t| t.to_string()),
        counted: total.is_some(),
        prev: (q.page > 0).then(|| link(q.page - 1)),
        next: more.then(|| link(q.page + 1)),
        this_page: link(q.page),
        max_matching: MAX_MATCHING,
        search: view::Search {
            id: filter.id,
            user: filter.user,
            error: filter.error,
        },
        ctx,
    };
    Ok(view::render(&page).into_response())
}

pub async fn job(
    Signed(session): Signed,
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    Query(notice): Query<Notice>,
) -> PageResult {
    let queue = state.queues.by_path(&name)?;
    let (live, record) = futures::try_join!(async { queue.get(&id).await.map_err(ApiError::from) }, async {
        job_status::find(&state.mongo, &id).await.map_err(ApiError::from)
    },)?;
    if live.is_none() && record.is_none() {
        return Err(ApiError::NotFound(format!("no job {id:?} in queue {name:?}")).into());
    }
    let user = live
        .as_ref()
        .map(view::user_of)
        .filter(|u| !u.is_empty())
        .or_else(|| record.as_ref().map(|r| r.user_id.clone()))
        .unwrap_or_default();
    let history = if user.is_empty() {
        Vec::new()
    } else {
        job_status::for_user(&state.mongo, &user, HISTORY).await?
    };
    let timeline = super::timeline::of_job(queue, &id, live.as_ref(), record.as_ref()).await?;
    let audited = audit::Filter {
        job_id: Some(id.clone()),
        ..audit::Filter::default()
    };
    let audit = audit::list(&state.mongo, &audited, AUDIT_ON_PAGE).await?;
    let ctx = Ctx::new(&state, &session, notice.notice);
    let page = view::JobPage {
        timeline,
        audit: audit.iter().map(|e| view::AuditRow::new(&ctx.base, e)).collect(),
        this_page: format!("{}/queues/{name}/jobs/{id}", ctx.base),
        user_link: format!("{}/users/{}", ctx.base, encode(&user)),
        live: live.as_ref().map(job_live),
        record: record.as_ref().map(record_fields).unwrap_or_default(),
        attempts: record.as_ref().map(attempt_rows).unwrap_or_default(),
        account_errors: record
            .as_ref()
            .map(|r| {
                r.account_errors
                    .iter()
                    .map(|e| (e.account_id.clone(), e.message.clone().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default(),
        history: status_rows(&ctx.base, &history),
        queue: name,
        id,
        user,
        ctx,
    };
    Ok(view::render(&page).into_response())
}

fn job_live(job: &JobInfo) -> view::JobLive {
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let duration = match (job.state, job.started_at_ms, job.finished_at_ms) {
        (JobState::Completed, Some(start), Some(end)) => end.saturating_sub(start).to_string(),
        _ => String::new(),
    };
    view::JobLive {
        state: job.state.to_string(),
        progress: job.progress,
        attempt: job.attempts,
        max_attempts: job.max_attempts,
        fields: vec![
            ("enqueued", "", view::ms(job.created_at_ms)),
            ("started", "started", view::ms(job.started_at_ms)),
            ("finished", "finished", view::ms(job.finished_at_ms)),
            ("duration (ms)", "duration", duration),
            ("next run", "due", view::ms(job.next_run_at_ms)),
            ("worker", "", job.worker_id.clone().unwrap_or_default()),
            ("stalls", "", job.stalls.to_string()),
            ("admin retries", "", job.retries.to_string()),
            ("last error", "error", job.last_error.clone().unwrap_or_default()),
        ],
        payload: pretty(&job.data),
        raw: serde_json::to_string_pretty(job).unwrap_or_default(),
        can_retry: job.state == "failed",
        can_remove: job.state != "active",
        can_promote: job.state == "delayed",
    }
}

fn record_fields(r: &JobStatusRecord) -> Vec<(&'static str, String)> {
    let n = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    vec![
        ("status", r.status.as_str().to_owned()),
        ("trigger", r.trigger.clone()),
        ("attempts", format!("{} of {}", r.attempts, r.max_attempts)),
        ("progress", format!("{}%", r.progress)),
        ("enqueued", view::opt_time(r.enqueued_at)),
        ("started", view::opt_time(r.started_at)),
        ("completed", view::opt_time(r.completed_at)),
        ("failed", view::opt_time(r.failed_at)),
        ("duration (ms)", n(r.duration_ms)),
        (
            "accounts",
            format!(
                "{} processed, {} failed of {}",
                n(r.accounts_processed),
                n(r.accounts_failed),
                n(r.accounts_total)
            ),
        ),
        ("worker", r.worker_id.clone().unwrap_or_default()),
        ("failed by", r.failed_by.clone().unwrap_or_default()),
        ("updated", view::opt_time(r.updated_at)),
        ("expires", view::opt_time(r.expire_at)),
    ]
}

fn attempt_rows(r: &JobStatusRecord) -> Vec<view::AttemptRow> {
    r.errors
        .iter()
        .map(|e| view::AttemptRow {
            attempt: e.attempt,
            at: view::opt_time(e.at),
            message: e.message.clone().unwrap_or_default(),
        })
        .collect()
}

fn status_rows(base: &str, records: &[JobStatusRecord]) -> Vec<view::StatusRow> {
    records
        .iter()
        .map(|r| view::StatusRow {
            link: format!("{base}/queues/{}/jobs/{}", r.queue, r.job_id),
            job_id: r.job_id.clone(),
            status: r.status.as_str().to_owned(),
            trigger: r.trigger.clone(),
            enqueued: view::opt_time(r.enqueued_at),
            finished: view::opt_time(r.completed_at.or(r.failed_at).or(r.removed_at)),
            duration: r.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
            error: view::clip(r.last_error.as_deref().unwrap_or_default(), 120),
        })
        .collect()
}

#[derive(Deserialize, Default)]
pub struct UsersQuery {
    filter: Option<String>,
    #[serde(default)]
    page: usize,
    notice: Option<String>,
}

/// Users, stalest first; `filter=stale` or `filter=reauth` narrows.
pub async fn users(
    Signed(session): Signed,
    State(state): State<AppState>,
    Query(q): Query<UsersQuery>,
) -> PageResult {
    let size = state.settings.dashboard.page_size;
    let offset = super::offset(q.page, size)?;
    let filter = q.filter.clone().unwrap_or_else(|| "all".to_owned());
    let query = match filter.as_str() {
        "reauth" => doc! { "needsReauthorization": true },
        "stale" => {
            let hour_ago = mongodb::bson::DateTime::from_millis(Utc::now().timestamp_millis() - 3_600_000);
            doc! { "$or": [ { "lastDataUpdateAt": null }, { "lastDataUpdateAt": { "$lt": hour_ago } } ] }
        }
        _ => doc! {},
    };
    let users: Vec<User> = state
        .mongo
        .collection::<User>(USERS)
        .find(query)
        .sort(doc! { "lastDataUpdateAt": 1, "_id": 1 })
        .skip(offset as u64)
        .limit(size as i64)
        .await
        .map_err(CoreError::from)?
        .try_collect()
        .await
        .map_err(CoreError::from)?;
    let ctx = Ctx::new(&state, &session, q.notice);
    let link = |page: usize| format!("{}/users?filter={filter}&page={page}", ctx.base);
    let page = view::UsersPage {
        rows: users.iter().map(|u| user_row(&state, &ctx.base, u)).collect(),
        prev: (q.page > 0).then(|| link(q.page - 1)),
        next: (users.len() == size).then(|| link(q.page + 1)),
        filter,
        ctx,
    };
    Ok(view::render(&page).into_response())
}

fn user_row(state: &AppState, base: &str, u: &User) -> view::UserRow {
    let to_ms = |t: Option<mongodb::bson::DateTime>| t.map(|t| t.timestamp_millis() as u64);
    let tolerance = state.settings.cron.due_tolerance.as_millis() as i64;
    let due_at =
        to_ms(u.last_data_update_at).map(|t| t as i64 + u.update_interval_minutes * 60_000 + tolerance);
    let mut by_status: HashMap<String, usize> = HashMap::new();
    for outcome in u.account_outcomes.values() {
        *by_status.entry(format!("{:?}", outcome.status)).or_default() += 1;
    }
    let mut accounts: Vec<String> = by_status.into_iter().map(|(s, n)| format!("{n} {s}")).collect();
    accounts.sort();
    view::UserRow {
        link: format!("{base}/users/{}", encode(&u.id)),
        id: u.id.clone(),
        active: u.active,
        stale: u.active && due_at.is_none_or(|due| due < Utc::now().timestamp_millis()),
        needs_reauthorization: u.needs_reauthorization,
        last_update: view::ms(to_ms(u.last_data_update_at)),
        last_attempt: view::ms(to_ms(u.last_attempt_at)),
        interval: u.update_interval_minutes,
        accounts: accounts.join(", "),
    }
}

pub async fn user(
    Signed(session): Signed,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(notice): Query<Notice>,
) -> PageResult {
    let user = accounts::find_user(&state.mongo, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user {id:?}")))?;
    let audited = audit::Filter {
        user_id: Some(id.clone()),
        ..audit::Filter::default()
    };
    let (history, summaries, audit) = futures::try_join!(
        job_status::for_user(&state.mongo, &id, HISTORY),
        accounts::user_summaries(&state.mongo, &id),
        audit::list(&state.mongo, &audited, AUDIT_ON_PAGE),
    )?;
    let ctx = Ctx::new(&state, &session, notice.notice);
    let page = view::UserPage {
        this_page: format!("{}/users/{}", ctx.base, encode(&id)),
        user: user_row(&state, &ctx.base, &user),
        accounts: account_rows(&ctx.base, &user, summaries),
        history: status_rows(&ctx.base, &history),
        audit: audit.iter().map(|e| view::AuditRow::new(&ctx.base, e)).collect(),
        ctx,
    };
    Ok(view::render(&page).into_response())
}

/// Every account with a last outcome or a stored summary, by id.
fn account_rows(base: &str, user: &User, summaries: Vec<StoredSummary>) -> Vec<view::AccountRow> {
    let mut summaries: HashMap<String, StoredSummary> =
        summaries.into_iter().map(|s| (s.account_id.clone(), s)).collect();
    let mut rows: Vec<view::AccountRow> = user
        .account_outcomes
        .iter()
        .map(|(account, o)| view::AccountRow {
            id: account.clone(),
            status: format!("{:?}", o.status),
            at: view::ms(Some(o.at.timestamp_millis() as u64)),
            refreshed: view::ms(o.refreshed_at.map(|t| t.timestamp_millis() as u64)),
            missing_roles: o.missing_roles.join(", "),
            error: o.error.clone().unwrap_or_default(),
            request_id: o.request_id.clone().unwrap_or_default(),
            summary: summaries.remove(account).map(|s| summary_view(base, &s)),
        })
        .collect();
    rows.extend(summaries.into_values().map(|s| view::AccountRow {
        id: s.account_id.clone(),
        status: "no outcome recorded".to_owned(),
        at: String::new(),
        refreshed: view::ms(Some(s.updated_at.timestamp_millis() as u64)),
        missing_roles: String::new(),
        error: String::new(),
        request_id: String::new(),
        summary: Some(summary_view(base, &s)),
    }));
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    rows
}

fn summary_view(base: &str, stored: &StoredSummary) -> view::SummaryView {
    let s = &stored.summary;
    let amounts = |amounts: &sellersync_core::domain::analysis::Amounts| {
        amounts.iter().map(|(c, a)| view::money(c, *a)).collect()
    };
    let job_id = stored.job_id.clone().unwrap_or_default();
    view::SummaryView {
        refreshed: view::ms(Some(stored.updated_at.timestamp_millis() as u64)),
        job_link: format!(
            "{base}/queues/{}/jobs/{}",
            sellersync_core::config::USER_DATA_QUEUE,
            encode(&job_id)
        ),
        job_id,
        window: format!("{} to {}", view::time(s.window.start), view::time(s.window.end)),
        orders: s.order_count,
        cancelled: format!("{} ({:.1}%)", s.cancelled_count, s.cancelled_share * 100.0),
        units: s.units,
        revenue: amounts(&s.revenue_minor),
        average_order_value: amounts(&s.average_order_value_minor),
        top_skus: s
            .top_skus
            .iter()
            .map(|t| format!("{}: {} units", t.sku, t.units))
            .collect(),
        stockout_risk: s
            .stockout_risk
            .iter()
            .map(|r| {
                format!(
                    "{}: {} left, {} days of cover ({} a day)",
                    r.sku, r.fulfillable, r.days_of_cover, r.units_per_day
                )
            })
            .collect(),
        inventory_unavailable: s.inventory_unavailable.clone().unwrap_or_default(),
    }
}

#[derive(Deserialize, Default)]
pub struct AuditPageQuery {
    #[serde(default)]
    sub: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    job: String,
    #[serde(default)]
    user: String,
    before: Option<String>,
}

/// The audit log, newest first, filtered as the JSON API's `GET /api/admin/audit`.
pub async fn audit(
    Signed(session): Signed,
    State(state): State<AppState>,
    Query(q): Query<AuditPageQuery>,
) -> PageResult {
    let nonempty = |v: &str| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
    let query = AuditQuery {
        sub: nonempty(&q.sub),
        action: nonempty(&q.action),
        job: nonempty(&q.job),
        user: nonempty(&q.user),
        before: q.before.clone(),
        limit: None,
    };
    let entries = audit::list(&state.mongo, &query.filter(), AUDIT_PAGE).await?;
    let ctx = Ctx::new(&state, &session, None);
    let next = (entries.len() as i64 == AUDIT_PAGE).then(|| {
        format!(
            "{}/audit?sub={}&action={}&job={}&user={}&before={}",
            ctx.base,
            encode(&q.sub),
            encode(&q.action),
            encode(&q.job),
            encode(&q.user),
            encode(&entries.last().map(|e| e.id.clone()).unwrap_or_default())
        )
    });
    let page = view::AuditPage {
        rows: entries
            .iter()
            .map(|e| view::AuditRow::new(&ctx.base, e))
            .collect(),
        next,
        retention_days: state.settings.audit.retention_days,
        search: view::AuditSearch {
            sub: q.sub,
            action: q.action,
            job: q.job,
            user: q.user,
        },
        ctx,
    };
    Ok(view::render(&page).into_response())
}
