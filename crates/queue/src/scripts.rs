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
    pub prioritize: Script,
    /// `fetch` under a start limit (`rate_limit/fetch_limited.lua` around `lua/fetch.lua`).
    pub fetch_limited: Script,
}

/// The helpers every script may use: the event outbox and retention.
const PRELUDE: &str = concat!(
    include_str!("lua/clock.lua"),
    include_str!("lua/events.lua"),
    include_str!("lua/retention.lua")
);

/// `fetch.lua` wrapped by `fetch_limited.lua`, with the token bucket's functions.
fn fetch_limited() -> Script {
    let wrapper =
        include_str!("rate_limit/fetch_limited.lua").replace("--FETCH--", include_str!("lua/fetch.lua"));
    script(&format!("{}\n{wrapper}", crate::rate_limit::BUCKET))
}

/// A script: the prelude, then the body run as a function, so that whichever way it returns,
/// the events it recorded are appended to the stream as one entry before the reply (every
/// script's ARGV[1] is the queue's key base).
fn script(body: &str) -> Script {
    Script::new(&format!(
        "{PRELUDE}\nlocal function body()\n{body}\nend\nlocal reply = body()\nflush_events(ARGV[1])\nreturn reply\n"
    ))
}

/// Every Redis command the scripts call (`redis.call('CMD', ...)`), which a Redis ACL user must be
/// allowed on the deployment's keys besides `EVALSHA` and `SCRIPT LOAD` (`sellersync doctor`
/// checks them). A unit test keeps it equal to what the script files call.
pub const SCRIPT_COMMANDS: &[&str] = &[
    "DEL",
    "EXISTS",
    "GET",
    "HDEL",
    "HGET",
    "HINCRBY",
    "HMGET",
    "HSET",
    "INCR",
    "INCRBY",
    "LPUSH",
    "LTRIM",
    "PEXPIRE",
    "SET",
    "TIME",
    "UNLINK",
    "XADD",
    "ZADD",
    "ZCARD",
    "ZPOPMIN",
    "ZRANGE",
    "ZRANGEBYSCORE",
    "ZREM",
    "ZREMRANGEBYSCORE",
    "ZSCORE",
];

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
    prioritize: script(include_str!("lua/prioritize.lua")),
    fetch_limited: fetch_limited(),
});

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    /// The commands called in every `.lua` file under `dir` (recursively).
    fn called(dir: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                called(&path, found);
            } else if path.extension().is_some_and(|e| e == "lua") {
                let text = std::fs::read_to_string(&path).unwrap();
                let calls = ["redis.call(", "redis.pcall("].map(|call| text.split(call).skip(1));
                for call in calls.into_iter().flatten() {
                    let quoted = call.trim_start().trim_start_matches(['\'', '"']);
                    let name: String = quoted.chars().take_while(char::is_ascii_alphabetic).collect();
                    assert!(
                        !name.is_empty(),
                        "{}: a call whose command is not a literal",
                        path.display()
                    );
                    found.insert(name.to_ascii_uppercase());
                }
            }
        }
    }

    #[test]
    fn script_commands_lists_what_the_scripts_call() {
        let mut found = BTreeSet::new();
        called(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut found);
        let listed: BTreeSet<String> = super::SCRIPT_COMMANDS.iter().map(|c| (*c).to_owned()).collect();
        assert_eq!(listed, found);
    }
}
