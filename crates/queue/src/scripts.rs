//! The Lua scripts (in `src/lua/`), loaded once per process and run with EVALSHA.
//! Every state change of a job is one of these scripts, so it is atomic, and each appends its
//! transition to the queue's event stream in the same step. Every script is prepended with the
//! helpers of `lua/clock.lua` (time from Redis, priority scores), `lua/events.lua` (job records
//! and the outbox: one stream entry per script call) and `lua/retention.lua`.

use std::sync::LazyLock;

use redis::Script;

pub(crate) struct Scripts {
    pub enqueue: Script,
    pub fetch: Script,
    pub complete: Script,
    pub fail: Script,
    pub heartbeat: Script,
    pub reap: Script,
    pub release: Script,
    pub remove: Script,
    pub retry: Script,
    pub clean: Script,
    pub progress: Script,
    pub defer: Script,
    pub promote: Script,
}

/// The helpers every script may use: the event outbox and retention.
const PRELUDE: &str = concat!(
    include_str!("lua/clock.lua"),
    include_str!("lua/events.lua"),
    include_str!("lua/retention.lua")
);

/// A script: the prelude, then the body run as a function, so that whichever way it returns,
/// the events it recorded are appended to the stream as one entry before the reply (every
/// script's ARGV[1] is the queue's key base).
fn script(body: &str) -> Script {
    Script::new(&format!(
        "{PRELUDE}\nlocal function body()\n{body}\nend\nlocal reply = body()\nflush_events(ARGV[1])\nreturn reply\n"
    ))
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    enqueue: script(include_str!("lua/enqueue.lua")),
    fetch: script(include_str!("lua/fetch.lua")),
    complete: script(include_str!("lua/complete.lua")),
    fail: script(include_str!("lua/fail.lua")),
    heartbeat: script(include_str!("lua/heartbeat.lua")),
    reap: script(include_str!("lua/reap.lua")),
    release: script(include_str!("lua/release.lua")),
    remove: script(include_str!("lua/remove.lua")),
    retry: script(include_str!("lua/retry.lua")),
    clean: script(include_str!("lua/clean.lua")),
    progress: script(include_str!("lua/progress.lua")),
    defer: script(include_str!("lua/defer.lua")),
    promote: script(include_str!("lua/promote.lua")),
});
