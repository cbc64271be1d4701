//! The discrete-event simulation: one replication of a scenario, driven through the real
//! engine in virtual milliseconds.
//!
//! The simulator keeps a min-heap of its own events (arrivals, handle-time completions,
//! customer patience running out) and a sorted timeline of planned ones (shift starts and
//! ends, a provider declaring or withdrawing capacity). Before each of its events it lets the
//! engine's own timers fire at their due times (`engine.next_due()` → [`Input::Tick`]), so a
//! relaxation, overflow, wrap-up end or pool opening happens at the right instant. Virtual time
//! jumps from event to event; nothing ever sleeps.
//!
//! Simulated agents (and capacity-level pools) accept every [`Output::Offered`] at the same
//! instant and send [`Input::Complete`] after a sampled handle time. A customer whose patience
//! runs out while waiting sends [`Input::Cancel`]. At the end of a shift an agent goes not
//! ready, and logs out once it holds no work. Every figure is taken from the engine's outputs:
//! `Accepted.waited`, `Abandoned.waited`, `Offered.pool`, `Overflowed`, `AgentStateChanged`,
//! and `QueueStatus.estimated_wait` (the wait a customer was promised).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration as StdDuration, Instant};

use vuoro_engine::{
    AgentConfig, AgentId, AgentState, Capacity, Channel, ContactId, ContactSpec, Engine, EngineConfig, Input,
    Millis, Output, PoolId, PoolKind, ReservationId, Target,
};

use crate::dist::{self, SimRng};
use crate::model::{Arrivals, Scenario, TENANT};

/// Reason code the simulator uses for "not ready: shift over".
pub const SHIFT_END: u16 = 1;

/// Everything about a scenario that is the same in every replication: agents, the timeline of
/// shifts and provider capacity, arrival-rate segments and priority classes.
#[derive(Debug)]
pub struct Plan {
    agents: Vec<PlannedAgent>,
    timeline: Vec<(Millis, Planned)>,
    segments: Vec<Vec<(f64, f64, f64)>>,
    /// Priority classes: (channel, effective priority), sorted.
    pub classes: Vec<(Channel, u16)>,
    class_lookup: Vec<u16>,
}

#[derive(Debug)]
struct PlannedAgent {
    config: AgentConfig,
    pool: usize,
}

#[derive(Clone, Copy, Debug)]
enum Planned {
    ShiftStart(u32),
    ShiftEnd(u32),
    PoolOpen(u32),
    PoolClose(u32),
}

const MAX_EFFECTIVE_PRIORITY: usize = 511;

impl Plan {
    /// Expands a scenario's shifts, provider hours and arrival rates.
    pub fn new(sc: &Scenario) -> Plan {
        let end = sc.end() + sc.drain;
        let mut agents = Vec::new();
        let mut timeline = Vec::new();
        for g in &sc.groups {
            let intervals = g.shifts.intervals(sc.start, end);
            for _ in 0..g.count {
                let i = agents.len() as u32;
                agents.push(PlannedAgent {
                    config: AgentConfig {
                        id: AgentId(u64::from(i) + 1),
                        pool: sc.pools[g.pool].config.id,
                        skills: g.skills.clone(),
                        languages: g.languages,
                        capacity: g.capacity,
                    },
                    pool: g.pool,
                });
                for &(a, b) in &intervals {
                    timeline.push((a, Planned::ShiftStart(i)));
                    if b < end {
                        timeline.push((b, Planned::ShiftEnd(i)));
                    }
                }
            }
        }
        for (p, pool) in sc.pools.iter().enumerate() {
            if pool.capacity.is_some() {
                for (a, b) in pool.windows.intervals(sc.start, end) {
                    timeline.push((a, Planned::PoolOpen(p as u32)));
                    if b < end {
                        timeline.push((b, Planned::PoolClose(p as u32)));
                    }
                }
            }
        }
        timeline.sort_by_key(|e| e.0);
        let segments = sc
            .streams
            .iter()
            .map(|s| match &s.arrivals {
                Arrivals::Poisson { per_hour } => {
                    crate::model::rate_segments(sc.tz, per_hour, 1.0, sc.start, sc.end())
                        .into_iter()
                        .map(|(a, b, r)| ((a - sc.start) as f64, (b - sc.start) as f64, r))
                        .collect()
                }
                Arrivals::Trace(_) => Vec::new(),
            })
            .collect();
        let mut classes = Vec::new();
        for s in &sc.streams {
            for (p, _) in s.priorities.entries() {
                for (seg, _) in s.segments.entries() {
                    let eff = u16::from(p) + u16::from(sc.policy.segment_boost[seg as usize]);
                    classes.push((s.channel, eff));
                }
            }
        }
        classes.sort_unstable();
        classes.dedup();
        let mut class_lookup = vec![u16::MAX; Channel::COUNT * (MAX_EFFECTIVE_PRIORITY + 1)];
        for (i, &(c, eff)) in classes.iter().enumerate() {
            class_lookup[c.index() * (MAX_EFFECTIVE_PRIORITY + 1) + usize::from(eff)] = i as u16;
        }
        Plan { agents, timeline, segments, classes, class_lookup }
    }

