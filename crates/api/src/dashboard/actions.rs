//! The dashboard's forms (POST). Each action checks the session's CSRF token first (403
//! without it), then that an admin is signed in (viewers change nothing: 403), then asks for
//! confirmation (a page that sends the same form again with `confirmed=yes`; the script asks in
//! a dialog instead), and finally calls what the JSON API route calls and goes back to the page
//! it came from with a notice.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, OriginalUri, Request, State};
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use sellersync_queue::JobState;

use super::pages::encode;
use super::session::{self, Session};
use super::view::{self, Ctx};
use super::{PageResult, Signed, base};
use crate::error::ApiError;
use crate::extract::Path;
use crate::routes::actions::{BulkAction, apply_bulk};
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
/// first: 403 without it).
pub async fn login(State(state): State<AppState>, parts: Parts, form: Form) -> Response {
    let token = form.get("token").unwrap_or_default().trim();
    let started = match session::check_login_csrf(&parts, form.get("csrf")) {
        Ok(()) => session::start(&state, token).await,
        Err(error) => Err(error),
    };
    match started {
        Ok(cookie) => {
            let mut response = Redirect::to(&base(&state)).into_response();
            response.headers_mut().insert(SET_COOKIE, cookie);
            response
        }
        Err(error) => {
            let (status, _, message) = error.public_parts();
            super::pages::login_page(&state, status, Some(message))
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
    let done = match action.as_str() {
        "retry" => queue.retry(&id).await.map(|()| "retried"),
        "remove" => queue.remove(&id).await.map(|()| "removed"),
        "promote" => queue.promote(&id).await.map(|()| "promoted"),
        other => return Err(ApiError::NotFound(format!("no job action {other:?}")).into()),
    }?;
    tracing::info!(queue = %name, job = %id, by = %session.sub, "dashboard: job {done}");
    Ok(back(&state, &form, &format!("Job {id} {done}")))
}

/// Retry or remove the selected jobs of a queue.
pub async fn bulk(
    Signed(session): Signed,
    State(state): State<AppState>,
    Path(name): Path<String>,
    form: Form,
) -> PageResult {
    authorize(&session, &form)?;
    let queue = state.queues.by_path(&name)?;
    let action = BulkAction::parse(form.get("action").unwrap_or_default())?;
    let ids = form.all("ids");
    if !form.confirmed() {
        let question = format!(
            "{} {} selected jobs of {name}?",
            form.get("action").unwrap_or_default(),
            ids.len()
        );
        return Ok(confirm(&state, &session, &form, question));
    }
    let result = apply_bulk(queue, action, &ids).await?;
    let notice = format!(
        "{} jobs done, {} skipped",
        result.done.len(),
        result.skipped.len()
    );
    Ok(back(&state, &form, &notice))
}

/// Pause, resume, retry all failed, or clean a queue.
pub async fn queue_action(
    Signed(session): Signed,
    State(state): State<AppState>,
    Path((name, action)): Path<(String, String)>,
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
            format!("{removed} {} jobs cleaned", status.as_str())
        }
        other => return Err(ApiError::NotFound(format!("no queue action {other:?}")).into()),
    };
    tracing::info!(queue = %name, by = %session.sub, "dashboard: {notice}");
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
pub async fn enqueue(Signed(session): Signed, State(state): State<AppState>, form: Form) -> PageResult {
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
    Ok(back(&state, &form, &result.message()))
}

/// CSRF first, then the role.
fn authorize(session: &Session, form: &Form) -> Result<(), ApiError> {
    session.check_csrf(form.get("csrf"))?;
    session.require_admin()
}

fn confirm(state: &AppState, session: &Session, form: &Form, question: String) -> Response {
    let ctx = Ctx::new(state, session, None);
    let page = view::ConfirmPage {
        action: format!("{}{}", state.settings.dashboard.public_prefix, form.1),
        back: return_to(state, form),
        fields: form.0.iter().filter(|(k, _)| k != "confirmed").cloned().collect(),
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
