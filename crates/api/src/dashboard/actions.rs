//! The dashboard's forms (POST). Each action checks the session's CSRF token first (403
//! without it), then that an admin is signed in (viewers change nothing: 403), then asks for
//! confirmation (a page that sends the same form again with `confirmed=yes`; the script asks in
//! a dialog instead), and finally calls what the JSON API route calls, records it in the audit
//! log and goes back to the page it came from with a notice.
//!
//! An action over everything a job list's filter matches ([`bulk_matching`]) always confirms on
//! a page that counts the jobs it will take, and is refused once more jobs match than were
//! confirmed (the page asks again with the new count); it takes at most
//! [`MAX_MATCHING`](super::matching::MAX_MATCHING) jobs.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, OriginalUri, Request, State};
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use sellersync_core::domain::audit::Action;
use sellersync_queue::JobState;

use super::matching::JobFilter;
use super::session::{self, Session};
use super::view::encode;
use super::view::{self, Ctx};
use super::{PageResult, Signed, base};
use crate::audit::Acting;
use crate::error::ApiError;
use crate::extract::Path;
use crate::routes::actions::{BulkAction, BulkResult, MAX_BULK, apply_bulk};
use crate::state::AppState;

/// The fields of a submitted form (`application/x-www-form-urlencoded`), repeated names kept,
/// and the path it was posted to (as the API saw it, before any proxy prefix).
pub struct Form(Vec<(String, String)>, String);

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let path = request
            .extensions()
            .get::<OriginalUri>()
            .map_or_else(|| request.uri().path().to_owned(), |uri| uri.path().to_owned());
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|_| ApiError::PayloadTooLarge("form is larger than server.body_limit_bytes".into()))?;
        Ok(Form(form_urlencoded::parse(&body).into_owned().collect(), path))
    }
}

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn confirmed(&self) -> bool {
        self.get("confirmed") == Some("yes")
    }
}

/// Sign-in: a pasted admin or viewer token becomes a session cookie (the form's CSRF token
/// first: 403 without it). A form sent back without its cookie at all means the browser did not
/// keep it (a Secure cookie over plain HTTP): the page says so.
pub async fn login(State(state): State<AppState>, parts: Parts, form: Form) -> Response {
    let token = form.get("token").unwrap_or_default().trim();
    if let Err(error) = session::check_login_csrf(&parts, form.get("csrf")) {
        let (status, _, message) = error.public_parts();
        let no_cookie = session::cookie_value(&parts, session::LOGIN_COOKIE).is_none();
        let refused = no_cookie.then(|| super::pages::cookie_refused(&state));
        return super::pages::login_page(&state, status, Some(message), refused);
    }
    let started = session::start(&state, token).await;
    match started {
        Ok(cookie) => {
            let home = format!("{}?{}", base(&state), super::SIGNED_IN_MARKER);
            let mut response = Redirect::to(&home).into_response();
            response.headers_mut().insert(SET_COOKIE, cookie);
            response
        }
        Err(error) => {
            let (status, _, message) = error.public_parts();
            super::pages::login_page(&state, status, Some(message), None)
        }
    }
}

pub async fn logout(
    Signed(session): Signed,
    State(state): State<AppState>,
    parts: Parts,
    form: Form,
) -> PageResult {
    session.check_csrf(form.get("csrf"))?;
    let cookie = session::end(&parts, &state).await?;
    let mut response = Redirect::to(&format!("{}/login", base(&state))).into_response();
    response.headers_mut().insert(SET_COOKIE, cookie);
    Ok(response)
}

/// Retry, remove or promote one job.
pub async fn job_action(
    Signed(session): Signed,
    State(state): State<AppState>,
    Path((name, id, action)): Path<(String, String, String)>,
    mut parts: Parts,
    form: Form,
) -> PageResult {
    authorize(&session, &form)?;
    let queue = state.queues.by_path(&name)?;
    if !form.confirmed() {
        return Ok(confirm(
            &state,
            &session,
            &form,
            format!("{action} job {id} of {name}?"),
        ));
    }
    let job = queue.get(&id).await?;
    let done = match action.as_str() {
        "retry" => queue.retry(&id).await.map(|()| "retried"),
        "remove" => queue.remove(&id).await.map(|()| "removed"),
        "promote" => queue.promote(&id).await.map(|()| "promoted"),
        other => return Err(ApiError::NotFound(format!("no job action {other:?}")).into()),
    }?;
    tracing::info!(queue = %name, job = %id, by = %session.sub, "dashboard: job {done}");
    let audited = match &job {
        Some(job) => crate::routes::jobs::job_action(&action, job),
        None => Action::new(action.as_str()).queue(&name).jobs([&id]),
    };
    acting(&session, &mut parts).await.record(&state, audited).await;
    Ok(back(&state, &form, &format!("Job {id} {done}")))
}