    fn class(&self, channel: Channel, eff: u16) -> u16 {
        self.class_lookup[channel.index() * (MAX_EFFECTIVE_PRIORITY + 1) + usize::from(eff)]
    }

    /// Number of simulated agents.
    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }
}

/// Counts for one channel or one traffic stream, over the contacts that count (arrived after
/// the warm-up, within the horizon).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Contacts that arrived.
    pub arrivals: u64,
    /// Answered (offer accepted).
    pub answered: u64,
    /// Answered within the service-level threshold.
    pub answered_within: u64,
    /// Abandoned.
    pub abandoned: u64,
    /// Abandoned after waiting longer than the threshold.
    pub abandoned_after: u64,
    /// Not offered the moment they became routable (had to wait).
    pub waited: u64,
    /// Sum of the waits of answered contacts, ms.
    pub wait_answered_ms: u64,
    /// Sum of the waits of answered and abandoned contacts, ms.
    pub wait_all_ms: u64,
    /// Answered by an outsourced pool.
    pub answered_outsourced: u64,
    /// Widened to outsourced pools (any reason).
    pub overflowed: u64,
    /// Callback requests among the arrivals.
    pub callbacks: u64,
    /// Still unanswered when the simulation stopped (end of the drain period).
    pub unfinished: u64,
    /// Answered contacts that had been given a wait estimate when they started waiting.
    pub answered_with_estimate: u64,
    /// Sum over them of (first estimate − wait), ms: positive when customers were told a
    /// longer wait than they had.
    pub estimate_error_ms: i64,
    /// Sum over them of |first estimate − wait|, ms.
    pub estimate_abs_error_ms: u64,
}

/// Counts for one priority class.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassTally {
    /// Contacts that arrived.
    pub arrivals: u64,
    /// Answered or abandoned.
    pub ended: u64,
    /// Sum of their waits, ms.
    pub wait_ms: u64,
}

/// Figures for one pool.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolTally {
    /// Counted contacts it answered.
    pub answered: u64,
    /// Capacity units in use × ms, after the warm-up and within the horizon.
    pub busy_unit_ms: f64,
    /// Capacity units logged in (or declared) × ms, same period.
    pub staffed_unit_ms: f64,
    /// Agents logged in × ms (for capacity-level pools: declared contacts × ms), same period.
    pub staffed_ms: f64,
}

/// Per time bucket over the horizon (nothing before the end of the warm-up).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Per channel: waiting contacts × ms.
    pub queue: [Vec<f64>; Channel::COUNT],
    /// Per channel: contacts arriving in the bucket that were answered.
    pub answered: [Vec<u64>; Channel::COUNT],
    /// … answered within the threshold.
    pub answered_within: [Vec<u64>; Channel::COUNT],
    /// … abandoned after the threshold.
    pub abandoned_after: [Vec<u64>; Channel::COUNT],
    /// Per pool: agents logged in (capacity-level: declared contacts) × ms.
    pub staffing: Vec<Vec<f64>>,
    /// Per pool: units in use × ms.
    pub busy: Vec<Vec<f64>>,
    /// Per pool: units staffed × ms.
    pub staffed_units: Vec<Vec<f64>>,
}

/// The outcome of one replication.
#[derive(Clone, Debug)]
pub struct RepResult {
    /// Per channel.
    pub channels: [Tally; Channel::COUNT],
    /// Per stream.
    pub streams: Vec<Tally>,
    /// Per priority class ([`Plan::classes`]).
    pub classes: Vec<ClassTally>,
    /// Per pool.
    pub pools: Vec<PoolTally>,
    /// Over time.
    pub series: Series,
    /// Contacts simulated (counted or not).
    pub contacts: u64,
    /// Inputs applied to the engine.
    pub inputs: u64,
    /// Inputs the engine refused, which a correct simulation never sends.
    pub rejected: u64,
    /// The first refusal, for diagnosis.
    pub first_rejection: Option<String>,
    /// CPU time of the replication's thread (Linux; elsewhere its wall time).
    pub elapsed: StdDuration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    Arriving,
    Scheduled,
    Waiting,
    Served,
}

