//! Workloads and drivers for Vuoro's routing benches.
//!
//! Everything here is deterministic: a [`Rng`] (SplitMix64) seeded by the caller generates the
//! agents, the requirement signatures and the contact stream, so two runs feed the routers the
//! same inputs.
//!
//! The population is meant to look like a real contact centre:
//!
//! - one tenant, [`POOLS`] in-house pools, agents spread over them round robin;
//! - [`SKILLS`] skills with a Zipf-like popularity (skill 0 is the most common); each agent has
//!   4–12 distinct skills at levels 1–5;
//! - [`LANGUAGES`] languages: 90 % of agents speak language 0, every agent speaks 1–3;
//! - the four channels; capacity is mostly one voice call at a time (65 %), else "one voice, or
//!   up to three chats and two emails" (30 %, the `Capacity` doc's example), else a small
//!   email/social desk (5 %);
//! - contacts need 1–2 skills (popular ones more often) at a minimum level of 1–3 and a
//!   language, with [`SIGNATURES`] distinct requirement signatures (channel, skills, language),
//!   themselves drawn with a Zipf-like popularity. Each signature is served by at least
//!   [`MIN_ELIGIBLE`] of the first 1,000 agents (which every population starts with), so an
//!   arrival with idle agents is always offered.
//!
//! [`Sim`] drives any [`Router`] (the engine, and with the `naive` feature the reference router)
//! through the bench loops; it reuses its buffers, so in steady state it allocates nothing
//! itself.

use std::time::{Duration, Instant};

use vuoro_engine::{
    AgentConfig, AgentId, Capacity, Channel, ChannelPolicy, ContactId, ContactSpec, Engine, EngineConfig,
    Input, LanguageId, Languages, Millis, Output, PoolConfig, PoolId, PoolKind, PoolMode, ReservationId,
    Segment, SkillLevel, SkillList, TenantId, TenantPolicy,
};

/// The one tenant of every workload.
pub const TENANT: TenantId = TenantId(1);
/// Distinct skills.
pub const SKILLS: u16 = 200;
/// Distinct languages.
pub const LANGUAGES: u8 = 8;
/// In-house pools.
pub const POOLS: u32 = 10;
/// Distinct requirement signatures (channel, required skills with levels, language).
pub const SIGNATURES: usize = 100;
/// Every signature is served by at least this many of the first 1,000 agents.
pub const MIN_ELIGIBLE: usize = 30;
/// Agents the signatures are checked against (every population starts with them).
pub const REFERENCE_AGENTS: usize = 1_000;
/// Offer timeout of the bench policy (every offer is accepted well before).
pub const OFFER_TIMEOUT: Millis = 15_000;

// ----- random numbers ------------------------------------------------------------------------

/// SplitMix64: a tiny, fast, seedable generator; good enough for workloads.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// A generator for item `index` of stream `seed`, independent of how many items came before.
    pub fn for_item(seed: u64, index: u64) -> Self {
        let mut rng = Rng(seed ^ index.wrapping_mul(0xA24B_AED4_963E_E407));
        rng.next_u64();
        rng
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// A Zipf-like distribution over `0..n`: item `i` has weight `1 / (i + 1)^s`.
#[derive(Clone, Debug)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// The distribution over `0..n` with exponent `s`.
    pub fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let mut cdf = Vec::with_capacity(n);
        for i in 0..n {
            total += 1.0 / ((i + 1) as f64).powf(s);
            cdf.push(total);
        }
        for x in &mut cdf {
            *x /= total;
        }
        Zipf { cdf }
    }

    /// One draw.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&x| x <= u).min(self.cdf.len() - 1)
    }

    /// Probability of item `i`.
    pub fn weight(&self, i: usize) -> f64 {
        self.cdf[i] - if i == 0 { 0.0 } else { self.cdf[i - 1] }
    }
}

// ----- configuration -------------------------------------------------------------------------

/// The bench tenant's policy: defaults (longest idle, strict priority, no relaxation or
/// overflow), a 15 s offer timeout and no wrap-up, so a completion frees capacity at once.
pub fn policy() -> TenantPolicy {
    let channel = ChannelPolicy { offer_timeout: OFFER_TIMEOUT, wrap_up: 0, ..ChannelPolicy::default() };
    TenantPolicy {
        tenant: TENANT,
        channels: std::array::from_fn(|_| channel.clone()),
        segment_boost: [0, 1, 5],
    }
}

