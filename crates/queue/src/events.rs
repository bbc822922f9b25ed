//! The queue's event stream (`<base>events`): every transition of every job, appended by the
//! script that made it (`lua/events.lua` describes an entry), so the stream is the queue's own
//! history and cannot disagree with it.
//!
//! Readers are Redis consumer groups: each group sees every event, each event is delivered to one
//! consumer of the group, and stays pending until that consumer acknowledges it; a consumer that
//! died leaves its pending events to be claimed by another. The stream is trimmed behind the
//! slowest group ([`Queue::trim_events`], run by projectors and by every worker), so no group
//! misses an event it has not acknowledged — up to a hard cap of [`EVENT_STREAM_CAP`] entries,
//! whatever runs: a group that falls that far behind (no projector running, one stuck on a write)
//! loses the oldest entries rather than Redis its memory. The entries trimmed unread are counted
//! (`events_dropped` in the queue's metrics); the projection backlog metric and its alert say
//! so long before.

use std::collections::HashMap;
use std::time::Duration;

use crate::RedisConnection;
use redis::{FromRedisValue, Value};

use crate::error::{QueueError, QueueResult};
use crate::queue::{Queue, now_ms};

/// Most entries a queue's event stream keeps (an entry is one script call's transitions: a
/// batch of up to a few hundred bytes per job). At ~7.5 KB for an entry of 50 leases, that is
/// ~750 MB at most; an idle or lightly loaded stream is far below.
pub const EVENT_STREAM_CAP: u64 = 100_000;

/// What happened to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Enqueued,
    /// An enqueue found this job already pending under its dedup key or id; nothing changed.
    Deduplicated,
    /// A delayed job (delay, retry backoff or deferral) became due and waits in line.
    Promoted,
    /// A worker leased it: an attempt started.
    Active,
    Progress,
    /// The attempt failed; it runs again after a backoff.
    Retrying,
    /// Put back for later without spending the attempt.
    Deferred,
    /// Its lease expired (the worker died or stalled); back in line.
    Stalled,
    /// A stopping worker handed it back unstarted or unfinished; the attempt does not count.
    Released,
    Completed,
    /// Failed for good (by the worker, or by the reaper after too many stalls).
    Failed,
    /// Deleted by an admin.
    Removed,
    /// A failed job put back in line by an admin.
    Retried,
    /// Finished jobs deleted from Redis by retention or `clean` (their outcome stands).
    Cleaned,
    /// An admin changed the priority of a job that had not started.
    Prioritized,
}

impl EventKind {
    const ALL: [(EventKind, &'static str); 15] = [
        (Self::Enqueued, "enqueued"),
        (Self::Deduplicated, "deduplicated"),
        (Self::Promoted, "promoted"),
        (Self::Active, "active"),
        (Self::Progress, "progress"),
        (Self::Retrying, "retrying"),
        (Self::Deferred, "deferred"),
        (Self::Stalled, "stalled"),
        (Self::Released, "released"),
        (Self::Completed, "completed"),
        (Self::Failed, "failed"),
        (Self::Removed, "removed"),
        (Self::Retried, "retried"),
        (Self::Cleaned, "cleaned"),
        (Self::Prioritized, "prioritized"),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(kind, _)| *kind == self)
            .map_or("unknown", |(_, name)| name)
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(kind, _)| *kind)
    }
}

/// A job's state fields right after a transition, as its hash held them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSnapshot {
    /// `waiting`, `delayed`, `active`, `completed`, `failed` or `removed`.
    pub state: String,
    pub attempt: u32,
    pub progress: u8,
    pub worker_id: Option<String>,
    pub started_at_ms: Option<u64>,
    /// When a delayed job is due.
    pub due_ms: Option<u64>,
    pub last_error: Option<String>,
    pub finished_at_ms: Option<u64>,
    pub stalls: u32,
    /// Times an admin retried it.
    pub retries: u32,
    /// Set when the job was enqueued with its own limit (else the queue's applies).
    pub max_attempts: Option<u32>,
}