#[derive(Clone, Copy, Debug)]
struct ContactRec {
    generation: u32,
    state: State,
    stream: u16,
    class: u16,
    channel: Channel,
    counted: bool,
    callback: bool,
    agent_target: bool,
    bucket: u32,
    pool: u16,
    weight: u16,
    served_at: Millis,
    /// The first wait estimate the customer was given ([`Output::QueueStatus`]), or
    /// [`NO_ESTIMATE`].
    estimate: Millis,
}

/// [`ContactRec::estimate`] of a contact never given an estimate.
const NO_ESTIMATE: Millis = Millis::MAX;

#[derive(Clone, Copy, Debug, Default)]
struct AgentRec {
    pool: u16,
    units: u16,
    online: bool,
    leaving: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EventKind {
    Arrival(u32),
    Complete {
        reservation: ReservationId,
        slot: u32,
    },
    Patience {
        slot: u32,
        generation: u32,
    },
    /// A callback's promised time.
    Due {
        slot: u32,
        generation: u32,
    },
}

/// A simulator event. `key` packs the due time (ms after the start, 40 bits) above a
/// scheduling sequence number (24 bits, wrapping), so events due at the same millisecond come
/// out in the order they were scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Event {
    key: u64,
    kind: EventKind,
}

const SEQ_BITS: u32 = 24;

impl Ord for Event {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: the heap's top is the earliest.
        other.key.cmp(&self.key)
    }
}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Clone, Copy, Debug)]
enum Immediate {
    Accept(ReservationId),
    LogOut(AgentId),
}

/// A time-weighted level (waiting contacts, agents logged in) spread into buckets.
#[derive(Clone, Copy, Debug, Default)]
struct Level {
    value: f64,
    since: Millis,
}

/// The bucket layout and the counting window.
#[derive(Clone, Copy, Debug)]
struct Clock {
    start: Millis,
    warm: Millis,
    end: Millis,
    interval: Millis,
}

impl Clock {
    /// Adds `value` over `[from, to)`, clipped to the counting window `[warm, end)`, into
    /// `buckets`, and returns the total added.
    #[inline]
    fn spread(&self, buckets: &mut [f64], from: Millis, to: Millis, value: f64) -> f64 {
        let (from, to) = (from.max(self.warm), to.min(self.end));
        if from >= to || value == 0.0 {
            return 0.0;
        }
        let mut t = from;
        while t < to {
            let b = ((t - self.start) / self.interval) as usize;
            let bucket_end = (self.start + (b as u64 + 1) * self.interval).min(to);
            buckets[b] += value * (bucket_end - t) as f64;
            t = bucket_end;
        }
        value * (to - from) as f64
    }

    /// The bucket of a counted contact arriving at `t`, or `u32::MAX` when it is not counted.
    fn bucket(&self, t: Millis) -> u32 {
        if t >= self.warm && t < self.end { ((t - self.start) / self.interval) as u32 } else { u32::MAX }
    }
}

/// How often (in loop iterations) a replication reports progress.
const PROGRESS_EVERY: u64 = 1 << 14;

/// Progress reporting: called with the virtual time simulated since the last call (ms).
pub type Progress<'a> = &'a (dyn Fn(Millis) + Sync);

struct Replication<'a> {
    sc: &'a Scenario,
    plan: &'a Plan,
    engine: Engine,
    now: Millis,
    rng: SimRng,
    clock: Clock,
    heap: BinaryHeap<Event>,
    seq: u64,
    cursor: usize,
    out: Vec<Output>,
    pending: VecDeque<Immediate>,
    contacts: Vec<ContactRec>,
    free: Vec<u32>,
    live: u64,
    agents: Vec<AgentRec>,
    stream_clock: Vec<f64>,
    stream_segment: Vec<usize>,
    queue: [Level; Channel::COUNT],
    staffing: Vec<Level>,
    staffed_units: Vec<Level>,
    pool_outsourced: Vec<bool>,
    pool_capacity_weight: Vec<[u16; Channel::COUNT]>,
    thresholds: [Millis; Channel::COUNT],
    wrap_up: [Millis; Channel::COUNT],
    timers_matter: bool,
    result: RepResult,
}

/// Runs replication `rep` of a scenario.
pub fn run_replication(sc: &Scenario, plan: &Plan, rep: u32, progress: Option<Progress<'_>>) -> RepResult {
    let started = Instant::now();
    let cpu_before = thread_cpu_time();
    let mut r = Replication::new(sc, plan, rep);
    r.setup();
    r.run(progress);
    let mut result = r.finish();
    result.elapsed = match (cpu_before, thread_cpu_time()) {
        (Some(before), Some(after)) if after >= before => after - before,
        _ => started.elapsed(),
    };
    result
}