/// The engine settings the benches use: queue-status refreshes off (their cost is a periodic
/// sweep over every waiting contact, not a per-decision cost; `latency` measures it apart), and
/// tables sized for the workload.
pub fn engine_config(agents: usize, contacts: usize) -> EngineConfig {
    EngineConfig { status_interval: 0, expected_contacts: contacts, expected_agents: agents }
}

/// The pools: [`POOLS`] always-open in-house agent-level pools.
pub fn pools() -> Vec<PoolConfig> {
    (0..POOLS)
        .map(|p| PoolConfig {
            id: PoolId(p),
            tenant: TENANT,
            kind: PoolKind::InHouse,
            mode: PoolMode::AgentLevel,
            hours: None,
            max_concurrent: None,
        })
        .collect()
}

/// One voice call at a time.
pub fn voice_capacity() -> Capacity {
    Capacity::single(Channel::Voice)
}

/// One voice call, or up to three chats and two emails (the `Capacity` doc's example).
pub fn blended_capacity() -> Capacity {
    Capacity { per_channel: [1, 2, 0, 3], weight: [6, 1, 1, 2], total: 6 }
}

/// Up to two emails and three social messages, three in all.
pub fn social_capacity() -> Capacity {
    Capacity { per_channel: [0, 2, 3, 0], weight: [1, 1, 1, 1], total: 3 }
}

fn skill_popularity() -> Zipf {
    Zipf::new(usize::from(SKILLS), 1.0)
}

/// Agent number `index` of population `seed` (the same whatever the population's size).
pub fn agent(seed: u64, index: u64, skills: &Zipf) -> AgentConfig {
    let mut rng = Rng::for_item(seed ^ 0xA6E7, index);
    let count = rng.range(4, 12) as usize;
    let mut list: Vec<SkillLevel> = Vec::with_capacity(count);
    while list.len() < count {
        let skill = skills.sample(&mut rng) as u16;
        if list.iter().all(|s| s.skill.0 != skill) {
            list.push(SkillLevel::new(skill, rng.range(1, 5) as u8));
        }
    }
    list.sort();
    let spoken = rng.range(1, 3) as usize;
    let mut languages: Vec<u8> = Vec::with_capacity(spoken);
    if rng.chance(0.9) {
        languages.push(0);
    }
    while languages.len() < spoken {
        let l = rng.range(1, u64::from(LANGUAGES) - 1) as u8;
        if !languages.contains(&l) {
            languages.push(l);
        }
    }
    let profile = rng.unit();
    let capacity = if profile < 0.65 {
        voice_capacity()
    } else if profile < 0.95 {
        blended_capacity()
    } else {
        social_capacity()
    };
    AgentConfig {
        id: AgentId(index),
        pool: PoolId((index % u64::from(POOLS)) as u32),
        skills: list,
        languages: Languages::of(&languages),
        capacity,
    }
}

/// Agents `0..n` of population `seed`.
pub fn agents(seed: u64, n: usize) -> Vec<AgentConfig> {
    let skills = skill_popularity();
    (0..n as u64).map(|i| agent(seed, i, &skills)).collect()
}

/// What a contact needs: its channel, required skills with minimum levels and language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Signature {
    /// Channel.
    pub channel: Channel,
    /// Required skills, sorted by skill.
    pub required: SkillList,
    /// Language.
    pub language: LanguageId,
}

impl Signature {
    /// Whether `agent` qualifies (skills, levels, language and some room on the channel).
    pub fn served_by(&self, agent: &AgentConfig) -> bool {
        let c = self.channel.index();
        agent.capacity.per_channel[c] > 0
            && agent.capacity.weight[c] <= agent.capacity.total
            && agent.languages.contains(self.language)
            && self.required.as_slice().iter().all(|need| {
                agent.skills.iter().any(|have| have.skill == need.skill && have.level >= need.level)
            })
    }
}

