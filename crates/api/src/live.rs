//! Live job events: one reader per queue follows the queue's event stream with a blocking
//! `XREAD` (its own position, not the projector's consumer group, so it never takes an event
//! from the projector) and broadcasts each event, with the user it concerns, to every
//! subscriber in this process. A subscriber that asks to resume (`Last-Event-ID`) first reads
//! what it missed straight from the stream, then joins the broadcast.
//!
//! Who sees what: every event carries the user of each job it covers. A subscriber held to one
//! user (a user token) gets an event only when its jobs are that user's: a `cleaned` event, which
//! lists every job one retention pass deleted (of many users), is cut down to that user's jobs,
//! and a job whose user is not known is shown to admins and viewers only.
//!
//! Bounded: each subscriber has a queue of `events.client_buffer` events; one that falls further
//! behind on any of its queues (or behind the broadcast itself) is disconnected rather than
//! buffered without limit (it may reconnect and resume). Slots are bounded per process
//! (`events.max_subscribers`, some kept for admins and viewers) and per caller.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use sellersync_core::bootstrap::unless_stopping;
use sellersync_core::domain::auth::Claims;
use sellersync_core::jobs::job_status::JOB_STATUS;
use sellersync_queue::RedisConnection;
use sellersync_queue::events::{EventKind, JobEvent, StreamId};
use sellersync_queue::{Queue, QueueResult};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Events one read takes from the stream.
const READ_BATCH: usize = 500;
/// How long a blocking read waits before it checks whether the process is stopping.
const READ_BLOCK: Duration = Duration::from_secs(2);
/// Events kept for subscribers between the reader and their own queues.
const BROADCAST_CAPACITY: usize = 4096;
/// Jobs whose user is remembered; the map is cleared when it is full.
const USER_CACHE: usize = 100_000;

/// One transition of one job, as sent to clients.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveEvent {
    pub queue: String,
    /// The event stream's entry id.
    pub stream_id: String,
    /// The transition: enqueued, active, progress, retrying, completed, failed, removed, ...
    pub event: &'static str,
    pub job_id: String,
    /// Every job a `cleaned` event covers (for a user token: only that user's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_ids: Option<Vec<String>>,
    /// The job's state after it (empty for events that change nothing).
    pub state: String,
    /// The job's version after it: versions only grow.
    pub version: u64,
    /// When (ms since the epoch).
    pub at: u64,
    pub attempt: u32,
    /// Attempts the job may take (its own limit, else its queue's).
    pub max_attempts: u32,
    pub progress: u8,
    /// When the current or last attempt started (ms since the epoch).
    pub started_at: Option<u64>,
    /// When it finished (completed or failed for good).
    pub finished_at: Option<u64>,
    /// When a delayed job (delay, retry backoff, deferral) is due.
    pub due_at: Option<u64>,
    /// A completed attempt's duration (ms).
    pub duration_ms: Option<u64>,
    /// The user the job refreshes, when known (of a `cleaned` event: the user of every job it
    /// covers, when that is one user).
    pub user_id: Option<String>,
    /// The attempt's error: the internal detail for admins and viewers, the public message
    /// ("temporarily unavailable, will retry", "failed after 3 attempts") for user tokens.
    pub error: Option<String>,
    /// Its place among the events of its stream entry.
    #[serde(skip)]
    pub index: u32,
    /// Where a client that saw this event resumes (one stream entry holds every transition of one
    /// queue script call, so a client can stop in the middle of an entry).
    #[serde(skip)]
    pub position: Position,
    /// The user of each of `job_ids` (`None`: not known), so a multi-job event can be cut down
    /// to one user's jobs.
    #[serde(skip)]
    pub owners: Vec<Option<String>>,
}

/// A place in one queue's event stream: after entry `entry` whole, or, with `through: Some(i)`,
/// after its events `0..=i` only. Written `ms-seq` or `ms-seq.i`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    pub entry: StreamId,
    pub through: Option<u32>,
}

impl Position {
    pub fn after(entry: StreamId) -> Self {
        Self { entry, through: None }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let (entry, through) = match text.split_once('.') {
            Some((entry, index)) => (entry, Some(index.parse().ok()?)),
            None => (text, None),
        };
        Some(Self {
            entry: StreamId::parse(entry).ok()?,
            through,
        })
    }

