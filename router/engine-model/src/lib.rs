//! A naive, obviously-correct reference model of Vuoro's routing engine.
//!
//! [`ReferenceRouter`] implements the semantics of `router/engine/README.md` with the same API
//! as `vuoro_engine::Engine` (`new`, `apply`, `next_due`), written for obviousness rather than
//! speed: plain `Vec`s of pools, agents, contacts, reservations and timers, and a linear scan
//! for every decision (to route a contact it looks at every agent and capacity-level pool; to
//! serve an agent it looks at every contact; to fire a timer it scans all timers for the
//! earliest). It is the oracle of the engine's model-based tests and the "naive linear-scan
//! router" baseline of the benches.
//!
//! It emits every output the engine does except [`Output::QueueStatus`]: estimated waits are
//! computed only where they change routing (the estimated-wait overflow on arrival).
//!
//! # Where the README leaves a choice open
//!
//! These are the model's definitions (agreed with the engine where noted in the crate's
//! tests); the engine is expected to match them.
//!
//! **Time and timers.** An earlier `now` counts as the latest one seen. Before an input, the
//! timers due by `now` fire by due time, ties by creation order, each at its due time; a timer
//! created while timers fire can fire in the same pass, one created by the input fires at the
//! next `apply`. Cancelled timers are removed. Creation order when a contact becomes routable:
//! preferred-agent end, first relaxation step, overflow wait, then (if offered at once) the
//! offer deadline. A relaxation step schedules the next one (at `routable_since + after`, not
//! before now) before the contact is routed again. A pool's hours timer schedules the next
//! change after the opening or closing has been acted on.
//!
//! **Becoming routable** (on `Enqueue`, or when `not_before` is reached): `routable_since` is
//! set (it is never reset by requeues); its timers are created; the arrival overflow checks
//! run, first match wins — the split accumulator of the tenant and channel (advanced by
//! `outsourced_split_pct` for every contact that becomes routable; reaching 100 subtracts 100
//! and sends this one `Outsourced`), every in-house pool of the tenant closed (true with none),
//! in-house occupancy above the limit (units held in the tenant's in-house pools over the total
//! units of its staffed in-house targets, all channels; with no such units it counts as
//! above), each giving `Overflowed` and scope `Any`; the contact is routed; and if it still
//! waits with scope `InHouse`, its estimated wait is checked: unknown or above the limit gives
//! `Overflowed { EstimatedWait }` and another routing.
//!
//! **Outputs within one input**, in this order:
//! - an offer: `Offered`, then the agent's state change;
//! - reject and expiry: `Requeued`, the contact is routed, (expiry: the missed-offers rule,)
//!   the released agent's state change, the released agent is served, then, when its pool has
//!   `max_concurrent`, the pool's targets are served in join order;
//! - complete: `Completed`; with `wrap_up > 0` on an agent the state change to `WrapUp`;
//!   otherwise (no wrap-up, or a capacity-level pool, which wraps up on its own side) the
//!   release: state change, the target is served, then its capped pool;
//! - wrap-up done or ended: the state change, the target is served, then its capped pool;
//! - cancel of an offered contact: `OfferRescinded { Abandoned }`, `Abandoned`, the state
//!   change, the agent is served, then its capped pool;
//! - log-out (and removal): `AgentStateChanged { Offline }` first, then for each pending offer
//!   in reservation order `OfferRescinded { AgentLeft }`, `Requeued { AgentLeft }` and that
//!   contact's routing; wrap-ups end silently; then the capped pool's targets are served;
//! - a capacity-level pool declaring less than it holds: its newest offers are rescinded
//!   (`OfferRescinded`, `Requeued`, both `PoolShrank`) until its holdings fit, those contacts
//!   are routed in that order, then the pool is served;
//! - a relaxation step: `Relaxed { Some(action) }` (always, even if it widens nothing); for
//!   `AllowOutsourced` then `Overflowed { Relaxation }` if the scope was not `Any`; then the
//!   contact is routed if it waits. Preferred-agent end: `Relaxed { None }`, then routing;
//! - a pool opening or closing: all its targets take new idle keys in join order (they become
//!   ready, or stop being ready, together); an opening pool serves its targets in join order
//!   (the order agents joined the pool); when the last in-house pool of a tenant closes, its
//!   waiting contacts with scope `InHouse` whose policy has `when_inhouse_closed` overflow
//!   (`Overflowed { InHouseClosed }`) and are routed one by one, in rank order.
//!
//! **Agent state.** The reported state is recomputed after each change to an agent (offer,
//! release, presence) and emitted when it differs from the last one reported. A new agent is
//! `Offline` (no output). `LogIn` of an online agent, `LogOut` of an offline one, `Ready` of a
//! ready one and `NotReady(r)` of one already `NotReady(r)` change nothing and emit nothing;
//! `LogIn` sets `NotReady(0)`.
//!
//! **Keys.** The global counter starts at 0, each assignment takes the next value. Agents and
//! capacity-level pools start with idle and offer keys 0. An offer sets both keys; a release
//! and every change of availability (presence, capacity, profile, the pool's hours or
//! configuration) set the idle key. Ties of
//! `(bucket, key)` — `RoundRobin` agents never offered a contact — go by idle key (the longest
//! idle first).
//!
//! **Missed offers.** An expired offer counts one for the agent; accept, reject and `Ready`
//! reset the count; when it reaches the expired contact's channel policy `max_missed_offers`
//! (non-zero) and the agent is `Ready`, it is set `NotReady(NOT_READY_MISSED_OFFERS)`.
//!
//! **Contacts.** `waited` (in `Accepted` and `Abandoned`) is `now - routable_since` (the
//! `Enqueue` time while still scheduled). A preferred agent unknown at `Enqueue`, or a wait of
//! 0, is no preference. A skill both required and preferred needs the higher level while the
//! preferred skills count. Relaxation, preferred-agent and overflow timers keep running while
//! the contact is offered (they emit; the contact is routed only if it waits) and stop at
//! accept. The router holds a contact from `Enqueue` until it is abandoned or completed; its
//! reservation may hold capacity longer (wrap-up).
//!
//! **Capacity and pools.** A hold takes the channel weight current at the offer and gives that
//! weight back. `max_concurrent` counts every reservation of the pool (offered, accepted,
//! wrap-up). A capacity-level pool has no room until its first `PoolCapacity`. Staffed: logged
//! in (a capacity-level pool always is) and its pool open.
//!
//! **Estimated wait** (only for the arrival overflow). A queue is the contacts of one tenant,
//! channel, current requirement, language, scope and preferred agent (while its wait runs).
//! Position = 1 + contacts waiting in the queue ahead of it; slots = `min(per_channel[c], total
//! / weight[c])` summed over the staffed targets that serve the queue; handle time = the
//! policy's default until 5 handle times (accept to release, of accepted contacts of the queue)
//! were seen, then their exponentially weighted mean (the first sample, then α = 0.1);
//! `EWT = round(position × h / slots)`; unknown with no slots.
//!
//! **Refusals**, checked in this order. `Enqueue`: `UnknownTenant`, `DuplicateContact`,
//! `InvalidSkill` (a bad id or level, a skill twice in one list, a bad language, more than
//! [`MAX_CONTACT_SKILLS`] in all). `UpsertAgent`: `InvalidSkill`, `InvalidCapacity`,
//! `UnknownPool`, `InvalidPool` (capacity-level pool), `AgentHasWork` (moving pools with work).
//! `UpsertPool`: `UnknownTenant` (tenant without policy), `InvalidSkill`, `InvalidPool` (a
//! change of tenant; of mode while the pool has agents, a capacity-level pool always has its
//! lease; of kind while it holds work). `PoolCapacity`: `UnknownPool`, `InvalidPool`
//! (agent-level pool); a capacity-level pool may declare no units. `LogOut` / `RemoveAgent`:
//! `UnknownAgent`, `AgentHasWork` (accepted work; wrap-ups do not count). `RemovePolicy`:
//! `UnknownTenant`, `InUse` while the tenant has pools or contacts. `Cancel`: `UnknownContact`,
//! `ContactInService` while accepted.

