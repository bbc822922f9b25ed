//! The Lua scripts (in `src/lua/`), loaded once per process and run with EVALSHA.
//! Every state change of a job is one of these scripts, so it is atomic.

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
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    enqueue: Script::new(include_str!("lua/enqueue.lua")),
    fetch: Script::new(include_str!("lua/fetch.lua")),
    complete: Script::new(include_str!("lua/complete.lua")),
    fail: Script::new(include_str!("lua/fail.lua")),
    heartbeat: Script::new(include_str!("lua/heartbeat.lua")),
    reap: Script::new(include_str!("lua/reap.lua")),
    release: Script::new(include_str!("lua/release.lua")),
    remove: Script::new(include_str!("lua/remove.lua")),
    retry: Script::new(include_str!("lua/retry.lua")),
    clean: Script::new(include_str!("lua/clean.lua")),
    progress: Script::new(include_str!("lua/progress.lua")),
    defer: Script::new(include_str!("lua/defer.lua")),
});
