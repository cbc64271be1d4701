//! Statistics per queue (tenant and channel) and per pool.
//!
//! The engine keeps counters incrementally on every event; [`Engine::stats`] folds them with
//! the live state into a [`StatsSnapshot`], and [`Engine::publish_stats`] swaps that snapshot
//! into a [`StatsReader`] that any thread can read without a lock.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{PoolKind, TenantPolicy};
use crate::engine::{Engine, Presence};
use crate::event::AgentState;
use crate::ids::{Channel, Millis, PoolId, TenantId};

/// Length of one sliding-window bucket.
pub const WINDOW_BUCKET: Millis = 60_000;
/// Buckets in the sliding window (so the window is 15 minutes).
pub const WINDOW_BUCKETS: usize = 15;

#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bucket {
    minute: u64,
    answered: u32,
    answered_within: u32,
    abandoned: u32,
    abandoned_after: u32,
    wait_sum: Millis,
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default)]
struct QueueBook {
    threshold: Millis,
    target_pct: u8,
    received: u64,
    offered: u64,
    answered: u64,
    answered_outsourced: u64,
    abandoned: u64,
    overflowed: u64,
    completed: u64,
    window: [Bucket; WINDOW_BUCKETS],
}

impl QueueBook {
    fn bucket(&mut self, now: Millis) -> &mut Bucket {
        let minute = now / WINDOW_BUCKET;
        let bucket = &mut self.window[(minute % WINDOW_BUCKETS as u64) as usize];
        if bucket.minute != minute {
            *bucket = Bucket { minute, ..Bucket::default() };
        }
        bucket
    }
}

/// The engine's running counters, indexed by dense tenant.
#[derive(serde::Serialize, serde::Deserialize, Default)]
pub(crate) struct StatsBook {
    tenants: Vec<(TenantId, [QueueBook; Channel::COUNT])>,
}

impl StatsBook {
    pub(crate) fn add_tenant(&mut self, tenant: TenantId) {
        self.tenants.push((tenant, Default::default()));
    }

    pub(crate) fn set_targets(&mut self, t: u32, policy: &TenantPolicy) {
        for channel in Channel::ALL {
            let book = &mut self.tenants[t as usize].1[channel.index()];
            book.threshold = policy.channel(channel).service_level_threshold;
            book.target_pct = policy.channel(channel).service_level_target_pct;
        }
    }

    fn book(&mut self, t: u32, channel: Channel) -> &mut QueueBook {
        &mut self.tenants[t as usize].1[channel.index()]
    }

    pub(crate) fn received(&mut self, t: u32, channel: Channel) {
        self.book(t, channel).received += 1;
    }

    pub(crate) fn offered(&mut self, t: u32, channel: Channel) {
        self.book(t, channel).offered += 1;
    }

    pub(crate) fn overflowed(&mut self, t: u32, channel: Channel) {
        self.book(t, channel).overflowed += 1;
    }

    pub(crate) fn completed(&mut self, t: u32, channel: Channel) {
        self.book(t, channel).completed += 1;
    }

    pub(crate) fn answered(&mut self, now: Millis, t: u32, channel: Channel, waited: Millis, inhouse: bool) {
        let book = self.book(t, channel);
        book.answered += 1;
        book.answered_outsourced += u64::from(!inhouse);
        let within = waited <= book.threshold;
        let bucket = book.bucket(now);
        bucket.answered += 1;
        bucket.answered_within += u32::from(within);
        bucket.wait_sum += waited;
    }

    pub(crate) fn abandoned(&mut self, now: Millis, t: u32, channel: Channel, waited: Millis) {
        let book = self.book(t, channel);
        book.abandoned += 1;
        let after = waited > book.threshold;
        let bucket = book.bucket(now);
        bucket.abandoned += 1;
        bucket.abandoned_after += u32::from(after);
    }
}