use vuoro_engine::ids::{MAX_CONTACT_SKILLS, MAX_LANGUAGES, MAX_LEVEL, MAX_SKILLS};
use vuoro_engine::{
    AgentConfig, AgentId, AgentState, Capacity, Channel, ContactId, ContactSpec, EngineConfig, Input,
    LanguageId, Languages, Millis, NOT_READY_MISSED_OFFERS, Output, OverflowReason, PoolConfig, PoolId,
    PoolKind, PoolMode, Rejection, RelaxAction, RequeueReason, RescindReason, ReservationId, SkillLevel,
    Strategy, Target, TenantId, TenantPolicy,
};

/// The aging step used when a policy has none: strict priority.
const STRICT_PRIORITY_STEP: i64 = 1 << 40;
/// Handle times seen before the smoothed mean replaces the policy default.
const HANDLE_TIMES_BEFORE_ESTIMATE: u64 = 5;
/// Weight of a new handle time in the smoothed mean.
const HANDLE_TIME_ALPHA: f64 = 0.1;
/// Highest strategy bucket.
const TOP_BUCKET: u64 = 63;

/// Which pool kinds a contact may be offered to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// In-house pools only (the start).
    InHouse,
    /// Outsourced pools only (the percentage split).
    Outsourced,
    /// Any pool (after overflow).
    Any,
}

impl Scope {
    fn allows(self, kind: PoolKind) -> bool {
        matches!(
            (self, kind),
            (Scope::Any, _)
                | (Scope::InHouse, PoolKind::InHouse)
                | (Scope::Outsourced, PoolKind::Outsourced(_))
        )
    }
}

/// An agent's presence as set by the platform (or the missed-offers rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Presence {
    Offline,
    Ready,
    NotReady(u16),
}

/// What a target holds: contacts per channel and units, kept in step with its reservations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Holdings {
    per_channel: [u32; Channel::COUNT],
    units: u32,
}

struct Pool {
    config: PoolConfig,
    open: bool,
    /// Declared capacity of a capacity-level pool (no units until declared).
    capacity: Capacity,
    /// What a capacity-level pool holds.
    held: Holdings,
    /// Reservations routed through the pool (for `max_concurrent`).
    in_flight: u32,
    idle_key: u64,
    offer_key: u64,
}

struct Agent {
    config: AgentConfig,
    presence: Presence,
    reported: AgentState,
    held: Holdings,
    idle_key: u64,
    offer_key: u64,
    missed: u8,
    /// When it joined its pool (the order in which a pool's agents are served).
    joined: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ContactState {
    /// Waiting for `not_before`.
    Scheduled,
    /// Routable, in its queue.
    Waiting,
    /// Offered under a reservation.
    Offered(ReservationId),
    /// Accepted under a reservation.
    InService(ReservationId),
}

struct Contact {
    spec: ContactSpec,
    seq: u64,
    rank: i64,
    scope: Scope,
    state: ContactState,
    /// Since when it is routable (its arrival while scheduled).
    routable_since: Millis,
    /// The preferred agent, when the router knew it on arrival and the wait is not zero.
    preferred: Option<AgentId>,
    /// The preferred-agent wait is running.
    preferred_wait: bool,
    /// The `DropPreferredSkills` step has fired.
    preferred_dropped: bool,
    /// Sum of the `LowerRequiredLevels` steps fired so far.
    level_drop: u8,
    /// Targets that rejected or missed this contact.
    excluded: Vec<Target>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResState {
    Offered,
    Accepted,
    WrapUp,
}

struct Reservation {
    id: ReservationId,
    contact: ContactId,
    /// The queue the contact was in when offered (its handle time counts there).
    queue: QueueKey,
    target: Target,
    pool: PoolId,
    channel: Channel,
    weight: u16,
    state: ResState,
    /// When it was accepted (handle time runs from here to the release).
    accepted_at: Millis,
}

/// A queue: the contacts that wait for the same targets.
#[derive(Clone, Debug, PartialEq, Eq)]
struct QueueKey {
    tenant: TenantId,
    channel: Channel,
    requirement: Vec<SkillLevel>,
    language: Option<LanguageId>,
    scope: Scope,
    /// The preferred agent while its wait runs.
    personal: Option<AgentId>,
}

struct HandleTime {
    queue: QueueKey,
    seen: u64,
    mean: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TimerKind {
    OfferDeadline(ReservationId),
    WrapUpEnd(ReservationId),
    NotBefore(ContactId),
    PreferredAgentEnd(ContactId),
    Relax(ContactId, usize),
    OverflowWait(ContactId),
    PoolHours(PoolId),
}

impl TimerKind {
    fn contact(self) -> Option<ContactId> {
        match self {
            TimerKind::NotBefore(c)
            | TimerKind::PreferredAgentEnd(c)
            | TimerKind::Relax(c, _)
            | TimerKind::OverflowWait(c) => Some(c),
            _ => None,
        }
    }

    fn reservation(self) -> Option<ReservationId> {
        match self {
            TimerKind::OfferDeadline(r) | TimerKind::WrapUpEnd(r) => Some(r),
            _ => None,
        }
    }
}

struct Timer {
    at: Millis,
    seq: u64,
    kind: TimerKind,
}

/// An agent or a capacity-level pool, seen as one thing that takes offers.
#[derive(Clone, Copy)]
enum TargetRef<'a> {
    Agent(&'a Agent),
    Pool(&'a Pool),
}

impl TargetRef<'_> {
    fn target(self) -> Target {
        match self {
            TargetRef::Agent(a) => Target::Agent(a.config.id),
            TargetRef::Pool(p) => Target::Pool(p.config.id),
        }
    }

    fn pool(self) -> PoolId {
        match self {
            TargetRef::Agent(a) => a.config.pool,
            TargetRef::Pool(p) => p.config.id,
        }
    }

    /// Takes offers: a ready agent, or any capacity-level pool.
    fn ready(self) -> bool {
        match self {
            TargetRef::Agent(a) => a.presence == Presence::Ready,
            TargetRef::Pool(_) => true,
        }
    }

    fn logged_in(self) -> bool {
        match self {
            TargetRef::Agent(a) => a.presence != Presence::Offline,
            TargetRef::Pool(_) => true,
        }
    }

    fn capacity(self) -> Capacity {
        match self {
            TargetRef::Agent(a) => a.config.capacity,
            TargetRef::Pool(p) => p.capacity,
        }
    }

    fn held(self) -> Holdings {
        match self {
            TargetRef::Agent(a) => a.held,
            TargetRef::Pool(p) => p.held,
        }
    }

    fn skill_level(self, skill: SkillLevel) -> u8 {
        let skills: &[SkillLevel] = match self {
            TargetRef::Agent(a) => &a.config.skills,
            TargetRef::Pool(p) => match &p.config.mode {
                PoolMode::CapacityLevel { skills, .. } => skills,
                PoolMode::AgentLevel => &[],
            },
        };
        skills.iter().find(|s| s.skill == skill.skill).map_or(0, |s| s.level)
    }

    fn languages(self) -> Languages {
        match self {
            TargetRef::Agent(a) => a.config.languages,
            TargetRef::Pool(p) => match &p.config.mode {
                PoolMode::CapacityLevel { languages, .. } => *languages,
                PoolMode::AgentLevel => Languages(0),
            },
        }
    }

    /// `(idle key, offer key)`.
    fn keys(self) -> (u64, u64) {
        match self {
            TargetRef::Agent(a) => (a.idle_key, a.offer_key),
            TargetRef::Pool(p) => (p.idle_key, p.offer_key),
        }
    }

    /// Room for one more contact of `channel`.
    fn has_room(self, channel: Channel) -> bool {
        let (cap, held, c) = (self.capacity(), self.held(), channel.index());
        held.per_channel[c] < u32::from(cap.per_channel[c])
            && held.units + u32::from(cap.weight[c]) <= u32::from(cap.total)
    }

    /// Has every skill of `requirement` at its level and, if any, the language.
    fn qualified(self, requirement: &[SkillLevel], language: Option<LanguageId>) -> bool {
        requirement.iter().all(|&need| self.skill_level(need) >= need.level)
            && language.is_none_or(|l| self.languages().contains(l))
    }

    /// Contacts of `channel` it can hold at once.
    fn slots(self, channel: Channel) -> u64 {
        let (cap, c) = (self.capacity(), channel.index());
        let by_units = cap.total.checked_div(cap.weight[c]).unwrap_or(cap.per_channel[c]);
        u64::from(by_units.min(cap.per_channel[c]))
    }
}

/// The reference router: the engine's semantics, by linear scans over plain vectors.
///
/// See the crate documentation for the choices it makes where the README leaves them open.
pub struct ReferenceRouter {
    config: EngineConfig,
    now: Millis,
    policies: Vec<TenantPolicy>,
    /// Split accumulators per tenant and channel.
    splits: Vec<(TenantId, [u32; Channel::COUNT])>,
    pools: Vec<Pool>,
    agents: Vec<Agent>,
    contacts: Vec<Contact>,
    reservations: Vec<Reservation>,
    timers: Vec<Timer>,
    handle_times: Vec<HandleTime>,
    counter: u64,
    timer_seq: u64,
    last_reservation: u64,
    contact_seq: u64,
    join_seq: u64,
}

impl ReferenceRouter {
    /// An empty router. The config's sizes are only hints, and its status interval drives only
    /// queue-status outputs, which the model does not emit.
    pub fn new(config: EngineConfig) -> ReferenceRouter {
        ReferenceRouter {
            config,
            now: 0,
            policies: Vec::new(),
            splits: Vec::new(),
            pools: Vec::new(),
            agents: Vec::new(),
            contacts: Vec::new(),
            reservations: Vec::new(),
            timers: Vec::new(),
            handle_times: Vec::new(),
            counter: 0,
            timer_seq: 0,
            last_reservation: 0,
            contact_seq: 0,
            join_seq: 0,
        }
    }