    /// The id to read after: the entry itself when it was seen whole, else the one before it.
    fn read_after(self) -> StreamId {
        match self.through {
            None => self.entry,
            Some(_) => self.entry.before(),
        }
    }

    /// True for an event this position has already passed.
    fn covers(self, event: &LiveEvent) -> bool {
        let id = event.id();
        id < self.entry || (id == self.entry && self.through.is_none_or(|i| event.index <= i))
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.through {
            None => write!(f, "{}", self.entry),
            Some(i) => write!(f, "{}.{i}", self.entry),
        }
    }
}

impl LiveEvent {
    /// The event with the users of its jobs: `owners` holds the user of each of `event.job_ids`.
    fn new(queue: &Queue, event: JobEvent, owners: Vec<Option<String>>) -> Self {
        let many = event.kind == EventKind::Cleaned;
        let user_id = one_user(&owners);
        let snapshot = &event.snapshot;
        Self {
            queue: queue.name().to_owned(),
            max_attempts: snapshot
                .max_attempts
                .unwrap_or_else(|| queue.config().max_attempts()),
            started_at: snapshot.started_at_ms,
            finished_at: snapshot.finished_at_ms,
            due_at: snapshot.due_ms,
            duration_ms: event.duration_ms,
            stream_id: event.stream_id,
            event: event.kind.as_str(),
            job_id: event.job_id,
            job_ids: many.then_some(event.job_ids),
            state: event.snapshot.state,
            version: event.version,
            at: event.at_ms,
            attempt: event.snapshot.attempt,
            progress: event.snapshot.progress,
            user_id,
            error: event.snapshot.last_error,
            index: 0,
            position: Position::default(),
            owners,
        }
    }

    /// This event as user `user` may see it: whole when every job it covers is theirs, cut
    /// down to their jobs when it covers other users' too, `None` when none is theirs (or the
    /// user of a job is not known).
    pub fn for_user(self: &Arc<Self>, user: &str) -> Option<Arc<Self>> {
        let theirs = |owner: &Option<String>| owner.as_deref() == Some(user);
        if self.owners.iter().all(theirs) && !self.owners.is_empty() {
            return Some(self.clone());
        }
        let ids = self.job_ids.as_ref()?;
        let kept: Vec<String> = ids
            .iter()
            .zip(&self.owners)
            .filter(|(_, owner)| theirs(owner))
            .map(|(id, _)| id.clone())
            .collect();
        let first = kept.first()?.clone();
        Some(Arc::new(Self {
            job_id: first,
            owners: vec![Some(user.to_owned()); kept.len()],
            job_ids: Some(kept),
            user_id: Some(user.to_owned()),
            ..Self::clone(self)
        }))
    }

    pub fn id(&self) -> StreamId {
        StreamId::parse(&self.stream_id).unwrap_or(StreamId::ZERO)
    }
}

/// The one user all of `owners` are, if they are one known user.
fn one_user(owners: &[Option<String>]) -> Option<String> {
    let first = owners.first()?.as_ref()?;
    owners
        .iter()
        .all(|o| o.as_ref() == Some(first))
        .then(|| first.clone())
}

/// Numbers each event within its stream entry and sets where a client that saw it resumes
/// (a batch holds whole entries, in order).
fn set_positions(events: &mut [LiveEvent]) {
    let mut index = 0;
    for i in 0..events.len() {
        if i > 0 && events[i - 1].stream_id != events[i].stream_id {
            index = 0;
        }
        let last_of_entry = events
            .get(i + 1)
            .is_none_or(|next| next.stream_id != events[i].stream_id);
        events[i].index = index;
        events[i].position = Position {
            entry: events[i].id(),
            through: (!last_of_entry).then_some(index),
        };
        index += 1;
    }
}

/// Which events a subscriber gets.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub state: Option<String>,
    pub user: Option<String>,
}

impl Filter {
    /// The event as this subscriber gets it (a multi-job event cut down to the filtered user's
    /// jobs), or `None` when it does not get it.
    pub fn view(&self, event: &Arc<LiveEvent>) -> Option<Arc<LiveEvent>> {
        if self.state.as_ref().is_some_and(|s| *s != event.state) {
            return None;
        }
        match &self.user {
            None => Some(event.clone()),
            Some(user) => event.for_user(user),
        }
    }
}