/// Figures over the sliding window (the last [`WINDOW_BUCKETS`] minutes).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WindowStats {
    /// Contacts answered (offer accepted).
    pub answered: u32,
    /// Of those, answered within the service-level threshold.
    pub answered_within_threshold: u32,
    /// Contacts abandoned.
    pub abandoned: u32,
    /// Service level: answered within threshold ÷ (answered + abandoned after the threshold);
    /// `None` with no such contacts.
    pub service_level: Option<f64>,
    /// Average speed of answer.
    pub average_speed_of_answer: Option<Millis>,
    /// Abandoned ÷ (answered + abandoned).
    pub abandonment_rate: Option<f64>,
}

/// One queue: a tenant's channel.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueStats {
    /// The tenant.
    pub tenant: TenantId,
    /// The channel.
    pub channel: Channel,
    /// Contacts waiting for an answer (queued or on offer).
    pub waiting: u32,
    /// How long the longest-waiting one has waited.
    pub oldest_wait: Millis,
    /// Service-level threshold of the policy.
    pub threshold: Millis,
    /// Service-level target of the policy, in percent.
    pub target_pct: u8,
    /// Contacts received since start.
    pub received_total: u64,
    /// Offers made since start.
    pub offered_total: u64,
    /// Contacts answered since start.
    pub answered_total: u64,
    /// Of those, answered by outsourced pools.
    pub answered_outsourced_total: u64,
    /// Contacts abandoned since start.
    pub abandoned_total: u64,
    /// Contacts overflowed to outsourced pools since start.
    pub overflowed_total: u64,
    /// Contacts completed since start.
    pub completed_total: u64,
    /// The sliding window.
    pub window: WindowStats,
}

/// Agents of a pool by reported state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentCounts {
    /// Logged out.
    pub offline: u32,
    /// Ready with nothing in hand.
    pub ready: u32,
    /// Not ready.
    pub not_ready: u32,
    /// Holding offered or accepted work.
    pub busy: u32,
    /// Only wrap-up in hand.
    pub wrap_up: u32,
}

/// One pool.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolStats {
    /// The pool.
    pub pool: PoolId,
    /// The tenant it serves.
    pub tenant: TenantId,
    /// In-house or outsourced.
    pub kind: PoolKind,
    /// Whether it is within its opening hours.
    pub open: bool,
    /// Whether the provider offers capacity rather than agents the router sees.
    pub capacity_level: bool,
    /// Agents by state (a capacity-level pool counts none).
    pub agents: AgentCounts,
    /// Contacts offered or in service.
    pub load: u32,
    /// Capacity units in use.
    pub units_in_use: u64,
    /// Capacity units of logged-in agents.
    pub units_staffed: u64,
    /// Units in use ÷ units staffed; `None` with nobody staffed.
    pub occupancy: Option<f64>,
}

/// Everything the engine reports, as of `at`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatsSnapshot {
    /// When the snapshot was taken (engine time).
    pub at: Millis,
    /// Per tenant and channel.
    pub queues: Vec<QueueStats>,
    /// Per pool.
    pub pools: Vec<PoolStats>,
}

/// A handle other threads read statistics through: each read is a lock-free load of the
/// latest published snapshot.
#[derive(Clone, Default)]
pub struct StatsReader(Arc<ArcSwap<StatsSnapshot>>);

impl StatsReader {
    /// The latest published snapshot.
    pub fn load(&self) -> Arc<StatsSnapshot> {
        self.0.load_full()
    }
}

