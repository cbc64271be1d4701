//! Weekly opening hours in a pool's own time zone, daylight-saving aware.

use chrono::{Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Timelike};
use chrono_tz::Tz;

use crate::ids::Millis;

/// A half-open window `[start, end)` in minutes after local midnight (0–1440).
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// First open minute.
    pub start: u16,
    /// First closed minute; at most 1440.
    pub end: u16,
}

/// When a pool is open: windows per weekday (Monday first) in the pool's time zone.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct OpeningHours {
    /// The pool's time zone.
    pub tz: Tz,
    /// Windows per weekday, Monday = 0; each day's windows sorted and non-overlapping.
    pub week: [Vec<Window>; 7],
}

/// Why opening hours are invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    /// A window ends before it starts, or past midnight.
    #[error("weekday {day}: window {start}..{end} is not within 0..=1440 with start < end")]
    BadWindow {
        /// Weekday, Monday = 0.
        day: usize,
        /// Start minute.
        start: u16,
        /// End minute.
        end: u16,
    },
    /// Two windows of one day overlap or are out of order.
    #[error("weekday {day}: windows overlap or are not in order")]
    Overlap {
        /// Weekday, Monday = 0.
        day: usize,
    },
}

impl OpeningHours {
    /// Validated hours.
    pub fn new(tz: Tz, week: [Vec<Window>; 7]) -> Result<Self, HoursError> {
        for (day, windows) in week.iter().enumerate() {
            for w in windows {
                if w.start >= w.end || w.end > 1440 {
                    return Err(HoursError::BadWindow { day, start: w.start, end: w.end });
                }
            }
            if windows.windows(2).any(|p| p[0].end > p[1].start) {
                return Err(HoursError::Overlap { day });
            }
        }
        Ok(OpeningHours { tz, week })
    }

    /// The same window every day of the week.
    pub fn daily(tz: Tz, start: u16, end: u16) -> Result<Self, HoursError> {
        let day = vec![Window { start, end }];
        Self::new(tz, std::array::from_fn(|_| day.clone()))
    }

    /// Whether the pool is open at `t`.
    pub fn is_open(&self, t: Millis) -> bool {
        let local = self.tz.timestamp_millis_opt(t as i64).single().map(|d| d.naive_local());
        let Some(local) = local else { return false };
        let day = local.weekday().num_days_from_monday() as usize;
        let minute = (local.hour() * 60 + local.minute()) as u16;
        self.week[day].iter().any(|w| w.start <= minute && minute < w.end)
    }

    /// The first instant after `t` at which [`is_open`](Self::is_open) may change, or `None`
    /// when the hours never change (always open or never open).
    pub fn next_change(&self, t: Millis) -> Option<Millis> {
        if self.week.iter().all(|d| d.is_empty()) {
            return None;
        }
        let local = self.tz.timestamp_millis_opt(t as i64).single()?.naive_local();
        let today = local.date();
        // Look at every window boundary over the coming eight local days; the earliest one
        // after `t` is the next change. Boundaries inside a DST gap map to the gap's end.
        (0..8)
            .flat_map(|offset| {
                let date = today + Duration::days(offset);
                let day = date.weekday().num_days_from_monday() as usize;
                self.week[day]
                    .iter()
                    .flat_map(move |w| [w.start, w.end])
                    .filter_map(move |minute| self.instant(date, minute))
            })
            .filter(|&b| b > t)
            .min()
    }

    fn instant(&self, date: NaiveDate, minute: u16) -> Option<Millis> {
        let (date, minute) = if minute >= 1440 { (date.succ_opt()?, minute - 1440) } else { (date, minute) };
        let mut naive =
            date.and_time(NaiveTime::from_hms_opt(u32::from(minute / 60), u32::from(minute % 60), 0)?);
        for _ in 0..4 {
            match self.tz.from_local_datetime(&naive) {
                LocalResult::Single(d) | LocalResult::Ambiguous(d, _) => {
                    return u64::try_from(d.timestamp_millis()).ok();
                }
                // In a spring-forward gap: the wall clock jumps, so step forward.
                LocalResult::None => naive += Duration::minutes(30),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Helsinki;

    fn utc(s: &str) -> Millis {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis() as u64
    }

    #[test]
    fn open_follows_local_time_across_daylight_saving() {
        let hours = OpeningHours::daily(Helsinki, 8 * 60, 16 * 60).unwrap();
        // Winter: Helsinki is UTC+2, so 08:00 local is 06:00 UTC.
        assert!(!hours.is_open(utc("2026-01-15T05:59:00Z")));
        assert!(hours.is_open(utc("2026-01-15T06:00:00Z")));
        assert!(!hours.is_open(utc("2026-01-15T14:00:00Z")));
        // Summer: UTC+3, so 08:00 local is 05:00 UTC.
        assert!(hours.is_open(utc("2026-07-15T05:00:00Z")));
        assert!(!hours.is_open(utc("2026-07-15T13:00:00Z")));
    }

    #[test]
    fn next_change_is_the_next_boundary_in_local_time() {
        let hours = OpeningHours::daily(Helsinki, 8 * 60, 16 * 60).unwrap();
        assert_eq!(hours.next_change(utc("2026-01-15T07:00:00Z")), Some(utc("2026-01-15T14:00:00Z")));
        assert_eq!(hours.next_change(utc("2026-01-15T14:00:00Z")), Some(utc("2026-01-16T06:00:00Z")));
        // The night DST starts (29 March 2026), the next opening is at UTC+3.
        assert_eq!(hours.next_change(utc("2026-03-28T20:00:00Z")), Some(utc("2026-03-29T05:00:00Z")));
    }

    #[test]
    fn weekend_closed_and_never_open_hours() {
        let weekday = vec![Window { start: 9 * 60, end: 17 * 60 }];
        let week =
            [weekday.clone(), weekday.clone(), weekday.clone(), weekday.clone(), weekday, vec![], vec![]];
        let hours = OpeningHours::new(chrono_tz::UTC, week).unwrap();
        // 2026-11-21 is a Saturday.
        assert!(!hours.is_open(utc("2026-11-21T10:00:00Z")));
        assert_eq!(hours.next_change(utc("2026-11-21T10:00:00Z")), Some(utc("2026-11-23T09:00:00Z")));
        let never = OpeningHours::new(chrono_tz::UTC, Default::default()).unwrap();
        assert!(!never.is_open(0));
        assert_eq!(never.next_change(0), None);
    }

    #[test]
    fn invalid_windows_are_refused() {
        assert_eq!(
            OpeningHours::daily(Helsinki, 600, 500),
            Err(HoursError::BadWindow { day: 0, start: 600, end: 500 })
        );
        let mut week: [Vec<Window>; 7] = Default::default();
        week[2] = vec![Window { start: 60, end: 600 }, Window { start: 500, end: 700 }];
        assert_eq!(OpeningHours::new(Helsinki, week), Err(HoursError::Overlap { day: 2 }));
    }
}
