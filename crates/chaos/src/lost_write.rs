//! A Redis fail-over that lost the last writes, as the promoted replica would have it: for a few
//! jobs leased a moment ago the lease never happened. Each job is back at the head of `wait` with
//! its attempt count and version as before the lease, no worker and no token, and the queue's
//! fence is back below that lease's token. The attempts those leases started run on: the queue
//! must refuse everything they write (their tokens can never be issued again), the jobs must run
//! again and finish once, and JobStatus must end up agreeing with the queue.

use sellersync_queue::{JobState, Queue};

/// Rewinds the lease of job `ARGV[2]` in the queue at `ARGV[1]`; 1 if it was active.
const REWIND: &str = r"
local base, id = ARGV[1], ARGV[2]
local jk = base .. 'job:' .. id
local job = redis.call('HMGET', jk, 'st', 'att', 'v', 'tok')
if job[1] ~= 'active' or not job[4] then return 0 end
local n = function(text, less) return string.format('%d', tonumber(text) - less) end
redis.call('HSET', jk, 'st', 'waiting', 'att', n(job[2], 1), 'v', n(job[3], 1), 'pg', '0')
redis.call('HDEL', jk, 'w', 'sa', 'tok')
redis.call('ZREM', base .. 'active', id)
redis.call('ZADD', base .. 'wait', 0, id)
redis.call('SET', base .. 'fence', n(job[4], 1))
redis.call('LPUSH', base .. 'wake', '1')
return 1
";

/// Rewinds the leases of up to `n` active jobs; returns how many.
pub async fn lose_lease_writes(queue: &Queue, n: usize) -> Result<usize, String> {
    let active = queue
        .list(JobState::Active, 0, n)
        .await
        .map_err(|e| e.to_string())?;
    let mut conn = queue.connection();
    let mut rewound = 0;
    for job in active {
        let done: i64 = redis::Script::new(REWIND)
            .arg(queue.key_base())
            .arg(&job.id)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        rewound += done as usize;
    }
    Ok(rewound)
}
