//! A validated scenario: the runtime form the simulator runs.
//!
//! It is built from a scenario file by [`crate::scenario::ScenarioFile::validate`], or directly
//! in code (the theory checks do). Engine-facing parts are already the engine's own types
//! ([`TenantPolicy`], [`PoolConfig`], [`Capacity`], ...).

use chrono::{Duration as ChronoDuration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;
use vuoro_engine::{
    Capacity, Channel, LanguageId, Languages, Millis, PoolConfig, Segment, SkillList, TenantId, TenantPolicy,
};

use crate::dist::{Duration, Mix};

/// The one tenant a simulation routes for.
pub const TENANT: TenantId = TenantId(1);
/// Milliseconds per minute.
pub const MINUTE: Millis = 60_000;
/// Milliseconds per hour.
pub const HOUR: Millis = 3_600_000;
/// Milliseconds per day.
pub const DAY: Millis = 86_400_000;

/// A validated scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Title, shown in reports and charts.
    pub name: String,
    /// The planner's time zone: hours of day of arrival rates and of the chart.
    pub tz: Tz,
    /// Start of the simulated period (epoch milliseconds; local midnight of the start date).
    pub start: Millis,
    /// Length of the simulated period; contacts arrive only within it.
    pub horizon: Millis,
    /// Contacts arriving in the first `warm_up` are simulated but not counted.
    pub warm_up: Millis,
    /// After the horizon, at most this long is simulated so contacts still waiting can finish.
    pub drain: Millis,
    /// Independent replications.
    pub replications: u32,
    /// Base seed; replication `r` uses a stream derived from `(seed, r)`.
    pub seed: u64,
    /// Width of the time-series buckets (chart).
    pub interval: Millis,
    /// The routing policy (one tenant, [`TENANT`]).
    pub policy: TenantPolicy,
    /// Pools, in order; pool `i` has id `PoolId(i + 1)`.
    pub pools: Vec<Pool>,
    /// Agent groups.
    pub groups: Vec<AgentGroup>,
    /// Traffic streams.
    pub streams: Vec<Stream>,
    /// Skill names by id (for reports).
    pub skill_names: Vec<String>,
    /// Language names by id (for reports).
    pub language_names: Vec<String>,
}

/// A pool and how it is simulated.
#[derive(Clone, Debug)]
pub struct Pool {
    /// Display name.
    pub name: String,
    /// The engine's configuration (its id is `PoolId(index + 1)`).
    pub config: PoolConfig,
    /// Handle times of contacts served here are multiplied by this.
    pub handle_time_factor: f64,
    /// For a capacity-level pool: what the provider declares while its hours are open.
    pub capacity: Option<Capacity>,
    /// Its opening hours as windows (always, when it has none). A capacity-level pool declares
    /// its capacity while they are open.
    pub windows: Windows,
}

/// A group of identical agents.
#[derive(Clone, Debug)]
pub struct AgentGroup {
    /// Display name.
    pub name: String,
    /// Index of its (agent-level) pool.
    pub pool: usize,
    /// Number of agents.
    pub count: u32,
    /// Skills with levels.
    pub skills: Vec<vuoro_engine::SkillLevel>,
    /// Languages.
    pub languages: Languages,
    /// What each agent can hold at once.
    pub capacity: Capacity,
    /// When they are logged in; always when empty.
    pub shifts: Windows,
}

/// Weekly windows in a time zone: per weekday (Monday first), `(start, end)` in minutes after
/// local midnight, with `end > 1440` for a window that runs past midnight. Empty in every day
/// means "always".
#[derive(Clone, Debug, PartialEq)]
pub struct Windows {
    /// Time zone of the minutes.
    pub tz: Tz,
    /// Per weekday, Monday = 0.
    pub week: [Vec<(u32, u32)>; 7],
    /// Whether the windows apply at all; `false` is "always on".
    pub limited: bool,
}

impl Windows {
    /// Always on.
    pub fn always(tz: Tz) -> Self {
        Windows { tz, week: Default::default(), limited: false }
    }

    /// The intervals `[from, to)` (epoch milliseconds) the windows cover within `[from, to)`,
    /// sorted and merged.
    pub fn intervals(&self, from: Millis, to: Millis) -> Vec<(Millis, Millis)> {
        if !self.limited {
            return vec![(from, to)];
        }
        use chrono::Datelike;
        let Some(first) = local_date(self.tz, from) else { return Vec::new() };
        let Some(last) = local_date(self.tz, to) else { return Vec::new() };
        let mut out: Vec<(Millis, Millis)> = Vec::new();
        let mut date = first - ChronoDuration::days(2);
        while date <= last {
            let day = date.weekday().num_days_from_monday() as usize;
            for &(s, e) in &self.week[day] {
                let (Some(a), Some(b)) = (local_instant(self.tz, date, s), local_instant(self.tz, date, e))
                else {
                    continue;
                };
                let (a, b) = (a.max(from), b.min(to));
                if a < b {
                    out.push((a, b));
                }
            }
            date += ChronoDuration::days(1);
        }
        out.sort_unstable();
        let mut merged: Vec<(Millis, Millis)> = Vec::with_capacity(out.len());
        for (a, b) in out {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        merged
    }
}

/// A traffic stream: one kind of contact arriving on one channel.
#[derive(Clone, Debug)]
pub struct Stream {
    /// Display name.
    pub name: String,
    /// Channel.
    pub channel: Channel,
    /// When contacts arrive.
    pub arrivals: Arrivals,
    /// Handle time.
    pub handle_time: Duration,
    /// How long a waiting customer waits before giving up; `None` never.
    pub patience: Option<Duration>,
    /// Priority mix.
    pub priorities: Mix<u8>,
    /// Segment mix.
    pub segments: Mix<Segment>,
    /// Language mix (`None`: any language).
    pub languages: Mix<Option<LanguageId>>,
    /// Required skills.
    pub required: SkillList,
    /// Preferred skills.
    pub preferred: SkillList,
    /// Callback requests.
    pub callback: Option<Callback>,
}

/// Callback requests within a stream: the customer asks to be called back at a later time
/// rather than wait on the line.
#[derive(Clone, Debug)]
pub struct Callback {
    /// Share of the stream's contacts that are callback requests.
    pub share: f64,
    /// Delay from the request to the promised time (the contact's `not_before`).
    pub delay: Duration,
    /// How long after the promised time the customer still takes the call; `None`: always.
    pub patience: Option<Duration>,
}

/// When a stream's contacts arrive.
#[derive(Clone, Debug)]
pub enum Arrivals {
    /// A Poisson process with a rate (contacts per hour) for each local hour of day.
    Poisson {
        /// Rate per local hour of day, 0–23.
        per_hour: [f64; 24],
    },
    /// A replayed trace: offsets from the start, in milliseconds, sorted.
    Trace(Vec<Millis>),
}

impl Scenario {
    /// End of the arrival period.
    pub fn end(&self) -> Millis {
        self.start + self.horizon
    }