/// CPU time of the calling thread so far, where the system tells it without unsafe code
/// (Linux: `/proc/thread-self/schedstat`, nanoseconds).
pub fn thread_cpu_time() -> Option<StdDuration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(StdDuration::from_nanos(nanos))
}

impl<'a> Replication<'a> {
    fn new(sc: &'a Scenario, plan: &'a Plan, rep: u32) -> Self {
        let peak_per_hour: f64 = sc
            .streams
            .iter()
            .map(|s| match &s.arrivals {
                Arrivals::Poisson { per_hour } => per_hour.iter().copied().fold(0.0, f64::max),
                Arrivals::Trace(t) => {
                    t.len() as f64 / (sc.horizon as f64 / crate::model::HOUR as f64).max(1.0)
                }
            })
            .sum();
        let expected_contacts = ((peak_per_hour / 4.0) as usize + plan.agents.len() * 2).clamp(256, 1 << 20);
        let engine = Engine::new(EngineConfig {
            status_interval: 0,
            expected_contacts,
            expected_agents: plan.agents.len() + sc.pools.len() + 16,
        });
        let buckets = sc.buckets();
        let n_pools = sc.pools.len();
        let series = Series {
            queue: std::array::from_fn(|_| vec![0.0; buckets]),
            answered: std::array::from_fn(|_| vec![0; buckets]),
            answered_within: std::array::from_fn(|_| vec![0; buckets]),
            abandoned_after: std::array::from_fn(|_| vec![0; buckets]),
            staffing: vec![vec![0.0; buckets]; n_pools],
            busy: vec![vec![0.0; buckets]; n_pools],
            staffed_units: vec![vec![0.0; buckets]; n_pools],
        };
        let result = RepResult {
            channels: Default::default(),
            streams: vec![Tally::default(); sc.streams.len()],
            classes: vec![ClassTally::default(); plan.classes.len()],
            pools: vec![PoolTally::default(); n_pools],
            series,
            contacts: 0,
            inputs: 0,
            rejected: 0,
            first_rejection: None,
            elapsed: StdDuration::ZERO,
        };
        let start_level = Level { value: 0.0, since: sc.start };
        Replication {
            sc,
            plan,
            engine,
            now: sc.start,
            rng: dist::rng_for(sc.seed, u64::from(rep)),
            clock: Clock {
                start: sc.start,
                warm: sc.start + sc.warm_up,
                end: sc.end(),
                interval: sc.interval,
            },
            heap: BinaryHeap::with_capacity(expected_contacts),
            seq: 0,
            cursor: 0,
            out: Vec::with_capacity(64),
            pending: VecDeque::with_capacity(16),
            contacts: Vec::with_capacity(expected_contacts),
            free: Vec::with_capacity(expected_contacts),
            live: 0,
            agents: plan
                .agents
                .iter()
                .map(|a| AgentRec {
                    pool: a.pool as u16,
                    units: a.config.capacity.total,
                    ..AgentRec::default()
                })
                .collect(),
            stream_clock: vec![0.0; sc.streams.len()],
            stream_segment: vec![0; sc.streams.len()],
            queue: [start_level; Channel::COUNT],
            staffing: vec![start_level; n_pools],
            staffed_units: vec![start_level; n_pools],
            pool_outsourced: sc
                .pools
                .iter()
                .map(|p| matches!(p.config.kind, PoolKind::Outsourced(_)))
                .collect(),
            pool_capacity_weight: sc
                .pools
                .iter()
                .map(|p| p.capacity.map_or([1; Channel::COUNT], |c| c.weight))
                .collect(),
            thresholds: std::array::from_fn(|c| sc.policy.channels[c].service_level_threshold),
            wrap_up: std::array::from_fn(|c| sc.policy.channels[c].wrap_up),
            timers_matter: engine_timers_matter(sc),
            result,
        }
    }

    fn push(&mut self, at: Millis, kind: EventKind) {
        self.seq = self.seq.wrapping_add(1);
        let key = (at - self.sc.start) << SEQ_BITS | (self.seq & ((1 << SEQ_BITS) - 1));
        self.heap.push(Event { key, kind });
    }

    fn due(&self, event: &Event) -> Millis {
        self.sc.start + (event.key >> SEQ_BITS)
    }

    fn setup(&mut self) {
        self.apply(&Input::UpsertPolicy(self.sc.policy.clone()));
        for pool in &self.sc.pools {
            self.apply(&Input::UpsertPool(pool.config.clone()));
        }
        for agent in &self.plan.agents {
            self.apply(&Input::UpsertAgent(agent.config.clone()));
        }
        for s in 0..self.sc.streams.len() {
            self.schedule_arrival(s);
        }
    }

