//! When the hourly producer ticks (seed 001 "cronProducer"): a six-field cron pattern evaluated
//! in `TIMEZONE` with croner, which computes each occurrence in the zone itself, so DST changes
//! neither skip nor double a tick. (tokio-cron-scheduler was the first choice; its time-zone
//! support fixes the UTC offset when the job is created, which shifts ticks by an hour after a
//! DST change.) The pattern is parsed once, with the settings ([`CronSettings::schedule`]); a
//! tick's id is its instant in UTC, the same on every replica. What a tick does is
//! [`crate::jobs::producer`]'s.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::infra::settings::Invalid;

/// A parsed schedule; read from and written to settings as its pattern.
#[derive(Debug, Clone)]
pub struct Schedule {
    pattern: String,
    cron: Cron,
    /// The schedule matches every hour of the day (`*`, `0-23`, `*/1`, a list of all 24...): it
    /// runs every real hour, including both passes through the hour that repeats when DST ends.
    every_hour: bool,
}

fn parser() -> croner::parser::CronParser {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        // croner 4 refuses `5/15` unless written `5-59/15`; configured schedules keep working.
        .sloppy_ranges(true)
        .build()
}

/// Parses a six-field (seconds first) cron pattern.
pub fn parse_schedule(pattern: &str) -> Result<Schedule, String> {
    let cron = parser()
        .parse(pattern)
        .map_err(|e| format!("{pattern:?} is not a six-field cron pattern: {e}"))?;
    let hours = pattern.split_whitespace().nth(2).unwrap_or("*");
    Ok(Schedule {
        pattern: pattern.to_owned(),
        cron,
        every_hour: matches_every_hour(hours),
    })
}

impl Schedule {
    /// The cron pattern it was parsed from.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.pattern)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pattern = String::deserialize(deserializer)?;
        parse_schedule(&pattern).map_err(serde::de::Error::custom)
    }
}

/// Whether an hour field selects all 24 hours, whatever way it is written.
fn matches_every_hour(hours: &str) -> bool {
    let Ok(only_hours) = parser().parse(&format!("0 0 {hours} * * *")) else {
        return false;
    };
    let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).expect("a valid date");
    (0..24).all(|hour| {
        let at = day.and_hms_opt(hour, 0, 0).expect("a valid time").and_utc();
        only_hours.is_time_matching(&at).unwrap_or(false)
    })
}

/// The first tick strictly after `after`, evaluated in `tz`, as an instant in UTC.
///
/// croner walks local wall-clock time, so when DST ends it finds only the first pass through the
/// repeated hour. A fixed-hour schedule (daily at 02:30) must indeed run once; an every-hour
/// schedule must also tick on the second pass, so for those the real seconds up to croner's
/// answer (at most two hours) are checked too.
pub fn next_tick(schedule: &Schedule, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let candidate = schedule
        .cron
        .find_next_occurrence(&after.with_timezone(&tz), false)
        .ok()?
        .with_timezone(&Utc);
    if !schedule.every_hour {
        return Some(candidate);
    }
    let limit = candidate.min(after + TimeDelta::hours(2));
    let mut t = after.with_nanosecond(0).unwrap_or(after) + TimeDelta::seconds(1);
    while t < limit {
        if schedule
            .cron
            .is_time_matching(&t.with_timezone(&tz))
            .unwrap_or(false)
        {
            return Some(t);
        }
        t += TimeDelta::seconds(1);
    }
    Some(candidate)
}

/// How far back [`last_tick`] looks for a tick to catch up.
pub const CATCH_UP_WINDOW: TimeDelta = TimeDelta::hours(25);

/// The latest tick at or before `now` within [`CATCH_UP_WINDOW`], if any: the tick an API that
/// starts at `now` catches up when it was not run.
pub fn last_tick(schedule: &Schedule, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut last = None;
    let mut at = now - CATCH_UP_WINDOW;
    while let Some(tick) = next_tick(schedule, tz, at).filter(|tick| *tick <= now) {
        last = Some(tick);
        at = tick;
    }
    last
}

