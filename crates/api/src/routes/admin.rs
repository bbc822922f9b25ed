//! Admin endpoints beside the queues: the hourly producer's runs (`GET /api/admin/cron-runs`),
//! the audit log of admin actions (`GET /api/admin/audit`), and ending dashboard sessions at once
//! (`POST /api/admin/dashboard/sessions/revoke`: someone was demoted or left).

use axum::extract::State;
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use sellersync_core::CoreError;
use sellersync_core::jobs::producer::CRON_RUNS;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Envelope, ok};
use sellersync_core::domain::audit::{self, Action, AuditEntry};

use crate::audit::Acting;
use crate::auth::Reader;
use crate::dashboard::session::{Revoke, revoke};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Query, limit};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(cron_runs))
        .routes(routes!(audit_log))
        .routes(routes!(revoke_sessions))
}

/// Whose dashboard sessions to end: one subject's, or all.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    /// The subject (a token's `sub`) whose sessions end.
    sub: Option<String>,
    /// End every session.
    #[serde(default)]
    all: bool,
}

#[derive(Serialize, ToSchema)]
struct Revoked {
    /// Sessions ended.
    revoked: usize,
}

/// Ends dashboard sessions at once: one subject's (demoted, or gone) or everyone's. Their
/// browsers are sent to sign in again on their next request.
#[utoipa::path(post, path = "/api/admin/dashboard/sessions/revoke", tag = "admin",
    request_body = RevokeRequest, security(("bearer" = [])),
    responses((status = 200, description = "Sessions ended", body = Envelope<Revoked>),
        (status = 400, description = "Neither or both of sub and all", body = ErrorBody)))]
async fn revoke_sessions(
    acting: Acting,
    State(state): State<AppState>,
    Json(request): Json<RevokeRequest>,
) -> Result<axum::Json<Envelope<Revoked>>, ApiError> {
    let whose = match (request.sub.as_deref(), request.all) {
        (Some(sub), false) if !sub.is_empty() => Revoke::Subject(sub),
        (None, true) => Revoke::All,
        _ => {
            return Err(ApiError::BadRequest(
                r#"send either {"sub": "<subject>"} or {"all": true}"#.into(),
            ));
        }
    };
    let revoked = revoke(&state, whose).await?;
    let whose = request.sub.as_deref().unwrap_or("*");
    tracing::info!(by = %acting.claims.sub, sub = whose, revoked, "dashboard sessions revoked");
    let detail = format!("{revoked} dashboard sessions of {whose} ended");
    acting
        .record(&state, Action::new("revoke-sessions").detail(detail))
        .await;
    Ok(ok(
        format!("{revoked} dashboard sessions ended"),
        Revoked { revoked },
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only actions of this subject (a token's `sub`).
    pub sub: Option<String>,
    /// Only this action: retry, remove, promote, priority, bulk-retry, bulk-remove,
    /// bulk-promote, pause, resume, clean, retry-failed, enqueue, revoke-sessions,
    /// replay-dead-letters.
    pub action: Option<String>,
    /// Only actions that covered this job.
    pub job: Option<String>,
    /// Only actions that covered this user.
    pub user: Option<String>,
    /// Only entries older than this entry id (the previous page's `next`).
    pub before: Option<String>,
    /// Entries to return, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

impl AuditQuery {
    pub fn filter(&self) -> audit::Filter {
        audit::Filter {
            sub: self.sub.clone(),
            action: self.action.clone(),
            job_id: self.job.clone(),
            user_id: self.user.clone(),
            before: self.before.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
struct AuditLog {
    /// Newest first.
    entries: Vec<AuditEntry>,
    count: usize,
    /// Send as `before` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// Admin actions, newest first: who (the token's `sub`), what, which jobs and users, when, from
/// where, through the dashboard or the API. Kept for `audit.retention_days`.
#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", params(AuditQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "Audit log entries", body = Envelope<AuditLog>)))]
async fn audit_log(
    _reader: Reader,
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<axum::Json<Envelope<AuditLog>>, ApiError> {
    let limit = limit(q.limit, 50, 200)?;
    let entries = audit::list(&state.mongo, &q.filter(), limit).await?;
    let next = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id.clone()))
        .flatten();
    Ok(ok(
        "Audit log retrieved successfully",
        AuditLog {
            count: entries.len(),
            entries,
            next,
        },
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CronRunsQuery {
    /// Runs to return, 1–200 (default 24).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
struct CronRuns {
    /// `cron_runs` documents: tick, instance, selected, enqueued, duplicates, duration, error.
    runs: Vec<serde_json::Value>,
    count: usize,
}

/// The hourly producer's most recent ticks first.
#[utoipa::path(get, path = "/api/admin/cron-runs", tag = "admin", params(CronRunsQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "Producer runs", body = Envelope<CronRuns>)))]
async fn cron_runs(
    _reader: Reader,
    State(state): State<AppState>,
    Query(q): Query<CronRunsQuery>,
) -> Result<axum::Json<Envelope<CronRuns>>, ApiError> {
    let limit = limit(q.limit, 24, 200)?;
    let runs = recent_cron_runs(&state.mongo, limit).await?;
    let runs: Vec<serde_json::Value> = runs
        .into_iter()
        .map(|d| mongodb::bson::Bson::Document(d).into_relaxed_extjson())
        .collect();
    Ok(ok(
        "Cron runs retrieved successfully",
        CronRuns {
            count: runs.len(),
            runs,
        },
    ))
}

/// The producer's `limit` most recent runs, newest tick first.
pub async fn recent_cron_runs(db: &mongodb::Database, limit: i64) -> Result<Vec<Document>, ApiError> {
    let runs = db
        .collection::<Document>(CRON_RUNS)
        .find(doc! {})
        .sort(doc! { "tickAt": -1 })
        .limit(limit)
        .await
        .map_err(CoreError::from)?
        .try_collect()
        .await
        .map_err(CoreError::from)?;
    Ok(runs)
}