    fn run(&mut self, progress: Option<Progress<'_>>) {
        let limit = self.sc.end() + self.sc.drain;
        let end = self.sc.end();
        let mut iterations: u64 = 0;
        let mut reported = self.sc.start;
        loop {
            iterations += 1;
            if iterations.is_multiple_of(PROGRESS_EVERY)
                && let Some(p) = progress
            {
                let at = self.now.min(end);
                p(at - reported);
                reported = at;
            }
            let t_heap = self.heap.peek().map_or(Millis::MAX, |e| self.due(e));
            let t_plan = self.plan.timeline.get(self.cursor).map_or(Millis::MAX, |e| e.0);
            let t_sim = t_heap.min(t_plan);
            let t_engine =
                if self.timers_matter { self.engine.next_due().unwrap_or(Millis::MAX) } else { Millis::MAX };
            let next = t_sim.min(t_engine);
            if next > limit || (self.now >= end && self.live == 0 && next >= end) {
                break;
            }
            if t_engine < t_sim {
                self.now = t_engine;
                self.apply(&Input::Tick);
                continue;
            }
            self.now = t_sim;
            if t_plan <= t_heap {
                let (_, planned) = self.plan.timeline[self.cursor];
                self.cursor += 1;
                self.planned(planned);
            } else if let Some(event) = self.heap.pop() {
                match event.kind {
                    EventKind::Arrival(s) => self.arrive(s as usize),
                    EventKind::Complete { reservation, slot } => self.complete(reservation, slot),
                    EventKind::Patience { slot, generation } => {
                        let rec = self.contacts[slot as usize];
                        if rec.generation == generation && rec.state == State::Waiting {
                            self.apply(&Input::Cancel(contact_id(slot, generation)));
                        }
                    }
                    EventKind::Due { slot, generation } => {
                        // The engine's own timer makes the contact routable at this instant;
                        // if nobody took it, it starts waiting.
                        self.apply(&Input::Tick);
                        let rec = self.contacts[slot as usize];
                        if rec.generation == generation && rec.state == State::Scheduled {
                            self.start_waiting(slot as usize);
                        }
                    }
                }
            }
        }
        if let Some(p) = progress {
            p(end - reported);
        }
    }

    fn finish(mut self) -> RepResult {
        let end = self.sc.end();
        let at = self.now.max(end);
        for c in 0..Channel::COUNT {
            self.set_queue(c, at, 0.0);
        }
        for p in 0..self.sc.pools.len() {
            self.set_staffing(p, at, 0.0, 0.0);
        }
        for rec in &self.contacts {
            if rec.counted && matches!(rec.state, State::Scheduled | State::Waiting | State::Arriving) {
                self.result.channels[rec.channel.index()].unfinished += 1;
                self.result.streams[usize::from(rec.stream)].unfinished += 1;
            }
        }
        self.result
    }

    // ----- engine I/O ----------------------------------------------------------------------

    fn apply(&mut self, input: &Input) {
        self.apply_one(input);
        while let Some(next) = self.pending.pop_front() {
            match next {
                Immediate::Accept(r) => self.apply_one(&Input::Accept(r)),
                Immediate::LogOut(a) => self.apply_one(&Input::LogOut(a)),
            }
        }
    }

    fn apply_one(&mut self, input: &Input) {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        self.engine.apply(self.now, input, &mut out);
        self.result.inputs += 1;
        for o in &out {
            self.handle(o, input);
        }
        self.out = out;
    }

    fn handle(&mut self, output: &Output, input: &Input) {
        match *output {
            Output::Offered { reservation, contact, target, pool, .. } => {
                self.offered(reservation, contact, target, pool)
            }
            Output::Accepted { contact, waited, .. } => self.answered(contact, waited),
            Output::Abandoned { contact, waited } => self.abandoned(contact, waited),
            Output::QueueStatus { contact, estimated_wait, .. } => self.queue_status(contact, estimated_wait),
            Output::Overflowed { contact, .. } => {
                if let Some(slot) = self.slot(contact) {
                    let rec = self.contacts[slot];
                    if rec.counted {
                        self.result.channels[rec.channel.index()].overflowed += 1;
                        self.result.streams[usize::from(rec.stream)].overflowed += 1;
                    }
                }
            }
            Output::AgentStateChanged { agent, state } => self.agent_state(agent, state),
            Output::Rejected(rejection) => {
                // A customer's patience may run out in the instant the contact is taken.
                let benign = matches!(input, Input::Cancel(_))
                    && matches!(
                        rejection,
                        vuoro_engine::Rejection::ContactInService(_)
                            | vuoro_engine::Rejection::UnknownContact(_)
                    );
                if !benign {
                    self.result.rejected += 1;
                    if self.result.first_rejection.is_none() {
                        self.result.first_rejection = Some(format!("{input:?} refused: {rejection}"));
                    }
                }
            }
            Output::Scheduled { .. }
            | Output::Requeued { .. }
            | Output::OfferRescinded { .. }
            | Output::Completed { .. }
            | Output::Relaxed { .. } => {}
        }
    }

