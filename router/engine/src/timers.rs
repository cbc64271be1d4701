//! The engine's timers: a min-heap of due times with lazy cancellation, plus lanes.
//!
//! A timer names its target by slot and generation; when it fires for a slot that has since
//! moved on, the engine ignores it. That makes cancelling free.
//!
//! Most timers come in *lanes* whose due times only grow: every offer of one tenant's channel
//! expires after the same timeout, every wrap-up lasts the same time. A lane is a FIFO, and
//! only its head sits in the heap, so the heap stays small and each such timer costs a push
//! and a pop on a queue. Timers fire in order of `(due time, order scheduled)` either way.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::ids::Millis;

/// What a timer does when it fires.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
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
    /// The head of a lane is due.
    Lane(u32),
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    at: Millis,
    seq: u64,
    kind: TimerKind,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Lane {
    timers: VecDeque<Timer>,
    /// Whether its head has an entry in the heap.
    in_heap: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Timer>>,
    lanes: Vec<Lane>,
    seq: u64,
}

impl Timers {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Timers { heap: BinaryHeap::with_capacity(capacity), lanes: Vec::new(), seq: 0 }
    }

    /// Schedules `kind` at `at`; timers due at the same instant fire in the order scheduled.
    pub(crate) fn schedule(&mut self, at: Millis, kind: TimerKind) {
        self.seq += 1;
        self.heap.push(Reverse(Timer { at, seq: self.seq, kind }));
    }

    /// Schedules `kind` at `at` in lane `lane`. When `at` is earlier than the lane's last
    /// timer (its timeout was shortened), the timer goes to the heap instead.
    pub(crate) fn schedule_in_lane(&mut self, lane: u32, at: Millis, kind: TimerKind) {
        let index = lane as usize;
        if self.lanes.len() <= index {
            self.lanes.resize_with(index + 1, Lane::default);
        }
        if self.lanes[index].timers.back().is_some_and(|last| last.at > at) {
            return self.schedule(at, kind);
        }
        self.seq += 1;
        let timer = Timer { at, seq: self.seq, kind };
        let lane_state = &mut self.lanes[index];
        lane_state.timers.push_back(timer);
        if !lane_state.in_heap {
            lane_state.in_heap = true;
            self.heap.push(Reverse(Timer { kind: TimerKind::Lane(lane), ..timer }));
        }
    }

    /// The earliest timer due at or before `now`, removed.
    pub(crate) fn pop_due(&mut self, now: Millis) -> Option<(Millis, TimerKind)> {
        let Reverse(next) = self.heap.peek()?;
        if next.at > now {
            return None;
        }
        let Reverse(timer) = self.heap.pop()?;
        let TimerKind::Lane(lane) = timer.kind else { return Some((timer.at, timer.kind)) };
        let lane = &mut self.lanes[lane as usize];
        let head = lane.timers.pop_front().expect("a lane in the heap has a head");
        match lane.timers.front() {
            Some(next) => self.heap.push(Reverse(Timer { kind: timer.kind, ..*next })),
            None => lane.in_heap = false,
        }
        Some((head.at, head.kind))
    }

    /// When the earliest timer is due.
    pub(crate) fn next_due(&self) -> Option<Millis> {
        self.heap.peek().map(|Reverse(t)| t.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_and_heap_fire_in_due_time_then_schedule_order() {
        let mut timers = Timers::with_capacity(8);
        let kind = |n| TimerKind::NotBefore { contact: n, generation: 0 };
        timers.schedule_in_lane(0, 10, kind(1));
        timers.schedule(5, kind(2));
        timers.schedule_in_lane(0, 10, kind(3));
        timers.schedule_in_lane(1, 7, kind(4));
        timers.schedule(10, kind(5));
        timers.schedule_in_lane(0, 20, kind(6));
        // Shorter than the lane's last: goes to the heap, still fires in order.
        timers.schedule_in_lane(0, 15, kind(7));
        assert_eq!(timers.next_due(), Some(5));
        let mut fired = vec![];
        while let Some((at, TimerKind::NotBefore { contact, .. })) = timers.pop_due(100) {
            fired.push((at, contact));
        }
        assert_eq!(fired, vec![(5, 2), (7, 4), (10, 1), (10, 3), (10, 5), (15, 7), (20, 6)]);
        assert_eq!(timers.pop_due(100), None);
    }
}