/// [`SIGNATURES`] distinct signatures of population `seed`, most popular first, each served by
/// at least [`MIN_ELIGIBLE`] of its first [`REFERENCE_AGENTS`] agents.
pub fn signatures(seed: u64) -> Vec<Signature> {
    let reference = agents(seed, REFERENCE_AGENTS);
    let skills = skill_popularity();
    let mut rng = Rng::new(seed ^ 0x5167);
    let mut out: Vec<Signature> = Vec::with_capacity(SIGNATURES);
    let mut attempts = 0;
    while out.len() < SIGNATURES {
        attempts += 1;
        assert!(attempts < 1_000_000, "cannot find {SIGNATURES} servable signatures");
        let channel = match rng.unit() {
            u if u < 0.50 => Channel::Voice,
            u if u < 0.80 => Channel::Chat,
            u if u < 0.95 => Channel::Email,
            _ => Channel::Social,
        };
        let count = if rng.chance(0.7) { 1 } else { 2 };
        let mut required: Vec<SkillLevel> = Vec::with_capacity(count);
        while required.len() < count {
            let skill = skills.sample(&mut rng) as u16;
            if required.iter().all(|s| s.skill.0 != skill) {
                required.push(SkillLevel::new(skill, rng.range(1, 3) as u8));
            }
        }
        required.sort();
        let language = if rng.chance(0.75) { 0 } else { rng.range(1, u64::from(LANGUAGES) - 1) as u8 };
        let signature = Signature {
            channel,
            required: SkillList::from_slice(&required).expect("at most two skills"),
            language: LanguageId(language),
        };
        if out.contains(&signature) {
            continue;
        }
        if reference.iter().filter(|a| signature.served_by(a)).count() >= MIN_ELIGIBLE {
            out.push(signature);
        }
    }
    out
}

/// The contact mix: signatures with their popularity, and priorities.
#[derive(Clone, Debug)]
pub struct ContactMix {
    /// The signatures, most popular first.
    pub signatures: Vec<Signature>,
    popularity: Zipf,
}

impl ContactMix {
    /// The mix of population `seed`: [`signatures`] with a Zipf (s = 0.8) popularity.
    pub fn new(seed: u64) -> Self {
        ContactMix { signatures: signatures(seed), popularity: Zipf::new(SIGNATURES, 0.8) }
    }

    /// A random signature index, by popularity.
    pub fn pick(&self, rng: &mut Rng) -> usize {
        self.popularity.sample(rng)
    }

    /// Share of contacts with signature `i`.
    pub fn share(&self, i: usize) -> f64 {
        self.popularity.weight(i)
    }

    /// Contact `seq` with signature `signature`. Its id encodes the signature (`seq << 8 |
    /// signature`), so a replacement of the same signature can be made from an offer alone.
    /// 85 % are new customers at priority 0, 10 % regulars at 1, 5 % VIPs at 2 (the policy
    /// boosts regulars by 1 and VIPs by 5).
    pub fn contact(&self, seq: u64, signature: usize, rng: &mut Rng) -> ContactSpec {
        let s = &self.signatures[signature];
        let mut spec = ContactSpec::new(ContactId(seq << 8 | signature as u64), TENANT, s.channel);
        let (segment, priority) = match rng.unit() {
            u if u < 0.85 => (Segment::New, 0),
            u if u < 0.95 => (Segment::Regular, 1),
            _ => (Segment::Vip, 2),
        };
        spec.segment = segment;
        spec.priority = priority;
        spec.required = s.required;
        spec.language = Some(s.language);
        spec
    }
}

/// The signature index a contact id of [`ContactMix::contact`] encodes.
pub fn signature_of(contact: ContactId) -> usize {
    (contact.0 & 0xFF) as usize
}

/// A workload: the inputs that set the routers up, and the contact mix to feed them.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Policy, pools, then per agent `UpsertAgent`, `LogIn` and (when ready) `Ready`.
    pub setup: Vec<Input>,
    /// The agents.
    pub agents: usize,
    /// The contacts to come.
    pub mix: ContactMix,
    /// Seed of the population.
    pub seed: u64,
}

impl Workload {
    /// `agents` agents, logged in and (when `ready`) Ready, with the contact mix of `seed`.
    pub fn new(seed: u64, agents: usize, ready: bool) -> Self {
        let mut setup = Vec::with_capacity(2 + POOLS as usize + agents * 3);
        setup.push(Input::UpsertPolicy(policy()));
        setup.extend(pools().into_iter().map(Input::UpsertPool));
        for agent in self::agents(seed, agents) {
            let id = agent.id;
            setup.push(Input::UpsertAgent(agent));
            setup.push(Input::LogIn(id));
            if ready {
                setup.push(Input::Ready(id));
            }
        }
        Workload { setup, agents, mix: ContactMix::new(seed), seed }
    }
}

// ----- routers and the driver ----------------------------------------------------------------

/// A router the benches can drive: the engine, or the naive reference router.
pub trait Router {
    /// Fires due timers, then applies `input` at `now`, appending outputs to `out`.
    fn apply(&mut self, now: Millis, input: &Input, out: &mut Vec<Output>);
}

