//! Memory budgets and the allocation-free hot path, measured with a counting allocator.
//!
//! Run with `cargo test -p vuoro-benches --release --test memory -- --nocapture` to see the
//! figures. The allocator counts per thread (each test runs on its own thread), so tests
//! running in parallel and the test harness do not disturb each other's figures.
//!
//! - bytes per waiting contact: 100k contacts enqueued while no agent is free, ≤ 256 bytes;
//! - bytes per agent: 10k agents with realistic skills upserted and logged in: ≤ 512 bytes
//!   without group memberships, and ≤ 32 bytes per membership (measured with the ~100
//!   requirement groups already created, where an agent serves 17 of them);
//! - zero allocations in the steady-state hot path (arrival → offer → accept → complete, and
//!   capacity freed → offer → accept with a queue) once warmed up.
//!
//! "Bytes" are the engine's own heap bytes, inputs (the payload) excluded. Tables the engine
//! reserves up front from `EngineConfig` sizes count as the entities' cost: each figure is
//! (heap of an engine configured for N and holding N) − (heap of an engine configured for 0
//! and holding 0, after the same setup), ÷ N.

#![allow(unsafe_code)] // a `GlobalAlloc` is unsafe by definition

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use vuoro_benches::{Sim, Workload, engine_config, label};
use vuoro_engine::{Engine, EngineConfig, Input};

/// Wraps the system allocator and counts, per thread, the bytes currently allocated and the
/// allocation calls (alloc, alloc_zeroed and realloc).
struct Counting;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

fn add(bytes: i64, calls: u64) {
    // `try_with`: during thread teardown the counters may be gone; then count nothing.
    let _ = LIVE.try_with(|live| live.set(live.get() + bytes));
    let _ = CALLS.try_with(|c| c.set(c.get() + calls));
}

// SAFETY: every call is forwarded unchanged to `System`; the counting touches only
// const-initialised thread-locals without destructors, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size() as i64, 1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size() as i64, 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        add(-(layout.size() as i64), 0);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(new_size as i64 - layout.size() as i64, 1);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes currently allocated by this thread (allocations minus frees).
fn live() -> i64 {
    LIVE.with(Cell::get)
}

/// Allocation calls made by this thread so far.
fn calls() -> u64 {
    CALLS.with(Cell::get)
}

const SEED: u64 = 0x3E30;

/// Bytes per waiting contact must not exceed this.
const CONTACT_BUDGET: f64 = 256.0;
/// Bytes per agent must not exceed this, memberships aside (see [`MEMBERSHIP_BUDGET`]).
const AGENT_BUDGET: f64 = 512.0;
/// Bytes per group membership of an agent (its list node and its entry in the agent's
/// membership list) must not exceed this. The target of 512 bytes per agent cannot
/// hold with memberships included: an agent of this workload serves 17 requirement groups,
/// and each needs a list node so the group finds its best agent without a scan (see the
/// README's "Memory" paragraph for the figures).
const MEMBERSHIP_BUDGET: f64 = 32.0;

/// Heap bytes of an engine set up by `setup`: measured from before `Engine::new` to the end
/// of `setup`, with the engine still alive.
fn engine_bytes(
    config: EngineConfig,
    setup: impl FnOnce(&mut Engine, &mut Vec<vuoro_engine::Output>),
) -> i64 {
    let mut out = Vec::with_capacity(1 << 20);
    let before = live();
    let mut engine = Engine::new(config);
    setup(&mut engine, &mut out);
    let bytes = live() - before;
    drop(engine);
    bytes
}

