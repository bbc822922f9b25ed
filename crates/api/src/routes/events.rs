//! `GET /api/events`: every job transition as Server-Sent Events, live from the queues' event
//! streams (see `live`). Admins and viewers get all of them (filter by queue, state, user); a
//! user token only its own jobs. Each event's `id` is a cursor over the subscribed queues; send
//! it back as `Last-Event-ID` (browsers do on reconnect) to resume without a gap. A heartbeat
//! comment keeps idle connections open through proxies. The dashboard's session cookie is
//! accepted too (an `EventSource` cannot send a header).

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::extract::{FromRequestParts, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt as _};
use sellersync_core::domain::auth::Claims;
use sellersync_core::jobs::job_status;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{bearer_token, verify};
use crate::connection::ClientConnection;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Query;
use crate::live::{Filter, Hub, LiveEvent, Position, Refused, Subscription};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

/// The caller of `/api/events`: a bearer token, or else a dashboard session.
pub struct Subscriber(pub Claims);

impl FromRequestParts<AppState> for Subscriber {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(token) = bearer_token(parts) {
            return Ok(Subscriber(verify(state, token?)?));
        }
        match crate::dashboard::session::Session::of_request(parts, state).await? {
            Some(session) => Ok(Subscriber(session.claims())),
            None => Err(ApiError::Unauthorized(
                "missing Authorization header (or dashboard session)".into(),
            )),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Only this queue (default: all).
    queue: Option<String>,
    /// Only events that leave the job in this state: waiting, delayed, active, completed,
    /// failed, removed.
    state: Option<String>,
    /// Only this user's jobs (admins and viewers; a user token always gets only its own).
    user: Option<String>,
}

/// Live job events (Server-Sent Events). Each `data` is a JSON `LiveEvent`; the `id` resumes
/// the feed when sent back as `Last-Event-ID`. A client that falls more than
/// `events.client_buffer` events behind on any queue is disconnected (it resumes on reconnect).
#[utoipa::path(get, path = "/api/events", tag = "events", params(EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    security(("bearer" = [])),
    responses((status = 200, description = "An event stream; each event's data is a LiveEvent",
            content_type = "text/event-stream", body = LiveEvent),
        (status = 429, description = "This caller holds events.max_subscribers_per_caller streams already", body = ErrorBody),
        (status = 503, description = "Too many subscribers", body = ErrorBody)))]
async fn events(
    Subscriber(claims): Subscriber,
    State(state): State<AppState>,
    connection: ClientConnection,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let queues = match &q.queue {
        Some(name) => vec![state.queues.by_query(name)?.name().to_owned()],
        None => state.live.queue_names().into_iter().map(str::to_owned).collect(),
    };
    let filter = filter_for(&claims, q.state, q.user)?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_cursor(v, &queues))
        .transpose()?
        .unwrap_or_default();
    let subscription = state
        .live
        .subscribe(&claims, &queues, &resume, filter)
        .map_err(refusal)?;
    connection.bound_send_buffer(state.settings.events.send_buffer_bytes);
    let connected = cut_when_ended(&state.live, &subscription, connection);
    let heartbeat = state.settings.events.heartbeat;
    let stream = sse_stream(subscription, resume, !claims.reads_everything(), connected);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat")))
}

fn refusal(refused: Refused) -> ApiError {
    match refused {
        Refused::Full => ApiError::Unavailable("too many live event subscribers; try again later".into()),
        Refused::CallerLimit(n) => ApiError::TooManyRequests(format!(
            "this caller already holds {n} live event streams (events.max_subscribers_per_caller); close one first"
        )),
    }
}

/// Cuts the connection when the subscription ends while the response is still being sent (its
/// client fell behind: its writes may be stalled for good). Dropping the returned guard, with
/// the response, ends the watch.
fn cut_when_ended(
    hub: &Hub,
    subscription: &Subscription,
    connection: ClientConnection,
) -> tokio_util::sync::DropGuard {
    let ended = subscription.ended();
    let sent = tokio_util::sync::CancellationToken::new();
    let guard = sent.clone().drop_guard();
    hub.tasks().spawn(async move {
        tokio::select! {
            () = ended.cancelled() => connection.cut(),
            () = sent.cancelled() => {}
        }
    });
    guard
}

