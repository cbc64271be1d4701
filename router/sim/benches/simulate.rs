//! Simulated contacts per second of CPU: one replication of an Erlang C scenario (Poisson
//! arrivals, exponential handle times, FIFO) driven through the real engine, on one thread.
//! Criterion reports the throughput in contacts ("elements") per second.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vuoro_sim::check::{TheorySpec, theory_scenario};
use vuoro_sim::sim::{Plan, run_replication};

fn erlang_c(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulate_erlang_c");
    group.sample_size(10);
    for (agents, load) in [(1_u32, 0.7), (20, 0.9), (500, 0.95)] {
        let handle = 180.0;
        let rate_per_hour = load * f64::from(agents) / handle * 3600.0;
        // About 200 000 contacts per replication.
        let spec = TheorySpec {
            agents,
            class_rates_per_hour: vec![rate_per_hour],
            handle_seconds: handle,
            patience_seconds: None,
            threshold_seconds: 20.0,
            horizon_hours: 200_000.0 / rate_per_hour,
            warm_up_hours: 1.0,
            replications: 1,
            seed: 7,
        };
        let scenario = theory_scenario(&spec);
        let plan = Plan::new(&scenario);
        let contacts = run_replication(&scenario, &plan, 0, None).contacts;
        group.throughput(Throughput::Elements(contacts));
        group.bench_with_input(BenchmarkId::new("agents", agents), &agents, |b, _| {
            b.iter(|| run_replication(&scenario, &plan, 0, None))
        });
    }
    group.finish();
}

criterion_group!(benches, erlang_c);
criterion_main!(benches);
