//! The theory checks of `vuoro simulate --check`, in a smaller size: the real engine, driven in
//! virtual time, must reproduce Erlang C, Erlang A and the M/M/c priority formula within the
//! confidence intervals of its estimates.

use vuoro_sim::check::{self, Model, Size};
use vuoro_sim::run::RunOptions;

#[test]
fn simulation_agrees_with_queueing_theory() {
    let started = std::time::Instant::now();
    let report = check::run(Size::Quick, 1, None, RunOptions { threads: 2, progress: false }, &|_| {});
    println!("{}", report.to_text());
    println!("{} contacts in {:.2?}", report.contacts, started.elapsed());
    assert!(report.passed, "simulated figures outside their check intervals:\n{}", report.to_text());
    // Every kind of figure is compared, with a real interval.
    for name in ["P(wait)", "ASA s", "service level", "occupancy", "P(abandon)", "class 3 mean wait s"] {
        assert!(report.figures.iter().any(|f| f.figure.starts_with(name)), "no {name} compared");
    }
    assert!(report.figures.iter().all(|f| f.simulated.n >= 2 && f.simulated.half_width.is_some()));
}

#[test]
fn the_suites_cover_one_to_five_hundred_agents_and_every_model() {
    for size in [Size::Quick, Size::Full] {
        let cases = check::suite(size);
        let agents: Vec<u32> = cases.iter().map(|c| c.agents).collect();
        assert!(agents.contains(&1) && agents.contains(&500), "{agents:?}");
        let erlang_c_load = cases
            .iter()
            .filter(|c| matches!(c.model, Model::ErlangC { .. }))
            .map(|c| c.load)
            .fold(0.0, f64::max);
        assert!(erlang_c_load >= 0.95);
        assert!(cases.iter().any(|c| matches!(c.model, Model::ErlangA { .. })));
        let classes: Vec<usize> = cases
            .iter()
            .filter_map(|c| match &c.model {
                Model::Priority { shares } => Some(shares.len()),
                _ => None,
            })
            .collect();
        assert!(classes.contains(&2) && classes.contains(&4), "{classes:?}");
    }
}