    /// The config it was created with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Fires the timers due at or before `now` (by due time, then creation), then applies
    /// `input`; appends the outputs to `out`.
    pub fn apply(&mut self, now: Millis, input: &Input, out: &mut Vec<Output>) {
        let now = now.max(self.now);
        while let Some(index) = self.earliest_due(now) {
            let timer = self.timers.remove(index);
            self.now = self.now.max(timer.at);
            self.fire(timer.kind, out);
        }
        self.now = now;
        if let Err(rejection) = self.input(input, out) {
            out.push(Output::Rejected(rejection));
        }
    }

    /// When the earliest pending timer is due.
    pub fn next_due(&self) -> Option<Millis> {
        self.timers.iter().map(|t| t.at).min()
    }

    /// Checks work conservation: no waiting contact has an eligible target with room.
    pub fn check_work_conservation(&self) -> Result<(), String> {
        for contact in self.contacts.iter().filter(|c| c.state == ContactState::Waiting) {
            let requirement = self.requirement(contact);
            for target in self.targets() {
                if self.eligible(contact, &requirement, target) {
                    return Err(format!(
                        "contact {} waits while {:?} is eligible and has room",
                        contact.spec.id,
                        target.target()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks the model's own bookkeeping: holdings and pool loads match the reservations,
    /// and contacts and reservations point at each other.
    pub fn check_bookkeeping(&self) -> Result<(), String> {
        for target in self.targets() {
            let mut expected = Holdings::default();
            for r in self.reservations.iter().filter(|r| r.target == target.target()) {
                expected.per_channel[r.channel.index()] += 1;
                expected.units += u32::from(r.weight);
            }
            if expected != target.held() {
                return Err(format!(
                    "{:?} holds {:?}, its reservations {expected:?}",
                    target.target(),
                    target.held()
                ));
            }
        }
        for pool in &self.pools {
            let in_flight = self.reservations.iter().filter(|r| r.pool == pool.config.id).count();
            if in_flight != pool.in_flight as usize {
                return Err(format!(
                    "pool {} counts {} reservations, has {in_flight}",
                    pool.config.id, pool.in_flight
                ));
            }
        }
        for c in &self.contacts {
            let linked = match c.state {
                ContactState::Offered(r) => {
                    self.reservations.iter().any(|x| x.id == r && x.state == ResState::Offered)
                }
                ContactState::InService(r) => {
                    self.reservations.iter().any(|x| x.id == r && x.state == ResState::Accepted)
                }
                ContactState::Scheduled | ContactState::Waiting => {
                    !self.reservations.iter().any(|x| x.contact == c.spec.id && x.state != ResState::WrapUp)
                }
            };
            if !linked {
                return Err(format!(
                    "contact {} in {:?} does not match the reservations",
                    c.spec.id, c.state
                ));
            }
        }
        Ok(())
    }

    /// The contacts currently waiting in a queue (routable, not offered), best first.
    pub fn waiting_contacts(&self) -> Vec<ContactId> {
        let mut waiting: Vec<&Contact> =
            self.contacts.iter().filter(|c| c.state == ContactState::Waiting).collect();
        waiting.sort_by_key(|c| (c.rank, c.seq));
        waiting.iter().map(|c| c.spec.id).collect()
    }

    /// The state last reported for an agent (`None` for an unknown agent).
    pub fn agent_state(&self, agent: AgentId) -> Option<AgentState> {
        self.agents.iter().find(|a| a.config.id == agent).map(|a| a.reported)
    }

    // ----------------------------------------------------------------------------------------
    // Timers

    fn earliest_due(&self, now: Millis) -> Option<usize> {
        (0..self.timers.len())
            .filter(|&i| self.timers[i].at <= now)
            .min_by_key(|&i| (self.timers[i].at, self.timers[i].seq))
    }

    fn schedule(&mut self, at: Millis, kind: TimerKind) {
        self.timer_seq += 1;
        self.timers.push(Timer { at, seq: self.timer_seq, kind });
    }

    fn cancel_contact_timers(&mut self, contact: ContactId) {
        self.timers.retain(|t| t.kind.contact() != Some(contact));
    }

    fn cancel_reservation_timers(&mut self, reservation: ReservationId) {
        self.timers.retain(|t| t.kind.reservation() != Some(reservation));
    }

    fn fire(&mut self, kind: TimerKind, out: &mut Vec<Output>) {
        match kind {
            TimerKind::OfferDeadline(r) => self.expire_offer(r, out),
            TimerKind::WrapUpEnd(r) => {
                let res = self.release(r);
                self.after_release(&res, out);
            }
            TimerKind::NotBefore(c) => self.make_routable(c, out),
            TimerKind::PreferredAgentEnd(c) => {
                let contact = self.contact_mut(c);
                if contact.preferred_wait {
                    contact.preferred_wait = false;
                    out.push(Output::Relaxed { contact: c, action: None });
                    self.route_contact(c, out);
                }
            }
            TimerKind::Relax(c, step) => self.relax(c, step, out),
            TimerKind::OverflowWait(c) => self.overflow(c, OverflowReason::WaitedTooLong, out),
            TimerKind::PoolHours(p) => self.pool_hours(p, out),
        }
    }

    fn relax(&mut self, c: ContactId, step: usize, out: &mut Vec<Output>) {
        let (tenant, channel, since) = {
            let contact = self.contact(c);
            (contact.spec.tenant, contact.spec.channel, contact.routable_since)
        };
        let steps = self.policy(tenant).channel(channel).relaxation.clone();
        let Some(this) = steps.get(step) else { return };
        let contact = self.contact_mut(c);
        match this.action {
            RelaxAction::DropPreferredSkills => contact.preferred_dropped = true,
            RelaxAction::LowerRequiredLevels(n) => contact.level_drop = contact.level_drop.saturating_add(n),
            RelaxAction::AllowOutsourced => {}
        }
        out.push(Output::Relaxed { contact: c, action: Some(this.action) });
        if let Some(next) = steps.get(step + 1) {
            let at = (since + next.after).max(self.now);
            self.schedule(at, TimerKind::Relax(c, step + 1));
        }
        if this.action == RelaxAction::AllowOutsourced {
            self.overflow(c, OverflowReason::Relaxation, out);
        } else {
            self.route_contact(c, out);
        }
    }

    /// Widens a contact's scope to `Any` (if it is not already) and routes it.
    fn overflow(&mut self, c: ContactId, reason: OverflowReason, out: &mut Vec<Output>) {
        let contact = self.contact_mut(c);
        if contact.scope != Scope::Any {
            contact.scope = Scope::Any;
            out.push(Output::Overflowed { contact: c, reason });
            self.route_contact(c, out);
        }
    }

    fn pool_hours(&mut self, p: PoolId, out: &mut Vec<Output>) {
        let now = self.now;
        let Some(hours) = self.pool(p).config.hours.clone() else { return };
        self.set_pool_open(p, hours.is_open(now), out);
        if let Some(next) = hours.next_change(now) {
            self.schedule(next, TimerKind::PoolHours(p));
        }
    }

    fn set_pool_open(&mut self, p: PoolId, open: bool, out: &mut Vec<Output>) {
        let was_open = self.pool(p).open;
        if open == was_open {
            return;
        }
        self.pool_mut(p).open = open;
        // Its targets become ready (or stop being) together: new idle keys, in join order.
        for target in self.pool_targets(p) {
            self.touch_idle(target);
        }
        if open {
            self.serve_pool(p, out);
            return;
        }
        let (tenant, kind) = (self.pool(p).config.tenant, self.pool(p).config.kind);
        if kind == PoolKind::InHouse && self.all_inhouse_closed(tenant) {
            let mut waiting: Vec<(i64, u64, ContactId)> = self
                .contacts
                .iter()
                .filter(|c| {
                    c.spec.tenant == tenant
                        && c.state == ContactState::Waiting
                        && c.scope == Scope::InHouse
                        && self.policy(tenant).channel(c.spec.channel).overflow.when_inhouse_closed
                })
                .map(|c| (c.rank, c.seq, c.spec.id))
                .collect();
            waiting.sort();
            for (_, _, c) in waiting {
                self.overflow(c, OverflowReason::InHouseClosed, out);
            }
        }
    }

    // ----------------------------------------------------------------------------------------
    // Inputs

    fn input(&mut self, input: &Input, out: &mut Vec<Output>) -> Result<(), Rejection> {
        match input {
            Input::UpsertPolicy(policy) => {
                self.upsert_policy(policy);
                Ok(())
            }
            Input::RemovePolicy(tenant) => self.remove_policy(*tenant),
            Input::UpsertPool(config) => self.upsert_pool(config, out),
            Input::RemovePool(pool) => self.remove_pool(*pool),
            Input::PoolCapacity(pool, capacity) => self.pool_capacity(*pool, *capacity, out),
            Input::UpsertAgent(config) => self.upsert_agent(config, out),
            Input::RemoveAgent(agent) => {
                self.log_out(*agent, out)?;
                self.agents.retain(|a| a.config.id != *agent);
                Ok(())
            }
            Input::LogIn(agent) => self.log_in(*agent, out),
            Input::Ready(agent) => self.ready(*agent, out),
            Input::NotReady(agent, reason) => self.not_ready(*agent, *reason, out),
            Input::LogOut(agent) => self.log_out(*agent, out),
            Input::SetCapacity(agent, capacity) => self.set_capacity(*agent, *capacity, out),
            Input::Enqueue(spec) => self.enqueue(spec, out),
            Input::Cancel(contact) => self.cancel(*contact, out),
            Input::Accept(r) => self.accept(*r, out),
            Input::Reject(r) => self.reject(*r, out),
            Input::Complete(r) => self.complete(*r, out),
            Input::WrapUpDone(r) => {
                let res =
                    self.reservations.iter().find(|x| x.id == *r).ok_or(Rejection::UnknownReservation(*r))?;
                if res.state != ResState::WrapUp {
                    return Err(Rejection::WrongReservationState(*r));
                }
                let res = self.release(*r);
                self.after_release(&res, out);
                Ok(())
            }
            Input::Tick => Ok(()),
        }
    }

    fn upsert_policy(&mut self, policy: &TenantPolicy) {
        let mut policy = policy.clone();
        for channel in &mut policy.channels {
            channel.relaxation.sort_by_key(|s| s.after);
        }
        match self.policies.iter_mut().find(|p| p.tenant == policy.tenant) {
            Some(existing) => *existing = policy,
            None => {
                self.splits.push((policy.tenant, [0; Channel::COUNT]));
                self.policies.push(policy);
            }
        }
    }

    fn remove_policy(&mut self, tenant: TenantId) -> Result<(), Rejection> {
        if !self.policies.iter().any(|p| p.tenant == tenant) {
            return Err(Rejection::UnknownTenant(tenant));
        }
        if self.pools.iter().any(|p| p.config.tenant == tenant)
            || self.contacts.iter().any(|c| c.spec.tenant == tenant)
        {
            return Err(Rejection::InUse);
        }
        self.policies.retain(|p| p.tenant != tenant);
        self.splits.retain(|s| s.0 != tenant);
        self.handle_times.retain(|h| h.queue.tenant != tenant);
        Ok(())
    }

    fn upsert_pool(&mut self, config: &PoolConfig, out: &mut Vec<Output>) -> Result<(), Rejection> {
        if !self.policies.iter().any(|p| p.tenant == config.tenant) {
            return Err(Rejection::UnknownTenant(config.tenant));
        }
        if let PoolMode::CapacityLevel { skills, .. } = &config.mode
            && !skills_valid(skills)
        {
            return Err(Rejection::InvalidSkill);
        }
        let existing = self.pools.iter().position(|p| p.config.id == config.id);
        if let Some(i) = existing {
            let old = &self.pools[i].config;
            let has_members = self.agents.iter().any(|a| a.config.pool == config.id)
                || matches!(old.mode, PoolMode::CapacityLevel { .. });
            let same_mode = std::mem::discriminant(&old.mode) == std::mem::discriminant(&config.mode);
            let kind_changed = old.kind != config.kind;
            if old.tenant != config.tenant
                || (!same_mode && has_members)
                || (kind_changed && self.pools[i].in_flight > 0)
            {
                return Err(Rejection::InvalidPool);
            }
        }
        let now = self.now;
        let open = config.hours.as_ref().is_none_or(|h| h.is_open(now));
        match existing {
            None => self.pools.push(Pool {
                config: config.clone(),
                open,
                capacity: Capacity {
                    per_channel: [0; Channel::COUNT],
                    weight: [1; Channel::COUNT],
                    total: 0,
                },
                held: Holdings::default(),
                in_flight: 0,
                idle_key: 0,
                offer_key: 0,
            }),
            Some(i) => {
                self.pools[i].config = config.clone();
                self.pools[i].open = open;
                self.timers.retain(|t| t.kind != TimerKind::PoolHours(config.id));
            }
        }
        if let Some(next) = config.hours.as_ref().and_then(|h| h.next_change(now)) {
            self.schedule(next, TimerKind::PoolHours(config.id));
        }
        // Its targets become available anew, in join order, and are then served in that
        // order (a closing overflows nobody here: only the hours timer does that).
        for target in self.pool_targets(config.id) {
            self.touch_idle(target);
        }
        self.serve_pool(config.id, out);
        Ok(())
    }

    fn remove_pool(&mut self, pool: PoolId) -> Result<(), Rejection> {
        let p = self.pools.iter().find(|p| p.config.id == pool).ok_or(Rejection::UnknownPool(pool))?;
        if p.in_flight > 0 || self.agents.iter().any(|a| a.config.pool == pool) {
            return Err(Rejection::InUse);
        }
        self.pools.retain(|p| p.config.id != pool);
        self.timers.retain(|t| t.kind != TimerKind::PoolHours(pool));
        Ok(())
    }

    fn pool_capacity(
        &mut self,
        pool: PoolId,
        capacity: Capacity,
        out: &mut Vec<Output>,
    ) -> Result<(), Rejection> {
        let p = self.pools.iter().find(|p| p.config.id == pool).ok_or(Rejection::UnknownPool(pool))?;
        if p.config.mode == PoolMode::AgentLevel {
            return Err(Rejection::InvalidPool);
        }
        self.pool_mut(pool).capacity = capacity;
        let target = Target::Pool(pool);
        let mut requeued = Vec::new();
        while !self.holdings_fit(target) {
            let newest = self
                .reservations
                .iter()
                .filter(|r| r.target == target && r.state == ResState::Offered)
                .map(|r| r.id)
                .max();
            let Some(r) = newest else { break };
            let res = self.release(r);
            out.push(Output::OfferRescinded {
                reservation: r,
                contact: res.contact,
                target,
                reason: RescindReason::PoolShrank,
            });
            out.push(Output::Requeued { contact: res.contact, reason: RequeueReason::PoolShrank });
            self.contact_mut(res.contact).state = ContactState::Waiting;
            requeued.push(res.contact);
        }
        self.touch_idle(target);
        for c in requeued {
            self.route_contact(c, out);
        }
        self.serve(target, out);
        Ok(())
    }

    fn upsert_agent(&mut self, config: &AgentConfig, out: &mut Vec<Output>) -> Result<(), Rejection> {
        if !skills_valid(&config.skills) {
            return Err(Rejection::InvalidSkill);
        }
        if config.capacity.total == 0 {
            return Err(Rejection::InvalidCapacity);
        }
        let pool = self
            .pools
            .iter()
            .find(|p| p.config.id == config.pool)
            .ok_or(Rejection::UnknownPool(config.pool))?;
        if pool.config.mode != PoolMode::AgentLevel {
            return Err(Rejection::InvalidPool);
        }
        match self.agents.iter().position(|a| a.config.id == config.id) {
            None => {
                self.join_seq += 1;
                self.agents.push(Agent {
                    config: config.clone(),
                    presence: Presence::Offline,
                    reported: AgentState::Offline,
                    held: Holdings::default(),
                    idle_key: 0,
                    offer_key: 0,
                    missed: 0,
                    joined: self.join_seq,
                });
            }
            Some(i) => {
                if self.agents[i].config.pool != config.pool {
                    if self.reservations.iter().any(|r| r.target == Target::Agent(config.id)) {
                        return Err(Rejection::AgentHasWork(config.id));
                    }
                    self.join_seq += 1;
                    self.agents[i].joined = self.join_seq;
                }
                self.agents[i].config = config.clone();
            }
        }
        self.touch_idle(Target::Agent(config.id));
        self.serve(Target::Agent(config.id), out);
        Ok(())
    }

    fn log_in(&mut self, agent: AgentId, out: &mut Vec<Output>) -> Result<(), Rejection> {
        let a = self.find_agent_mut(agent)?;
        if a.presence == Presence::Offline {
            a.presence = Presence::NotReady(0);
            self.touch_idle(Target::Agent(agent));
            self.refresh(agent, out);
        }
        Ok(())
    }

    fn ready(&mut self, agent: AgentId, out: &mut Vec<Output>) -> Result<(), Rejection> {
        match self.find_agent_mut(agent)?.presence {
            Presence::Offline => Err(Rejection::AgentOffline(agent)),
            Presence::Ready => Ok(()),
            Presence::NotReady(_) => {
                let a = self.agent_mut(agent);
                a.presence = Presence::Ready;
                a.missed = 0;
                self.touch_idle(Target::Agent(agent));
                self.refresh(agent, out);
                self.serve(Target::Agent(agent), out);
                Ok(())
            }
        }
    }

    fn not_ready(&mut self, agent: AgentId, reason: u16, out: &mut Vec<Output>) -> Result<(), Rejection> {
        let a = self.find_agent_mut(agent)?;
        if a.presence == Presence::Offline {
            return Err(Rejection::AgentOffline(agent));
        }
        a.presence = Presence::NotReady(reason);
        self.touch_idle(Target::Agent(agent));
        self.refresh(agent, out);
        Ok(())
    }

    /// Log-out, and the first half of removal (see the crate docs for the order).
    fn log_out(&mut self, agent: AgentId, out: &mut Vec<Output>) -> Result<(), Rejection> {
        let offline = self.find_agent_mut(agent)?.presence == Presence::Offline;
        let target = Target::Agent(agent);
        if self.reservations.iter().any(|r| r.target == target && r.state == ResState::Accepted) {
            return Err(Rejection::AgentHasWork(agent));
        }
        if offline {
            return Ok(());
        }
        self.agent_mut(agent).presence = Presence::Offline;
        self.touch_idle(target);
        self.refresh(agent, out);
        let mut held: Vec<ReservationId> =
            self.reservations.iter().filter(|r| r.target == target).map(|r| r.id).collect();
        held.sort();
        for r in held {
            let res = self.release(r);
            if res.state == ResState::Offered {
                out.push(Output::OfferRescinded {
                    reservation: r,
                    contact: res.contact,
                    target,
                    reason: RescindReason::AgentLeft,
                });
                out.push(Output::Requeued { contact: res.contact, reason: RequeueReason::AgentLeft });
                self.contact_mut(res.contact).state = ContactState::Waiting;
                self.route_contact(res.contact, out);
            }
        }
        let pool = self.agent(agent).config.pool;
        self.serve_capped_pool(pool, out);
        Ok(())
    }

    fn set_capacity(
        &mut self,
        agent: AgentId,
        capacity: Capacity,
        out: &mut Vec<Output>,
    ) -> Result<(), Rejection> {
        let a = self.find_agent_mut(agent)?;
        if capacity.total == 0 {
            return Err(Rejection::InvalidCapacity);
        }
        a.config.capacity = capacity;
        self.touch_idle(Target::Agent(agent));
        self.serve(Target::Agent(agent), out);
        Ok(())
    }

    fn enqueue(&mut self, spec: &ContactSpec, out: &mut Vec<Output>) -> Result<(), Rejection> {
        if !self.policies.iter().any(|p| p.tenant == spec.tenant) {
            return Err(Rejection::UnknownTenant(spec.tenant));
        }
        if self.contacts.iter().any(|c| c.spec.id == spec.id) {
            return Err(Rejection::DuplicateContact(spec.id));
        }
        if !contact_skills_valid(spec) {
            return Err(Rejection::InvalidSkill);
        }
        let now = self.now;
        let policy = self.policy(spec.tenant);
        let boost = policy.segment_boost[spec.segment as usize];
        let effective_priority = i64::from(spec.priority) + i64::from(boost);
        let step = policy.channel(spec.channel).aging_step.map_or(STRICT_PRIORITY_STEP, |s| s.max(1) as i64);
        let preferred = spec
            .preferred_agent
            .filter(|&(a, wait)| wait > 0 && self.agents.iter().any(|x| x.config.id == a))
            .map(|(a, _)| a);
        self.contact_seq += 1;
        self.contacts.push(Contact {
            spec: *spec,
            seq: self.contact_seq,
            rank: now as i64 - effective_priority * step,
            scope: Scope::InHouse,
            state: ContactState::Scheduled,
            routable_since: now,
            preferred,
            preferred_wait: preferred.is_some(),
            preferred_dropped: false,
            level_drop: 0,
            excluded: Vec::new(),
        });
        match spec.not_before {
            Some(at) if at > now => {
                self.schedule(at, TimerKind::NotBefore(spec.id));
                out.push(Output::Scheduled { contact: spec.id, at });
            }
            _ => self.make_routable(spec.id, out),
        }
        Ok(())
    }

    /// The contact starts waiting (see "Becoming routable" in the crate docs).
    fn make_routable(&mut self, c: ContactId, out: &mut Vec<Output>) {
        let now = self.now;
        let contact = self.contact_mut(c);
        contact.state = ContactState::Waiting;
        contact.routable_since = now;
        let (tenant, channel) = (contact.spec.tenant, contact.spec.channel);
        let preferred_wait = contact.preferred_agent_wait();
        let policy = self.policy(tenant).channel(channel).clone();
        if let Some(wait) = preferred_wait {
            self.schedule(now + wait, TimerKind::PreferredAgentEnd(c));
        }
        if let Some(first) = policy.relaxation.first() {
            self.schedule(now + first.after, TimerKind::Relax(c, 0));
        }
        if let Some(wait) = policy.overflow.after_wait {
            self.schedule(now + wait, TimerKind::OverflowWait(c));
        }

        let overflow = policy.overflow;
        let split = &mut self.splits.iter_mut().find(|s| s.0 == tenant).expect("every policy has splits").1
            [channel.index()];
        *split += u32::from(overflow.outsourced_split_pct.min(100));
        let reason = if *split >= 100 {
            *split -= 100;
            Some(OverflowReason::Split)
        } else if overflow.when_inhouse_closed && self.all_inhouse_closed(tenant) {
            Some(OverflowReason::InHouseClosed)
        } else if overflow.inhouse_occupancy_above_pct.is_some_and(|pct| self.occupancy_above(tenant, pct)) {
            Some(OverflowReason::Occupancy)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.contact_mut(c).scope =
                if reason == OverflowReason::Split { Scope::Outsourced } else { Scope::Any };
            out.push(Output::Overflowed { contact: c, reason });
        }
        self.route_contact(c, out);

        let contact = self.contact(c);
        if let Some(limit) = overflow.estimated_wait_above
            && contact.state == ContactState::Waiting
            && contact.scope == Scope::InHouse
            && self.estimated_wait(c).is_none_or(|ewt| ewt > limit)
        {
            self.overflow(c, OverflowReason::EstimatedWait, out);
        }
    }

    fn cancel(&mut self, c: ContactId, out: &mut Vec<Output>) -> Result<(), Rejection> {
        let contact = self.contacts.iter().find(|x| x.spec.id == c).ok_or(Rejection::UnknownContact(c))?;
        let waited = self.now.saturating_sub(contact.routable_since);
        match contact.state {
            ContactState::InService(_) => Err(Rejection::ContactInService(c)),
            ContactState::Scheduled | ContactState::Waiting => {
                out.push(Output::Abandoned { contact: c, waited });
                self.remove_contact(c);
                Ok(())
            }
            ContactState::Offered(r) => {
                let res = self.release(r);
                out.push(Output::OfferRescinded {
                    reservation: r,
                    contact: c,
                    target: res.target,
                    reason: RescindReason::Abandoned,
                });
                out.push(Output::Abandoned { contact: c, waited });
                self.remove_contact(c);
                self.after_release(&res, out);
                Ok(())
            }
        }
    }

    fn accept(&mut self, r: ReservationId, out: &mut Vec<Output>) -> Result<(), Rejection> {
        let res = self.reservations.iter_mut().find(|x| x.id == r).ok_or(Rejection::UnknownReservation(r))?;
        if res.state != ResState::Offered {
            return Err(Rejection::WrongReservationState(r));
        }
        res.state = ResState::Accepted;
        res.accepted_at = self.now;
        let (contact, target) = (res.contact, res.target);
        self.cancel_reservation_timers(r);
        self.cancel_contact_timers(contact);
        let now = self.now;
        let c = self.contact_mut(contact);
        c.state = ContactState::InService(r);
        let waited = now.saturating_sub(c.routable_since);
        if let Target::Agent(a) = target {
            self.agent_mut(a).missed = 0;
        }
        out.push(Output::Accepted { reservation: r, contact, target, waited });
        Ok(())
    }

    fn reject(&mut self, r: ReservationId, out: &mut Vec<Output>) -> Result<(), Rejection> {
        let res = self.reservations.iter().find(|x| x.id == r).ok_or(Rejection::UnknownReservation(r))?;
        if res.state != ResState::Offered {
            return Err(Rejection::WrongReservationState(r));
        }
        let res = self.release(r);
        if let Target::Agent(a) = res.target {
            self.agent_mut(a).missed = 0;
        }
        self.requeue_excluding(&res, RequeueReason::Rejected, out);
        self.after_release(&res, out);
        Ok(())
    }

    fn expire_offer(&mut self, r: ReservationId, out: &mut Vec<Output>) {
        let res = self.release(r);
        self.requeue_excluding(&res, RequeueReason::Expired, out);
        if let Target::Agent(a) = res.target {
            let max = {
                let c = self.contact(res.contact);
                self.policy(c.spec.tenant).channel(c.spec.channel).max_missed_offers
            };
            let agent = self.agent_mut(a);
            agent.missed = agent.missed.saturating_add(1);
            if max > 0 && agent.missed >= max && agent.presence == Presence::Ready {
                agent.presence = Presence::NotReady(NOT_READY_MISSED_OFFERS);
                self.touch_idle(Target::Agent(a));
            }
        }
        self.after_release(&res, out);
    }

    /// After a reject or an expiry: the contact back in line with the target excluded, routed.
    fn requeue_excluding(&mut self, res: &Reservation, reason: RequeueReason, out: &mut Vec<Output>) {
        out.push(Output::Requeued { contact: res.contact, reason });
        let contact = self.contact_mut(res.contact);
        contact.state = ContactState::Waiting;
        if !contact.excluded.contains(&res.target) {
            contact.excluded.push(res.target);
        }
        self.route_contact(res.contact, out);
    }

    fn complete(&mut self, r: ReservationId, out: &mut Vec<Output>) -> Result<(), Rejection> {
        let res = self.reservations.iter().find(|x| x.id == r).ok_or(Rejection::UnknownReservation(r))?;
        if res.state != ResState::Accepted {
            return Err(Rejection::WrongReservationState(r));
        }
        let (contact, target) = (res.contact, res.target);
        out.push(Output::Completed { reservation: r, contact, target });
        let wrap_up = {
            let c = self.contact(contact);
            self.policy(c.spec.tenant).channel(c.spec.channel).wrap_up
        };
        // The contact is over; its reservation may hold capacity a while longer.
        self.remove_contact(contact);
        match target {
            Target::Agent(a) if wrap_up > 0 => {
                self.reservation_mut(r).state = ResState::WrapUp;
                self.schedule(self.now + wrap_up, TimerKind::WrapUpEnd(r));
                self.refresh(a, out);
            }
            // No wrap-up, or a capacity-level pool (which wraps up on its own side).
            _ => {
                let res = self.release(r);
                self.after_release(&res, out);
            }
        }
        Ok(())
    }

    /// After a release: report the target's state, serve it, then its pool if capped.
    fn after_release(&mut self, res: &Reservation, out: &mut Vec<Output>) {
        if let Target::Agent(a) = res.target {
            self.refresh(a, out);
        }
        self.serve(res.target, out);
        self.serve_capped_pool(res.pool, out);
    }

    // ----------------------------------------------------------------------------------------
    // Routing

    /// Offers a waiting contact to the best eligible target, if any.
    fn route_contact(&mut self, c: ContactId, out: &mut Vec<Output>) {
        let contact = self.contact(c);
        if contact.state != ContactState::Waiting {
            return;
        }
        let requirement = self.requirement(contact);
        let strategy = self.policy(contact.spec.tenant).channel(contact.spec.channel).strategy;
        let best = self
            .targets()
            .filter(|&t| self.eligible(contact, &requirement, t))
            .min_by_key(|&t| order_key(strategy, &requirement, t))
            .map(TargetRef::target);
        if let Some(target) = best {
            self.offer(c, target, out);
        }
    }

    /// Offers a target the best contact it is eligible for, again and again until it is full
    /// or nothing fits.
    fn serve(&mut self, target: Target, out: &mut Vec<Output>) {
        loop {
            let Some(t) = self.target_ref(target) else { return };
            let best = self
                .contacts
                .iter()
                .filter(|c| c.state == ContactState::Waiting && self.eligible(c, &self.requirement(c), t))
                .min_by_key(|c| (c.rank, c.seq))
                .map(|c| c.spec.id);
            match best {
                Some(c) => self.offer(c, target, out),
                None => return,
            }
        }
    }

    /// Serves every target of a pool, in join order.
    fn serve_pool(&mut self, pool: PoolId, out: &mut Vec<Output>) {
        for target in self.pool_targets(pool) {
            self.serve(target, out);
        }
    }

    fn serve_capped_pool(&mut self, pool: PoolId, out: &mut Vec<Output>) {
        if self.pools.iter().any(|p| p.config.id == pool && p.config.max_concurrent.is_some()) {
            self.serve_pool(pool, out);
        }
    }

    fn offer(&mut self, c: ContactId, target: Target, out: &mut Vec<Output>) {
        let now = self.now;
        let contact = self.contact(c);
        let (channel, tenant) = (contact.spec.channel, contact.spec.tenant);
        let queue = self.queue_key(contact);
        let timeout = self.policy(tenant).channel(channel).offer_timeout;
        let t = self.target_ref(target).expect("offered to a live target");
        let (pool, weight) = (t.pool(), t.capacity().weight[channel.index()]);
        self.last_reservation += 1;
        let id = ReservationId(self.last_reservation);
        self.reservations.push(Reservation {
            id,
            contact: c,
            queue,
            target,
            pool,
            channel,
            weight,
            state: ResState::Offered,
            accepted_at: 0,
        });
        self.contact_mut(c).state = ContactState::Offered(id);
        self.adjust_holdings(target, pool, channel, weight, true);
        let key = self.next_key();
        match target {
            Target::Agent(a) => {
                let agent = self.agent_mut(a);
                agent.idle_key = key;
                agent.offer_key = key;
            }
            Target::Pool(p) => {
                let pool = self.pool_mut(p);
                pool.idle_key = key;
                pool.offer_key = key;
            }
        }
        let deadline = now + timeout;
        out.push(Output::Offered { reservation: id, contact: c, target, pool, deadline });
        self.schedule(deadline, TimerKind::OfferDeadline(id));
        if let Target::Agent(a) = target {
            self.refresh(a, out);
        }
    }

    /// Removes a reservation: frees its capacity, gives its target a new idle key and records
    /// a handle time when it had been accepted. The contact is left to the caller.
    fn release(&mut self, r: ReservationId) -> Reservation {
        let i = self.reservations.iter().position(|x| x.id == r).expect("live reservation");
        let res = self.reservations.remove(i);
        self.cancel_reservation_timers(r);
        self.adjust_holdings(res.target, res.pool, res.channel, res.weight, false);
        self.touch_idle(res.target);
        if res.state != ResState::Offered {
            self.record_handle_time(&res.queue, self.now.saturating_sub(res.accepted_at));
        }
        res
    }

    fn adjust_holdings(&mut self, target: Target, pool: PoolId, channel: Channel, weight: u16, take: bool) {
        let held = match target {
            Target::Agent(a) => &mut self.agent_mut(a).held,
            Target::Pool(p) => &mut self.pool_mut(p).held,
        };
        let c = channel.index();
        if take {
            held.per_channel[c] += 1;
            held.units += u32::from(weight);
        } else {
            held.per_channel[c] -= 1;
            held.units -= u32::from(weight);
        }
        let pool = self.pool_mut(pool);
        if take {
            pool.in_flight += 1;
        } else {
            pool.in_flight -= 1;
        }
    }

    fn remove_contact(&mut self, c: ContactId) {
        self.contacts.retain(|x| x.spec.id != c);
        self.cancel_contact_timers(c);
    }

    /// Emits the agent's reported state if it changed.
    fn refresh(&mut self, agent: AgentId, out: &mut Vec<Output>) {
        let target = Target::Agent(agent);
        let live = self.reservations.iter().any(|r| r.target == target && r.state != ResState::WrapUp);
        let wrapping = self.reservations.iter().any(|r| r.target == target && r.state == ResState::WrapUp);
        let a = self.agent_mut(agent);
        let state = match a.presence {
            Presence::Offline => AgentState::Offline,
            _ if live => AgentState::Busy,
            _ if wrapping => AgentState::WrapUp,
            Presence::NotReady(reason) => AgentState::NotReady(reason),
            Presence::Ready => AgentState::Ready,
        };
        if state != a.reported {
            a.reported = state;
            out.push(Output::AgentStateChanged { agent, state });
        }
    }

    fn touch_idle(&mut self, target: Target) {
        let key = self.next_key();
        match target {
            Target::Agent(a) => self.agent_mut(a).idle_key = key,
            Target::Pool(p) => self.pool_mut(p).idle_key = key,
        }
    }

    // ----------------------------------------------------------------------------------------
    // Eligibility

    /// Every target: agents (in creation order), then capacity-level pools.
    fn targets(&self) -> impl Iterator<Item = TargetRef<'_>> {
        self.agents.iter().map(TargetRef::Agent).chain(
            self.pools
                .iter()
                .filter(|p| matches!(p.config.mode, PoolMode::CapacityLevel { .. }))
                .map(TargetRef::Pool),
        )
    }

    fn target_ref(&self, target: Target) -> Option<TargetRef<'_>> {
        match target {
            Target::Agent(a) => self.agents.iter().find(|x| x.config.id == a).map(TargetRef::Agent),
            Target::Pool(p) => self.pools.iter().find(|x| x.config.id == p).map(TargetRef::Pool),
        }
    }

    /// A capacity-level pool itself, or an agent-level pool's agents in the order they joined.
    fn pool_targets(&self, pool: PoolId) -> Vec<Target> {
        let Some(p) = self.pools.iter().find(|p| p.config.id == pool) else { return Vec::new() };
        if let PoolMode::CapacityLevel { .. } = p.config.mode {
            return vec![Target::Pool(pool)];
        }
        let mut members: Vec<(u64, AgentId)> =
            self.agents.iter().filter(|a| a.config.pool == pool).map(|a| (a.joined, a.config.id)).collect();
        members.sort();
        members.into_iter().map(|(_, a)| Target::Agent(a)).collect()
    }

    /// Rules 1–6 of the README's eligibility; `requirement` is the contact's current one.
    fn eligible(&self, contact: &Contact, requirement: &[SkillLevel], target: TargetRef<'_>) -> bool {
        let pool = self.pool(target.pool());
        // 1. logged in and ready; its pool open and below its cap.
        if !target.ready()
            || !pool.open
            || pool.config.max_concurrent.is_some_and(|max| pool.in_flight >= max)
        {
            return false;
        }
        // 2. room on the channel.
        if !target.has_room(contact.spec.channel) {
            return false;
        }
        // 3. tenant and scope.
        if pool.config.tenant != contact.spec.tenant || !contact.scope.allows(pool.config.kind) {
            return false;
        }
        // 4. skills and language.
        if !target.qualified(requirement, contact.spec.language) {
            return false;
        }
        // 5. the preferred agent while the wait runs.
        if contact.preferred_wait && contact.preferred.map(Target::Agent) != Some(target.target()) {
            return false;
        }
        // 6. not excluded.
        !contact.excluded.contains(&target.target())
    }

    /// The contact's current requirement: required skills lowered by the fired steps (never
    /// below 1), plus the preferred skills while a `DropPreferredSkills` step exists and has not
    /// fired (a skill in both needs the higher level). Sorted by skill.
    fn requirement(&self, contact: &Contact) -> Vec<SkillLevel> {
        let mut requirement: Vec<SkillLevel> = contact
            .spec
            .required
            .as_slice()
            .iter()
            .map(|s| SkillLevel { skill: s.skill, level: s.level.saturating_sub(contact.level_drop).max(1) })
            .collect();
        let policy = self.policy(contact.spec.tenant).channel(contact.spec.channel);
        let has_drop_step = policy.relaxation.iter().any(|s| s.action == RelaxAction::DropPreferredSkills);
        if has_drop_step && !contact.preferred_dropped {
            for &p in contact.spec.preferred.as_slice() {
                match requirement.iter_mut().find(|s| s.skill == p.skill) {
                    Some(s) => s.level = s.level.max(p.level),
                    None => requirement.push(p),
                }
            }
        }
        requirement.sort();
        requirement
    }

    /// The queue a contact waits in now.
    fn queue_key(&self, contact: &Contact) -> QueueKey {
        QueueKey {
            tenant: contact.spec.tenant,
            channel: contact.spec.channel,
            requirement: self.requirement(contact),
            language: contact.spec.language,
            scope: contact.scope,
            personal: contact.preferred.filter(|_| contact.preferred_wait),
        }
    }

    fn holdings_fit(&self, target: Target) -> bool {
        let Some(t) = self.target_ref(target) else { return true };
        let (cap, held) = (t.capacity(), t.held());
        (0..Channel::COUNT).all(|c| held.per_channel[c] <= u32::from(cap.per_channel[c]))
            && held.units <= u32::from(cap.total)
    }

    // ----------------------------------------------------------------------------------------
    // Overflow measures

    fn all_inhouse_closed(&self, tenant: TenantId) -> bool {
        self.pools
            .iter()
            .filter(|p| p.config.tenant == tenant && p.config.kind == PoolKind::InHouse)
            .all(|p| !p.open)
    }

    /// In-house occupancy of the tenant above `pct` (see the crate docs).
    fn occupancy_above(&self, tenant: TenantId, pct: u8) -> bool {
        let inhouse = |pool: PoolId| {
            let p = self.pool(pool);
            p.config.tenant == tenant && p.config.kind == PoolKind::InHouse
        };
        let used: u64 =
            self.reservations.iter().filter(|r| inhouse(r.pool)).map(|r| u64::from(r.weight)).sum();
        let units: u64 = self
            .targets()
            .filter(|&t| inhouse(t.pool()) && self.staffed(t))
            .map(|t| u64::from(t.capacity().total))
            .sum();
        units == 0 || used * 100 > u64::from(pct) * units
    }

    /// Logged in (a capacity-level pool always is) and its pool open.
    fn staffed(&self, target: TargetRef<'_>) -> bool {
        target.logged_in() && self.pool(target.pool()).open
    }

    /// The estimated wait of a waiting contact (see the crate docs); `None` when no staffed
    /// target serves its queue.
    fn estimated_wait(&self, c: ContactId) -> Option<Millis> {
        let contact = self.contact(c);
        let queue = self.queue_key(contact);
        let ahead = self
            .contacts
            .iter()
            .filter(|d| {
                d.spec.id != c
                    && d.state == ContactState::Waiting
                    && (d.rank, d.seq) < (contact.rank, contact.seq)
                    && self.queue_key(d) == queue
            })
            .count() as u64;
        let slots: u64 = self
            .targets()
            .filter(|&t| {
                let pool = self.pool(t.pool());
                self.staffed(t)
                    && pool.config.tenant == queue.tenant
                    && queue.scope.allows(pool.config.kind)
                    && queue.personal.is_none_or(|p| t.target() == Target::Agent(p))
                    && t.qualified(&queue.requirement, queue.language)
            })
            .map(|t| t.slots(queue.channel))
            .sum();
        if slots == 0 {
            return None;
        }
        let h = match self.handle_times.iter().find(|h| h.queue == queue) {
            Some(h) if h.seen >= HANDLE_TIMES_BEFORE_ESTIMATE => h.mean,
            _ => self.policy(queue.tenant).channel(queue.channel).default_handle_time as f64,
        };
        Some(((ahead + 1) as f64 * h / slots as f64).round() as Millis)
    }

    fn record_handle_time(&mut self, queue: &QueueKey, sample: Millis) {
        let sample = sample as f64;
        match self.handle_times.iter_mut().find(|h| &h.queue == queue) {
            Some(h) => {
                h.seen += 1;
                h.mean += HANDLE_TIME_ALPHA * (sample - h.mean);
            }
            None => self.handle_times.push(HandleTime { queue: queue.clone(), seen: 1, mean: sample }),
        }
    }

    // ----------------------------------------------------------------------------------------
    // Lookups

    fn next_key(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn policy(&self, tenant: TenantId) -> &TenantPolicy {
        self.policies
            .iter()
            .find(|p| p.tenant == tenant)
            .expect("a held contact's or pool's tenant has a policy")
    }

    fn pool(&self, id: PoolId) -> &Pool {
        self.pools.iter().find(|p| p.config.id == id).expect("live pool")
    }

    fn pool_mut(&mut self, id: PoolId) -> &mut Pool {
        self.pools.iter_mut().find(|p| p.config.id == id).expect("live pool")
    }

    fn find_agent_mut(&mut self, id: AgentId) -> Result<&mut Agent, Rejection> {
        self.agents.iter_mut().find(|a| a.config.id == id).ok_or(Rejection::UnknownAgent(id))
    }

    fn agent(&self, id: AgentId) -> &Agent {
        self.agents.iter().find(|a| a.config.id == id).expect("live agent")
    }

    fn agent_mut(&mut self, id: AgentId) -> &mut Agent {
        self.agents.iter_mut().find(|a| a.config.id == id).expect("live agent")
    }

    fn contact(&self, id: ContactId) -> &Contact {
        self.contacts.iter().find(|c| c.spec.id == id).expect("live contact")
    }

    fn contact_mut(&mut self, id: ContactId) -> &mut Contact {
        self.contacts.iter_mut().find(|c| c.spec.id == id).expect("live contact")
    }

    fn reservation_mut(&mut self, id: ReservationId) -> &mut Reservation {
        self.reservations.iter_mut().find(|r| r.id == id).expect("live reservation")
    }
}

impl Contact {
    /// The preferred-agent wait to start when it becomes routable.
    fn preferred_agent_wait(&self) -> Option<Millis> {
        self.spec.preferred_agent.filter(|_| self.preferred_wait).map(|(_, wait)| wait)
    }
}

/// The `(bucket, key, tie-break)` by which the least target wins (the README's strategy
/// table; ties by idle key).
fn order_key(strategy: Strategy, requirement: &[SkillLevel], target: TargetRef<'_>) -> (u64, u64, u64) {
    let (idle, offer) = target.keys();
    match strategy {
        Strategy::LongestIdle => (0, idle, idle),
        Strategy::LeastOccupied => (u64::from(target.held().units).min(TOP_BUCKET), idle, idle),
        Strategy::BestProficiency => {
            let sum: u64 = requirement.iter().map(|&need| u64::from(target.skill_level(need))).sum();
            (TOP_BUCKET - sum.min(TOP_BUCKET), idle, idle)
        }
        Strategy::RoundRobin => (0, offer, idle),
    }
}

/// Skills with valid ids and levels, each at most once.
fn skills_valid(skills: &[SkillLevel]) -> bool {
    skills.iter().enumerate().all(|(i, s)| {
        s.skill.0 < MAX_SKILLS
            && (1..=MAX_LEVEL).contains(&s.level)
            && !skills[..i].iter().any(|t| t.skill == s.skill)
    })
}

/// A contact's skills and language are valid: valid ids and levels, no skill twice in one
/// list, at most [`MAX_CONTACT_SKILLS`] required and preferred in all.
fn contact_skills_valid(spec: &ContactSpec) -> bool {
    skills_valid(spec.required.as_slice())
        && skills_valid(spec.preferred.as_slice())
        && spec.language.is_none_or(|l| l.0 < MAX_LANGUAGES)
        && spec.required.len() + spec.preferred.len() <= MAX_CONTACT_SKILLS
}