/// Retry, remove or promote the selected jobs of a queue.
pub async fn bulk(
    Signed(session): Signed,
    State(state): State<AppState>,
    Path(name): Path<String>,
    mut parts: Parts,
    form: Form,
) -> PageResult {
    let (queue, action) = bulk_form(&state, &session, &name, &form)?;
    let ids = form.all("ids");
    if !form.confirmed() {
        let question = format!("{} {} selected jobs of {name}?", action.as_str(), ids.len());
        return Ok(confirm(&state, &session, &form, question));
    }
    let result = apply_bulk(queue, action, &ids).await?;
    acting(&session, &mut parts)
        .await
        .record(&state, action.audited(&name, &result))
        .await;
    Ok(back(&state, &form, &result.message()))
}

/// Retry, remove or promote every job the list's filter (`state`, `id`, `user`, `error`)
/// matches, not just the page shown: after a confirmation page that counts them.
pub async fn bulk_matching(
    Signed(session): Signed,
    State(state): State<AppState>,
    Path(name): Path<String>,
    mut parts: Parts,
    form: Form,
) -> PageResult {
    let (queue, action) = bulk_form(&state, &session, &name, &form)?;
    let job_state: JobState = form
        .get("state")
        .unwrap_or("failed")
        .parse()
        .map_err(ApiError::BadRequest)?;
    let field = |name: &str| form.get(name).unwrap_or_default();
    let filter = JobFilter::new(job_state, field("id"), field("user"), field("error"));
    let (jobs, matching) = filter.all(&state, queue).await?;
    let ids: Vec<String> = jobs
        .iter()
        .filter(|j| action.applies_to(j.state))
        .map(|j| j.id.clone())
        .collect();
    let confirmed: Option<usize> = form.get("expected").and_then(|n| n.parse().ok());
    if !form.confirmed() || confirmed.is_none_or(|n| ids.len() > n) {
        let question = matching_question(action, &name, &filter, ids.len(), matching, confirmed);
        let mut fields = vec![("expected".to_owned(), ids.len().to_string())];
        fields.extend(form.0.iter().filter(|(k, _)| k != "expected").cloned());
        return Ok(confirm_fields(&state, &session, &form, question, fields));
    }
    let mut result = BulkResult::default();
    for chunk in ids.chunks(MAX_BULK) {
        result.extend(apply_bulk(queue, action, chunk).await?);
    }
    let audited =
        action
            .audited(&name, &result)
            .detail(format!("{}: {}", filter.describe(), result.message()));
    acting(&session, &mut parts).await.record(&state, audited).await;
    Ok(back(&state, &form, &result.message()))
}

/// A bulk form's queue and action, once its CSRF token and the role are checked.
fn bulk_form<'a>(
    state: &'a AppState,
    session: &Session,
    name: &str,
    form: &Form,
) -> Result<(&'a sellersync_queue::Queue, BulkAction), ApiError> {
    authorize(session, form)?;
    let queue = state.queues.by_path(name)?;
    let action = BulkAction::parse(form.get("action").unwrap_or_default())?;
    Ok((queue, action))
}

/// "retry 12 jobs of user-data: failed jobs?", with what the bound and the action leave out.
fn matching_question(
    action: BulkAction,
    queue: &str,
    filter: &JobFilter,
    taken: usize,
    matching: u64,
    confirmed: Option<usize>,
) -> String {
    let mut question = format!(
        "{} {taken} jobs of {queue}: every one of the {} (matching: {matching})?",
        action.as_str(),
        filter.describe()
    );
    if matching > super::matching::MAX_MATCHING as u64 {
        question.push_str(&format!(
            " Only the newest {} are looked at; run it again for the rest.",
            super::matching::MAX_MATCHING
        ));
    }
    if let Some(n) = confirmed.filter(|n| taken > *n) {
        question.push_str(&format!(
            " {taken} jobs match now, more than the {n} you confirmed: confirm again."
        ));
    }
    if taken == 0 {
        question.push_str(" None of them can be changed this way.");
    }
    question
}

/// Pause, resume, retry all failed, or clean a queue.
pub async fn queue_action(
    Signed(session): Signed,
    State(state): State<AppState>,
    Path((name, action)): Path<(String, String)>,
    mut parts: Parts,
    form: Form,
) -> PageResult {
    authorize(&session, &form)?;
    let queue = state.queues.by_path(&name)?;
    if !form.confirmed() {
        return Ok(confirm(
            &state,
            &session,
            &form,
            format!("{action} queue {name}?"),
        ));
    }
    let notice = match action.as_str() {
        "pause" => queue.pause().await.map(|()| format!("Queue {name} paused"))?,
        "resume" => queue.resume().await.map(|()| format!("Queue {name} resumed"))?,
        "retry-failed" => format!("{} failed jobs retried", queue.retry_failed(10_000).await?),
        "clean" => {
            let (status, older_than) = clean_options(&form)?;
            let removed = queue.clean(status, older_than, 100_000).await?;
            format!(
                "{removed} {} jobs older than {} h cleaned",
                status.as_str(),
                older_than.as_secs() / 3600
            )
        }
        other => return Err(ApiError::NotFound(format!("no queue action {other:?}")).into()),
    };
    tracing::info!(queue = %name, by = %session.sub, "dashboard: {notice}");
    let audited = Action::new(action.as_str()).queue(&name).detail(notice.as_str());
    acting(&session, &mut parts).await.record(&state, audited).await;
    Ok(back(&state, &form, &notice))
}

