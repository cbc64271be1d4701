//! The promised callback time, from the router's word on a callback contact: one rule for the
//! answer to `POST /callback` and for the courier that follows later estimates.
//!
//! - `scheduled_unix_ms` later than the message: the call is scheduled for the window's start,
//!   and that is the promise.
//! - `queued` with an estimated wait: the promise is the message's time plus the estimate, never
//!   earlier than the window's start.
//! - `queued` without an estimate: nobody who could take the call is logged in; no time can be
//!   promised honestly.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use vuoro_adapters::callback::reply;
use vuoro_proto::v1;
use vuoro_proto::v1::outbound_message::Message as O;

/// What a promise rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basis {
    /// The router's estimate of the wait.
    Estimate,
    /// The router scheduled the call for the customer's window.
    Schedule,
}

/// A promised callback time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Promised {
    /// When the customer will be called, Unix milliseconds.
    pub at_unix_ms: i64,
    /// What it rests on.
    pub basis: Basis,
    /// The router's estimated wait, when the promise rests on it.
    pub estimated_wait_ms: Option<u64>,
}

impl Promised {
    /// The promised time as an instant (the Unix epoch for an out-of-range value).
    pub fn at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.at_unix_ms).unwrap_or_default()
    }
}

/// The router's word on a callback's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Word {
    /// A time can be promised.
    Promised(Promised),
    /// The contact waits, but nobody who could take it is logged in: no estimate.
    NoEstimate,
}

/// The router's word on a callback's time in `message`, by the rule above; `None` for a message
/// that says nothing about the time (an agent joining, a reply, a scheduled time already past).
/// `window_start_unix_ms` is the customer's window's start, if they gave one.
pub fn word_of(message: &v1::OutboundMessage, window_start_unix_ms: Option<i64>) -> Option<Word> {
    match message.message.as_ref()? {
        O::ScheduledUnixMs(at) if *at > message.at_unix_ms => Some(Word::Promised(Promised {
            at_unix_ms: *at,
            basis: Basis::Schedule,
            estimated_wait_ms: None,
        })),
        O::Queued(update) => Some(match update.estimated_wait_ms {
            Some(wait) => {
                let by_estimate = message.at_unix_ms.saturating_add(i64::try_from(wait).unwrap_or(i64::MAX));
                Word::Promised(Promised {
                    at_unix_ms: by_estimate.max(window_start_unix_ms.unwrap_or(i64::MIN)),
                    basis: Basis::Estimate,
                    estimated_wait_ms: Some(wait),
                })
            }
            None => Word::NoEstimate,
        }),
        _ => None,
    }
}

/// The window's start a callback's message carries in its context, if any.
pub fn window_start_of(message: &v1::OutboundMessage) -> Option<i64> {
    message.context.get(reply::WINDOW_START_UNIX_MS).and_then(|v| v.parse().ok())
}

/// The customer's time zone a callback's message carries in its context; UTC without one.
pub fn zone_of(context: &std::collections::HashMap<String, String>) -> Tz {
    context.get(reply::TIME_ZONE).and_then(|z| z.parse().ok()).unwrap_or(chrono_tz::UTC)
}

/// Whether a promise moved from `old` to `new` by more than `tolerance_ms`.
pub fn moved_beyond(old_unix_ms: i64, new_unix_ms: i64, tolerance_ms: i64) -> bool {
    old_unix_ms.abs_diff(new_unix_ms) > tolerance_ms.max(0).unsigned_abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(at: i64, m: O) -> v1::OutboundMessage {
        v1::OutboundMessage { at_unix_ms: at, message: Some(m), ..Default::default() }
    }

    fn queued(wait: Option<u64>) -> O {
        O::Queued(v1::QueueUpdate { position: 2, estimated_wait_ms: wait })
    }

    #[test]
    fn an_estimate_is_added_to_the_routers_time_but_never_before_the_window() {
        let word = word_of(&message(1_000_000, queued(Some(300_000))), None);
        assert_eq!(
            word,
            Some(Word::Promised(Promised {
                at_unix_ms: 1_300_000,
                basis: Basis::Estimate,
                estimated_wait_ms: Some(300_000)
            }))
        );
        let Some(Word::Promised(p)) = word_of(&message(1_000_000, queued(Some(300_000))), Some(2_000_000))
        else {
            panic!("a promise");
        };
        assert_eq!((p.at_unix_ms, p.basis), (2_000_000, Basis::Estimate));
    }

    #[test]
    fn a_schedule_ahead_is_the_promise_and_no_estimate_promises_nothing() {
        let Some(Word::Promised(p)) = word_of(&message(1_000, O::ScheduledUnixMs(9_000)), None) else {
            panic!("a promise");
        };
        assert_eq!((p.at_unix_ms, p.basis), (9_000, Basis::Schedule));
        assert_eq!(word_of(&message(1_000, O::ScheduledUnixMs(500)), None), None);
        assert_eq!(word_of(&message(1_000, queued(None)), None), Some(Word::NoEstimate));
        assert_eq!(word_of(&message(1_000, O::AgentJoined("aino".into())), None), None);
    }

    #[test]
    fn a_move_counts_only_beyond_the_tolerance_either_way() {
        assert!(!moved_beyond(0, 600_000, 600_000));
        assert!(moved_beyond(0, 600_001, 600_000));
        assert!(moved_beyond(600_001, 0, 600_000));
    }
}