    fn slot(&self, contact: ContactId) -> Option<usize> {
        let slot = (contact.0 & 0xFFFF_FFFF) as usize;
        let generation = (contact.0 >> 32) as u32;
        self.contacts.get(slot).filter(|r| r.generation == generation && r.state != State::Free).map(|_| slot)
    }

    // ----- contacts ------------------------------------------------------------------------

    fn schedule_arrival(&mut self, s: usize) {
        let at = match &self.sc.streams[s].arrivals {
            Arrivals::Trace(offsets) => {
                let i = self.stream_segment[s];
                self.stream_segment[s] += 1;
                offsets.get(i).map(|&o| self.sc.start + o)
            }
            Arrivals::Poisson { .. } => {
                let segments = &self.plan.segments[s];
                let mut t = self.stream_clock[s];
                let mut i = self.stream_segment[s];
                let mut found = None;
                while let Some(&(a, b, rate)) = segments.get(i) {
                    t = t.max(a);
                    if rate > 0.0 {
                        let next = t + dist::exponential_ms(&mut self.rng, rate);
                        if next < b {
                            found = Some(next);
                            t = next;
                            break;
                        }
                    }
                    t = b;
                    i += 1;
                }
                self.stream_clock[s] = t;
                self.stream_segment[s] = i;
                found.map(|t| self.sc.start + t as Millis)
            }
        };
        if let Some(at) = at.filter(|&at| at < self.sc.end()) {
            self.push(at, EventKind::Arrival(s as u32));
        }
    }