    /// Number of time-series buckets.
    pub fn buckets(&self) -> usize {
        self.horizon.div_ceil(self.interval) as usize
    }
}

/// The local date at instant `t`.
pub fn local_date(tz: Tz, t: Millis) -> Option<NaiveDate> {
    tz.timestamp_millis_opt(t as i64).single().map(|d| d.date_naive())
}

/// The instant of `minute` minutes after local midnight of `date` (may exceed a day). A time
/// inside a daylight-saving gap moves forward to the end of the gap; an ambiguous time takes
/// its first occurrence.
pub fn local_instant(tz: Tz, date: NaiveDate, minute: u32) -> Option<Millis> {
    let date = date + ChronoDuration::days(i64::from(minute / 1440));
    let minute = minute % 1440;
    let time = NaiveTime::from_hms_opt(minute / 60, minute % 60, 0)?;
    let mut naive = NaiveDateTime::new(date, time);
    for _ in 0..8 {
        match tz.from_local_datetime(&naive) {
            LocalResult::Single(d) | LocalResult::Ambiguous(d, _) => {
                return u64::try_from(d.timestamp_millis()).ok();
            }
            LocalResult::None => naive += ChronoDuration::minutes(15),
        }
    }
    None
}

/// Instants at which the Poisson rate of `per_hour` changes, with the rate (per millisecond)
/// from each: piecewise-constant segments covering `[from, to)`.
pub fn rate_segments(
    tz: Tz,
    per_hour: &[f64; 24],
    scale: f64,
    from: Millis,
    to: Millis,
) -> Vec<(Millis, Millis, f64)> {
    let (Some(first), Some(last)) = (local_date(tz, from), local_date(tz, to)) else { return Vec::new() };
    let mut out = Vec::new();
    let mut date = first - ChronoDuration::days(1);
    while date <= last {
        for hour in 0..24u32 {
            let (Some(a), Some(b)) =
                (local_instant(tz, date, hour * 60), local_instant(tz, date, hour * 60 + 60))
            else {
                continue;
            };
            let (a, b) = (a.max(from), b.min(to));
            if a < b {
                out.push((a, b, per_hour[hour as usize] * scale / HOUR as f64));
            }
        }
        date += ChronoDuration::days(1);
    }
    out.sort_by_key(|s| s.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> Millis {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis() as u64
    }

    #[test]
    fn windows_expand_to_local_intervals_across_midnight_and_dst() {
        let tz: Tz = "Europe/Helsinki".parse().unwrap();
        let mut week: [Vec<(u32, u32)>; 7] = Default::default();
        // Every day 22:00 to 06:00 the next morning.
        for d in &mut week {
            d.push((22 * 60, 30 * 60));
        }
        let w = Windows { tz, week, limited: true };
        // 2026-03-28 is a Saturday; DST starts the night of the 29th (03:00 → 04:00).
        let from = utc("2026-03-28T00:00:00Z");
        let to = from + 2 * DAY;
        let iv = w.intervals(from, to);
        // The window from the 27th still runs at the start: 00:00Z is 02:00 local.
        assert_eq!(iv[0], (from, utc("2026-03-28T04:00:00Z")));
        assert_eq!(iv[1], (utc("2026-03-28T20:00:00Z"), utc("2026-03-29T03:00:00Z")));
        assert_eq!(iv[2], (utc("2026-03-29T19:00:00Z"), to));
        let always = Windows::always(tz);
        assert_eq!(always.intervals(5, 10), vec![(5, 10)]);
    }

    #[test]
    fn rate_segments_follow_local_hours() {
        let tz: Tz = "Europe/Helsinki".parse().unwrap();
        let mut per_hour = [0.0; 24];
        per_hour[9] = 36.0;
        let from = utc("2026-01-14T22:00:00Z"); // local midnight of the 15th
        let segs = rate_segments(tz, &per_hour, 1.0, from, from + DAY);
        assert_eq!(segs.len(), 24);
        assert_eq!(segs[0].0, from);
        let nine = segs.iter().find(|s| s.2 > 0.0).unwrap();
        assert_eq!(nine.0, utc("2026-01-15T07:00:00Z"));
        assert_eq!(nine.1 - nine.0, HOUR);
        assert!((nine.2 * HOUR as f64 - 36.0).abs() < 1e-9);
    }
}