/// One entry of the stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobEvent {
    /// The stream entry id (acknowledge with it). One entry holds every transition of one
    /// script call, so events of a batch (a fetch, a batch of completions) share it.
    pub stream_id: String,
    pub kind: EventKind,
    /// The job; for `Cleaned`, the first of `job_ids`.
    pub job_id: String,
    /// Every job a `Cleaned` event covers (just `job_id` otherwise).
    pub job_ids: Vec<String>,
    /// The job's version after this transition (0 for events that change nothing).
    pub version: u64,
    pub at_ms: u64,
    pub snapshot: JobSnapshot,
    /// `Enqueued`: the payload.
    pub data: Option<String>,
    /// `Completed`: the handler's result (JSON) and the attempt's duration.
    pub result: Option<String>,
    pub duration_ms: Option<u64>,
    /// `Deferred`: why.
    pub reason: Option<String>,
    /// `Failed`: `worker` or `reaper`.
    pub failed_by: Option<String>,
}

/// A stream entry the reader could not use (an unknown kind, a missing field): acknowledge it
/// and move on, it can never become readable.
#[derive(Debug, Clone)]
pub struct Unreadable {
    pub stream_id: String,
    pub reason: String,
}

/// What one read returned.
#[derive(Debug, Default)]
pub struct EventBatch {
    pub events: Vec<JobEvent>,
    pub unreadable: Vec<Unreadable>,
}

impl EventBatch {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.unreadable.is_empty()
    }

    /// Every entry id of the batch (once each, though an entry may hold several events), to
    /// acknowledge it whole.
    pub fn stream_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        let all = self.events.iter().map(|e| &e.stream_id);
        for id in all.chain(self.unreadable.iter().map(|u| &u.stream_id)) {
            if ids.last() != Some(id) {
                ids.push(id.clone());
            }
        }
        ids
    }
}

/// How far a group is behind the stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventBacklog {
    /// Delivered to a consumer, not yet acknowledged.
    pub pending: u64,
    /// Not yet delivered to any consumer.
    pub undelivered: u64,
    /// Age of the oldest event not yet acknowledged (0 when none).
    pub oldest_age_ms: u64,
}

impl EventBacklog {
    pub fn total(&self) -> u64 {
        self.pending + self.undelivered
    }
}

/// Which entries a group read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// Events never delivered to this group.
    New,
    /// Events delivered to this consumer and not acknowledged (after a failed write, say).
    OwnPending,
}

impl Queue {
    fn events_key(&self) -> String {
        self.key("events")
    }