impl Router for Engine {
    fn apply(&mut self, now: Millis, input: &Input, out: &mut Vec<Output>) {
        Engine::apply(self, now, input, out);
    }
}

#[cfg(feature = "naive")]
impl Router for vuoro_engine_model::ReferenceRouter {
    fn apply(&mut self, now: Millis, input: &Input, out: &mut Vec<Output>) {
        vuoro_engine_model::ReferenceRouter::apply(self, now, input, out);
    }
}

/// Largest batch of timed decisions in [`Sim::arrival_batch`] and [`Sim::freed_batch`].
pub const MAX_BATCH: usize = 64;

/// An accepted contact in an agent's hands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Work {
    /// Its reservation.
    pub reservation: ReservationId,
    /// The agent serving it.
    pub agent: AgentId,
    /// Its channel.
    pub channel: Channel,
}

/// Drives a router through the bench loops, accepting every offer at once.
///
/// Virtual time advances by [`Sim::step`] (1 ms) per arrival or completion, so offer-deadline timers (15 s)
/// fire, as no-ops, 15,000 inputs after their offer, as they would in service.
pub struct Sim<R> {
    /// The router.
    pub router: R,
    /// Current virtual time.
    pub now: Millis,
    /// How far virtual time advances per arrival or completion (1 ms unless changed).
    pub step: Millis,
    /// The contact mix.
    pub mix: ContactMix,
    /// Accepted contacts, each to be completed some day.
    pub busy: Vec<Work>,
    /// Contacts waiting in queues (enqueued, not yet offered).
    pub queued: usize,
    /// Waiting contacts per signature.
    pub waiting: Vec<u32>,
    /// Contacts enqueued so far.
    pub enqueued: u64,
    /// Offers made so far.
    pub offers: u64,
    /// Completions so far.
    pub completions: u64,
    agents: Vec<AgentConfig>,
    /// Per agent: contacts held per channel and units in use.
    held: Vec<([u16; Channel::COUNT], u16)>,
    out: Vec<Output>,
    inputs: Vec<Input>,
    offered: Vec<(ReservationId, ContactId, AgentId)>,
    just_offered: Vec<ContactId>,
    rng: Rng,
    seq: u64,
}

impl<R: Router> Sim<R> {
    /// Applies the workload's setup to `router` (panics if any input is refused).
    pub fn new(mut router: R, workload: &Workload) -> Self {
        let mut out = Vec::with_capacity(1024);
        let mut agents = Vec::with_capacity(workload.agents);
        for input in &workload.setup {
            router.apply(0, input, &mut out);
            assert!(
                !out.iter().any(|o| matches!(o, Output::Rejected(_) | Output::Offered { .. })),
                "setup input refused or offered: {input:?} -> {out:?}"
            );
            out.clear();
            if let Input::UpsertAgent(agent) = input {
                assert_eq!(agent.id.0, agents.len() as u64, "agents are numbered from 0");
                agents.push(agent.clone());
            }
        }
        Sim {
            router,
            now: 1,
            step: 1,
            mix: workload.mix.clone(),
            busy: Vec::with_capacity(workload.agents * 3),
            queued: 0,
            waiting: vec![0; workload.mix.signatures.len()],
            enqueued: 0,
            offers: 0,
            completions: 0,
            held: vec![([0; Channel::COUNT], 0); agents.len()],
            agents,
            out,
            inputs: Vec::with_capacity(MAX_BATCH),
            offered: Vec::with_capacity(MAX_BATCH * 4),
            just_offered: Vec::with_capacity(MAX_BATCH * 4),
            rng: Rng::new(workload.seed ^ 0xC047_1AC7),
            seq: 0,
        }
    }

    /// Applies one input at the current time; the outputs stay in [`Sim::out`] until the next
    /// [`Sim::settle`].
    pub fn apply(&mut self, input: &Input) {
        self.router.apply(self.now, input, &mut self.out);
    }

    /// The output buffer.
    pub fn out(&self) -> &[Output] {
        &self.out
    }

    /// A new contact of a random signature.
    pub fn next_contact(&mut self) -> ContactSpec {
        let signature = self.mix.pick(&mut self.rng);
        self.contact_of(signature)
    }

    /// A new contact of the given signature.
    pub fn contact_of(&mut self, signature: usize) -> ContactSpec {
        self.seq += 1;
        self.mix.contact(self.seq, signature, &mut self.rng)
    }

    fn count_enqueued(&mut self, spec: &ContactSpec) {
        self.enqueued += 1;
        self.queued += 1;
        self.waiting[signature_of(spec.id)] += 1;
    }