    fn arrive(&mut self, s: usize) {
        let stream = &self.sc.streams[s];
        let priority = stream.priorities.sample(&mut self.rng);
        let segment = stream.segments.sample(&mut self.rng);
        let language = stream.languages.sample(&mut self.rng);
        let not_before = match &stream.callback {
            Some(cb) if dist::uniform(&mut self.rng) < cb.share => {
                Some(self.now + cb.delay.sample_ms(&mut self.rng, 1.0))
            }
            _ => None,
        };
        let eff = u16::from(priority) + u16::from(self.sc.policy.segment_boost[segment as usize]);
        let class = self.plan.class(stream.channel, eff);
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.contacts.push(ContactRec {
                    generation: 0,
                    state: State::Free,
                    stream: 0,
                    class: 0,
                    channel: Channel::Voice,
                    counted: false,
                    callback: false,
                    agent_target: false,
                    bucket: 0,
                    pool: 0,
                    weight: 0,
                    served_at: 0,
                    estimate: NO_ESTIMATE,
                });
                (self.contacts.len() - 1) as u32
            }
        };
        let counted = self.now >= self.clock.warm;
        let rec = &mut self.contacts[slot as usize];
        rec.generation = rec.generation.wrapping_add(1);
        let generation = rec.generation;
        *rec = ContactRec {
            generation,
            state: State::Arriving,
            stream: s as u16,
            class,
            channel: stream.channel,
            counted,
            callback: not_before.is_some(),
            agent_target: false,
            bucket: self.clock.bucket(self.now),
            pool: 0,
            weight: 0,
            served_at: 0,
            estimate: NO_ESTIMATE,
        };
        self.live += 1;
        self.result.contacts += 1;
        if counted {
            let c = stream.channel.index();
            self.result.channels[c].arrivals += 1;
            self.result.streams[s].arrivals += 1;
            self.result.classes[usize::from(class)].arrivals += 1;
            if not_before.is_some() {
                self.result.channels[c].callbacks += 1;
                self.result.streams[s].callbacks += 1;
            }
        }
        let spec = ContactSpec {
            id: contact_id(slot, generation),
            tenant: TENANT,
            channel: stream.channel,
            priority,
            segment,
            required: stream.required,
            preferred: stream.preferred,
            language,
            preferred_agent: None,
            not_before,
        };
        self.apply(&Input::Enqueue(spec));
        let rec = self.contacts[slot as usize];
        if rec.generation == generation && rec.state == State::Arriving {
            match not_before {
                Some(at) if at > self.now => {
                    self.contacts[slot as usize].state = State::Scheduled;
                    self.push(at, EventKind::Due { slot, generation });
                }
                _ => self.start_waiting(slot as usize),
            }
        }
        self.schedule_arrival(s);
    }

    /// The contact is routable and nobody took it: it waits (and may run out of patience).
    fn start_waiting(&mut self, slot: usize) {
        let rec = &mut self.contacts[slot];
        let callback = rec.callback;
        rec.state = State::Waiting;
        let (c, s, generation, counted) =
            (rec.channel.index(), usize::from(rec.stream), rec.generation, rec.counted);
        if counted {
            self.result.channels[c].waited += 1;
            self.result.streams[s].waited += 1;
        }
        let value = self.queue[c].value + 1.0;
        self.set_queue(c, self.now, value);
        let stream = &self.sc.streams[s];
        let patience = if callback {
            stream.callback.as_ref().and_then(|cb| cb.patience.as_ref())
        } else {
            stream.patience.as_ref()
        };
        if let Some(p) = patience {
            let at = self.now + p.sample_ms(&mut self.rng, 1.0);
            self.push(at, EventKind::Patience { slot: slot as u32, generation });
        }
    }

    /// The engine told a waiting customer where they stand.
    fn queue_status(&mut self, contact: ContactId, estimated_wait: Option<Millis>) {
        let Some(slot) = self.slot(contact) else { return };
        let rec = &mut self.contacts[slot];
        // What the customer was promised is the first estimate they heard.
        if let Some(estimate) = estimated_wait
            && rec.estimate == NO_ESTIMATE
        {
            rec.estimate = estimate;
        }
        // A callback reaching its promised time with nobody free starts waiting.
        if rec.state == State::Scheduled {
            self.start_waiting(slot);
        }
    }

    fn offered(&mut self, reservation: ReservationId, contact: ContactId, target: Target, pool: PoolId) {
        self.pending.push_back(Immediate::Accept(reservation));
        let Some(slot) = self.slot(contact) else { return };
        let rec = self.contacts[slot];
        let c = rec.channel.index();
        if rec.state == State::Waiting {
            let value = self.queue[c].value - 1.0;
            self.set_queue(c, self.now, value);
        }
        let p = (pool.0 - 1) as usize;
        let (weight, agent_target) = match target {
            Target::Agent(a) => (self.plan.agents[(a.0 - 1) as usize].config.capacity.weight[c], true),
            Target::Pool(_) => (self.pool_capacity_weight[p][c], false),
        };
        let factor = self.sc.pools[p].handle_time_factor;
        let handle = self.sc.streams[usize::from(rec.stream)].handle_time.sample_ms(&mut self.rng, factor);
        let rec = &mut self.contacts[slot];
        rec.state = State::Served;
        rec.pool = p as u16;
        rec.weight = weight;
        rec.agent_target = agent_target;
        rec.served_at = self.now;
        self.push(self.now + handle, EventKind::Complete { reservation, slot: slot as u32 });
    }

    fn answered(&mut self, contact: ContactId, waited: Millis) {
        let Some(slot) = self.slot(contact) else { return };
        let rec = self.contacts[slot];
        if !rec.counted {
            return;
        }
        let c = rec.channel.index();
        let within = waited <= self.thresholds[c];
        let outsourced = self.pool_outsourced[usize::from(rec.pool)];
        let estimate_error = (rec.estimate != NO_ESTIMATE).then(|| rec.estimate as i64 - waited as i64);
        for t in [&mut self.result.channels[c], &mut self.result.streams[usize::from(rec.stream)]] {
            t.answered += 1;
            t.answered_within += u64::from(within);
            t.wait_answered_ms += waited;
            t.wait_all_ms += waited;
            t.answered_outsourced += u64::from(outsourced);
            if let Some(error) = estimate_error {
                t.answered_with_estimate += 1;
                t.estimate_error_ms += error;
                t.estimate_abs_error_ms += error.unsigned_abs();
            }
        }
        let class = &mut self.result.classes[usize::from(rec.class)];
        class.ended += 1;
        class.wait_ms += waited;
        self.result.pools[usize::from(rec.pool)].answered += 1;
        if rec.bucket != u32::MAX {
            let b = rec.bucket as usize;
            self.result.series.answered[c][b] += 1;
            self.result.series.answered_within[c][b] += u64::from(within);
        }
    }

    fn abandoned(&mut self, contact: ContactId, waited: Millis) {
        let Some(slot) = self.slot(contact) else { return };
        let rec = self.contacts[slot];
        let c = rec.channel.index();
        if rec.state == State::Waiting {
            let value = self.queue[c].value - 1.0;
            self.set_queue(c, self.now, value);
        }
        if rec.counted {
            let after = waited > self.thresholds[c];
            for t in [&mut self.result.channels[c], &mut self.result.streams[usize::from(rec.stream)]] {
                t.abandoned += 1;
                t.abandoned_after += u64::from(after);
                t.wait_all_ms += waited;
            }
            let class = &mut self.result.classes[usize::from(rec.class)];
            class.ended += 1;
            class.wait_ms += waited;
            if rec.bucket != u32::MAX && after {
                self.result.series.abandoned_after[c][rec.bucket as usize] += 1;
            }
        }
        self.release_slot(slot);
    }

    fn complete(&mut self, reservation: ReservationId, slot: u32) {
        self.apply(&Input::Complete(reservation));
        let rec = self.contacts[slot as usize];
        let p = usize::from(rec.pool);
        let wrap = if rec.agent_target { self.wrap_up[rec.channel.index()] } else { 0 };
        let busy = self.clock.spread(
            &mut self.result.series.busy[p],
            rec.served_at,
            self.now + wrap,
            f64::from(rec.weight),
        );
        self.result.pools[p].busy_unit_ms += busy;
        self.release_slot(slot as usize);
    }

    fn release_slot(&mut self, slot: usize) {
        self.contacts[slot].state = State::Free;
        self.free.push(slot as u32);
        self.live -= 1;
    }

    // ----- levels ------------------------------------------------------------------------

    fn set_queue(&mut self, c: usize, at: Millis, value: f64) {
        let level = &mut self.queue[c];
        self.clock.spread(&mut self.result.series.queue[c], level.since, at, level.value);
        level.value = value;
        level.since = at;
    }

    fn set_staffing(&mut self, p: usize, at: Millis, agents: f64, units: f64) {
        let level = self.staffing[p];
        self.result.pools[p].staffed_ms +=
            self.clock.spread(&mut self.result.series.staffing[p], level.since, at, level.value);
        self.staffing[p] = Level { value: agents, since: at };
        let level = self.staffed_units[p];
        self.result.pools[p].staffed_unit_ms +=
            self.clock.spread(&mut self.result.series.staffed_units[p], level.since, at, level.value);
        self.staffed_units[p] = Level { value: units, since: at };
    }

    // ----- agents and pools --------------------------------------------------------------

    fn planned(&mut self, planned: Planned) {
        match planned {
            Planned::ShiftStart(i) => {
                let id = AgentId(u64::from(i) + 1);
                self.agents[i as usize].leaving = false;
                self.apply(&Input::LogIn(id));
                self.apply(&Input::Ready(id));
            }
            Planned::ShiftEnd(i) => {
                let id = AgentId(u64::from(i) + 1);
                self.agents[i as usize].leaving = true;
                self.apply(&Input::NotReady(id, SHIFT_END));
            }
            Planned::PoolOpen(p) | Planned::PoolClose(p) => {
                let pool = &self.sc.pools[p as usize];
                let open = matches!(planned, Planned::PoolOpen(_));
                let capacity =
                    if open { pool.capacity.unwrap_or(Capacity::uniform(0)) } else { Capacity::uniform(0) };
                let (agents, units) = (f64::from(capacity.total), f64::from(capacity.total));
                self.set_staffing(p as usize, self.now, agents, units);
                self.apply(&Input::PoolCapacity(pool.config.id, capacity));
            }
        }
    }

    fn agent_state(&mut self, agent: AgentId, state: AgentState) {
        let i = (agent.0 - 1) as usize;
        let Some(rec) = self.agents.get(i).copied() else { return };
        let online = state != AgentState::Offline;
        if online != rec.online {
            self.agents[i].online = online;
            let p = usize::from(rec.pool);
            let sign = if online { 1.0 } else { -1.0 };
            let (agents, units) =
                (self.staffing[p].value + sign, self.staffed_units[p].value + sign * f64::from(rec.units));
            self.set_staffing(p, self.now, agents, units);
        }
        if state == AgentState::NotReady(SHIFT_END) && rec.leaving {
            self.pending.push_back(Immediate::LogOut(agent));
        }
    }
}

/// Whether any of the engine's timers can change something the simulation must react to at
/// its own instant. The engine fires due timers before every input anyway ("each at its own
/// due time"), so a timer that can only be a no-op needs no [`Input::Tick`] of its own.
///
/// Offer deadlines are always no-ops here (offers are accepted in the instant they are made)
/// and queue-status refreshes are off; every other kind — wrap-up ends, `not_before` times
/// (callbacks), relaxation steps, overflow waits and opening hours — needs its tick.
pub fn engine_timers_matter(sc: &Scenario) -> bool {
    sc.policy
        .channels
        .iter()
        .any(|c| c.wrap_up > 0 || !c.relaxation.is_empty() || c.overflow.after_wait.is_some())
        || sc.pools.iter().any(|p| p.config.hours.is_some())
        || sc.streams.iter().any(|s| s.callback.is_some())
}

fn contact_id(slot: u32, generation: u32) -> ContactId {
    ContactId(u64::from(generation) << 32 | u64::from(slot))
}