/// What a subscriber receives: events, then the end of its subscription. A subscription is one
/// whole: when it ends on one queue (it fell behind there, or the API stops) it ends on all, and
/// [`Subscription::ended`] says so at once, while events may still wait in its queue (the event
/// stream's handler then cuts the connection, whose writes may be stalled by a client that stopped
/// reading; the client resumes from the last event it got).
pub struct Subscription {
    events: mpsc::Receiver<Arc<LiveEvent>>,
    ended: CancellationToken,
}

impl Subscription {
    /// The next event; `None` once the subscription ended and its queue is empty.
    pub async fn recv(&mut self) -> Option<Arc<LiveEvent>> {
        self.events.recv().await
    }

    /// Cancelled when the subscription ends (on any of its queues).
    pub fn ended(&self) -> CancellationToken {
        self.ended.clone()
    }
}

/// The readers of every queue's stream and their subscribers.
pub struct Hub {
    queues: BTreeMap<String, QueueFeed>,
    users: Arc<UserResolver>,
    client_buffer: usize,
    slots: Arc<Slots>,
    /// Where readers and forwarding tasks run (see [`Hub::start`]).
    tasks: TaskTracker,
    /// Turns true when the API stops: subscriptions end then, so an open event stream does not
    /// hold up the drain of requests.
    stopped: watch::Receiver<bool>,
}

struct QueueFeed {
    queue: Queue,
    sender: broadcast::Sender<Arc<LiveEvent>>,
}

/// Why a subscription was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Every slot this caller may take is taken (`events.max_subscribers`, less the slots kept
    /// for admins and viewers when the caller is neither).
    Full,
    /// The caller already holds `events.max_subscribers_per_caller` feeds.
    CallerLimit(usize),
}

impl Hub {
    /// Starts one reader per queue, each on a connection of its own from `connect`; they, and
    /// every subscription, stop when `stopped` turns true. Readers and subscribers' forwarding
    /// tasks run on `tasks` (the caller waits for them before closing MongoDB, which they use to
    /// name users).
    pub async fn start(
        queues: Vec<Queue>,
        connect: impl Fn() -> Option<RedisConnection>,
        mongo: mongodb::Database,
        settings: &sellersync_core::config::EventsSettings,
        stopped: watch::Receiver<bool>,
        tasks: TaskTracker,
    ) -> Self {
        let users = Arc::new(UserResolver::new(mongo));
        let mut feeds = BTreeMap::new();
        for queue in queues {
            let (sender, _) = broadcast::channel(BROADCAST_CAPACITY);
            if let Some(conn) = connect() {
                let reader = Reader {
                    queue: queue.clone(),
                    sender: sender.clone(),
                    users: users.clone(),
                };
                let start = starting_point(&queue).await;
                tasks.spawn(reader.run(conn, start, stopped.clone()));
            }
            feeds.insert(queue.name().to_owned(), QueueFeed { queue, sender });
        }
        Self {
            queues: feeds,
            users,
            client_buffer: settings.client_buffer,
            slots: Arc::new(Slots::new(settings)),
            tasks,
            stopped,
        }
    }

    pub fn queue_names(&self) -> Vec<&str> {
        self.queues.keys().map(String::as_str).collect()
    }

    /// Subscribes `caller` to `queues` (names known to the hub), resuming after the ids in
    /// `resume`; refused when the caller may take no more slots.
    pub fn subscribe(
        &self,
        caller: &Claims,
        queues: &[String],
        resume: &BTreeMap<String, Position>,
        filter: Filter,
    ) -> Result<Subscription, Refused> {
        let slot = Arc::new(self.slots.take(caller)?);
        let (tx, rx) = mpsc::channel(self.client_buffer);
        let ended = CancellationToken::new();
        for name in queues {
            let Some(feed) = self.queues.get(name) else {
                continue;
            };
            let forward = Forward {
                queue: feed.queue.clone(),
                live: feed.sender.subscribe(),
                resume_after: resume.get(name).copied(),
                filter: filter.clone(),
                users: self.users.clone(),
                tx: tx.clone(),
                _slot: slot.clone(),
            };
            let mut stopped = self.stopped.clone();
            let ended = ended.clone();
            self.tasks.spawn(async move {
                // Whatever ends one queue's forwarding ends the subscription on every queue.
                let _end_all = ended.clone().drop_guard();
                tokio::select! {
                    _ = unless_stopping(&mut stopped, forward.run()) => {}
                    () = ended.cancelled() => {}
                }
            });
        }
        Ok(Subscription { events: rx, ended })
    }