    /// Enqueues one contact (time advances 1 ms) without settling the outputs.
    pub fn enqueue_unsettled(&mut self, spec: ContactSpec) {
        self.now += self.step;
        self.count_enqueued(&spec);
        self.router.apply(self.now, &Input::Enqueue(spec), &mut self.out);
    }

    /// Enqueues one contact (time advances 1 ms) and settles the outputs.
    pub fn enqueue(&mut self, spec: ContactSpec) {
        self.enqueue_unsettled(spec);
        self.settle();
    }

    /// Accepts every offer in the output buffer (and any that accepting leads to), counts
    /// them, and clears the buffer. Returns the offers accepted; their contacts are in
    /// [`Sim::just_offered`]. Panics on a refusal or a requeue: the workloads cause neither.
    pub fn settle(&mut self) -> usize {
        self.just_offered.clear();
        loop {
            self.offered.clear();
            for output in &self.out {
                match *output {
                    Output::Offered { reservation, contact, target, .. } => {
                        let vuoro_engine::Target::Agent(agent) = target else { panic!("offer to a pool") };
                        self.offered.push((reservation, contact, agent));
                    }
                    Output::Rejected(r) => panic!("refused: {r}"),
                    Output::Requeued { .. } => panic!("unexpected requeue: {output:?}"),
                    _ => {}
                }
            }
            self.out.clear();
            if self.offered.is_empty() {
                return self.just_offered.len();
            }
            for i in 0..self.offered.len() {
                let (reservation, contact, agent) = self.offered[i];
                self.router.apply(self.now, &Input::Accept(reservation), &mut self.out);
                let channel = self.mix.signatures[signature_of(contact)].channel;
                self.hold(agent, channel, true);
                self.busy.push(Work { reservation, agent, channel });
                self.just_offered.push(contact);
                self.waiting[signature_of(contact)] -= 1;
            }
            self.offers += self.offered.len() as u64;
            self.queued -= self.offered.len();
        }
    }

    /// The contacts offered (and accepted) by the last [`Sim::settle`].
    pub fn just_offered(&self) -> &[ContactId] {
        &self.just_offered
    }

    /// Takes a random accepted contact out of [`Sim::busy`].
    pub fn take_random_busy(&mut self) -> Work {
        let index = self.rng.below(self.busy.len() as u64) as usize;
        self.busy.swap_remove(index)
    }

    fn hold(&mut self, agent: AgentId, channel: Channel, take: bool) {
        let weight = self.agents[agent.0 as usize].capacity.weight[channel.index()];
        let (per_channel, used) = &mut self.held[agent.0 as usize];
        if take {
            per_channel[channel.index()] += 1;
            *used += weight;
        } else {
            per_channel[channel.index()] -= 1;
            *used -= weight;
        }
    }

    /// Whether completing `work` would get its agent offered a waiting contact: the agent
    /// would have room for, and qualifies for, some signature with contacts waiting.
    pub fn productive(&self, work: Work) -> bool {
        let agent = &self.agents[work.agent.0 as usize];
        let (mut per_channel, mut used) = self.held[work.agent.0 as usize];
        per_channel[work.channel.index()] -= 1;
        used -= agent.capacity.weight[work.channel.index()];
        self.mix.signatures.iter().zip(&self.waiting).any(|(signature, &waiting)| {
            let c = signature.channel.index();
            waiting > 0
                && per_channel[c] < agent.capacity.per_channel[c]
                && used + agent.capacity.weight[c] <= agent.capacity.total
                && signature.served_by(agent)
        })
    }

    /// Takes a random accepted contact whose completion is [productive](Sim::productive) out of
    /// [`Sim::busy`] (after 64 misses, any one).
    pub fn take_random_productive(&mut self) -> Work {
        for _ in 0..64 {
            let index = self.rng.below(self.busy.len() as u64) as usize;
            if self.productive(self.busy[index]) {
                return self.busy.swap_remove(index);
            }
        }
        self.take_random_busy()
    }

    /// Completes `work` (time advances 1 ms) without settling the outputs.
    pub fn complete_unsettled(&mut self, work: Work) {
        self.hold(work.agent, work.channel, false);
        self.now += self.step;
        self.completions += 1;
        self.router.apply(self.now, &Input::Complete(work.reservation), &mut self.out);
    }

    /// Completes every accepted contact.
    pub fn complete_all(&mut self) {
        while let Some(work) = self.busy.pop() {
            self.complete_unsettled(work);
            self.settle();
        }
    }

