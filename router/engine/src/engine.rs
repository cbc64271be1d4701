//! The engine: state, the input dispatcher and the lifecycle of agents, pools and contacts.
//!
//! Matching (who gets what) lives in `routing.rs`; this file keeps the books.

use rustc_hash::FxHashMap;

use crate::config::{AgentConfig, Capacity, PoolConfig, PoolKind, PoolMode, RelaxAction, TenantPolicy};
use crate::event::{
    AgentState, ContactSpec, Input, NOT_READY_MISSED_OFFERS, Output, Rejection, RequeueReason, RescindReason,
    SkillList, Target,
};
use crate::ids::{
    AgentId, Channel, ContactId, Languages, MAX_LANGUAGES, MAX_LEVEL, MAX_SKILLS, Millis, PoolId,
    ReservationId, SkillLevel, TenantId,
};
use crate::queue::{Group, GroupKey, Head, HeapSlots, Membership, Node, Scope};
use crate::routing::{Arrival, LANE_WRAP_UPS, timer_lane};
use crate::slab::{NIL, Slab};
use crate::stats::{StatsBook, StatsReader};
use crate::timers::{TimerKind, Timers};

/// Engine-wide settings.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// How often queue positions and estimated waits are refreshed; 0 turns refreshes off.
    pub status_interval: Millis,
    /// Contacts to reserve room for, so the hot path does not grow tables.
    pub expected_contacts: usize,
    /// Agents to reserve room for.
    pub expected_agents: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { status_interval: 5_000, expected_contacts: 1024, expected_agents: 1024 }
    }
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Presence {
    Offline,
    Ready,
    NotReady(u16),
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Tenant {
    pub id: TenantId,
    pub policy: Option<TenantPolicy>,
    pub pools: Vec<u32>,
    pub groups: Vec<u32>,
    /// Percentage-split accumulators per channel.
    pub split: [u8; Channel::COUNT],
    /// Units in use by in-house agents, and units of logged-in in-house agents.
    pub inhouse_used: u64,
    pub inhouse_units: u64,
    pub inhouse_pools: u32,
    pub inhouse_open: u32,
    /// Contacts waiting for an answer (queued or offered) per channel.
    pub waiting: [u32; Channel::COUNT],
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Pool {
    pub config: PoolConfig,
    pub tenant: u32,
    pub open: bool,
    /// Contacts offered or in service.
    pub load: u32,
    /// Agents in join order (for a capacity-level pool: its lease agent).
    pub agents: Vec<u32>,
    pub hours_generation: u64,
}

impl Pool {
    pub(crate) fn has_room(&self) -> bool {
        self.config.max_concurrent.is_none_or(|max| self.load < max)
    }

    pub(crate) fn is_inhouse(&self) -> bool {
        self.config.kind == PoolKind::InHouse
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Agent {
    pub external: AgentId,
    pub target: Target,
    pub pool: u32,
    pub tenant: u32,
    pub skills: Vec<SkillLevel>,
    pub languages: Languages,
    pub capacity: Capacity,
    pub presence: Presence,
    pub load: [u16; Channel::COUNT],
    pub used: u16,
    /// Offered and accepted reservations held.
    pub active: u16,
    /// Reservations in wrap-up.
    pub wrapping: u16,
    pub idle_key: u64,
    pub offer_key: u64,
    pub missed: u8,
    /// Set when its load or keys changed and its list nodes have not been put in place yet.
    pub dirty: bool,
    pub memberships: Vec<Membership>,
    pub reservations: Vec<u32>,
    pub reported: AgentState,
    /// Whether its slots count in its groups' staffing.
    pub staffed: bool,
}

impl Agent {
    pub(crate) fn has_room(&self, channel: Channel) -> bool {
        let c = channel.index();
        self.load[c] < self.capacity.per_channel[c]
            && u32::from(self.used) + u32::from(self.capacity.weight[c]) <= u32::from(self.capacity.total)
    }

    /// Whether what it holds fits its capacity (after a capacity was lowered, it may not).
    pub(crate) fn fits(&self) -> bool {
        self.used <= self.capacity.total
            && self.load.iter().zip(self.capacity.per_channel).all(|(&held, max)| held <= max)
    }

    /// Contacts of `channel` it can hold at once.
    pub(crate) fn slots(&self, channel: Channel) -> u32 {
        let c = channel.index();
        let by_units = match self.capacity.weight[c] {
            0 => u32::from(self.capacity.per_channel[c]),
            w => u32::from(self.capacity.total / w),
        };
        by_units.min(u32::from(self.capacity.per_channel[c]))
    }

    pub(crate) fn level(&self, skill: crate::ids::SkillId) -> u8 {
        self.skills.binary_search_by_key(&skill, |s| s.skill).map_or(0, |i| self.skills[i].level)
    }

    fn state(&self) -> AgentState {
        match self.presence {
            Presence::Offline => AgentState::Offline,
            _ if self.active > 0 => AgentState::Busy,
            _ if self.wrapping > 0 => AgentState::WrapUp,
            Presence::NotReady(reason) => AgentState::NotReady(reason),
            Presence::Ready => AgentState::Ready,
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ContactState {
    Scheduled,
    Queued,
    Offered(u32),
    Accepted(u32),
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Contact {
    pub external: ContactId,
    pub tenant: u32,
    pub channel: Channel,
    /// Required skills first, then preferred ones.
    pub skills: SkillList,
    pub required_len: u8,
    pub language: Option<crate::ids::LanguageId>,
    pub preferred_agent: Option<AgentId>,
    pub preferred_wait: Millis,
    /// Priority plus segment boost.
    pub priority: u16,
    pub rank: i64,
    pub seq: u64,
    pub routable_since: Millis,
    pub state: ContactState,
    pub group: u32,
    pub next_step: u8,
    pub preferred_agent_active: bool,
    pub preferred_skills_active: bool,
    pub level_drop: u8,
    pub scope: Scope,
    /// It has refused or missed some agent: its exclusions are in [`Engine::exclusions`].
    pub picky: bool,
    /// Counted among its queue's waiting contacts.
    pub waiting: bool,
    pub last_position: u32,
    /// The wait estimate it was last told; [`NO_ESTIMATE`] for none (kept as a plain
    /// number, which saves 8 bytes per contact).
    pub last_estimate: Millis,
}

/// [`Contact::last_estimate`] when the contact was told no estimate.
pub(crate) const NO_ESTIMATE: Millis = Millis::MAX;

impl Contact {
    /// The wait estimate it was last told, if any.
    pub(crate) fn told_estimate(&self) -> Option<Millis> {
        (self.last_estimate != NO_ESTIMATE).then_some(self.last_estimate)
    }

    pub(crate) fn key(&self) -> (i64, u64) {
        (self.rank, self.seq)
    }
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReservationState {
    Offered,
    Accepted,
    WrapUp,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Reservation {
    pub contact: u32,
    /// Capacity units it holds (the channel's weight when offered).
    pub weight: u16,
    pub contact_id: ContactId,
    pub agent: u32,
    pub channel: Channel,
    pub group: u32,
    pub state: ReservationState,
    pub accepted_at: Millis,
}

/// The routing engine. See the crate README for its exact semantics.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) now: Millis,
    pub(crate) tenants: Vec<Tenant>,
    pub(crate) tenant_index: FxHashMap<TenantId, u32>,
    pub(crate) pools: Slab<Pool>,
    pub(crate) pool_index: FxHashMap<PoolId, u32>,
    pub(crate) agents: Slab<Agent>,
    pub(crate) agent_index: FxHashMap<AgentId, u32>,
    pub(crate) contacts: Slab<Contact>,
    pub(crate) contact_index: FxHashMap<ContactId, u32>,
    /// Per contact slot, its place in its group's heap: dense, so heap moves touch no contact.
    pub(crate) heap_pos: HeapSlots,
    /// The agents and pools each picky contact (by slot) has refused or missed; most contacts
    /// have none, so they are kept aside rather than in every contact.
    pub(crate) exclusions: FxHashMap<u32, Vec<Target>>,
    pub(crate) reservations: Slab<Reservation>,
    pub(crate) groups: Vec<Group>,
    /// Each group's best waiting contact, dense (see [`Head`]).
    pub(crate) heads: Vec<Head>,
    /// Per agent slot, the channels it may be offered on now (bits); dense for list walks.
    pub(crate) avail: Vec<u8>,
    pub(crate) group_index: FxHashMap<GroupKey, u32>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) free_nodes: Vec<u32>,
    pub(crate) timers: Timers,
    /// Source of agents' idle and offer keys.
    pub(crate) counter: u64,
    /// Source of contacts' arrival sequence.
    pub(crate) seq: u64,
    pub(crate) stats: StatsBook,
    #[serde(skip)]
    pub(crate) shared_stats: StatsReader,
    /// Reused buffer for status refreshes.
    #[serde(skip)]
    pub(crate) order_scratch: Vec<crate::queue::Waiting>,
    #[serde(skip)]
    pub(crate) scratch: Vec<u32>,
}

impl Engine {
    /// An empty engine at time 0.
    pub fn new(config: EngineConfig) -> Self {
        let mut timers = Timers::with_capacity(config.expected_contacts);
        if config.status_interval > 0 {
            timers.schedule(config.status_interval, TimerKind::StatusRefresh);
        }
        let contacts = config.expected_contacts;
        let agents = config.expected_agents;
        Engine {
            now: 0,
            tenants: Vec::new(),
            tenant_index: FxHashMap::default(),
            pools: Slab::with_capacity(16),
            pool_index: FxHashMap::default(),
            agents: Slab::with_capacity(agents),
            agent_index: hash_map_with_capacity(agents),
            contacts: Slab::with_capacity(contacts),
            contact_index: hash_map_with_capacity(contacts),
            heap_pos: HeapSlots(Vec::with_capacity(contacts)),
            exclusions: FxHashMap::default(),
            reservations: Slab::with_capacity(agents),
            groups: Vec::new(),
            heads: Vec::new(),
            avail: Vec::with_capacity(agents),
            group_index: FxHashMap::default(),
            nodes: Vec::with_capacity(agents * 4),
            free_nodes: Vec::new(),
            timers,
            counter: 0,
            seq: 0,
            stats: StatsBook::default(),
            shared_stats: StatsReader::default(),
            order_scratch: Vec::new(),
            scratch: Vec::with_capacity(contacts.min(1 << 16)),
            config,
        }
    }

    /// The engine's current time: the latest `now` it has been given.
    pub fn now(&self) -> Millis {
        self.now
    }

    /// When the earliest pending timer is due (some may be stale and fire as no-ops).
    pub fn next_due(&self) -> Option<Millis> {
        self.timers.next_due()
    }

    /// Who holds a live reservation (the agent or capacity-level pool it was offered to).
    pub fn reservation_target(&self, id: ReservationId) -> Option<Target> {
        self.reservation(id).ok().map(|r| self.agents[self.reservations[r].agent].target)
    }

    /// The kind of a pool the engine holds.
    pub fn pool_kind(&self, pool: PoolId) -> Option<PoolKind> {
        self.pool_index.get(&pool).map(|&p| self.pools[p].config.kind)
    }

    /// Contacts held: scheduled, waiting, offered or in service.
    pub fn contact_count(&self) -> usize {
        self.contacts.live()
    }

    /// Agents known (including one lease agent per capacity-level pool).
    pub fn agent_count(&self) -> usize {
        self.agents.live()
    }

    /// Requirement groups created so far.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Agent-in-group memberships: how many (agent, group) pairs the lists index. Each costs a
    /// list node; it is what per-agent memory grows with.
    pub fn membership_count(&self) -> usize {
        self.nodes.len() - self.free_nodes.len()
    }

    /// Fires the timers due by `now`, then applies `input`, appending every decision and
    /// notification to `out`.
    pub fn apply(&mut self, now: Millis, input: &Input, out: &mut Vec<Output>) {
        let now = now.max(self.now);
        while let Some((at, kind)) = self.timers.pop_due(now) {
            self.now = at;
            self.fire(kind, now, out);
        }
        self.now = now;
        if let Err(rejection) = self.dispatch(input, out) {
            out.push(Output::Rejected(rejection));
        }
    }

    fn dispatch(&mut self, input: &Input, out: &mut Vec<Output>) -> Result<(), Rejection> {
        match input {
            Input::UpsertPolicy(policy) => self.upsert_policy(policy, out),
            Input::RemovePolicy(tenant) => self.remove_policy(*tenant),
            Input::UpsertPool(pool) => self.upsert_pool(pool, out),
            Input::RemovePool(pool) => self.remove_pool(*pool),
            Input::PoolCapacity(pool, capacity) => self.pool_capacity(*pool, *capacity, out),
            Input::UpsertAgent(agent) => self.upsert_agent(agent, out),
            Input::RemoveAgent(agent) => self.remove_agent(*agent, out),
            Input::LogIn(agent) => self.log_in(*agent, out),
            Input::Ready(agent) => self.ready(*agent, out),
            Input::NotReady(agent, reason) => self.not_ready(*agent, *reason, out),
            Input::LogOut(agent) => self.log_out(*agent, out).map(|_| ()),
            Input::SetCapacity(agent, capacity) => self.set_capacity(*agent, *capacity, out),
            Input::Enqueue(spec) => self.enqueue(spec, out),
            Input::Cancel(contact) => self.cancel(*contact, out),
            Input::Accept(reservation) => self.accept(*reservation, out),
            Input::Reject(reservation) => self.reject(*reservation, out),
            Input::Complete(reservation) => self.complete(*reservation, out),
            Input::WrapUpDone(reservation) => self.wrap_up_done(*reservation, out),
            Input::Tick => Ok(()),
        }
    }

    /// Fires one timer, at its due time; `until` is the time the engine is catching up to.
    fn fire(&mut self, kind: TimerKind, until: Millis, out: &mut Vec<Output>) {
        match kind {
            TimerKind::OfferDeadline { reservation, generation } => {
                if self
                    .reservations
                    .get_live(reservation, generation)
                    .is_some_and(|r| r.state == ReservationState::Offered)
                {
                    self.offer_expired(reservation, out);
                }
            }
            TimerKind::WrapUpEnd { reservation, generation } => {
                if self
                    .reservations
                    .get_live(reservation, generation)
                    .is_some_and(|r| r.state == ReservationState::WrapUp)
                {
                    self.finish_reservation(reservation, out);
                }
            }
            TimerKind::NotBefore { contact, generation } => {
                if self
                    .contacts
                    .get_live(contact, generation)
                    .is_some_and(|c| c.state == ContactState::Scheduled)
                {
                    self.become_routable(contact, out);
                }
            }
            TimerKind::PreferredAgentEnd { contact, generation } => {
                if self.contacts.get_live(contact, generation).is_some() {
                    self.end_preferred_agent(contact, out);
                }
            }
            TimerKind::Relax { contact, generation, step } => {
                if self.contacts.get_live(contact, generation).is_some_and(|c| c.next_step == step) {
                    self.relax(contact, out);
                }
            }
            TimerKind::OverflowWait { contact, generation } => {
                if self.contacts.get_live(contact, generation).is_some() {
                    self.overflow(contact, crate::event::OverflowReason::WaitedTooLong, out);
                }
            }
            TimerKind::PoolHours { pool, generation } => {
                if self.pools.get(pool).is_some_and(|p| p.hours_generation == generation) {
                    self.pool_hours(pool, out);
                }
            }
            TimerKind::Lane(_) => unreachable!("lanes are resolved inside the timers"),
            TimerKind::StatusRefresh => {
                self.refresh_statuses(out);
                // After a long jump in time, refresh once more at the end rather than at every
                // interval in between.
                let next = (self.now + self.config.status_interval).max(until);
                self.timers.schedule(next, TimerKind::StatusRefresh);
            }
        }
    }

    // ----- configuration -------------------------------------------------------------------

    fn tenant_of(&self, tenant: TenantId) -> Result<u32, Rejection> {
        self.tenant_index
            .get(&tenant)
            .copied()
            .filter(|&t| self.tenants[t as usize].policy.is_some())
            .ok_or(Rejection::UnknownTenant(tenant))
    }

    pub(crate) fn policy(&self, tenant: u32) -> &TenantPolicy {
        self.tenants[tenant as usize].policy.as_ref().expect("tenants in use keep a policy")
    }

    fn upsert_policy(&mut self, policy: &TenantPolicy, _out: &mut Vec<Output>) -> Result<(), Rejection> {
        let mut policy = policy.clone();
        for channel in &mut policy.channels {
            channel.relaxation.sort_by_key(|s| s.after);
        }
        let t = match self.tenant_index.get(&policy.tenant) {
            Some(&t) => t,
            None => {
                let t = self.tenants.len() as u32;
                self.tenants.push(Tenant {
                    id: policy.tenant,
                    policy: None,
                    pools: Vec::new(),
                    groups: Vec::new(),
                    split: [0; Channel::COUNT],
                    inhouse_used: 0,
                    inhouse_units: 0,
                    inhouse_pools: 0,
                    inhouse_open: 0,
                    waiting: [0; Channel::COUNT],
                });
                self.tenant_index.insert(policy.tenant, t);
                self.stats.add_tenant(policy.tenant);
                t
            }
        };
        let strategies_changed = self.tenants[t as usize].policy.as_ref().is_some_and(|old| {
            Channel::ALL.iter().any(|&c| old.channel(c).strategy != policy.channel(c).strategy)
        });
        self.stats.set_targets(t, &policy);
        self.tenants[t as usize].policy = Some(policy);
        if strategies_changed {
            self.rebuild_lists(t);
        }
        Ok(())
    }

    fn remove_policy(&mut self, tenant: TenantId) -> Result<(), Rejection> {
        let t = self.tenant_of(tenant)?;
        let busy =
            !self.tenants[t as usize].pools.is_empty() || self.contacts.iter().any(|(_, c)| c.tenant == t);
        if busy {
            return Err(Rejection::InUse);
        }
        self.tenants[t as usize].policy = None;
        Ok(())
    }

    fn upsert_pool(&mut self, config: &PoolConfig, out: &mut Vec<Output>) -> Result<(), Rejection> {
        let t = self.tenant_of(config.tenant)?;
        if let PoolMode::CapacityLevel { skills, .. } = &config.mode {
            validate_skills(skills)?;
        }
        let p = match self.pool_index.get(&config.id).copied() {
            Some(p) => {
                let pool = &self.pools[p];
                let mode_changed =
                    std::mem::discriminant(&pool.config.mode) != std::mem::discriminant(&config.mode);
                let kind_changed = pool.config.kind != config.kind;
                // A capacity-level pool always holds its lease agent, so its mode never changes
                // in place; nor does a pool's kind while it holds work.
                if pool.tenant != t
                    || (mode_changed && !pool.agents.is_empty())
                    || (kind_changed && pool.load > 0)
                {
                    return Err(Rejection::InvalidPool);
                }
                // Take every agent out of the books, change the pool, and put them back with
                // memberships recomputed (kind and a provider's skills decide them).
                let members = pool.agents.clone();
                for &a in &members {
                    self.detach_agent(a);
                    self.drop_memberships(a);
                }
                self.count_inhouse_pool(p, false);
                self.counter += 1;
                let pool = &mut self.pools[p];
                pool.config = config.clone();
                pool.hours_generation = self.counter;
                for &a in &members {
                    self.add_memberships(a);
                }
                p
            }
            None => {
                let (p, _) = self.pools.insert(Pool {
                    config: config.clone(),
                    tenant: t,
                    open: true,
                    load: 0,
                    agents: Vec::new(),
                    hours_generation: self.counter,
                });
                self.pool_index.insert(config.id, p);
                self.tenants[t as usize].pools.push(p);
                p
            }
        };
        let open = config.hours.as_ref().is_none_or(|h| h.is_open(self.now));
        self.pools[p].open = open;
        self.count_inhouse_pool(p, true);
        self.schedule_pool_hours(p);
        if let PoolMode::CapacityLevel { skills, languages } = &config.mode {
            let mut skills = skills.clone();
            skills.sort();
            match self.pools[p].agents.first().copied() {
                Some(a) => {
                    self.drop_memberships(a);
                    let agent = &mut self.agents[a];
                    agent.skills = skills;
                    agent.languages = *languages;
                    self.add_memberships(a);
                }
                None => {
                    let a = self.new_agent(
                        AgentId(u64::MAX - u64::from(config.id.0)),
                        Target::Pool(config.id),
                        p,
                        skills,
                        *languages,
                        Capacity::uniform(0),
                    );
                    self.agents[a].presence = Presence::Ready;
                    self.agents[a].reported = AgentState::Ready;
                    self.pools[p].agents.push(a);
                }
            }
        }
        let members = self.pools[p].agents.clone();
        for &a in &members {
            self.attach_agent(a);
        }
        for &a in &members {
            self.serve_agent(a, out);
        }
        Ok(())
    }

    fn count_inhouse_pool(&mut self, p: u32, add: bool) {
        let pool = &self.pools[p];
        if !pool.is_inhouse() {
            return;
        }
        let (open, tenant) = (pool.open, &mut self.tenants[pool.tenant as usize]);
        if add {
            tenant.inhouse_pools += 1;
            tenant.inhouse_open += u32::from(open);
        } else {
            tenant.inhouse_pools -= 1;
            tenant.inhouse_open -= u32::from(open);
        }
    }

    fn schedule_pool_hours(&mut self, p: u32) {
        let pool = &self.pools[p];
        let next = pool.config.hours.as_ref().and_then(|h| h.next_change(self.now));
        if let Some(at) = next {
            let generation = pool.hours_generation;
            self.timers.schedule(at, TimerKind::PoolHours { pool: p, generation });
        }
    }

    fn pool_hours(&mut self, p: u32, out: &mut Vec<Output>) {
        let pool = &self.pools[p];
        let open = pool.config.hours.as_ref().is_none_or(|h| h.is_open(self.now));
        let was_open = pool.open;
        let tenant = pool.tenant;
        let inhouse = pool.is_inhouse();
        if open != was_open {
            let members = pool.agents.clone();
            for &a in &members {
                self.detach_agent(a);
            }
            self.count_inhouse_pool(p, false);
            self.pools[p].open = open;
            self.count_inhouse_pool(p, true);
            for &a in &members {
                self.attach_agent(a);
            }
            for &a in &members {
                self.serve_agent(a, out);
            }
            if inhouse && !open && self.tenants[tenant as usize].inhouse_open == 0 {
                self.overflow_waiting_inhouse(tenant, out);
            }
        }
        self.schedule_pool_hours(p);
    }

    fn remove_pool(&mut self, pool: PoolId) -> Result<(), Rejection> {
        let p = *self.pool_index.get(&pool).ok_or(Rejection::UnknownPool(pool))?;
        let capacity_level = matches!(self.pools[p].config.mode, PoolMode::CapacityLevel { .. });
        if self.pools[p].load > 0 || (!capacity_level && !self.pools[p].agents.is_empty()) {
            return Err(Rejection::InUse);
        }
        if let Some(&lease) = self.pools[p].agents.first().filter(|_| capacity_level) {
            self.detach_agent(lease);
            self.drop_memberships(lease);
            self.agents.remove(lease);
        }
        self.count_inhouse_pool(p, false);
        let removed = self.pools.remove(p);
        self.pool_index.remove(&pool);
        self.tenants[removed.tenant as usize].pools.retain(|&x| x != p);
        Ok(())
    }

    fn pool_capacity(
        &mut self,
        pool: PoolId,
        capacity: Capacity,
        out: &mut Vec<Output>,
    ) -> Result<(), Rejection> {
        let p = *self.pool_index.get(&pool).ok_or(Rejection::UnknownPool(pool))?;
        if !matches!(self.pools[p].config.mode, PoolMode::CapacityLevel { .. }) {
            return Err(Rejection::InvalidPool);
        }
        let lease = self.pools[p].agents[0];
        self.detach_agent(lease);
        self.agents[lease].capacity = capacity;
        // Offers beyond the new capacity are withdrawn, newest first; accepted work stays.
        let mut withdrawn = std::mem::take(&mut self.scratch);
        withdrawn.clear();
        while !self.agents[lease].fits() {
            let agent = &self.agents[lease];
            let newest = agent
                .reservations
                .iter()
                .rev()
                .copied()
                .find(|&r| self.reservations[r].state == ReservationState::Offered);
            let Some(r) = newest else { break };
            let contact = self.reservations[r].contact;
            out.push(Output::OfferRescinded {
                reservation: self.reservation_id(r),
                contact: self.contacts[contact].external,
                target: Target::Pool(pool),
                reason: RescindReason::PoolShrank,
            });
            out.push(Output::Requeued {
                contact: self.contacts[contact].external,
                reason: RequeueReason::PoolShrank,
            });
            self.release(r);
            self.contacts[contact].state = ContactState::Queued;
            withdrawn.push(contact);
        }
        self.attach_agent(lease);
        for &c in &withdrawn {
            self.contacts[c].group = self.group_for(c);
            self.route_contact(c, Arrival::Returning, out);
        }
        self.scratch = withdrawn;
        self.serve_agent(lease, out);
        Ok(())
    }

    fn new_agent(
        &mut self,
        external: AgentId,
        target: Target,
        pool: u32,
        skills: Vec<SkillLevel>,
        languages: Languages,
        capacity: Capacity,
    ) -> u32 {
        let tenant = self.pools[pool].tenant;
        let (a, _) = self.agents.insert(Agent {
            external,
            target,
            pool,
            tenant,
            skills,
            languages,
            capacity,
            presence: Presence::Offline,
            load: [0; Channel::COUNT],
            used: 0,
            active: 0,
            wrapping: 0,
            idle_key: 0,
            offer_key: 0,
            missed: 0,
            dirty: false,
            memberships: Vec::new(),
            reservations: Vec::new(),
            reported: AgentState::Offline,
            staffed: false,
        });
        if let Target::Agent(_) = target {
            self.agent_index.insert(external, a);
        }
        if self.avail.len() <= a as usize {
            self.avail.resize(a as usize + 1, 0);
        }
        self.add_memberships(a);
        a
    }

    fn upsert_agent(&mut self, config: &AgentConfig, out: &mut Vec<Output>) -> Result<(), Rejection> {
        validate_skills(&config.skills)?;
        if config.capacity.total == 0 {
            return Err(Rejection::InvalidCapacity);
        }
        let p = *self.pool_index.get(&config.pool).ok_or(Rejection::UnknownPool(config.pool))?;
        if !matches!(self.pools[p].config.mode, PoolMode::AgentLevel) {
            return Err(Rejection::InvalidPool);
        }
        let mut skills = config.skills.clone();
        skills.sort();
        let a = match self.agent_index.get(&config.id).copied() {
            Some(a) => {
                let old_pool = self.agents[a].pool;
                if old_pool != p && (self.agents[a].active > 0 || self.agents[a].wrapping > 0) {
                    return Err(Rejection::AgentHasWork(config.id));
                }
                self.detach_agent(a);
                self.drop_memberships(a);
                if old_pool != p {
                    self.pools[old_pool].agents.retain(|&x| x != a);
                    self.pools[p].agents.push(a);
                }
                let tenant = self.pools[p].tenant;
                let agent = &mut self.agents[a];
                agent.pool = p;
                agent.tenant = tenant;
                agent.skills = skills;
                agent.languages = config.languages;
                agent.capacity = config.capacity;
                self.add_memberships(a);
                a
            }
            None => {
                let a = self.new_agent(
                    config.id,
                    Target::Agent(config.id),
                    p,
                    skills,
                    config.languages,
                    config.capacity,
                );
                self.pools[p].agents.push(a);
                a
            }
        };
        self.attach_agent(a);
        self.serve_agent(a, out);
        Ok(())
    }

    fn agent(&self, id: AgentId) -> Result<u32, Rejection> {
        self.agent_index
            .get(&id)
            .copied()
            .filter(|&a| matches!(self.agents[a].target, Target::Agent(_)))
            .ok_or(Rejection::UnknownAgent(id))
    }

    fn remove_agent(&mut self, id: AgentId, out: &mut Vec<Output>) -> Result<(), Rejection> {
        let a = self.agent(id)?;
        self.log_out(id, out)?;
        self.detach_agent(a);
        self.drop_memberships(a);
        let agent = self.agents.remove(a);
        self.pools[agent.pool].agents.retain(|&x| x != a);
        self.agent_index.remove(&id);
        Ok(())
    }

    fn log_in(&mut self, id: AgentId, out: &mut Vec<Output>) -> Result<(), Rejection> {
        let a = self.agent(id)?;
        if self.agents[a].presence == Presence::Offline {
            self.set_presence(a, Presence::NotReady(0), out);
        }
        Ok(())
    }

    fn ready(&mut self, id: AgentId, out: &mut Vec<Output>) -> Result<(), Rejection> {
        let a = self.agent(id)?;
        match self.agents[a].presence {
            Presence::Offline => Err(Rejection::AgentOffline(id)),
            Presence::Ready => Ok(()),
            Presence::NotReady(_) => {
                self.agents[a].missed = 0;
                self.touch_idle(a);
                self.set_presence(a, Presence::Ready, out);
                self.serve_agent(a, out);
                Ok(())
            }
        }
    }

    fn not_ready(&mut self, id: AgentId, reason: u16, out: &mut Vec<Output>) -> Result<(), Rejection> {
        let a = self.agent(id)?;
        if self.agents[a].presence == Presence::Offline {
            return Err(Rejection::AgentOffline(id));
        }
        self.set_presence(a, Presence::NotReady(reason), out);
        Ok(())
    }

    /// Logs an agent out, rescinding its offers and ending its wrap-ups. Returns its index.
    fn log_out(&mut self, id: AgentId, out: &mut Vec<Output>) -> Result<u32, Rejection> {
        let a = self.agent(id)?;
        let has_accepted = self.agents[a]
            .reservations
            .iter()
            .any(|&r| self.reservations[r].state == ReservationState::Accepted);
        if has_accepted {
            return Err(Rejection::AgentHasWork(id));
        }
        if self.agents[a].presence == Presence::Offline {
            return Ok(a);
        }
        // Go offline first, so none of the released contacts comes straight back.
        self.set_presence(a, Presence::Offline, out);
        let mut unblocked = false;
        while let Some(&r) = self.agents[a].reservations.first() {
            let reservation = &self.reservations[r];
            if reservation.state == ReservationState::Offered {
                let (contact, contact_id, target) =
                    (reservation.contact, reservation.contact_id, self.agents[a].target);
                out.push(Output::OfferRescinded {
                    reservation: self.reservation_id(r),
                    contact: contact_id,
                    target,
                    reason: RescindReason::AgentLeft,
                });
                unblocked |= self.release(r);
                self.requeue(contact, RequeueReason::AgentLeft, out);
            } else {
                unblocked |= self.release(r);
            }
        }
        self.after_release(a, unblocked, out);
        Ok(a)
    }

    fn set_capacity(
        &mut self,
        id: AgentId,
        capacity: Capacity,
        out: &mut Vec<Output>,
    ) -> Result<(), Rejection> {
        let a = self.agent(id)?;
        if capacity.total == 0 {
            return Err(Rejection::InvalidCapacity);
        }
        self.detach_agent(a);
        self.agents[a].capacity = capacity;
        self.attach_agent(a);
        self.serve_agent(a, out);
        Ok(())
    }

    fn set_presence(&mut self, a: u32, presence: Presence, out: &mut Vec<Output>) {
        self.detach_agent(a);
        self.agents[a].presence = presence;
        self.attach_agent(a);
        self.report(a, out);
    }

    /// Sends `AgentStateChanged` when the agent's reported state moved.
    pub(crate) fn report(&mut self, a: u32, out: &mut Vec<Output>) {
        let agent = &mut self.agents[a];
        let state = agent.state();
        if state != agent.reported {
            agent.reported = state;
            if let Target::Agent(id) = agent.target {
                out.push(Output::AgentStateChanged { agent: id, state });
            }
        }
    }

    pub(crate) fn touch_idle(&mut self, a: u32) {
        self.counter += 1;
        self.agents[a].idle_key = self.counter;
    }

    // ----- contacts ------------------------------------------------------------------------

    fn enqueue(&mut self, spec: &ContactSpec, out: &mut Vec<Output>) -> Result<(), Rejection> {
        let t = self.tenant_of(spec.tenant)?;
        if self.contact_index.contains_key(&spec.id) {
            return Err(Rejection::DuplicateContact(spec.id));
        }
        validate_skills(spec.required.as_slice())?;
        validate_skills(spec.preferred.as_slice())?;
        if spec.language.is_some_and(|l| l.0 >= MAX_LANGUAGES) {
            return Err(Rejection::InvalidSkill);
        }
        let mut skills = spec.required;
        for &s in spec.preferred.as_slice() {
            skills.push(s).ok_or(Rejection::InvalidSkill)?;
        }
        let policy = self.policy(t);
        let channel_policy = policy.channel(spec.channel);
        let priority = i64::from(spec.priority) + i64::from(policy.segment_boost[spec.segment as usize]);
        let step = channel_policy.aging_step.map_or(STRICT_PRIORITY_STEP, |s| s.max(1) as i64);
        let preferred_skills_active = !spec.preferred.is_empty()
            && channel_policy.relaxation.iter().any(|s| s.action == RelaxAction::DropPreferredSkills);
        // A preference for an agent the engine does not know is no preference.
        let (preferred_agent, preferred_wait) = match spec.preferred_agent {
            Some((agent, wait)) if wait > 0 && self.agent_index.contains_key(&agent) => (Some(agent), wait),
            _ => (None, 0),
        };
        self.seq += 1;
        let (c, generation) = self.contacts.insert(Contact {
            external: spec.id,
            tenant: t,
            channel: spec.channel,
            skills,
            required_len: spec.required.len() as u8,
            language: spec.language,
            preferred_agent,
            preferred_wait,
            priority: priority as u16,
            rank: self.now as i64 - priority * step,
            seq: self.seq,
            routable_since: self.now,
            state: ContactState::Scheduled,
            group: NIL,
            next_step: 0,
            preferred_agent_active: preferred_agent.is_some(),
            preferred_skills_active,
            level_drop: 0,
            scope: Scope::InHouse,
            picky: false,
            waiting: false,
            last_position: 0,
            last_estimate: NO_ESTIMATE,
        });
        self.contact_index.insert(spec.id, c);
        if self.heap_pos.0.len() <= c as usize {
            self.heap_pos.0.resize(c as usize + 1, NIL);
        }
        self.stats.received(t, spec.channel);
        match spec.not_before {
            Some(at) if at > self.now => {
                self.timers.schedule(at, TimerKind::NotBefore { contact: c, generation });
                out.push(Output::Scheduled { contact: spec.id, at });
            }
            _ => self.become_routable(c, out),
        }
        Ok(())
    }

    /// The contact starts waiting: timers for its preferred-agent wait, relaxation and overflow,
    /// the arrival overflow checks, then routing.
    fn become_routable(&mut self, c: u32, out: &mut Vec<Output>) {
        let generation = self.contacts.generation(c);
        let now = self.now;
        let contact = &mut self.contacts[c];
        contact.routable_since = now;
        contact.state = ContactState::Queued;
        let (t, channel, preferred_active, preferred_wait) =
            (contact.tenant, contact.channel, contact.preferred_agent_active, contact.preferred_wait);
        self.set_waiting(c, true);
        if preferred_active {
            self.timers
                .schedule(now + preferred_wait, TimerKind::PreferredAgentEnd { contact: c, generation });
        }
        let policy = self.policy(t).channel(channel);
        let first_step = policy.relaxation.first().map(|s| s.after);
        let overflow = policy.overflow;
        if let Some(after) = first_step {
            self.timers.schedule(now + after, TimerKind::Relax { contact: c, generation, step: 0 });
        }
        if let Some(after) = overflow.after_wait {
            self.timers.schedule(now + after, TimerKind::OverflowWait { contact: c, generation });
        }
        let external = self.contacts[c].external;
        let tenant = &mut self.tenants[t as usize];
        let split = &mut tenant.split[channel.index()];
        *split += overflow.outsourced_split_pct.min(100);
        let arrival_overflow = if *split >= 100 {
            *split -= 100;
            self.contacts[c].scope = Scope::Outsourced;
            Some(crate::event::OverflowReason::Split)
        } else if overflow.when_inhouse_closed && tenant.inhouse_open == 0 {
            Some(crate::event::OverflowReason::InHouseClosed)
        } else if overflow.inhouse_occupancy_above_pct.is_some_and(|limit| {
            tenant.inhouse_used * 100 > u64::from(limit) * tenant.inhouse_units || tenant.inhouse_units == 0
        }) {
            Some(crate::event::OverflowReason::Occupancy)
        } else {
            None
        };
        if let Some(reason) = arrival_overflow {
            if self.contacts[c].scope == Scope::InHouse {
                self.contacts[c].scope = Scope::Any;
            }
            self.stats.overflowed(t, channel);
            out.push(Output::Overflowed { contact: external, reason });
        }
        self.contacts[c].group = self.group_for(c);
        let arrival = if self.contacts[c].seq == self.seq { Arrival::New } else { Arrival::Scheduled };
        self.route_contact(c, arrival, out);
        let contact = &self.contacts[c];
        let too_long = overflow.estimated_wait_above.is_some_and(|limit| {
            contact.state == ContactState::Queued
                && contact.scope == Scope::InHouse
                && contact.told_estimate().is_none_or(|estimate| estimate > limit)
        });
        if too_long {
            self.overflow(c, crate::event::OverflowReason::EstimatedWait, out);
        }
    }

    fn cancel(&mut self, id: ContactId, out: &mut Vec<Output>) -> Result<(), Rejection> {
        let c = *self.contact_index.get(&id).ok_or(Rejection::UnknownContact(id))?;
        let contact = &self.contacts[c];
        let waited = self.now - contact.routable_since;
        let (t, channel) = (contact.tenant, contact.channel);
        let mut released = None;
        match contact.state {
            ContactState::Accepted(_) => return Err(Rejection::ContactInService(id)),
            ContactState::Scheduled => {}
            ContactState::Queued => self.leave_queue(c),
            ContactState::Offered(r) => {
                let agent = self.reservations[r].agent;
                out.push(Output::OfferRescinded {
                    reservation: self.reservation_id(r),
                    contact: id,
                    target: self.agents[agent].target,
                    reason: RescindReason::Abandoned,
                });
                released = Some((agent, self.release(r)));
            }
        }
        self.set_waiting(c, false);
        self.stats.abandoned(self.now, t, channel, waited);
        self.forget_contact(c);
        out.push(Output::Abandoned { contact: id, waited });
        if let Some((agent, unblocked)) = released {
            self.after_release(agent, unblocked, out);
        }
        Ok(())
    }

    /// Counts a contact in or out of its queue's waiting contacts.
    fn set_waiting(&mut self, c: u32, waiting: bool) {
        let contact = &mut self.contacts[c];
        if contact.waiting != waiting {
            contact.waiting = waiting;
            let count = &mut self.tenants[contact.tenant as usize].waiting[contact.channel.index()];
            if waiting {
                *count += 1;
            } else {
                *count -= 1;
            }
        }
    }

    /// Contact `c` is never offered to `target` again.
    fn exclude(&mut self, c: u32, target: Target) {
        self.contacts[c].picky = true;
        self.exclusions.entry(c).or_default().push(target);
    }

    /// Whether contact `c` has refused or missed `target`.
    pub(crate) fn excludes(&self, c: u32, target: Target) -> bool {
        self.contacts[c].picky && self.exclusions.get(&c).is_some_and(|e| e.contains(&target))
    }

    fn forget_contact(&mut self, c: u32) {
        let contact = self.contacts.remove(c);
        self.contact_index.remove(&contact.external);
        if contact.picky {
            self.exclusions.remove(&c);
        }
    }

    // ----- reservations --------------------------------------------------------------------

    pub(crate) fn reservation_id(&self, r: u32) -> ReservationId {
        ReservationId(u64::from(self.reservations.generation(r)) << 32 | u64::from(r))
    }

    fn reservation(&self, id: ReservationId) -> Result<u32, Rejection> {
        let (r, generation) = (id.0 as u32, (id.0 >> 32) as u32);
        self.reservations.get_live(r, generation).map(|_| r).ok_or(Rejection::UnknownReservation(id))
    }

    fn accept(&mut self, id: ReservationId, out: &mut Vec<Output>) -> Result<(), Rejection> {
        let r = self.reservation(id)?;
        let reservation = &mut self.reservations[r];
        if reservation.state != ReservationState::Offered {
            return Err(Rejection::WrongReservationState(id));
        }
        reservation.state = ReservationState::Accepted;
        reservation.accepted_at = self.now;
        let (c, a) = (reservation.contact, reservation.agent);
        self.agents[a].missed = 0;
        let contact = &mut self.contacts[c];
        contact.state = ContactState::Accepted(r);
        let waited = self.now - contact.routable_since;
        let (t, channel, external) = (contact.tenant, contact.channel, contact.external);
        self.set_waiting(c, false);
        self.stats.answered(self.now, t, channel, waited, self.pools[self.agents[a].pool].is_inhouse());
        out.push(Output::Accepted {
            reservation: id,
            contact: external,
            target: self.agents[a].target,
            waited,
        });
        Ok(())
    }

    fn reject(&mut self, id: ReservationId, out: &mut Vec<Output>) -> Result<(), Rejection> {
        let r = self.reservation(id)?;
        if self.reservations[r].state != ReservationState::Offered {
            return Err(Rejection::WrongReservationState(id));
        }
        let (c, a) = (self.reservations[r].contact, self.reservations[r].agent);
        self.agents[a].missed = 0;
        self.exclude(c, self.agents[a].target);
        let unblocked = self.release(r);
        self.requeue(c, RequeueReason::Rejected, out);
        self.after_release(a, unblocked, out);
        Ok(())
    }

    fn offer_expired(&mut self, r: u32, out: &mut Vec<Output>) {
        let (c, a, channel) =
            (self.reservations[r].contact, self.reservations[r].agent, self.reservations[r].channel);
        self.exclude(c, self.agents[a].target);
        let unblocked = self.release(r);
        self.requeue(c, RequeueReason::Expired, out);
        if let Target::Agent(_) = self.agents[a].target {
            let agent = &mut self.agents[a];
            agent.missed = agent.missed.saturating_add(1);
            let tenant = agent.tenant;
            let limit = self.policy(tenant).channel(channel).max_missed_offers;
            if limit > 0 && self.agents[a].missed >= limit && self.agents[a].presence == Presence::Ready {
                self.set_presence(a, Presence::NotReady(NOT_READY_MISSED_OFFERS), out);
            }
        }
        self.after_release(a, unblocked, out);
    }

    fn complete(&mut self, id: ReservationId, out: &mut Vec<Output>) -> Result<(), Rejection> {
        let r = self.reservation(id)?;
        let reservation = &self.reservations[r];
        if reservation.state != ReservationState::Accepted {
            return Err(Rejection::WrongReservationState(id));
        }
        let (c, a, channel) = (reservation.contact, reservation.agent, reservation.channel);
        let contact_id = reservation.contact_id;
        let t = self.contacts[c].tenant;
        self.stats.completed(t, channel);
        self.forget_contact(c);
        out.push(Output::Completed { reservation: id, contact: contact_id, target: self.agents[a].target });
        let wrap_up = self.policy(t).channel(channel).wrap_up;
        if wrap_up == 0 || !matches!(self.agents[a].target, Target::Agent(_)) {
            self.finish_reservation(r, out);
        } else {
            self.reservations[r].state = ReservationState::WrapUp;
            let agent = &mut self.agents[a];
            agent.active -= 1;
            agent.wrapping += 1;
            let generation = self.reservations.generation(r);
            let lane = timer_lane(t, channel, LANE_WRAP_UPS);
            self.timers.schedule_in_lane(
                lane,
                self.now + wrap_up,
                TimerKind::WrapUpEnd { reservation: r, generation },
            );
            self.report(a, out);
        }
        Ok(())
    }

    fn wrap_up_done(&mut self, id: ReservationId, out: &mut Vec<Output>) -> Result<(), Rejection> {
        let r = self.reservation(id)?;
        if self.reservations[r].state != ReservationState::WrapUp {
            return Err(Rejection::WrongReservationState(id));
        }
        self.finish_reservation(r, out);
        Ok(())
    }

    /// Ends a completed reservation: records its handle time, frees the capacity, serves the
    /// agent again.
    fn finish_reservation(&mut self, r: u32, out: &mut Vec<Output>) {
        let reservation = &self.reservations[r];
        let (a, g) = (reservation.agent, reservation.group);
        let handle = self.now.saturating_sub(reservation.accepted_at) as f64;
        let group = &mut self.groups[g as usize];
        group.handle_time = if group.handle_samples == 0 {
            handle
        } else {
            group.handle_time + HANDLE_TIME_ALPHA * (handle - group.handle_time)
        };
        group.handle_samples += 1;
        let unblocked = self.release(r);
        self.after_release(a, unblocked, out);
    }

    /// Frees a reservation's capacity; true when that took its pool off its cap.
    pub(crate) fn release(&mut self, r: u32) -> bool {
        let reservation = self.reservations.remove(r);
        let a = reservation.agent;
        let agent = &mut self.agents[a];
        let c = reservation.channel.index();
        agent.load[c] -= 1;
        agent.used -= reservation.weight;
        match reservation.state {
            ReservationState::WrapUp => agent.wrapping -= 1,
            _ => agent.active -= 1,
        }
        agent.reservations.retain(|&x| x != r);
        let weight = u64::from(reservation.weight);
        self.touch_idle(a);
        let pool = &mut self.pools[self.agents[a].pool];
        let was_full = !pool.has_room();
        pool.load -= 1;
        if pool.is_inhouse() {
            self.tenants[pool.tenant as usize].inhouse_used -= weight;
        }
        // Its list nodes are put in place once it has been served (see `serve_agent`).
        self.avail[a as usize] = 0;
        self.agents[a].dirty = true;
        was_full
    }

    /// Reports the agent's state and serves it (and, when its pool came off its cap, the
    /// pool's other agents).
    pub(crate) fn after_release(&mut self, a: u32, pool_unblocked: bool, out: &mut Vec<Output>) {
        self.report(a, out);
        self.serve_agent(a, out);
        if pool_unblocked {
            let p = self.agents[a].pool;
            let mut members = std::mem::take(&mut self.scratch);
            members.clear();
            members.extend_from_slice(&self.pools[p].agents);
            for &other in &members {
                if !self.pools[p].has_room() {
                    break;
                }
                self.serve_agent(other, out);
            }
            self.scratch = members;
        }
    }

    /// Puts an offered contact back in line (same rank) and routes it again.
    fn requeue(&mut self, c: u32, reason: RequeueReason, out: &mut Vec<Output>) {
        let contact = &mut self.contacts[c];
        contact.state = ContactState::Queued;
        out.push(Output::Requeued { contact: contact.external, reason });
        self.contacts[c].group = self.group_for(c);
        self.route_contact(c, Arrival::Returning, out);
    }

    // ----- relaxation and overflow ---------------------------------------------------------

    fn end_preferred_agent(&mut self, c: u32, out: &mut Vec<Output>) {
        let contact = &mut self.contacts[c];
        if !contact.preferred_agent_active || matches!(contact.state, ContactState::Accepted(_)) {
            return;
        }
        contact.preferred_agent_active = false;
        out.push(Output::Relaxed { contact: contact.external, action: None });
        self.regroup(c, out);
    }

    fn relax(&mut self, c: u32, out: &mut Vec<Output>) {
        let contact = &self.contacts[c];
        if matches!(contact.state, ContactState::Accepted(_)) {
            return;
        }
        let steps = &self.policy(contact.tenant).channel(contact.channel).relaxation;
        let step = usize::from(contact.next_step);
        let Some(action) = steps.get(step).map(|s| s.action) else { return };
        let next_after = steps.get(step + 1).map(|s| s.after);
        let generation = self.contacts.generation(c);
        let contact = &mut self.contacts[c];
        contact.next_step += 1;
        match action {
            RelaxAction::DropPreferredSkills => contact.preferred_skills_active = false,
            RelaxAction::LowerRequiredLevels(by) => {
                contact.level_drop = contact.level_drop.saturating_add(by)
            }
            RelaxAction::AllowOutsourced => {}
        }
        out.push(Output::Relaxed { contact: contact.external, action: Some(action) });
        if let Some(after) = next_after {
            let at = (contact.routable_since + after).max(self.now);
            let step = contact.next_step;
            self.timers.schedule(at, TimerKind::Relax { contact: c, generation, step });
        }
        if action == RelaxAction::AllowOutsourced {
            self.overflow(c, crate::event::OverflowReason::Relaxation, out);
        } else {
            self.regroup(c, out);
        }
    }

    fn overflow(&mut self, c: u32, reason: crate::event::OverflowReason, out: &mut Vec<Output>) {
        let contact = &mut self.contacts[c];
        if contact.scope == Scope::Any || matches!(contact.state, ContactState::Accepted(_)) {
            return;
        }
        contact.scope = Scope::Any;
        let (t, channel) = (contact.tenant, contact.channel);
        out.push(Output::Overflowed { contact: contact.external, reason });
        self.stats.overflowed(t, channel);
        self.regroup(c, out);
    }

    fn overflow_waiting_inhouse(&mut self, t: u32, out: &mut Vec<Output>) {
        let mut waiting = std::mem::take(&mut self.scratch);
        waiting.clear();
        for &g in &self.tenants[t as usize].groups {
            let group = &self.groups[g as usize];
            let overflows = self.policy(t).channel(group.key.channel).overflow.when_inhouse_closed;
            if group.key.scope == Scope::InHouse && overflows {
                waiting.extend(group.heap.iter().map(|w| w.contact));
            }
        }
        waiting.sort_by_key(|&c| self.contacts[c].key());
        for &c in &waiting {
            self.overflow(c, crate::event::OverflowReason::InHouseClosed, out);
        }
        self.scratch = waiting;
    }

    /// Moves a waiting contact to the group its current requirement names and routes it.
    fn regroup(&mut self, c: u32, out: &mut Vec<Output>) {
        if self.contacts[c].state != ContactState::Queued {
            return;
        }
        let group = self.group_for(c);
        if group == self.contacts[c].group {
            return;
        }
        self.leave_queue(c);
        self.contacts[c].group = group;
        self.route_contact(c, Arrival::Returning, out);
    }
}

/// With no aging, one priority point outweighs 2^40 ms (35 years) of waiting.
const STRICT_PRIORITY_STEP: i64 = 1 << 40;
/// Weight of the newest sample in the smoothed handle time.
const HANDLE_TIME_ALPHA: f64 = 0.1;

fn hash_map_with_capacity<K: Eq + std::hash::Hash, V>(capacity: usize) -> FxHashMap<K, V> {
    let mut map = FxHashMap::default();
    map.reserve(capacity);
    map
}

fn validate_skills(skills: &[SkillLevel]) -> Result<(), Rejection> {
    for (i, s) in skills.iter().enumerate() {
        if s.skill.0 >= MAX_SKILLS || s.level == 0 || s.level > MAX_LEVEL {
            return Err(Rejection::InvalidSkill);
        }
        if skills[..i].iter().any(|other| other.skill == s.skill) {
            return Err(Rejection::InvalidSkill);
        }
    }
    Ok(())
}
