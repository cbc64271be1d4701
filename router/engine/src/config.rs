//! Configuration the engine routes by: tenant policies, pools and agents.
//!
//! These are validated runtime types; the service's serde config converts into them.

use crate::hours::OpeningHours;
use crate::ids::{Channel, Languages, Millis, PoolId, ProviderId, Segment, SkillLevel, TenantId};

/// How the agent for a contact is chosen among the qualified agents with room.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// The agent whose workload changed least recently (last offer or last release) goes first.
    #[default]
    LongestIdle,
    /// The agent using the fewest capacity units goes first; ties by longest idle.
    LeastOccupied,
    /// The agent with the highest summed level in the contact's skills goes first; ties by
    /// longest idle.
    BestProficiency,
    /// The agent offered a contact least recently goes first, however long it was busy.
    RoundRobin,
}

/// One step of the "bullseye": what widens once a contact has waited `after` since it became
/// routable.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RelaxStep {
    /// Wait (since the contact became routable) after which the step applies.
    pub after: Millis,
    /// What the step widens.
    pub action: RelaxAction,
}

/// What a relaxation step widens.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RelaxAction {
    /// Stop requiring the contact's preferred skills. Preferred skills are required only while
    /// a policy has this step and it has not yet fired.
    DropPreferredSkills,
    /// Lower every required skill's minimum level by this much (never below 1).
    LowerRequiredLevels(u8),
    /// Allow outsourced pools as well as in-house ones.
    AllowOutsourced,
}

/// When contacts overflow from in-house pools to outsourced pools.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct OverflowPolicy {
    /// Overflow a contact that has waited this long.
    pub after_wait: Option<Millis>,
    /// Overflow a contact on arrival when its estimated wait exceeds this.
    pub estimated_wait_above: Option<Millis>,
    /// Overflow a contact on arrival when in-house occupancy on its channel exceeds this
    /// percentage (0–100).
    pub inhouse_occupancy_above_pct: Option<u8>,
    /// Overflow contacts while every in-house pool of the tenant is closed.
    pub when_inhouse_closed: bool,
    /// Send this percentage (0–100) of new contacts straight to outsourced pools.
    pub outsourced_split_pct: u8,
}

/// How one tenant routes one channel.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChannelPolicy {
    /// Service-level target: answered within this wait…
    pub service_level_threshold: Millis,
    /// …for this percentage of contacts (reported against, not enforced).
    pub service_level_target_pct: u8,
    /// Agent-selection strategy.
    pub strategy: Strategy,
    /// Priority aging: one priority point is worth this much waiting. `None` is strict
    /// priority (higher priority always first, then first come first served).
    pub aging_step: Option<Millis>,
    /// Relaxation steps, in order of `after`.
    pub relaxation: Vec<RelaxStep>,
    /// Overflow to outsourced pools.
    pub overflow: OverflowPolicy,
    /// How long an agent has to accept an offer.
    pub offer_timeout: Millis,
    /// Wrap-up after completion before the capacity frees (ended early by wrap-up done).
    pub wrap_up: Millis,
    /// After this many missed (expired) offers in a row an agent is set not ready.
    /// 0 disables the rule.
    pub max_missed_offers: u8,
    /// Handle time assumed by the wait estimator until enough have been observed.
    pub default_handle_time: Millis,
}

impl Default for ChannelPolicy {
    fn default() -> Self {
        ChannelPolicy {
            service_level_threshold: 20_000,
            service_level_target_pct: 80,
            strategy: Strategy::LongestIdle,
            aging_step: None,
            relaxation: Vec::new(),
            overflow: OverflowPolicy::default(),
            offer_timeout: 15_000,
            wrap_up: 0,
            max_missed_offers: 3,
            default_handle_time: 300_000,
        }
    }
}

/// A tenant's routing policy.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct TenantPolicy {
    /// The tenant.
    pub tenant: TenantId,
    /// Per channel, indexed by [`Channel::index`].
    pub channels: [ChannelPolicy; Channel::COUNT],
    /// Priority points added per customer segment (new, regular, VIP).
    pub segment_boost: [u8; Segment::COUNT],
}

impl TenantPolicy {
    /// The policy for one channel.
    pub fn channel(&self, channel: Channel) -> &ChannelPolicy {
        &self.channels[channel.index()]
    }
}

/// Who runs a pool.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolKind {
    /// The tenant's own agents.
    InHouse,
    /// An outsourcing provider's agents, used on overflow.
    Outsourced(ProviderId),
}

/// How the router hands work to a pool.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub enum PoolMode {
    /// The router picks the agent.
    AgentLevel,
    /// The provider declares a capacity and assigns internally; the router leases it contacts
    /// that need at most these skills and languages.
    CapacityLevel {
        /// Skills the provider's staff cover, with levels.
        skills: Vec<SkillLevel>,
        /// Languages the provider's staff cover.
        languages: Languages,
    },
}

/// A pool of agents.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct PoolConfig {
    /// The pool.
    pub id: PoolId,
    /// The tenant whose contacts it serves.
    pub tenant: TenantId,
    /// In-house or outsourced.
    pub kind: PoolKind,
    /// Agent-level or capacity-level.
    pub mode: PoolMode,
    /// Opening hours; `None` is always open.
    pub hours: Option<OpeningHours>,
    /// At most this many contacts offered or in service in the pool at once.
    pub max_concurrent: Option<u32>,
}

/// What an agent (or a capacity-level pool) can hold at once.
///
/// A contact on channel `c` fits when fewer than `per_channel[c]` of that channel are held and
/// the units in use plus `weight[c]` stay within `total`: "1 voice, or up to 3 chats and 2
/// emails" is `per_channel = [1, 2, 0, 3]`, `weight = [6, 1, 1, 2]`, `total = 6`.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Capacity {
    /// Maximum contacts per channel, indexed by [`Channel::index`].
    pub per_channel: [u16; Channel::COUNT],
    /// Units one contact of each channel takes.
    pub weight: [u16; Channel::COUNT],
    /// Units available in all.
    pub total: u16,
}

impl Capacity {
    /// One contact of one channel at a time.
    pub fn single(channel: Channel) -> Self {
        let mut per_channel = [0; Channel::COUNT];
        per_channel[channel.index()] = 1;
        Capacity { per_channel, weight: [1; Channel::COUNT], total: 1 }
    }

    /// `n` contacts of any channels, each taking one unit.
    pub fn uniform(n: u16) -> Self {
        Capacity { per_channel: [n; Channel::COUNT], weight: [1; Channel::COUNT], total: n }
    }
}

/// An agent's routing profile.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct AgentConfig {
    /// The agent.
    pub id: crate::ids::AgentId,
    /// The agent-level pool it belongs to (which gives its tenant).
    pub pool: PoolId,
    /// Skills with proficiency levels 1–5; each skill at most once.
    pub skills: Vec<SkillLevel>,
    /// Languages the agent works in.
    pub languages: Languages,
    /// What the agent can hold at once.
    pub capacity: Capacity,
}
