//! The dashboard's pages (GET): overview, jobs of a queue with paging and search, a job, users
//! and a user. Each reads what the JSON API reads and hands `view` formatted rows.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures::TryStreamExt;
use futures::future::try_join_all;
use mongodb::bson::{Document, doc};
use sellersync_core::CoreError;
use sellersync_core::domain::accounts::{USERS, User};
use sellersync_core::jobs::job_status::{self, JobStatusRecord};
use sellersync_queue::{JobInfo, JobState, Queue};
use serde::Deserialize;

use super::view::{self, Ctx, JobRow};
use super::{PageQuery as Query, PageResult, Signed, base};
use crate::error::ApiError;
use crate::extract::Path;
use crate::monitoring;
use crate::state::AppState;

/// Failed and delayed jobs searched for an error text, newest first.
const ERROR_SEARCH_SCAN: usize = 1000;
/// JobStatus records shown as a user's history.
const HISTORY: i64 = 25;
/// Minutes in the overview's chart.
const CHART_MINUTES: usize = 60;

#[derive(Deserialize, Default)]
pub struct Notice {
    notice: Option<String>,
}

pub async fn login(State(state): State<AppState>) -> Response {
    login_page(&state, StatusCode::OK, None)
}

/// The sign-in page with a fresh form token (and its cookie), and the error of a refused try.
pub fn login_page(state: &AppState, status: StatusCode, error: Option<String>) -> Response {
    let (csrf, cookie) = super::session::login_token(state);
    let page = view::LoginPage {
        base: base(state),
        error,
        csrf,
    };
    let mut response = (status, view::render(&page)).into_response();
    response.headers_mut().insert(SET_COOKIE, cookie);
    response
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
    let c = snapshot.counts;
    let workers = queue.workers().await?;
    Ok(view::QueueCard {
        name: snapshot.name.clone(),
        paused: snapshot.paused,
        counts: vec![
            ("waiting", c.waiting + c.paused),
            ("active", c.active),
            ("delayed", c.delayed),
            ("completed", c.completed),
            ("failed", c.failed),
        ],
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
    let size = state.settings.dashboard.page_size;
    let offset = super::offset(q.page, size)?;
    let (jobs, total) = find_jobs(&state, queue, job_state, &q, (offset, size)).await?;
    let ctx = Ctx::new(&state, &session, q.notice.clone());
    let link = |page: usize| {
        format!(
            "{}/queues/{name}/jobs?state={}&page={page}&id={}&user={}&error={}",
            ctx.base,
            job_state.as_str(),
            encode(&q.id),
            encode(&q.user),
            encode(&q.error)
        )
    };
    let more = total.is_none_or(|t| offset + size < t as usize) && jobs.len() == size;
    let counts = queue.counts().await?;
    let page = view::JobsPage {
        queue: name.clone(),
        state: job_state.as_str().to_owned(),
        states: vec![
            ("waiting", counts.waiting + counts.paused),
            ("active", counts.active),
            ("delayed", counts.delayed),
            ("completed", counts.completed),
            ("failed", counts.failed),
        ],
        rows: jobs.iter().map(|j| JobRow::new(&ctx.base, j)).collect(),
        total: total.map_or_else(|| "search results".to_owned(), |t| t.to_string()),
        prev: (q.page > 0).then(|| link(q.page - 1)),
        next: more.then(|| link(q.page + 1)),
        this_page: link(q.page),
        search: view::Search {
            id: q.id,
            user: q.user,
            error: q.error,
        },
        ctx,
    };
    Ok(view::render(&page).into_response())
}

/// One page of jobs (`offset` and `size`): by id, by user (their JobStatus records), by error
/// text, or a state's list; with the state's total when not searching.
async fn find_jobs(
    state: &AppState,
    queue: &Queue,
    job_state: JobState,
    q: &JobsQuery,
    (offset, size): (usize, usize),
) -> Result<(Vec<JobInfo>, Option<u64>), ApiError> {
    if !q.id.trim().is_empty() {
        return Ok((queue.get(q.id.trim()).await?.into_iter().collect(), None));
    }
    if !q.user.trim().is_empty() {
        let records = job_status::for_user(&state.mongo, q.user.trim(), 200).await?;
        let ids: Vec<&str> = records
            .iter()
            .filter(|r| r.queue == queue.name())
            .map(|r| r.job_id.as_str())
            .collect();
        let found = try_join_all(ids.iter().skip(offset).take(size).map(|id| queue.get(id))).await?;
        return Ok((found.into_iter().flatten().collect(), None));
    }
    if !q.error.trim().is_empty() {
        let needle = q.error.trim().to_lowercase();
        let mut hits = Vec::new();
        for searched in [JobState::Failed, JobState::Delayed] {
            let jobs = queue.list(searched, 0, ERROR_SEARCH_SCAN).await?;
            hits.extend(jobs.into_iter().filter(|j| {
                j.last_error
                    .as_deref()
                    .is_some_and(|e| e.to_lowercase().contains(&needle))
            }));
        }
        return Ok((hits.into_iter().skip(offset).take(size).collect(), None));
    }
    let total = crate::routes::jobs::count_in(&queue.counts().await?, Some(job_state));
    Ok((queue.list(job_state, offset, size).await?, Some(total)))
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
    let ctx = Ctx::new(&state, &session, notice.notice);
    let page = view::JobPage {
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
    view::JobLive {
        state: job.state.to_string(),
        progress: job.progress,
        fields: vec![
            ("attempts", format!("{} of {}", job.attempts, job.max_attempts)),
            ("enqueued", view::ms(job.created_at_ms)),
            ("started", view::ms(job.started_at_ms)),
            ("finished", view::ms(job.finished_at_ms)),
            ("next run", view::ms(job.next_run_at_ms)),
            ("worker", job.worker_id.clone().unwrap_or_default()),
            ("stalls", job.stalls.to_string()),
            ("admin retries", job.retries.to_string()),
            ("last error", job.last_error.clone().unwrap_or_default()),
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
    let user = sellersync_core::domain::accounts::find_user(&state.mongo, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user {id:?}")))?;
    let history = job_status::for_user(&state.mongo, &id, HISTORY).await?;
    let ctx = Ctx::new(&state, &session, notice.notice);
    let mut accounts: Vec<view::AccountRow> = user
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
        })
        .collect();
    accounts.sort_by(|a, b| a.id.cmp(&b.id));
    let page = view::UserPage {
        this_page: format!("{}/users/{}", ctx.base, encode(&id)),
        user: user_row(&state, &ctx.base, &user),
        accounts,
        history: status_rows(&ctx.base, &history),
        ctx,
    };
    Ok(view::render(&page).into_response())
}

/// A query value, percent-encoded.
pub fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
