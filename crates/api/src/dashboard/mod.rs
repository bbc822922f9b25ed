//! The admin dashboard: server-rendered pages (askama templates in `templates/dashboard/`) over
//! the same queues, JobStatus and users the JSON API serves, readable without JavaScript; a small
//! embedded script adds the live feed (from `/api/events`), confirmations and select-all. Every
//! asset is compiled into the binary (`assets`), nothing loads from elsewhere. Served at
//! `dashboard.path`; every link carries `dashboard.public_prefix` for a reverse proxy.
//!
//! Sign-in and CSRF: `session`. Pages: `pages`. Actions (POST forms): `actions`.

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::error::ApiError;
use crate::state::AppState;

pub mod actions;
pub mod assets;
pub mod pages;
pub mod session;
pub mod view;

use session::Session;

/// The dashboard's routes, to be nested at `dashboard.path`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(pages::login).post(actions::login))
        .route("/logout", post(actions::logout))
        .route("/queues/{name}/jobs", get(pages::jobs))
        .route("/queues/{name}/jobs/{id}", get(pages::job))
        .route("/queues/{name}/jobs/{id}/{action}", post(actions::job_action))
        .route("/queues/{name}/bulk", post(actions::bulk))
        .route("/queues/{name}/control/{action}", post(actions::queue_action))
        .route("/users", get(pages::users))
        .route("/users/{id}", get(pages::user))
        .route("/enqueue", post(actions::enqueue))
        .route("/assets/{file}", get(assets::serve))
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

/// A signed-in admin or viewer; anyone else is sent to the sign-in page.
pub struct Signed(pub Session);

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match Session::of_request(parts, state).await {
            Ok(Some(session)) => Ok(Signed(session)),
            Ok(None) => Err(Redirect::to(&format!("{}/login", base(state))).into_response()),
            Err(error) => Err(PageError(error).into_response()),
        }
    }
}

/// The dashboard's public path (`public_prefix` + `path`).
pub fn base(state: &AppState) -> String {
    state.settings.dashboard.public_path()
}

/// An error shown as a page, with the status, code and message of the API's error table.
pub struct PageError(pub ApiError);

impl<E: Into<ApiError>> From<E> for PageError {
    fn from(error: E) -> Self {
        PageError(error.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.0.public_parts();
        let page = view::ErrorPage {
            status: status.as_u16(),
            code,
            message,
        };
        (status, view::render(&page)).into_response()
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