    pub fn subscriber_count(&self) -> usize {
        self.slots.taken()
    }

    /// Where subscriptions' helper tasks run (the event stream's connection guard).
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }
}

/// The subscriber slots of one process: `max` in all, `reserved` of them for admins and
/// viewers, at most `per_caller` for one caller.
struct Slots {
    max: usize,
    reserved: usize,
    per_caller: usize,
    taken: std::sync::Mutex<Taken>,
}

#[derive(Default)]
struct Taken {
    all: usize,
    /// Taken by user tokens.
    users: usize,
    by_caller: HashMap<String, usize>,
}

impl Slots {
    fn new(settings: &sellersync_core::config::EventsSettings) -> Self {
        Self {
            max: settings.max_subscribers,
            reserved: settings.staff_reserved_subscribers,
            per_caller: settings.max_subscribers_per_caller,
            taken: std::sync::Mutex::new(Taken::default()),
        }
    }

    fn take(self: &Arc<Self>, caller: &Claims) -> Result<SubscriberSlot, Refused> {
        let staff = caller.reads_everything();
        let key = format!("{}:{}", caller.role.as_str(), caller.sub);
        let mut taken = self.taken.lock().expect("not poisoned");
        let limit = if staff { self.max } else { self.max - self.reserved };
        if taken.all >= self.max || (!staff && taken.users >= limit) {
            return Err(Refused::Full);
        }
        let mine = taken.by_caller.entry(key.clone()).or_default();
        if *mine >= self.per_caller {
            return Err(Refused::CallerLimit(self.per_caller));
        }
        *mine += 1;
        taken.all += 1;
        taken.users += usize::from(!staff);
        Ok(SubscriberSlot {
            slots: self.clone(),
            key,
            staff,
        })
    }

    fn taken(&self) -> usize {
        self.taken.lock().expect("not poisoned").all
    }
}

/// One slot while its subscriber lives.
struct SubscriberSlot {
    slots: Arc<Slots>,
    key: String,
    staff: bool,
}

impl Drop for SubscriberSlot {
    fn drop(&mut self) {
        let mut taken = self.slots.taken.lock().expect("not poisoned");
        taken.all -= 1;
        taken.users -= usize::from(!self.staff);
        if let Some(mine) = taken.by_caller.get_mut(&self.key) {
            *mine -= 1;
            if *mine == 0 {
                taken.by_caller.remove(&self.key);
            }
        }
    }
}

/// Follows one queue's stream and broadcasts what it reads.
struct Reader {
    queue: Queue,
    sender: broadcast::Sender<Arc<LiveEvent>>,
    users: Arc<UserResolver>,
}

impl Reader {
    async fn run(
        self,
        mut conn: RedisConnection,
        start: Option<StreamId>,
        mut stopped: watch::Receiver<bool>,
    ) {
        let mut last = start;
        let mut failures = 0u32;
        while !*stopped.borrow() {
            let read = async {
                let after = match last {
                    Some(id) => id,
                    None => self.queue.last_event_id().await?,
                };
                last = Some(after);
                self.read_and_send(&mut conn, after).await
            };
            let result = tokio::select! {
                result = read => result,
                _ = stopped.changed() => return,
            };
            match result {
                Ok(Some(id)) => {
                    last = Some(id);
                    failures = 0;
                }
                Ok(None) => failures = 0,
                Err(error) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(queue = self.queue.name(), %error, "live events: cannot read the event stream; retrying");
                    }
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(failures.min(10)))).await;
                }
            }
        }
    }

    /// One blocking read; returns the last id read, if any.
    async fn read_and_send(
        &self,
        conn: &mut RedisConnection,
        after: StreamId,
    ) -> QueueResult<Option<StreamId>> {
        let batch = self
            .queue
            .read_events_after(conn, after, READ_BATCH, Some(READ_BLOCK))
            .await?;
        let last = batch
            .events
            .iter()
            .map(|e| e.stream_id.as_str())
            .chain(batch.unreadable.iter().map(|u| u.stream_id.as_str()))
            .filter_map(|id| StreamId::parse(id).ok())
            .max();
        for event in self.users.annotate(&self.queue, batch.events).await {
            // No subscriber is not an error.
            let _ = self.sender.send(Arc::new(event));
        }
        Ok(last)
    }
}