    /// Creates consumer group `group` reading from the start of the stream, unless it exists.
    pub async fn ensure_event_group(&self, group: &str) -> QueueResult<()> {
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.events_key())
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.conn())
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// Reads up to `count` events for `consumer` of `group`, blocking up to `block` for new ones.
    /// `conn` must be a connection of its own: a blocking read holds it.
    pub async fn read_events(
        &self,
        conn: &mut RedisConnection,
        group: &str,
        consumer: &str,
        from: ReadFrom,
        count: usize,
        block: Duration,
    ) -> QueueResult<EventBatch> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count.max(1));
        let start = match from {
            ReadFrom::New => {
                cmd.arg("BLOCK").arg(block.as_millis().max(1) as u64);
                ">"
            }
            ReadFrom::OwnPending => "0",
        };
        cmd.arg("STREAMS").arg(self.events_key()).arg(start);
        let reply: Value = cmd.query_async(conn).await?;
        let entries = match reply {
            Value::Nil => Vec::new(),
            reply => first_stream_entries(reply)?,
        };
        Ok(parse_entries(entries))
    }

    /// Up to `count` events after `after` (exclusive), without a consumer group: a plain XREAD,
    /// for readers that keep their own position (live updates). With `block`, waits up to that
    /// long for the first one; `conn` must then be a connection of its own.
    pub async fn read_events_after(
        &self,
        conn: &mut RedisConnection,
        after: StreamId,
        count: usize,
        block: Option<Duration>,
    ) -> QueueResult<EventBatch> {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(count.max(1));
        if let Some(block) = block {
            cmd.arg("BLOCK").arg(block.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS").arg(self.events_key()).arg(after.to_string());
        let reply: Value = cmd.query_async(conn).await?;
        let entries = match reply {
            Value::Nil => Vec::new(),
            reply => first_stream_entries(reply)?,
        };
        Ok(parse_entries(entries))
    }

    /// The id of the newest event, or [`StreamId::ZERO`] when the stream is empty.
    pub async fn last_event_id(&self) -> QueueResult<StreamId> {
        let entries: Vec<Value> = redis::cmd("XREVRANGE")
            .arg(self.events_key())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn())
            .await?;
        match entries.into_iter().next() {
            None => Ok(StreamId::ZERO),
            Some(entry) => {
                let id = as_array(entry)?.into_iter().next().map(string).transpose()?;
                StreamId::parse(&id.unwrap_or_default())
            }
        }
    }

    /// Takes over events that another consumer of `group` received more than `min_idle` ago and
    /// never acknowledged (it died, say).
    pub async fn claim_stale_events(
        &self,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> QueueResult<EventBatch> {
        let reply: Vec<Value> = redis::cmd("XAUTOCLAIM")
            .arg(self.events_key())
            .arg(group)
            .arg(consumer)
            .arg(min_idle.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(count.max(1))
            .query_async(&mut self.conn())
            .await?;
        let entries = reply
            .into_iter()
            .nth(1)
            .map(as_array)
            .transpose()?
            .unwrap_or_default();
        Ok(parse_entries(entries))
    }

    /// Acknowledges events of `group`.
    pub async fn ack_events(&self, group: &str, stream_ids: &[String]) -> QueueResult<()> {
        if stream_ids.is_empty() {
            return Ok(());
        }
        let _: u64 = redis::cmd("XACK")
            .arg(self.events_key())
            .arg(group)
            .arg(stream_ids)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Deletes the events every consumer group has acknowledged, then whatever is beyond
    /// [`EVENT_STREAM_CAP`] entries (counting the unread ones it drops as `events_dropped`).
    /// Returns how many entries went.
    pub async fn trim_events(&self) -> QueueResult<u64> {
        self.trim_events_to(EVENT_STREAM_CAP).await
    }

    /// [`Self::trim_events`] with a cap of `cap` entries.
    pub async fn trim_events_to(&self, cap: u64) -> QueueResult<u64> {
        let groups = self.event_groups().await?;
        let mut floor: Option<StreamId> = None;
        for group in &groups {
            let oldest = self.oldest_unacknowledged(group).await?;
            floor = Some(floor.map_or(oldest, |f| f.min(oldest)));
        }
        let read: u64 = match floor {
            Some(floor) => {
                redis::cmd("XTRIM")
                    .arg(self.events_key())
                    .arg("MINID")
                    .arg(floor.to_string())
                    .query_async(&mut self.conn())
                    .await?
            }
            None => 0,
        };
        let over_cap: u64 = redis::cmd("XTRIM")
            .arg(self.events_key())
            .arg("MAXLEN")
            .arg("~")
            .arg(cap)
            .query_async(&mut self.conn())
            .await?;
        if over_cap > 0 && !groups.is_empty() {
            tracing::warn!(
                queue = self.name(),
                dropped = over_cap,
                cap,
                "the event stream reached its cap: entries a consumer had not read were dropped"
            );
            let _: i64 = redis::cmd("HINCRBY")
                .arg(self.key("metrics"))
                .arg("events_dropped")
                .arg(over_cap)
                .query_async(&mut self.conn())
                .await?;
        }
        Ok(read + over_cap)
    }

    /// Entries in the event stream now.
    pub async fn event_stream_len(&self) -> QueueResult<u64> {
        Ok(redis::cmd("XLEN")
            .arg(self.events_key())
            .query_async(&mut self.conn())
            .await?)
    }

    /// How far `group` is behind.
    pub async fn event_backlog(&self, group: &str) -> QueueResult<EventBacklog> {
        let Some(info) = self.event_groups().await?.into_iter().find(|g| g.name == group) else {
            let undelivered: u64 = redis::cmd("XLEN")
                .arg(self.events_key())
                .query_async(&mut self.conn())
                .await?;
            let oldest = self.first_entry_after(StreamId::ZERO).await?;
            return Ok(EventBacklog {
                pending: 0,
                undelivered,
                oldest_age_ms: oldest.map_or(0, |id| now_ms().saturating_sub(id.ms)),
            });
        };
        let oldest = self.oldest_unacknowledged(&info).await?;
        let oldest_ms = if info.pending > 0 {
            Some(oldest.ms)
        } else {
            self.first_entry_after(info.last_delivered).await?.map(|id| id.ms)
        };
        Ok(EventBacklog {
            pending: info.pending,
            undelivered: info.lag,
            oldest_age_ms: oldest_ms.map_or(0, |ms| now_ms().saturating_sub(ms)),
        })
    }

    async fn event_groups(&self) -> QueueResult<Vec<GroupInfo>> {
        let reply: redis::RedisResult<Vec<Value>> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(self.events_key())
            .query_async(&mut self.conn())
            .await;
        let groups = match reply {
            Ok(groups) => groups,
            // No stream yet: no groups.
            Err(e) if e.to_string().contains("no such key") => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        groups.into_iter().map(GroupInfo::parse).collect()
    }

    /// The oldest entry `group` still needs: its oldest pending one, else the first after the
    /// last delivered one (as an exclusive floor: everything below it is done).
    async fn oldest_unacknowledged(&self, group: &GroupInfo) -> QueueResult<StreamId> {
        if group.pending > 0 {
            let summary: Vec<Value> = redis::cmd("XPENDING")
                .arg(self.events_key())
                .arg(&group.name)
                .query_async(&mut self.conn())
                .await?;
            if let Some(min) = summary
                .into_iter()
                .nth(1)
                .and_then(|v| String::from_redis_value(v).ok())
            {
                return StreamId::parse(&min);
            }
        }
        Ok(group.last_delivered.next())
    }

    async fn first_entry_after(&self, id: StreamId) -> QueueResult<Option<StreamId>> {
        let entries: Vec<Value> = redis::cmd("XRANGE")
            .arg(self.events_key())
            .arg(format!("({id}"))
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn())
            .await?;
        entries
            .into_iter()
            .next()
            .map(|entry| {
                let id = as_array(entry)?.into_iter().next().map(string).transpose()?;
                StreamId::parse(&id.unwrap_or_default())
            })
            .transpose()
    }
}

/// A stream entry id, `<ms>-<seq>`; ids order as the stream does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const ZERO: StreamId = StreamId { ms: 0, seq: 0 };

    pub fn parse(text: &str) -> QueueResult<Self> {
        let (ms, seq) = text.split_once('-').unwrap_or((text, "0"));
        match (ms.parse(), seq.parse()) {
            (Ok(ms), Ok(seq)) => Ok(Self { ms, seq }),
            _ => Err(QueueError::Protocol(format!("bad stream id {text:?}"))),
        }
    }

    fn next(self) -> Self {
        Self {
            ms: self.ms,
            seq: self.seq + 1,
        }
    }

    /// The greatest id below this one (reading after it starts at this one).
    pub fn before(self) -> Self {
        match self.seq {
            0 => Self {
                ms: self.ms.saturating_sub(1),
                seq: u64::MAX,
            },
            seq => Self {
                ms: self.ms,
                seq: seq - 1,
            },
        }
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// A consumer group as `XINFO GROUPS` describes it.
struct GroupInfo {
    name: String,
    pending: u64,
    last_delivered: StreamId,
    /// Entries not yet delivered (Redis 7+).
    lag: u64,
}

impl GroupInfo {
    fn parse(value: Value) -> QueueResult<Self> {
        let fields = field_map(value)?;
        let text = |name: &str| fields.get(name).cloned().and_then(|v| string(v).ok());
        let number = |name: &str| text(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Ok(Self {
            name: text("name").unwrap_or_default(),
            pending: number("pending"),
            last_delivered: StreamId::parse(&text("last-delivered-id").unwrap_or_else(|| "0-0".into()))?,
            lag: number("lag"),
        })
    }
}

fn protocol(e: impl std::fmt::Display) -> QueueError {
    QueueError::Protocol(e.to_string())
}

fn string(value: Value) -> QueueResult<String> {
    match value {
        Value::Int(n) => Ok(n.to_string()),
        other => String::from_redis_value(other).map_err(protocol),
    }
}

fn as_array(value: Value) -> QueueResult<Vec<Value>> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(protocol(format!("expected an array, got {other:?}"))),
    }
}

/// A flat `[field, value, ...]` array (or a RESP3 map) as its pairs, in order.
fn raw_pairs(value: Value) -> QueueResult<Vec<(Value, Value)>> {
    match value {
        Value::Map(pairs) => Ok(pairs),
        other => {
            let mut items = as_array(other)?.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                pairs.push((k, v));
            }
            Ok(pairs)
        }
    }
}

/// A flat `[field, value, ...]` array (or a RESP3 map) as a map.
fn field_map(value: Value) -> QueueResult<HashMap<String, Value>> {
    raw_pairs(value)?
        .into_iter()
        .map(|(k, v)| Ok((string(k)?, v)))
        .collect()
}

/// The entries of the one stream an XREADGROUP reply holds.
fn first_stream_entries(reply: Value) -> QueueResult<Vec<Value>> {
    let stream = match reply {
        Value::Map(mut pairs) => pairs.pop().map(|(_, entries)| entries),
        other => as_array(other)?
            .into_iter()
            .next()
            .map(as_array)
            .transpose()?
            .and_then(|pair| pair.into_iter().nth(1)),
    };
    stream.map(as_array).transpose().map(Option::unwrap_or_default)
}

fn parse_entries(entries: Vec<Value>) -> EventBatch {
    let mut batch = EventBatch::default();
    for entry in entries {
        let mut parts = match as_array(entry) {
            Ok(parts) => parts.into_iter(),
            Err(_) => continue,
        };
        let Some(Ok(stream_id)) = parts.next().map(string) else {
            continue;
        };
        // A pending entry that was trimmed meanwhile comes back without fields.
        let fields = parts.next().map(field_list).transpose();
        match fields {
            Ok(Some(fields)) if !fields.is_empty() => parse_entry(&stream_id, fields, &mut batch),
            Ok(_) => batch.unreadable.push(Unreadable {
                stream_id,
                reason: "the entry was deleted".to_owned(),
            }),
            Err(e) => batch.unreadable.push(Unreadable {
                stream_id,
                reason: e.to_string(),
            }),
        }
    }
    batch
}

/// One stream entry: the transitions of one script call, each starting at an `e` field; the
/// fields before the first `e` (the time) apply to all of them (see `lua/events.lua`). One
/// transition the reader cannot use makes the whole entry unreadable: it is acknowledged as one.
fn parse_entry(stream_id: &str, fields: Vec<(String, String)>, batch: &mut EventBatch) {
    let first = fields
        .iter()
        .position(|(name, _)| name == "e")
        .unwrap_or(fields.len());
    let (common, rest) = fields.split_at(first);
    let mut events = Vec::new();
    let mut start = 0;
    while start < rest.len() {
        let len = rest[start + 1..]
            .iter()
            .position(|(name, _)| name == "e")
            .map_or(rest.len() - start, |n| n + 1);
        let own = &rest[start..start + len];
        let text: HashMap<&str, &str> = common
            .iter()
            .chain(own)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        match parse_event(stream_id, &text) {
            Ok(event) => events.push(event),
            Err(reason) => {
                batch.unreadable.push(Unreadable {
                    stream_id: stream_id.to_owned(),
                    reason,
                });
                return;
            }
        }
        start += len;
    }
    if events.is_empty() {
        batch.unreadable.push(Unreadable {
            stream_id: stream_id.to_owned(),
            reason: "no event kind".to_owned(),
        });
    }
    batch.events.extend(events);
}

/// A flat `[field, value, ...]` array (or a RESP3 map) as its pairs, in order (field names
/// repeat: one entry holds several transitions).
fn field_list(value: Value) -> QueueResult<Vec<(String, String)>> {
    raw_pairs(value)?
        .into_iter()
        .map(|(k, v)| Ok((string(k)?, string(v)?)))
        .collect()
}

fn parse_event(stream_id: &str, text: &HashMap<&str, &str>) -> Result<JobEvent, String> {
    let field = |name: &str| text.get(name).map(|v| (*v).to_owned());
    let number = |name: &str| text.get(name).and_then(|v| v.parse::<f64>().ok());
    let kind_name = text.get("e").ok_or("no event kind")?;
    let kind = EventKind::parse(kind_name).ok_or_else(|| format!("unknown event kind {kind_name:?}"))?;
    let job_ids: Vec<String> = match kind {
        EventKind::Cleaned => text
            .get("ids")
            .map(|ids| ids.split(',').map(str::to_owned).collect()),
        _ => field("id").map(|id| vec![id]),
    }
    .filter(|ids: &Vec<String>| ids.iter().all(|id| !id.is_empty()) && !ids.is_empty())
    .ok_or("no job id")?;
    let snapshot = JobSnapshot {
        state: field("st").unwrap_or_default(),
        attempt: number("att").unwrap_or(0.0) as u32,
        progress: number("pg").unwrap_or(0.0).clamp(0.0, 100.0) as u8,
        worker_id: field("w"),
        started_at_ms: number("sa").map(|v| v as u64),
        due_ms: number("due").map(|v| v as u64),
        last_error: field("err"),
        finished_at_ms: number("fin").map(|v| v as u64),
        stalls: number("stalls").unwrap_or(0.0) as u32,
        retries: number("retries").unwrap_or(0.0) as u32,
        max_attempts: number("max").map(|v| v as u32),
    };
    Ok(JobEvent {
        stream_id: stream_id.to_owned(),
        kind,
        job_id: job_ids[0].clone(),
        job_ids,
        version: number("v").unwrap_or(0.0) as u64,
        at_ms: number("t").ok_or("no time")? as u64,
        snapshot,
        data: field("data"),
        result: field("res"),
        duration_ms: number("dur").map(|v| v as u64),
        reason: field("reason"),
        failed_by: field("by"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    /// A stream entry as XRANGE returns it.
    fn entry(id: &str, fields: &[(&str, &str)]) -> Value {
        Value::Array(vec![
            bulk(id),
            Value::Array(fields.iter().flat_map(|(k, v)| [bulk(k), bulk(v)]).collect()),
        ])
    }

    #[test]
    fn an_entry_parses_into_a_typed_event() {
        let fields = [
            ("e", "completed"),
            ("id", "42"),
            ("v", "5"),
            ("t", "1000"),
            ("st", "completed"),
            ("att", "2"),
            ("pg", "100"),
            ("w", "w1"),
            ("res", "{\"a\":1}"),
            ("dur", "250"),
        ];
        let entry = entry("1-0", &fields);
        let batch = parse_entries(vec![entry]);
        assert!(batch.unreadable.is_empty(), "{:?}", batch.unreadable);
        let event = &batch.events[0];
        assert_eq!(event.kind, EventKind::Completed);
        assert_eq!(
            (event.job_id.as_str(), event.version, event.at_ms),
            ("42", 5, 1000)
        );
        assert_eq!(event.snapshot.attempt, 2);
        assert_eq!(event.snapshot.worker_id.as_deref(), Some("w1"));
        assert_eq!(event.duration_ms, Some(250));
    }

    #[test]
    fn an_entry_of_several_transitions_parses_into_one_event_each() {
        let fields = [
            ("t", "1000"),
            ("e", "active"),
            ("id", "a"),
            ("v", "2"),
            ("st", "active"),
            ("att", "1"),
            ("e", "deduplicated"),
            ("id", "b"),
            ("e", "active"),
            ("id", "c"),
            ("v", "7"),
            ("st", "active"),
            ("att", "3"),
        ];
        let entry = entry("5-1", &fields);
        let batch = parse_entries(vec![entry]);
        assert!(batch.unreadable.is_empty(), "{:?}", batch.unreadable);
        let seen: Vec<_> = batch
            .events
            .iter()
            .map(|e| (e.kind, e.job_id.as_str(), e.version, e.snapshot.attempt, e.at_ms))
            .collect();
        assert_eq!(
            seen,
            vec![
                (EventKind::Active, "a", 2, 1, 1000),
                (EventKind::Deduplicated, "b", 0, 0, 1000),
                (EventKind::Active, "c", 7, 3, 1000),
            ]
        );
        assert_eq!(batch.stream_ids(), vec!["5-1"], "one entry is acknowledged once");
    }

    #[test]
    fn one_unusable_transition_makes_its_entry_unreadable() {
        let fields = [
            ("t", "1"),
            ("e", "active"),
            ("id", "a"),
            ("e", "teleported"),
            ("id", "b"),
        ];
        let entry = entry("5-1", &fields);
        let batch = parse_entries(vec![entry]);
        assert!(batch.events.is_empty());
        assert_eq!(batch.stream_ids(), vec!["5-1"]);
    }

    #[test]
    fn unknown_kinds_and_deleted_entries_are_unreadable_not_fatal() {
        let odd = Value::Array(vec![
            bulk("1-0"),
            Value::Array(vec![
                bulk("e"),
                bulk("teleported"),
                bulk("id"),
                bulk("1"),
                bulk("t"),
                bulk("1"),
            ]),
        ]);
        let deleted = Value::Array(vec![bulk("2-0"), Value::Nil]);
        let batch = parse_entries(vec![odd, deleted]);
        assert!(batch.events.is_empty());
        assert_eq!(batch.unreadable.len(), 2);
        assert_eq!(batch.stream_ids(), vec!["1-0", "2-0"]);
    }

    #[test]
    fn stream_ids_order_by_time_then_sequence() {
        let a = StreamId::parse("10-5").unwrap();
        let b = StreamId::parse("11-0").unwrap();
        assert!(a < b && a.next() < b);
        assert_eq!(a.next().to_string(), "10-6");
        assert!(StreamId::parse("x-1").is_err());
    }
}
