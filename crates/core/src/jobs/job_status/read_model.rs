//! The status read model: what the status routes users poll need, kept in Redis beside MongoDB,
//! so `status/user/:id` and `status/job/:id` are served without MongoDB. MongoDB stays the
//! record: a read that finds no entry falls back to it and fills the entry; `sellersync
//! rebuild-read-model` refills every user's after a Redis loss.
//!
//! Keys, under the deployment's prefix:
//! - `rm:job:<job id>`: a hash holding the job's record as the projection builds it, in BSON:
//!   `v` (the version of its state), `state` (every state field, from the newest event), `facts`
//!   (the enqueue's: user, trigger, queue, enqueue time) and one `e:<attempt>:<ms>` per failed
//!   attempt. The read model's projectors (consumer group
//!   [`READ_MODEL_GROUP`](super::projector::READ_MODEL_GROUP), apart from MongoDB's) merge each
//!   batch into it with the same rules as MongoDB's guarded statements (newer state wins, facts and errors add up), in one
//!   script per job: projectors running at once cannot lose each other's writes. It expires with
//!   the record.
//! - `rm:jobs:<user id>`: the user's latest jobs (a sorted set by enqueue time, at most
//!   `job_status.read_model_jobs` of them; older ones leave with their entries).
//! - `rm:user:<user id>`: the user's freshness (`lastDataUpdateAt`, `lastAttemptAt`,
//!   `needsReauthorization`, `accountOutcomes`), written by the refresh under its fence and by a
//!   read that fell back to MongoDB. Its presence also says the user's job list is complete: a
//!   read that finds none loads the user's latest jobs from MongoDB first.
//!
//! A job's entry exists from its enqueue event on, before MongoDB has its record: an hourly tick
//! of many users is readable as `queued` as soon as the read model's projectors have read the
//! events, however far MongoDB's projection is behind.

use std::time::Duration;

use mongodb::Database;
use mongodb::bson::{self, Bson, Document, doc};
use sellersync_queue::RedisConnection;

use super::JobStatusRecord;
use super::projection::JobWrite;
use crate::domain::accounts::{User, UserFreshness};
use crate::infra::error::{CoreError, CoreResult};
use crate::infra::fenced::{Fence, FencedStore};

/// Merges one batch's write into a job's entry (see the module documentation).
/// KEYS[1]: the job's hash. ARGV: version ('' when the batch changed no state), state, facts
/// ('' when none), expire-at ms ('' to keep), then pairs of error field and value.
const MERGE_JOB: &str = r"
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '-1')
if ARGV[1] ~= '' and tonumber(ARGV[1]) > v then
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'state', ARGV[2])
  if ARGV[4] ~= '' then redis.call('PEXPIREAT', KEYS[1], ARGV[4]) end
end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'facts', ARGV[3]) end
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
";

/// The read model of one deployment (its key prefix).
#[derive(Clone)]
pub struct ReadModel {
    redis: RedisConnection,
    users: FencedStore,
    prefix: String,
    /// Jobs kept per user.
    jobs_per_user: usize,
    /// How long a user's entry lives without being written.
    ttl: Duration,
}

impl ReadModel {
    /// The read model, or `None` when `jobs_per_user` is 0 (off: status reads go to MongoDB).
    pub fn new(
        redis: RedisConnection,
        key_prefix: &str,
        jobs_per_user: usize,
        ttl: Duration,
    ) -> Option<Self> {
        (jobs_per_user > 0).then(|| Self {
            users: FencedStore::new(redis.clone()),
            redis,
            prefix: key_prefix.to_owned(),
            jobs_per_user,
            ttl,
        })
    }

    fn job_key(&self, job_id: &str) -> String {
        format!("{}rm:job:{job_id}", self.prefix)
    }

    fn jobs_key(&self, user_id: &str) -> String {
        format!("{}rm:jobs:{user_id}", self.prefix)
    }

    fn user_key(&self, user_id: &str) -> String {
        format!("{}rm:user:{user_id}", self.prefix)
    }