    /// Enqueues random contacts until `queued` contacts wait (accepting every offer on the way),
    /// then [prunes](Sim::prune) the agents that could never get more work.
    pub fn fill_queue(&mut self, queued: usize) {
        while self.queued < queued {
            let spec = self.next_contact();
            self.enqueue(spec);
        }
        self.prune();
    }

    /// Completes the work of every agent that qualifies for no signature with contacts
    /// waiting: once free, such an agent would stay idle, so without this the first
    /// completions of a bench would drift from "freed, then offered" to "freed, nothing to
    /// take" as they met them. Returns how many were completed.
    pub fn prune(&mut self) -> usize {
        let mut pruned = 0;
        let mut i = 0;
        while i < self.busy.len() {
            let work = self.busy[i];
            let agent = &self.agents[work.agent.0 as usize];
            let useful = self
                .mix
                .signatures
                .iter()
                .zip(&self.waiting)
                .any(|(signature, &waiting)| waiting > 0 && signature.served_by(agent));
            if useful {
                i += 1;
            } else {
                self.busy.swap_remove(i);
                self.complete_unsettled(work);
                assert_eq!(self.settle(), 0, "an agent with nothing to take took something");
                pruned += 1;
            }
        }
        pruned
    }

    /// The `arrival` bench's unit: `k` (≤ [`MAX_BATCH`]) random contacts arrive, one per
    /// millisecond, and each is offered to an agent; only those `k` `Enqueue` applies are timed.
    /// Untimed afterwards: every offer is accepted and every accepted contact completed
    /// (no wrap-up), so the agents are all idle again. Panics when an arrival was not offered.
    pub fn arrival_batch(&mut self, k: usize) -> Duration {
        assert!(self.busy.is_empty() && self.queued == 0 && k <= MAX_BATCH);
        self.inputs.clear();
        for _ in 0..k {
            let spec = self.next_contact();
            self.count_enqueued(&spec);
            self.inputs.push(Input::Enqueue(spec));
        }
        let start = Instant::now();
        for input in &self.inputs {
            self.now += self.step;
            self.router.apply(self.now, input, &mut self.out);
        }
        let elapsed = start.elapsed();
        let offered = self.settle();
        assert_eq!(offered, k, "every arrival finds an idle agent");
        self.complete_all();
        elapsed
    }

    /// The `capacity_freed` bench's unit: `k` (≤ [`MAX_BATCH`]) random agents with work, each
    /// with a [productive](Sim::productive) completion, complete a contact (no wrap-up, so capacity frees at once) and are offered the best
    /// waiting contact they qualify for; only those `k` `Complete` applies are timed. Untimed
    /// afterwards: every offer is accepted and, for each contact offered, a replacement of the
    /// same signature is enqueued (it waits, unless the freed agent still has room for it), so the number of
    /// waiting contacts of every signature stays constant.
    pub fn freed_batch(&mut self, k: usize) -> Duration {
        assert!(k <= MAX_BATCH && k <= self.busy.len());
        self.inputs.clear();
        for _ in 0..k {
            let work = self.take_random_productive();
            self.hold(work.agent, work.channel, false);
            self.inputs.push(Input::Complete(work.reservation));
        }
        let start = Instant::now();
        for input in &self.inputs {
            self.now += self.step;
            self.router.apply(self.now, input, &mut self.out);
        }
        let elapsed = start.elapsed();
        self.completions += k as u64;
        self.replace_offered();
        elapsed
    }

    /// Accepts the offers in the buffer and enqueues a same-signature replacement for each
    /// contact offered, until nothing more is offered.
    fn replace_offered(&mut self) {
        while self.settle() > 0 {
            for i in 0..self.just_offered.len() {
                let signature = signature_of(self.just_offered[i]);
                let spec = self.contact_of(signature);
                self.enqueue_unsettled(spec);
            }
        }
    }

    /// The `mixed` bench's unit, one cycle: a random contact arrives (it waits, or is offered
    /// to a free agent); a random agent with work completes one contact and is offered the best
    /// waiting one it qualifies for; every offer is accepted. Two routing decisions (the
    /// arrival's and the freed agent's), three inputs (plus one `Accept` per extra offer).
    pub fn mixed_cycle(&mut self) {
        let spec = self.next_contact();
        self.enqueue_unsettled(spec);
        if !self.busy.is_empty() {
            let work = self.take_random_busy();
            self.complete_unsettled(work);
        }
        self.settle();
    }
}

/// Human-readable count: 1k, 100k, 1M.
pub fn label(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}
