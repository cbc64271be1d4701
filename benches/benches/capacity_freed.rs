//! `capacity_freed`: the cost of serving an agent that frees capacity while contacts wait.
//!
//! Setup: 10k agents, all logged in and Ready; random contacts (Zipf-popular signatures over
//! ~100 requirement groups, priority mix) are enqueued until every agent that can be busy is
//! and N contacts (1k, 10k, 100k, 1M) wait; every offer is accepted.
//!
//! One iteration (as criterion counts it) is ONE `Complete` of a random accepted contact whose
//! agent will then qualify for, and have room for, some waiting contact (no wrap-up, so the
//! capacity frees at once), in which the router finds the best waiting contact
//! the agent qualifies for across every group it serves and offers it. The iterations are
//! timed in batches of up to 32 completions in a row (one `Instant` pair per batch); after each
//! batch, untimed, every offer is accepted and, for each contact offered, a replacement of the
//! same signature is enqueued (it waits), so the queue's size and make-up stay constant.
//! Virtual time advances 1 ms per input. The reported time is per decision.
//!
//! `engine/N` is the engine with N waiting; `naive/N` the reference router (linear scans; only
//! the small sizes).

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vuoro_benches::{Router, Sim, Workload, engine_config, label};
use vuoro_engine::Engine;

const SEED: u64 = 0xF4EE;
const AGENTS: usize = 10_000;
const BATCH: usize = 32;

fn bench_router<R: Router>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    queued: usize,
    make: impl Fn() -> R,
) {
    // Set up lazily, so that a filtered-out bench costs nothing.
    let mut sim: Option<Sim<R>> = None;
    // Offers and completions when the measurement started.
    let mut start_counts = (0, 0);
    group.bench_function(BenchmarkId::new(name, label(queued)), |b| {
        let sim = sim.get_or_insert_with(|| {
            let start = Instant::now();
            let workload = Workload::new(SEED, AGENTS, true);
            let mut sim = Sim::new(make(), &workload);
            sim.fill_queue(queued);
            // Warm-up: grow every table and fill the offer-deadline timer lanes.
            let warm = if name == "engine" { 20_000 } else { 256 };
            let (offers, completions) = (sim.offers, sim.completions);
            for _ in 0..warm / BATCH {
                sim.freed_batch(BATCH);
            }
            eprintln!(
                "capacity_freed {name}/{}: {} busy, {} waiting, {:.3} offers per completion, setup {:.1?}",
                label(queued),
                sim.busy.len(),
                sim.queued,
                (sim.offers - offers) as f64 / (sim.completions - completions) as f64,
                start.elapsed()
            );
            start_counts = (sim.offers, sim.completions);
            sim
        });
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let k = left.min(BATCH);
                total += sim.freed_batch(k);
                left -= k;
            }
            total
        })
    });
    if let Some(sim) = sim {
        let (offers, completions) = start_counts;
        eprintln!(
            "capacity_freed {name}/{}: after the run {} waiting, {} busy, {:.3} offers per completion while measured",
            label(queued),
            sim.queued,
            sim.busy.len(),
            (sim.offers - offers) as f64 / (sim.completions - completions).max(1) as f64,
        );
    }
}

fn capacity_freed(c: &mut Criterion) {
    let mut group = c.benchmark_group("capacity_freed");
    group.throughput(Throughput::Elements(1));
    group.sample_size(15);
    for queued in [1_000, 10_000, 100_000, 1_000_000] {
        let config = engine_config(AGENTS, queued + 3 * AGENTS);
        bench_router(&mut group, "engine", queued, || Engine::new(config.clone()));
        #[cfg(feature = "naive")]
        if queued <= 10_000 {
            bench_router(&mut group, "naive", queued, || {
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
    targets = capacity_freed
}
criterion_main!(benches);