/// `status` (completed or failed) and `older_than_hours` of a clean form.
fn clean_options(form: &Form) -> Result<(JobState, Duration), ApiError> {
    let status = match form.get("status").unwrap_or("completed") {
        "completed" => JobState::Completed,
        "failed" => JobState::Failed,
        other => {
            return Err(ApiError::BadRequest(format!(
                "status must be completed or failed, got {other:?}"
            )));
        }
    };
    let hours: u64 = form
        .get("older_than_hours")
        .unwrap_or("24")
        .trim()
        .parse()
        .map_err(|_| ApiError::BadRequest("older_than_hours must be a whole number".into()))?;
    Ok((status, Duration::from_secs(hours * 3600)))
}

/// Enqueue a refresh of one user now.
pub async fn enqueue(
    Signed(session): Signed,
    State(state): State<AppState>,
    mut parts: Parts,
    form: Form,
) -> PageResult {
    authorize(&session, &form)?;
    let user = form.get("user").unwrap_or_default().trim().to_owned();
    if user.is_empty() || user.len() > 200 {
        return Err(ApiError::BadRequest("give a user id of 1-200 characters".into()).into());
    }
    if !form.confirmed() {
        return Ok(confirm(
            &state,
            &session,
            &form,
            format!("enqueue a refresh of user {user}?"),
        ));
    }
    let result = crate::routes::job_status::enqueue_users(&state, vec![user], Default::default()).await?;
    acting(&session, &mut parts)
        .await
        .record(&state, result.audited())
        .await;
    Ok(back(&state, &form, &result.message()))
}

/// CSRF first, then the role.
fn authorize(session: &Session, form: &Form) -> Result<(), ApiError> {
    session.check_csrf(form.get("csrf"))?;
    session.require_admin()
}

/// Who the audit log records for a dashboard action.
async fn acting(session: &Session, parts: &mut Parts) -> Acting {
    Acting::dashboard(session.claims(), parts).await
}

/// The confirmation page: the form again, with `confirmed=yes`.
fn confirm(state: &AppState, session: &Session, form: &Form, question: String) -> Response {
    let fields = form.0.clone();
    confirm_fields(state, session, form, question, fields)
}

fn confirm_fields(
    state: &AppState,
    session: &Session,
    form: &Form,
    question: String,
    fields: Vec<(String, String)>,
) -> Response {
    let ctx = Ctx::new(state, session, None);
    let page = view::ConfirmPage {
        action: format!("{}{}", state.settings.dashboard.public_prefix, form.1),
        back: return_to(state, form),
        fields: fields.into_iter().filter(|(k, _)| k != "confirmed").collect(),
        question,
        ctx,
    };
    view::render(&page).into_response()
}

/// Back to the page the form came from (only a dashboard page), with a notice.
fn back(state: &AppState, form: &Form, notice: &str) -> Response {
    let target = return_to(state, form);
    let joiner = if target.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{target}{joiner}notice={}", encode(notice))).into_response()
}

/// The form's `back` field when it is a dashboard page, else the overview.
fn return_to(state: &AppState, form: &Form) -> String {
    let base = base(state);
    match form.get("back") {
        Some(back) if is_dashboard_page(&base, back) => strip_notice(back),
        _ => base,
    }
}

fn is_dashboard_page(base: &str, target: &str) -> bool {
    let rest = target.strip_prefix(base);
    rest.is_some_and(|r| r.is_empty() || r.starts_with('/') || r.starts_with('?'))
        && !target.starts_with("//")
        && !target.contains(['\\', '\r', '\n'])
}

fn strip_notice(target: &str) -> String {
    match target.split_once("notice=") {
        Some((head, _)) => head.trim_end_matches(['&', '?']).to_owned(),
        None => target.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dashboard_pages_are_returned_to() {
        assert!(is_dashboard_page("/admin", "/admin/queues/q/jobs?state=failed"));
        assert!(is_dashboard_page("/admin", "/admin"));
        assert!(!is_dashboard_page("/admin", "/administrator"));
        assert!(!is_dashboard_page("/admin", "https://evil.example/admin"));
        assert!(!is_dashboard_page("/admin", "/admin\\@evil"));
        assert_eq!(strip_notice("/admin/x?a=1&notice=done"), "/admin/x?a=1");
    }

    #[test]
    fn forms_keep_repeated_fields() {
        let form = Form(
            form_urlencoded::parse(b"ids=1&ids=2&csrf=t")
                .into_owned()
                .collect(),
            "/".into(),
        );
        assert_eq!(form.all("ids"), ["1", "2"]);
        assert_eq!(form.get("csrf"), Some("t"));
        assert!(!form.confirmed());
    }
}