/// Where a reader starts: after the newest event when Redis answers within a second (so every
/// event after start-up is broadcast), else wherever the stream ends when it first does.
async fn starting_point(queue: &Queue) -> Option<StreamId> {
    match tokio::time::timeout(Duration::from_secs(1), queue.last_event_id()).await {
        Ok(Ok(id)) => Some(id),
        _ => None,
    }
}

/// Feeds one subscriber from one queue: first what it missed, then the broadcast.
struct Forward {
    queue: Queue,
    live: broadcast::Receiver<Arc<LiveEvent>>,
    resume_after: Option<Position>,
    filter: Filter,
    users: Arc<UserResolver>,
    tx: mpsc::Sender<Arc<LiveEvent>>,
    _slot: Arc<SubscriberSlot>,
}

impl Forward {
    async fn run(mut self) {
        let mut sent_up_to = Position::default();
        if let Some(position) = self.resume_after {
            match self.replay(position).await {
                Some(last) => sent_up_to = last,
                None => return,
            }
        }
        loop {
            let event = tokio::select! {
                event = self.live.recv() => event,
                () = self.tx.closed() => return,
            };
            match event {
                Ok(event) if !sent_up_to.covers(&event) => {
                    if !self.deliver(event) {
                        return;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.fell_behind();
                    return;
                }
                // The reader stopped (the API is stopping): end, the client resumes.
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Sends what the stream holds after `position`; the position after the last entry sent (or
    /// `position`), or `None` when the subscriber is gone or the stream cannot be read.
    async fn replay(&mut self, position: Position) -> Option<Position> {
        let mut conn = self.queue.connection();
        let mut after = position.read_after();
        let mut sent = position;
        loop {
            let batch = match self
                .queue
                .read_events_after(&mut conn, after, READ_BATCH, None)
                .await
            {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(queue = self.queue.name(), %error, "live events: cannot replay");
                    return None;
                }
            };
            if batch.is_empty() {
                return Some(sent);
            }
            let last = batch
                .stream_ids()
                .iter()
                .filter_map(|id| StreamId::parse(id).ok())
                .max()
                .unwrap_or(after);
            for event in self.users.annotate(&self.queue, batch.events).await {
                if !position.covers(&event) && !self.deliver(Arc::new(event)) {
                    return None;
                }
            }
            after = last;
            sent = Position::after(last);
        }
    }

    /// Queues the event as the filter shows it, if at all; false when the subscriber is gone or
    /// too slow.
    fn deliver(&self, event: Arc<LiveEvent>) -> bool {
        let Some(event) = self.filter.view(&event) else {
            return true;
        };
        match self.tx.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.fell_behind();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn fell_behind(&self) {
        tracing::info!(
            queue = self.queue.name(),
            "live events: a client fell too far behind; disconnected (it may resume)"
        );
    }
}

/// Which user each job concerns: from the enqueue event's payload, else the job's payload in
/// Redis, else its JobStatus record (a removed job's hash is gone). Remembered per job.
struct UserResolver {
    mongo: mongodb::Database,
    known: std::sync::Mutex<HashMap<String, String>>,
}

impl UserResolver {
    fn new(mongo: mongodb::Database) -> Self {
        Self {
            mongo,
            known: std::sync::Mutex::new(HashMap::new()),
        }
    }

    async fn annotate(&self, queue: &Queue, events: Vec<JobEvent>) -> Vec<LiveEvent> {
        for event in &events {
            if let Some(user) = event.data.as_deref().and_then(user_of_payload) {
                self.remember(&event.job_id, user);
            }
        }
        let missing = self.unknown(&events);
        if !missing.is_empty() {
            self.look_up(queue, missing).await;
        }
        let known = self.known.lock().expect("not poisoned");
        let mut live: Vec<LiveEvent> = events
            .into_iter()
            .map(|event| {
                let owners = event.job_ids.iter().map(|id| known.get(id).cloned()).collect();
                LiveEvent::new(queue, event, owners)
            })
            .collect();
        set_positions(&mut live);
        live
    }

    fn remember(&self, job_id: &str, user: String) {
        let mut known = self.known.lock().expect("not poisoned");
        if known.len() >= USER_CACHE {
            known.clear();
        }
        known.insert(job_id.to_owned(), user);
    }

    fn unknown(&self, events: &[JobEvent]) -> Vec<String> {
        let known = self.known.lock().expect("not poisoned");
        let mut missing: Vec<String> = events
            .iter()
            .flat_map(|e| &e.job_ids)
            .filter(|id| !known.contains_key(*id))
            .cloned()
            .collect();
        missing.sort();
        missing.dedup();
        missing
    }

    async fn look_up(&self, queue: &Queue, ids: Vec<String>) {
        let from_redis = payload_users(queue, &ids).await.unwrap_or_default();
        let rest: Vec<String> = ids
            .into_iter()
            .filter(|id| !from_redis.contains_key(id))
            .collect();
        let from_mongo = self.recorded_users(&rest).await.unwrap_or_default();
        for (job, user) in from_redis.into_iter().chain(from_mongo) {
            self.remember(&job, user);
        }
    }

    async fn recorded_users(&self, ids: &[String]) -> Result<HashMap<String, String>, mongodb::error::Error> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let found: Vec<Document> = self
            .mongo
            .collection::<Document>(JOB_STATUS)
            .find(doc! { "_id": { "$in": ids } })
            .projection(doc! { "userId": 1 })
            .await?
            .try_collect()
            .await?;
        Ok(found
            .into_iter()
            .filter_map(|d| {
                Some((
                    d.get_str("_id").ok()?.to_owned(),
                    d.get_str("userId").ok()?.to_owned(),
                ))
            })
            .collect())
    }
}

/// The `userId` of a job payload.
fn user_of_payload(payload: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(payload).ok()?;
    value.get("userId")?.as_str().map(str::to_owned)
}

/// The users of jobs whose hash is still in Redis.
async fn payload_users(queue: &Queue, ids: &[String]) -> QueueResult<HashMap<String, String>> {
    let payloads = queue.payloads(ids).await?;
    Ok(ids
        .iter()
        .zip(payloads)
        .filter_map(|(id, payload)| Some((id.clone(), user_of_payload(&payload?)?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cleaned(owners: &[Option<&str>]) -> Arc<LiveEvent> {
        let ids: Vec<String> = (0..owners.len()).map(|i| format!("job{i}")).collect();
        let owners: Vec<Option<String>> = owners.iter().map(|o| o.map(str::to_owned)).collect();
        Arc::new(LiveEvent {
            queue: "q".into(),
            stream_id: "1-0".into(),
            event: "cleaned",
            job_id: ids[0].clone(),
            user_id: one_user(&owners),
            job_ids: Some(ids),
            state: String::new(),
            version: 0,
            at: 0,
            attempt: 0,
            max_attempts: 0,
            progress: 0,
            started_at: None,
            finished_at: None,
            due_at: None,
            duration_ms: None,
            error: None,
            index: 0,
            position: Position::default(),
            owners,
        })
    }

    #[test]
    fn a_user_gets_only_its_own_jobs_of_a_multi_job_event_and_none_of_unknown_users() {
        let event = cleaned(&[Some("a"), None, Some("b"), Some("a")]);
        assert_eq!(event.user_id, None);
        let a = event.for_user("a").expect("a has jobs in it");
        assert_eq!(
            a.job_ids.as_deref(),
            Some(&["job0".to_owned(), "job3".to_owned()][..])
        );
        assert_eq!((a.job_id.as_str(), a.user_id.as_deref()), ("job0", Some("a")));
        assert!(event.for_user("c").is_none());
        assert!(
            cleaned(&[None]).for_user("a").is_none(),
            "an unknown user is nobody's"
        );
        let own = cleaned(&[Some("a"), Some("a")]);
        assert!(
            Arc::ptr_eq(&own.for_user("a").unwrap(), &own),
            "all theirs: sent whole"
        );
        let admin = Filter::default();
        assert!(Arc::ptr_eq(&admin.view(&event).unwrap(), &event));
    }
}
