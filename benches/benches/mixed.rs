//! `mixed`: steady-state throughput of the whole loop.
//!
//! Setup: A agents logged in and Ready; random contacts are enqueued until Q wait (every offer
//! accepted): `engine/10k_agents_100k_queued` (the headline), and `engine/1k_agents_10k_queued`
//! with `naive/1k_agents_10k_queued` for the ratio to the reference router.
//!
//! One iteration is one cycle: a random contact arrives (`Enqueue`; it waits, or is offered
//! to a free agent), a random agent with work completes a contact (`Complete`, no wrap-up; it is
//! offered the best waiting contact it qualifies for) and every offer is accepted (`Accept`).
//! The whole cycle is timed, driver included. Throughput counts 2 decisions per cycle (the
//! arrival's and the freed agent's), so criterion's elements/s are decisions per second on one
//! core. Virtual time advances 1 ms per input.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vuoro_benches::{Router, Sim, Workload, engine_config, label};
use vuoro_engine::Engine;

const SEED: u64 = 0x313ED;

fn bench_router<R: Router>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    agents: usize,
    queued: usize,
    make: impl Fn() -> R,
) {
    // Set up lazily, so that a filtered-out bench costs nothing.
    let mut sim: Option<Sim<R>> = None;
    // Offers and completions when the measurement started.
    let mut start_counts = (0, 0);
    group.bench_function(BenchmarkId::new(name, id(agents, queued)), |b| {
        let sim = sim.get_or_insert_with(|| {
            let start = Instant::now();
            let workload = Workload::new(SEED, agents, true);
            let mut sim = Sim::new(make(), &workload);
            sim.fill_queue(queued);
            let warm = if name == "engine" { 40_000 } else { 500 };
            let (offers, completions) = (sim.offers, sim.completions);
            for _ in 0..warm {
                sim.mixed_cycle();
            }
            eprintln!(
                "mixed {name}/{}: {} busy, {} waiting, {:.3} offers per completion, setup {:.1?}",
                id(agents, queued),
                sim.busy.len(),
                sim.queued,
                (sim.offers - offers) as f64 / (sim.completions - completions) as f64,
                start.elapsed()
            );
            start_counts = (sim.offers, sim.completions);
            sim
        });
        b.iter(|| sim.mixed_cycle())
    });
    if let Some(sim) = sim {
        let (offers, completions) = start_counts;
        eprintln!(
            "mixed {name}/{}: after the run {} waiting, {} busy, {:.3} offers per completion while measured",
            id(agents, queued),
            sim.queued,
            sim.busy.len(),
            (sim.offers - offers) as f64 / (sim.completions - completions).max(1) as f64,
        );
    }
}

fn id(agents: usize, queued: usize) -> String {
    format!("{}_agents_{}_queued", label(agents), label(queued))
}

fn mixed(c: &mut Criterion) {
    let mut group = c.benchmark_group("mixed");
    group.throughput(Throughput::Elements(2));
    group.sample_size(20);
    for (agents, queued) in [(1_000, 10_000), (10_000, 100_000)] {
        let config = engine_config(agents, queued + 3 * agents);
        bench_router(&mut group, "engine", agents, queued, || Engine::new(config.clone()));
        #[cfg(feature = "naive")]
        if agents <= 1_000 {
            bench_router(&mut group, "naive", agents, queued, || {
                vuoro_engine_model::ReferenceRouter::new(config.clone())
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Short defaults keep `cargo bench -p vuoro-benches` within minutes; options given on the
    // command line (e.g. `-- --measurement-time 10`) override them.
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = mixed
}
criterion_main!(benches);
