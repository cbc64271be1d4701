//! `arrival`: the cost of routing one arriving contact when agents are idle.
//!
//! Setup: the workload's agents (1k, 10k, 100k) are logged in and Ready, every queue is empty,
//! and a warm-up has created every requirement group and sized every table.
//!
//! One iteration (as criterion counts it) is ONE `Enqueue` of a random contact (Zipf-popular
//! signature over ~100, priority mix) that the router offers at once to the best idle agent
//! (longest idle among the qualified). The iterations are timed in batches of up to 64
//! enqueues in a row (one `Instant` pair per batch); after each batch, untimed, every offer is
//! accepted and completed (no wrap-up), which frees the agents again, so the state is steady.
//! Virtual time advances 1 ms per arrival. The reported time is per decision.
//!
//! `engine/N` is the engine with N agents; `naive/N` the reference router (linear scans; only
//! the small sizes).

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vuoro_benches::{MAX_BATCH, Router, Sim, Workload, engine_config, label};
use vuoro_engine::Engine;

const SEED: u64 = 0x00A1_2217;

fn bench_router<R: Router>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    agents: usize,
    make: impl Fn() -> R,
) {
    // Set up lazily, so that a filtered-out bench costs nothing.
    let mut sim: Option<Sim<R>> = None;
    group.bench_function(BenchmarkId::new(name, label(agents)), |b| {
        let sim = sim.get_or_insert_with(|| {
            let workload = Workload::new(SEED, agents, true);
            let mut sim = Sim::new(make(), &workload);
            // Warm-up: create every group, grow every table, fill the offer-deadline timer
            // lanes (15 s of virtual time).
            let warm = if name == "engine" { 40_000 } else { 1_000 };
            for _ in 0..warm / MAX_BATCH {
                sim.arrival_batch(MAX_BATCH);
            }
            sim
        });
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let k = left.min(MAX_BATCH);
                total += sim.arrival_batch(k);
                left -= k;
            }
            total
        })
    });
}

fn arrival(c: &mut Criterion) {
    let mut group = c.benchmark_group("arrival");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    for agents in [1_000, 10_000, 100_000] {
        let config = engine_config(agents, 4 * MAX_BATCH);
        bench_router(&mut group, "engine", agents, || Engine::new(config.clone()));
        #[cfg(feature = "naive")]
        if agents <= 10_000 {
            bench_router(&mut group, "naive", agents, || {
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
    targets = arrival
}
criterion_main!(benches);