    /// Merges a batch's writes into the jobs' entries (one pipelined script call per job) and
    /// files newly enqueued jobs under their users, keeping each user's latest jobs only.
    pub async fn apply(&self, writes: &[JobWrite]) -> CoreResult<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let script = redis::Script::new(MERGE_JOB);
        // Sent together over the multiplexed connection: about one round trip for the batch.
        let merges = writes.iter().map(|write| self.merge(&script, write));
        futures::future::try_join_all(merges).await?;
        let filed = writes.iter().filter_map(|write| {
            let user = write.enqueued.get_str("userId").ok()?;
            let at = write.enqueued.get_datetime("enqueuedAt").ok()?;
            Some(self.file(user, &write.job_id, at.timestamp_millis()))
        });
        futures::future::try_join_all(filed).await?;
        Ok(())
    }

    async fn merge(&self, script: &redis::Script, write: &JobWrite) -> CoreResult<()> {
        let mut call = script.key(self.job_key(&write.job_id));
        match &write.state {
            Some((version, state)) => {
                let expire = state
                    .get_datetime("expireAt")
                    .map_or(String::new(), |t| t.timestamp_millis().to_string());
                call.arg(version)
                    .arg(to_bytes(state)?)
                    .arg(facts_bytes(write)?)
                    .arg(expire)
            }
            None => call.arg("").arg("").arg(facts_bytes(write)?).arg(""),
        };
        for error in write.errors.iter().filter_map(Bson::as_document) {
            let name = format!(
                "e:{}:{}",
                error.get_i64("attempt").unwrap_or_default(),
                error.get_datetime("at").map_or(0, |t| t.timestamp_millis())
            );
            call.arg(name).arg(to_bytes(error)?);
        }
        let _: i64 = call.invoke_async(&mut self.redis.clone()).await?;
        Ok(())
    }

    /// Files `job_id` (enqueued at `at_ms`) under `user_id` and drops the user's oldest jobs
    /// beyond the limit, entries included.
    async fn file(&self, user_id: &str, job_id: &str, at_ms: i64) -> CoreResult<()> {
        let key = self.jobs_key(user_id);
        let mut conn = self.redis.clone();
        let (_, beyond): ((), Vec<String>) = redis::pipe()
            .zadd(&key, job_id, at_ms)
            .expire(&key, self.ttl.as_secs() as i64)
            .ignore()
            .zrange(&key, 0, -(self.jobs_per_user as isize) - 1)
            .query_async(&mut conn)
            .await?;
        if !beyond.is_empty() {
            let mut drop = redis::pipe();
            drop.zrem(&key, &beyond).ignore();
            for job in &beyond {
                drop.del(self.job_key(job)).ignore();
            }
            let _: () = drop.query_async(&mut conn).await?;
        }
        Ok(())
    }

    /// Stores the user's freshness under `fence` (a refresh's, or the record's when read back).
    pub async fn put_user(&self, user_id: &str, freshness: &UserFreshness, fence: Fence) -> CoreResult<()> {
        let bytes = bson::to_vec(freshness).map_err(encode_error)?;
        self.users
            .put(&self.user_key(user_id), &bytes, fence, self.ttl)
            .await?;
        Ok(())
    }

    /// The user's freshness and latest `limit` jobs, newest first, or `None` when the read
    /// model cannot answer it (no entry yet, more jobs asked for than it keeps, an entry gone).
    pub async fn user(
        &self,
        user_id: &str,
        limit: usize,
    ) -> CoreResult<Option<(UserFreshness, Vec<JobStatusRecord>)>> {
        if limit > self.jobs_per_user {
            return Ok(None);
        }
        let mut conn = self.redis.clone();
        let (freshness, jobs): (Option<Vec<u8>>, Vec<String>) = redis::pipe()
            .hget(self.user_key(user_id), "data")
            .zrevrange(self.jobs_key(user_id), 0, limit as isize - 1)
            .query_async(&mut conn)
            .await?;
        let Some(freshness) = freshness else {
            return Ok(None);
        };
        let freshness: UserFreshness = bson::from_slice(&freshness).map_err(decode_error)?;
        match self.jobs(&jobs).await? {
            Some(records) => Ok(Some((freshness, records))),
            None => Ok(None),
        }
    }

    /// Bytes Redis holds for the user's entries (`MEMORY USAGE` of its freshness, its job list
    /// and each listed job): what capacity planning multiplies by the number of users.
    pub async fn memory_of_user(&self, user_id: &str) -> CoreResult<u64> {
        let mut conn = self.redis.clone();
        let jobs: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.jobs_key(user_id))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        let keys = [self.user_key(user_id), self.jobs_key(user_id)]
            .into_iter()
            .chain(jobs.iter().map(|job| self.job_key(job)));
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("MEMORY").arg("USAGE").arg(key);
        }
        let sizes: Vec<Option<u64>> = pipe.query_async(&mut conn).await?;
        Ok(sizes.into_iter().flatten().sum())
    }

    /// One job's record, if the read model has it.
    pub async fn job(&self, job_id: &str) -> CoreResult<Option<JobStatusRecord>> {
        Ok(self.jobs(&[job_id.to_owned()]).await?.and_then(|mut r| r.pop()))
    }

    /// The records of `ids`, in order; `None` if one is missing.
    async fn jobs(&self, ids: &[String]) -> CoreResult<Option<Vec<JobStatusRecord>>> {
        if ids.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.job_key(id));
        }
        let entries: Vec<Vec<(String, Vec<u8>)>> = pipe.query_async(&mut self.redis.clone()).await?;
        let mut records = Vec::with_capacity(ids.len());
        for (id, fields) in ids.iter().zip(entries) {
            match record(id, fields)? {
                Some(record) => records.push(record),
                None => return Ok(None),
            }
        }
        Ok(Some(records))
    }

    /// Fills the user's entry from MongoDB (its freshness and latest jobs): after a read that
    /// found none, and by the rebuild.
    pub async fn load_user(&self, db: &Database, user: Option<&User>, user_id: &str) -> CoreResult<()> {
        let jobs = records_of_user(db, user_id, self.jobs_per_user as i64).await?;
        let writes: Vec<JobWrite> = jobs.into_iter().map(write_of).collect();
        self.apply(&writes).await?;
        let freshness = user.map(UserFreshness::of).unwrap_or_default();
        let fence = user.map_or(Fence(0), |u| Fence(u.refresh_fence.max(0) as u64));
        self.put_user(user_id, &freshness, fence).await
    }

    /// Refills the read model from MongoDB after a Redis loss: drops what is left of it, then
    /// loads every user's freshness and latest jobs (users streamed by cursor, 16 at a time);
    /// `progress` is called with the users done so far. Returns how many users were loaded.
    pub async fn rebuild(&self, db: &Database, progress: &(dyn Fn(usize) + Sync)) -> CoreResult<usize> {
        use futures::{StreamExt, TryStreamExt};
        self.clear().await?;
        let users = db
            .collection::<User>(crate::domain::accounts::USERS)
            .find(doc! {})
            .await?;
        let loads = users
            .map_err(CoreError::from)
            .map_ok(|user| async move { self.load_user(db, Some(&user), &user.id).await });
        let mut done = loads.try_buffer_unordered(16);
        let mut count = 0;
        while let Some(loaded) = done.next().await {
            loaded?;
            count += 1;
            progress(count);
        }
        Ok(count)
    }

    /// Drops every entry of the read model (before a rebuild); returns how many keys went.
    pub async fn clear(&self) -> CoreResult<usize> {
        let prefix = format!("{}rm:", self.prefix);
        Ok(crate::infra::connections::delete_keys(&mut self.redis.clone(), &prefix).await?)
    }
}

