//! The engine's timers: a min-heap of due times with lazy cancellation.
//!
//! A timer names its target by slot and generation; when it fires for a slot that has since
//! moved on, the engine ignores it. That makes cancelling free and keeps the heap the only
//! structure to maintain.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::ids::Millis;

/// What a timer does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKind {
    /// An offer's deadline.
    OfferDeadline { reservation: u32, generation: u32 },
    /// The end of a wrap-up.
    WrapUpEnd { reservation: u32, generation: u32 },
    /// A scheduled contact becomes routable.
    NotBefore { contact: u32, generation: u32 },
    /// The preferred-agent wait ends.
    PreferredAgentEnd { contact: u32, generation: u32 },
    /// The contact's next relaxation step, by index into the policy's steps.
    Relax { contact: u32, generation: u32, step: u8 },
    /// The overflow wait ends.
    OverflowWait { contact: u32, generation: u32 },
    /// A pool's opening hours may change.
    PoolHours { pool: u32, generation: u64 },
    /// Refresh queue positions and estimates.
    StatusRefresh,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    at: Millis,
    seq: u64,
    kind: TimerKind,
}

pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Timer>>,
    seq: u64,
}

impl Timers {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Timers { heap: BinaryHeap::with_capacity(capacity), seq: 0 }
    }

    /// Schedules `kind` at `at`; timers due at the same instant fire in the order scheduled.
    pub(crate) fn schedule(&mut self, at: Millis, kind: TimerKind) {
        self.seq += 1;
        self.heap.push(Reverse(Timer { at, seq: self.seq, kind }));
    }

    /// The earliest timer due at or before `now`, removed.
    pub(crate) fn pop_due(&mut self, now: Millis) -> Option<(Millis, TimerKind)> {
        let Reverse(next) = self.heap.peek()?;
        if next.at > now {
            return None;
        }
        let Reverse(timer) = self.heap.pop()?;
        Some((timer.at, timer.kind))
    }

    /// When the earliest timer is due.
    pub(crate) fn next_due(&self) -> Option<Millis> {
        self.heap.peek().map(|Reverse(t)| t.at)
    }
}
