//! Decision-time percentiles (criterion reports means): times every single decision with
//! `Instant` and reports p50 / p99 / p99.9 / max from an HDR histogram.
//!
//! Usage: `cargo run -p vuoro-benches --release --bin latency [CYCLES]` (default 500,000
//! mixed cycles, i.e. 1M timed decisions, plus 200,000 arrivals with idle agents).
//!
//! Scenarios (the same workloads as the criterion benches, engine only):
//! - `mixed`: 10k agents, 100k waiting; each cycle a random contact arrives (`Enqueue`, timed
//!   alone), a random agent with work completes (`Complete`, timed alone: it is offered the
//!   best waiting contact it qualifies for) and the offers are accepted (`Accept`, timed alone).
//! - `arrival`: 10k idle agents; each arrival (`Enqueue`, timed alone) is offered at once, then
//!   accepted and completed untimed.
//! - `status refresh`: the periodic queue-status sweep (every `status_interval`, 5 s by default)
//!   over 100k and 1M waiting contacts, timed as the one `Tick` that fires it. The benches
//!   run with the refresh off; this is its separate, periodic cost.
//!
//! Each figure includes the timer's own overhead (printed first).

use std::time::Instant;

use hdrhistogram::Histogram;
use vuoro_benches::{Sim, Workload, engine_config, label};
use vuoro_engine::{Engine, EngineConfig, Input};

const SEED: u64 = 0x1A7E;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

fn report(name: &str, h: &Histogram<u64>) {
    println!(
        "{name:<34} n={:>8}  mean={:>7.0} ns  p50={:>6} ns  p99={:>6} ns  p99.9={:>7} ns  max={:>9} ns",
        h.len(),
        h.mean(),
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

fn nanos(start: Instant) -> u64 {
    start.elapsed().as_nanos().max(1) as u64
}

fn main() {
    let cycles: usize = std::env::args().nth(1).map_or(500_000, |a| a.parse().expect("CYCLES is a number"));

    let mut overhead = histogram();
    for _ in 0..100_000 {
        let start = Instant::now();
        overhead.record(nanos(start)).expect("in range");
    }
    report("timer overhead (empty)", &overhead);

    // ----- mixed ------------------------------------------------------------------------------
    let (agents, queued) = (10_000, 100_000);
    let workload = Workload::new(SEED, agents, true);
    let mut sim = Sim::new(Engine::new(engine_config(agents, queued + 3 * agents)), &workload);
    sim.fill_queue(queued);
    for _ in 0..40_000 {
        sim.mixed_cycle();
    }
    let (mut arrivals, mut freed, mut accepts, mut decisions) =
        (histogram(), histogram(), histogram(), histogram());
    for _ in 0..cycles {
        let spec = sim.next_contact();
        let start = Instant::now();
        sim.enqueue_unsettled(spec);
        let t = nanos(start);
        arrivals.record(t).expect("in range");
        decisions.record(t).expect("in range");
        sim.settle();
        let work = sim.take_random_busy();
        let start = Instant::now();
        sim.complete_unsettled(work);
        let t = nanos(start);
        freed.record(t).expect("in range");
        decisions.record(t).expect("in range");
        // Accept the offer (with the driver's scan of the outputs), timed alone.
        let start = Instant::now();
        let accepted = sim.settle();
        if accepted == 1 {
            accepts.record(nanos(start)).expect("in range");
        }
    }
    println!(
        "mixed: {} agents, {} waiting at the end, {} busy, {} cycles",
        label(agents),
        sim.queued,
        sim.busy.len(),
        cycles
    );
    report("mixed: arrival (Enqueue)", &arrivals);
    report("mixed: capacity freed (Complete)", &freed);
    report("mixed: both decisions", &decisions);
    report("mixed: accept one offer (+ driver)", &accepts);
    drop(sim);

    // ----- arrival with idle agents -------------------------------------------------------------
    let workload = Workload::new(SEED, agents, true);
    let mut sim = Sim::new(Engine::new(engine_config(agents, 256)), &workload);
    for _ in 0..40_000 / 64 {
        sim.arrival_batch(64);
    }
    let mut offered = histogram();
    for _ in 0..200_000 {
        offered.record(sim.arrival_batch(1).as_nanos().max(1) as u64).expect("in range");
    }
    report("arrival, 10k idle agents (Enqueue)", &offered);
    drop(sim);

    // ----- status refresh -----------------------------------------------------------------------
    const INTERVAL: u64 = 5_000;
    for queued in [100_000, 1_000_000] {
        let workload = Workload::new(SEED, agents, true);
        let config = EngineConfig { status_interval: INTERVAL, ..engine_config(agents, queued + 3 * agents) };
        let mut sim = Sim::new(Engine::new(config), &workload);
        // Fill with the clock stopped, so no sweep runs meanwhile.
        sim.step = 0;
        sim.fill_queue(queued);
        sim.step = 1;
        let mut sweep = histogram();
        let mut due = INTERVAL;
        let mut statuses = 0;
        for _ in 0..5 {
            // Fire every other timer first, then time the tick that fires only the sweep.
            sim.now = due - 1;
            sim.apply(&Input::Tick);
            sim.settle();
            sim.now = due;
            let start = Instant::now();
            sim.apply(&Input::Tick);
            sweep.record(nanos(start)).expect("in range");
            statuses += sim.out().len();
            sim.settle();
            // Some decisions between sweeps, so positions move.
            for _ in 0..1_000 {
                sim.mixed_cycle();
            }
            due += INTERVAL;
        }
        report(&format!("status refresh, {} waiting (Tick)", label(queued)), &sweep);
        println!("  ({} QueueStatus outputs per sweep on average)", statuses / 5);
    }
}