impl Engine {
    /// A snapshot of every queue's and pool's figures now.
    pub fn stats(&self) -> StatsSnapshot {
        // The oldest waiting contact per queue, found by a scan rather than kept on every
        // decision: snapshots are rare, decisions are not.
        let mut oldest: Vec<Option<Millis>> = vec![None; self.tenants.len() * Channel::COUNT];
        for (_, contact) in self.contacts.iter().filter(|(_, c)| c.waiting) {
            let slot = &mut oldest[contact.tenant as usize * Channel::COUNT + contact.channel.index()];
            *slot = Some(slot.map_or(contact.routable_since, |o| o.min(contact.routable_since)));
        }
        let mut queues = Vec::new();
        for (t, tenant) in self.tenants.iter().enumerate() {
            for channel in Channel::ALL {
                let book = &self.stats.tenants[t].1[channel.index()];
                let oldest_wait = oldest[t * Channel::COUNT + channel.index()]
                    .map_or(0, |since| self.now.saturating_sub(since));
                queues.push(QueueStats {
                    tenant: tenant.id,
                    channel,
                    waiting: tenant.waiting[channel.index()],
                    oldest_wait,
                    threshold: book.threshold,
                    target_pct: book.target_pct,
                    received_total: book.received,
                    offered_total: book.offered,
                    answered_total: book.answered,
                    answered_outsourced_total: book.answered_outsourced,
                    abandoned_total: book.abandoned,
                    overflowed_total: book.overflowed,
                    completed_total: book.completed,
                    window: window_stats(book, self.now),
                });
            }
        }
        let pools = self
            .pools
            .iter()
            .map(|(_, pool)| {
                let mut agents = AgentCounts::default();
                let (mut units_in_use, mut units_staffed) = (0u64, 0u64);
                for &a in &pool.agents {
                    let agent = &self.agents[a];
                    units_in_use += u64::from(agent.used);
                    if agent.presence != Presence::Offline && pool.open {
                        units_staffed += u64::from(agent.capacity.total);
                    }
                    if let crate::event::Target::Pool(_) = agent.target {
                        continue;
                    }
                    match agent.reported {
                        AgentState::Offline => agents.offline += 1,
                        AgentState::Ready => agents.ready += 1,
                        AgentState::NotReady(_) => agents.not_ready += 1,
                        AgentState::Busy => agents.busy += 1,
                        AgentState::WrapUp => agents.wrap_up += 1,
                    }
                }
                PoolStats {
                    pool: pool.config.id,
                    tenant: pool.config.tenant,
                    kind: pool.config.kind,
                    open: pool.open,
                    capacity_level: matches!(pool.config.mode, crate::config::PoolMode::CapacityLevel { .. }),
                    agents,
                    load: pool.load,
                    units_in_use,
                    units_staffed,
                    occupancy: (units_staffed > 0).then(|| units_in_use as f64 / units_staffed as f64),
                }
            })
            .collect();
        StatsSnapshot { at: self.now, queues, pools }
    }

    /// A reader for statistics published by [`publish_stats`](Self::publish_stats).
    pub fn stats_reader(&self) -> StatsReader {
        self.shared_stats.clone()
    }

    /// Takes a snapshot and makes it the one every [`StatsReader`] sees. Call it on a
    /// schedule (say once a second), not per decision: it allocates.
    pub fn publish_stats(&self) {
        self.shared_stats.0.store(Arc::new(self.stats()));
    }
}

fn window_stats(book: &QueueBook, now: Millis) -> WindowStats {
    let minute = now / WINDOW_BUCKET;
    let live =
        book.window.iter().filter(|b| b.minute + (WINDOW_BUCKETS as u64) > minute && b.minute <= minute);
    let mut sum = Bucket::default();
    for b in live {
        sum.answered += b.answered;
        sum.answered_within += b.answered_within;
        sum.abandoned += b.abandoned;
        sum.abandoned_after += b.abandoned_after;
        sum.wait_sum += b.wait_sum;
    }
    let sl_base = sum.answered + sum.abandoned_after;
    let all = sum.answered + sum.abandoned;
    WindowStats {
        answered: sum.answered,
        answered_within_threshold: sum.answered_within,
        abandoned: sum.abandoned,
        service_level: (sl_base > 0).then(|| f64::from(sum.answered_within) / f64::from(sl_base)),
        average_speed_of_answer: (sum.answered > 0).then(|| sum.wait_sum / u64::from(sum.answered)),
        abandonment_rate: (all > 0).then(|| f64::from(sum.abandoned) / f64::from(all)),
    }
}