/// A user token sees only its own jobs; asking for another user's is 403.
fn filter_for(claims: &Claims, state: Option<String>, user: Option<String>) -> Result<Filter, ApiError> {
    let user = if claims.reads_everything() {
        user
    } else {
        match user {
            Some(u) if u != claims.sub => {
                return Err(ApiError::Forbidden(
                    "a user token may only follow its own user's jobs".into(),
                ));
            }
            _ => Some(claims.sub.clone()),
        }
    };
    Ok(Filter { state, user })
}

/// Turns events into SSE events whose id is the cursor after them; for a user token (`public`)
/// each event's error is its public message, never the internal detail. `connected` lives as
/// long as the stream.
fn sse_stream(
    subscription: Subscription,
    mut cursor: BTreeMap<String, Position>,
    public: bool,
    connected: tokio_util::sync::DropGuard,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold((subscription, connected), |(mut rx, connected)| async move {
        let event = rx.recv().await?;
        Some((event, (rx, connected)))
    })
    .map(move |event| {
        cursor.insert(event.queue.clone(), event.position);
        let id = format_cursor(&cursor);
        match &event.error {
            Some(detail) if public => {
                let mut shown = LiveEvent::clone(&event);
                let failed_after = (event.state == "failed").then_some(event.attempt);
                shown.error = Some(job_status::public_message(detail, failed_after));
                Ok(to_sse(&shown, &id))
            }
            _ => Ok(to_sse(&event, &id)),
        }
    })
}

fn to_sse(event: &LiveEvent, id: &str) -> Event {
    Event::default()
        .id(id)
        .json_data(event)
        .unwrap_or_else(|_| Event::default().comment("unserialisable event"))
}

/// `queue=position` pairs joined by `,`: where the client is in each queue's stream (a position
/// is `ms-seq`, a stream entry, or `ms-seq.i`, up to its event `i`).
pub fn format_cursor(cursor: &BTreeMap<String, Position>) -> String {
    cursor
        .iter()
        .map(|(queue, id)| format!("{queue}={id}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The cursor a client sent back; a bare stream id applies to a single subscribed queue.
pub fn parse_cursor(text: &str, queues: &[String]) -> Result<BTreeMap<String, Position>, ApiError> {
    let bad = || ApiError::BadRequest(format!("Last-Event-ID {text:?} is not an event id of this feed"));
    let mut cursor = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (queue, id) = match part.split_once('=') {
            Some((queue, id)) => (queue.to_owned(), id),
            None if queues.len() == 1 => (queues[0].clone(), part),
            None => return Err(bad()),
        };
        let id = Position::parse(id).ok_or_else(bad)?;
        if queues.contains(&queue) {
            cursor.insert(queue, id);
        }
    }
    Ok(cursor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sellersync_queue::events::StreamId;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_400() {
        let queues = vec!["a".to_owned(), "b".to_owned()];
        let cursor = parse_cursor("a=5-1,b=7-0.3", &queues).unwrap();
        assert_eq!(format_cursor(&cursor), "a=5-1,b=7-0.3");
        assert_eq!(cursor["b"].through, Some(3));
        assert_eq!(
            parse_cursor("c=1-0", &queues).unwrap().len(),
            0,
            "unknown queues are ignored"
        );
        assert!(parse_cursor("5-1", &queues).is_err(), "bare ids need one queue");
        let one = parse_cursor("5-1", &queues[..1]).unwrap();
        assert_eq!(one["a"], Position::after(StreamId { ms: 5, seq: 1 }));
        assert!(parse_cursor("a=x", &queues).is_err());
        assert!(parse_cursor("a=5-1.x", &queues).is_err());
    }

    #[test]
    fn user_tokens_are_held_to_their_own_jobs() {
        let claims = |role| Claims {
            sub: "u1".into(),
            role,
            iat: 0,
            exp: 0,
        };
        use sellersync_core::domain::auth::Role;
        let own = filter_for(&claims(Role::User), None, None).unwrap();
        assert_eq!(own.user.as_deref(), Some("u1"));
        assert!(filter_for(&claims(Role::User), None, Some("u2".into())).is_err());
        let viewer = filter_for(&claims(Role::Viewer), None, Some("u2".into())).unwrap();
        assert_eq!(viewer.user.as_deref(), Some("u2"));
        assert!(
            filter_for(&claims(Role::Admin), None, None)
                .unwrap()
                .user
                .is_none()
        );
    }
}