/// A tick's id: its instant in UTC, identical on every replica.
pub fn tick_id(tick_at: DateTime<Utc>) -> String {
    tick_at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CronSettings {
    pub enabled: bool,
    /// Parsed when the settings are read: a bad pattern stops start-up.
    pub schedule: Schedule,
    pub batch_size: usize,
    #[serde(rename = "lease_ttl_ms", with = "crate::infra::settings::millis")]
    pub lease_ttl: Duration,
    /// A user is due at a tick if its interval has passed at the tick plus this much, so a user
    /// refreshed a little after the previous tick is not left for another hour.
    #[serde(rename = "due_tolerance_ms", with = "crate::infra::settings::millis")]
    pub due_tolerance: Duration,
    /// A failed tick is retried after this, doubling up to `retry_max_ms`, until the next tick.
    #[serde(rename = "retry_initial_ms", with = "crate::infra::settings::millis")]
    pub retry_initial: Duration,
    #[serde(rename = "retry_max_ms", with = "crate::infra::settings::millis")]
    pub retry_max: Duration,
    /// At start-up, run the latest past tick (within 25 hours) if it was not completed.
    pub catch_up: bool,
}

impl CronSettings {
    /// How a failed tick is retried within its hour.
    pub fn retry(&self) -> TickRetry {
        TickRetry {
            initial: self.retry_initial,
            max: self.retry_max.max(self.retry_initial),
        }
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        if self.batch_size == 0 || self.lease_ttl < Duration::from_millis(3) {
            return Err(Invalid::new(
                "cron.batch_size",
                "batch_size and lease_ttl_ms must be positive",
            ));
        }
        if self.retry_initial.is_zero() {
            return Err(Invalid::new("cron.retry_initial_ms", "must be at least 1"));
        }
        Ok(())
    }
}

/// How a failed tick is retried within its hour: exponential backoff from `initial` up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickRetry {
    pub initial: Duration,
    pub max: Duration,
}

impl TickRetry {
    /// The waits between tries: `initial`, doubling, capped at `max`, for as long as the tick's
    /// hour lasts (the producer stops at the next tick).
    pub fn backoff(self) -> backon::ExponentialBuilder {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.initial)
            .with_max_delay(self.max)
            .with_factor(2.0)
            .without_max_times()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).unwrap()
    }

    #[test]
    fn hourly_ticks_neither_skip_nor_double_across_dst() {
        let schedule = parse_schedule("0 0 * * * *").unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // Autumn (2026-10-25 01:00 UTC: 03:00 CEST becomes 02:00 CET) and spring (2026-03-29).
        for start in [utc(2026, 10, 24, 21), utc(2026, 3, 28, 22)] {
            let mut ticks = vec![next_tick(&schedule, berlin, start).unwrap()];
            for _ in 0..6 {
                ticks.push(next_tick(&schedule, berlin, *ticks.last().unwrap()).unwrap());
            }
            for pair in ticks.windows(2) {
                assert_eq!(pair[1] - pair[0], TimeDelta::hours(1), "{ticks:?}");
            }
        }
    }

    #[test]
    fn a_fixed_time_in_the_repeated_hour_runs_once() {
        let schedule = parse_schedule("0 30 2 * * *").unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let first = next_tick(&schedule, berlin, utc(2026, 10, 24, 12)).unwrap();
        let second = next_tick(&schedule, berlin, first).unwrap();
        assert_eq!(first, Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap());
        assert_eq!(
            second - first,
            TimeDelta::hours(25),
            "the next day, not an hour later"
        );
    }

    #[test]
    fn a_tick_is_evaluated_in_the_configured_timezone() {
        let daily = parse_schedule("0 0 9 * * *").unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 09:00 in Berlin is 07:00 UTC in summer and 08:00 UTC in winter.
        assert_eq!(
            next_tick(&daily, berlin, utc(2026, 7, 1, 0)).unwrap(),
            utc(2026, 7, 1, 7)
        );
        assert_eq!(
            next_tick(&daily, berlin, utc(2026, 12, 1, 0)).unwrap(),
            utc(2026, 12, 1, 8)
        );
        assert_eq!(
            next_tick(&daily, chrono_tz::UTC, utc(2026, 12, 1, 0)).unwrap(),
            utc(2026, 12, 1, 9)
        );
    }

    #[test]
    fn bad_schedules_are_refused_and_tick_ids_are_stable() {
        assert!(parse_schedule("0 * * * *").is_err(), "five fields");
        assert!(
            parse_schedule("0 5/15 * * * *").is_ok(),
            "a step from a start, as croner 3 accepted it"
        );
        assert!(parse_schedule("every hour").is_err());
        assert_eq!(tick_id(utc(2026, 11, 25, 14)), "2026-11-25T14:00:00Z");
    }
}