fn to_bytes(document: &Document) -> CoreResult<Vec<u8>> {
    bson::to_vec(document).map_err(encode_error)
}

fn facts_bytes(write: &JobWrite) -> CoreResult<Vec<u8>> {
    if write.enqueued.is_empty() {
        return Ok(Vec::new());
    }
    to_bytes(&write.enqueued)
}

fn encode_error(error: impl std::fmt::Display) -> CoreError {
    CoreError::Encode {
        what: "status read model entry",
        reason: error.to_string(),
    }
}

fn decode_error(error: impl std::fmt::Display) -> CoreError {
    CoreError::Projection(format!("a status read model entry does not decode: {error}"))
}

/// A job's entry as its record; `None` when the entry is missing or has no state yet.
fn record(id: &str, fields: Vec<(String, Vec<u8>)>) -> CoreResult<Option<JobStatusRecord>> {
    let mut document = doc! { "_id": id, "jobId": id };
    let mut errors = Vec::new();
    let mut has_state = false;
    for (name, value) in fields {
        match name.as_str() {
            "v" => {}
            "state" | "facts" => {
                has_state |= name == "state";
                let part: Document = bson::from_slice(&value).map_err(decode_error)?;
                document.extend(part);
            }
            _ if name.starts_with("e:") => {
                errors.push(Bson::Document(bson::from_slice(&value).map_err(decode_error)?));
            }
            _ => {}
        }
    }
    if !has_state {
        return Ok(None);
    }
    document.insert("errors", errors);
    let record: JobStatusRecord = bson::from_document(document).map_err(decode_error)?;
    Ok(Some(record.in_order()))
}

/// A user's latest stored records as MongoDB holds them (versions included), newest first.
async fn records_of_user(db: &Database, user_id: &str, limit: i64) -> CoreResult<Vec<Document>> {
    use futures::TryStreamExt;
    Ok(db
        .collection::<Document>(super::JOB_STATUS)
        .find(doc! { "userId": user_id })
        .sort(doc! { "enqueuedAt": -1 })
        .limit(limit)
        .await?
        .try_collect()
        .await?)
}

/// A stored record as the write that would produce it (to load it into the read model).
fn write_of(mut document: Document) -> JobWrite {
    let job_id = document.get_str("_id").unwrap_or_default().to_owned();
    document.remove("_id");
    let errors = match document.remove("errors") {
        Some(Bson::Array(errors)) => errors,
        _ => Vec::new(),
    };
    let mut enqueued = Document::new();
    for field in ["jobId", "queue", "userId", "trigger", "maxAttempts", "enqueuedAt"] {
        if let Some(value) = document.remove(field) {
            enqueued.insert(field, value);
        }
    }
    let version = document.get_i64("v").unwrap_or_default().max(0) as u64;
    JobWrite {
        job_id,
        state: Some((version, document)),
        enqueued,
        errors,
    }
}