/// Measures and prints the bytes per waiting contact.
fn measure_bytes_per_waiting_contact() -> f64 {
    const AGENTS: usize = 1_000;
    const CONTACTS: usize = 100_000;
    // Agents logged in but not ready: they staff the groups (so estimates are computed) but
    // none is free, so every contact waits.
    let workload = Workload::new(SEED, AGENTS, false);
    let mut sim = Sim::new(Engine::new(engine_config(0, 0)), &workload);
    let specs: Vec<Input> = (0..CONTACTS).map(|_| Input::Enqueue(sim.next_contact())).collect();
    drop(sim);
    let setup = |engine: &mut Engine, out: &mut Vec<vuoro_engine::Output>, contacts: &[Input]| {
        for input in &workload.setup {
            engine.apply(0, input, out);
        }
        for (i, input) in contacts.iter().enumerate() {
            engine.apply(1 + i as u64, input, out);
            assert!(
                !out.iter().any(|o| matches!(
                    o,
                    vuoro_engine::Output::Offered { .. } | vuoro_engine::Output::Rejected(_)
                )),
                "every contact waits: {out:?}"
            );
            out.clear();
        }
    };
    let empty = engine_bytes(engine_config(AGENTS, 0), |e, out| setup(e, out, &[]));
    let full = engine_bytes(engine_config(AGENTS, CONTACTS), |e, out| setup(e, out, &specs));
    let grown = engine_bytes(engine_config(AGENTS, 0), |e, out| setup(e, out, &specs));
    let reserved = engine_bytes(engine_config(AGENTS, CONTACTS), |e, out| setup(e, out, &[]));
    let per_contact = (full - empty) as f64 / CONTACTS as f64;
    println!(
        "bytes per waiting contact: {per_contact:.1} (engine sized for {}: {:.1} reserved up front + {:.1} on enqueue; \
         sized for 0 and grown: {:.1})",
        label(CONTACTS),
        (reserved - empty) as f64 / CONTACTS as f64,
        (full - reserved) as f64 / CONTACTS as f64,
        (grown - empty) as f64 / CONTACTS as f64,
    );
    per_contact
}

#[test]
fn bytes_per_waiting_contact_within_budget() {
    let per_contact = measure_bytes_per_waiting_contact();
    assert!(per_contact <= CONTACT_BUDGET, "{per_contact:.1} bytes per waiting contact > {CONTACT_BUDGET}");
}

/// Bytes per agent with and without its group memberships.
struct AgentBytes {
    /// Everything an agent costs, its memberships included.
    per_agent: f64,
    /// What an agent costs when no requirement group exists yet.
    without_groups: f64,
    /// Group memberships per agent.
    memberships: f64,
}

impl AgentBytes {
    /// Bytes per membership: what the groups add, divided among the memberships.
    fn per_membership(&self) -> f64 {
        (self.per_agent - self.without_groups) / self.memberships
    }
}

/// Measures and prints the bytes per agent: 10k agents upserted and logged in, once with the
/// ~100 requirement groups already created (so each agent gets its real memberships), once
/// without any group.
fn measure_bytes_per_agent() -> AgentBytes {
    const AGENTS: usize = 10_000;
    let workload = Workload::new(SEED, AGENTS, false);
    // One waiting contact per signature, no agent yet: creates every group.
    let mut sim = Sim::new(Engine::new(engine_config(0, 0)), &Workload::new(SEED, 0, false));
    let groups: Vec<Input> =
        (0..workload.mix.signatures.len()).map(|s| Input::Enqueue(sim.contact_of(s))).collect();
    drop(sim);
    let (config, agents): (Vec<Input>, Vec<Input>) = workload
        .setup
        .iter()
        .cloned()
        .partition(|i| matches!(i, Input::UpsertPolicy(_) | Input::UpsertPool(_)));
    let setup =
        |engine: &mut Engine, out: &mut Vec<vuoro_engine::Output>, groups: &[Input], agents: &[Input]| {
            for input in config.iter().chain(groups).chain(agents) {
                engine.apply(1, input, out);
                assert!(
                    !out.iter().any(|o| matches!(
                        o,
                        vuoro_engine::Output::Offered { .. } | vuoro_engine::Output::Rejected(_)
                    )),
                    "no offers, no refusals: {out:?}"
                );
                out.clear();
            }
        };
    let per_agent_with = |groups: &[Input]| {
        let empty = engine_bytes(engine_config(0, groups.len()), |e, out| setup(e, out, groups, &[]));
        let full = engine_bytes(engine_config(AGENTS, groups.len()), |e, out| setup(e, out, groups, &agents));
        (full - empty) as f64 / AGENTS as f64
    };
    let per_agent = per_agent_with(&groups);
    let without_groups = per_agent_with(&[]);
    let memberships = engine_memberships(&config, &groups, &agents) as f64 / AGENTS as f64;
    let bytes = AgentBytes { per_agent, without_groups, memberships };
    println!(
        "bytes per agent: {per_agent:.1} with {memberships:.1} group memberships ({} groups) = {without_groups:.1} \
         without any group + {:.1} per membership ({} agents, engine sized for them)",
        groups.len(),
        bytes.per_membership(),
        label(AGENTS),
    );
    bytes
}

