//! The admin dashboard: server-rendered pages (askama templates in `templates/dashboard/`) over
//! the same queues, JobStatus, users and audit log the JSON API serves, readable without
//! JavaScript; a small embedded script adds the live feed (from `/api/events`: states, counts,
//! attempts and timings), confirmations, select-all and the error page's Back link. Every asset
//! is compiled into the binary (`assets`), nothing loads from elsewhere. Served at
//! `dashboard.path`; every link carries `dashboard.public_prefix` for a reverse proxy. Every
//! error under that path, an unknown page included, is a page with the dashboard's navigation
//! ([`error_pages`]), never the API's JSON.
//!
//! Sign-in and CSRF: `session`. Pages: `pages` (a job's timeline: `timeline`; which jobs a list
//! shows: `matching`). Actions (POST forms): `actions`.

use axum::Router;
use axum::extract::{FromRequestParts, OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::error::{ApiError, Told};
use crate::state::AppState;

pub mod actions;
pub mod assets;
pub mod matching;
pub mod pages;
pub mod session;
pub mod timeline;
pub mod view;

use session::Session;

/// The dashboard's routes, to be nested at `dashboard.path`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(pages::login).post(actions::login))
        .route("/logout", post(actions::logout))
        .route("/counts", get(pages::counts))
        .route("/audit", get(pages::audit))
        .route("/queues/{name}/jobs", get(pages::jobs))
        .route("/queues/{name}/jobs/{id}", get(pages::job))
        .route("/queues/{name}/jobs/{id}/{action}", post(actions::job_action))
        .route("/queues/{name}/bulk", post(actions::bulk))
        .route("/queues/{name}/bulk-matching", post(actions::bulk_matching))
        .route("/queues/{name}/control/{action}", post(actions::queue_action))
        .route("/users", get(pages::users))
        .route("/users/{id}", get(pages::user))
        .route("/enqueue", post(actions::enqueue))
        .route("/assets/{file}", get(assets::serve))
        .fallback(not_found)
}

/// Adds the dashboard to `routes` at `dashboard.path`, its errors as pages and its headers on
/// every answer; `<path>/` redirects to `<path>`.
pub fn mount(routes: Router<AppState>, state: &AppState) -> Router<AppState> {
    let path = &state.settings.dashboard.path;
    let dashboard = router()
        .layer(axum::middleware::from_fn_with_state(state.clone(), error_pages))
        .layer(axum::middleware::map_response(page_headers));
    let home = base(state);
    routes
        .route(
            &format!("{path}/"),
            get(move || async move { Redirect::to(&home) }),
        )
        .nest(path, dashboard)
}

async fn not_found(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::NotFound(format!("no dashboard page at {}", uri.path()))
}

/// Every error answer under the dashboard's path becomes a page with the dashboard's navigation:
/// what the error told its client (code and message), else what its status means. Pages are
/// left as they are.
pub async fn error_pages(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_page {
        return response;
    }
    let told = response
        .extensions()
        .get::<Told>()
        .cloned()
        .unwrap_or_else(|| Told::for_status(status));
    error_page(&state, status, told)
}

fn error_page(state: &AppState, status: StatusCode, told: Told) -> Response {
    let page = view::ErrorPage {
        ctx: view::Ctx::anonymous(state),
        status: status.as_u16(),
        code: told.code,
        message: told.message,
    };
    (status, view::render(&page)).into_response()
}

/// Pages may load only the dashboard's own assets and talk only to this server, are never
/// framed, never cached and send no referrer.
pub async fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: &'static str, value: &'static str| {
        headers
            .entry(name)
            .or_insert(axum::http::HeaderValue::from_static(value));
    };
    set(
        headers,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, "x-frame-options", "DENY");
    set(headers, "referrer-policy", "no-referrer");
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "cache-control", "no-store");
    response
}

/// The query marker of the page the sign-in form sends the browser to: arriving there without a
/// session means the browser did not keep the cookie it was just given.
pub const SIGNED_IN_MARKER: &str = "signed_in=1";

/// A signed-in admin or viewer; anyone else is sent to the sign-in page.
pub struct Signed(pub Session);

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match Session::of_request(parts, state).await {
            Ok(Some(session)) => Ok(Signed(session)),
            Ok(None) => {
                let refused = parts
                    .uri
                    .query()
                    .is_some_and(|q| q.split('&').any(|pair| pair == SIGNED_IN_MARKER));
                let login = format!("{}/login", base(state));
                let target = if refused {
                    format!("{login}?cookie=refused")
                } else {
                    login
                };
                Err(Redirect::to(&target).into_response())
            }
            Err(error) => Err(PageError(error).into_response()),
        }
    }
}

/// The dashboard's public path (`public_prefix` + `path`).
pub fn base(state: &AppState) -> String {
    state.settings.dashboard.public_path()
}

/// An error of a page or an action, answered as the API's error table says; [`error_pages`]
/// shows it as a page.
pub struct PageError(pub ApiError);

impl<E: Into<ApiError>> From<E> for PageError {
    fn from(error: E) -> Self {
        PageError(error.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

pub type PageResult = Result<Response, PageError>;

/// A page's query string: a bad value (`page=-1`, `page=x`) is a 400 page, not axum's plain text.
pub struct PageQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for PageQuery<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, PageError> {
        let crate::extract::Query(query) = crate::extract::Query::from_request_parts(parts, state).await?;
        Ok(PageQuery(query))
    }
}

/// Highest page number of a list (50 rows a page: half a million rows, more than any list
/// holds); beyond it, and for anything that is not a number, 400.
pub const MAX_PAGE: usize = 10_000;

/// The first row of `page`, for pages of `size` rows.
pub fn offset(page: usize, size: usize) -> Result<usize, ApiError> {
    if page > MAX_PAGE {
        return Err(ApiError::BadRequest(format!(
            "page must be between 0 and {MAX_PAGE}, got {page}"
        )));
    }
    page.checked_mul(size)
        .ok_or_else(|| ApiError::BadRequest(format!("page {page} is out of range")))
}