/// Group memberships of all agents once `config`, `groups` and `agents` are applied, as the
/// engine counts them.
fn engine_memberships(config: &[Input], groups: &[Input], agents: &[Input]) -> usize {
    let mut engine = Engine::new(engine_config(agents.len(), groups.len()));
    let mut out = Vec::new();
    for input in config.iter().chain(groups).chain(agents) {
        engine.apply(1, input, &mut out);
    }
    engine.membership_count()
}

#[test]
fn bytes_per_agent_within_budget() {
    let bytes = measure_bytes_per_agent();
    assert!(
        bytes.without_groups <= AGENT_BUDGET,
        "{:.1} bytes per agent without memberships > {AGENT_BUDGET}",
        bytes.without_groups
    );
    assert!(
        bytes.per_membership() <= MEMBERSHIP_BUDGET,
        "{:.1} bytes per group membership > {MEMBERSHIP_BUDGET}",
        bytes.per_membership()
    );
}

#[test]
fn arrival_cycle_allocates_nothing() {
    const AGENTS: usize = 10_000;
    let workload = Workload::new(SEED, AGENTS, true);
    let mut sim = Sim::new(Engine::new(engine_config(AGENTS, 1_024)), &workload);
    // Warm-up: every group created, every table at its working size, and more than an offer
    // timeout (15 s = 15,000 inputs) of virtual time so the offer-deadline lanes are full.
    for _ in 0..100_000 / 64 {
        sim.arrival_batch(64);
    }
    const CYCLES: u64 = 10_000;
    let before = calls();
    for _ in 0..CYCLES {
        // One contact arrives and is offered, is accepted, is completed (untimed parts
        // included): the whole cycle.
        sim.arrival_batch(1);
    }
    let allocations = calls() - before;
    println!(
        "arrival -> offer -> accept -> complete, {} agents: {allocations} allocations in {CYCLES} cycles ({:.4} per cycle)",
        label(AGENTS),
        allocations as f64 / CYCLES as f64
    );
    assert_eq!(allocations, 0, "the steady-state arrival cycle allocates");
}

#[test]
fn capacity_freed_cycle_allocates_nothing() {
    const AGENTS: usize = 10_000;
    const QUEUED: usize = 10_000;
    let workload = Workload::new(SEED, AGENTS, true);
    let mut sim = Sim::new(Engine::new(engine_config(AGENTS, QUEUED + 3 * AGENTS)), &workload);
    sim.fill_queue(QUEUED);
    for _ in 0..100_000 / 32 {
        sim.freed_batch(32);
    }
    const CYCLES: u64 = 10_000;
    let before = calls();
    for _ in 0..CYCLES {
        // An agent completes and is offered a waiting contact, which it accepts; a replacement
        // contact of the same signature arrives and waits.
        sim.freed_batch(1);
    }
    let allocations = calls() - before;
    println!(
        "capacity freed -> offer -> accept (+ arrival that waits), {} agents, {} waiting: {allocations} allocations \
         in {CYCLES} cycles ({:.4} per cycle)",
        label(AGENTS),
        label(QUEUED),
        allocations as f64 / CYCLES as f64
    );
    assert_eq!(allocations, 0, "the steady-state capacity-freed cycle allocates");
}
