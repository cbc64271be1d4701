//! Sanity checks of the bench workloads: they are what the benches say they are.

use std::collections::HashSet;

use vuoro_benches::{
    ContactMix, LANGUAGES, MIN_ELIGIBLE, REFERENCE_AGENTS, SIGNATURES, SKILLS, Sim, Workload, agents,
    engine_config, signatures,
};
use vuoro_engine::{Channel, Engine, LanguageId};

#[test]
fn agents_have_realistic_profiles() {
    let population = agents(7, 2_000);
    assert_eq!(population, agents(7, 2_000), "deterministic");
    assert_eq!(&population[..1_000], &agents(7, 1_000)[..], "a larger population extends a smaller one");
    for agent in &population {
        assert!((4..=12).contains(&agent.skills.len()));
        assert!(agent.skills.iter().all(|s| s.skill.0 < SKILLS && (1..=5).contains(&s.level)));
        let spoken = (0..LANGUAGES).filter(|&l| agent.languages.contains(LanguageId(l))).count();
        assert!((1..=3).contains(&spoken));
    }
    let speak_0 = population.iter().filter(|a| a.languages.contains(LanguageId(0))).count();
    assert!(speak_0 > population.len() * 8 / 10, "most speak language 0: {speak_0}");
    let voice_only = population.iter().filter(|a| a.capacity == vuoro_benches::voice_capacity()).count();
    assert!(voice_only > population.len() / 2, "mostly single voice: {voice_only}");
}

#[test]
fn signatures_are_distinct_servable_and_zipf_popular() {
    let list = signatures(7);
    assert_eq!(list.len(), SIGNATURES);
    assert_eq!(list.iter().collect::<HashSet<_>>().len(), SIGNATURES, "distinct");
    let reference = agents(7, REFERENCE_AGENTS);
    for s in &list {
        assert!((1..=2).contains(&s.required.len()));
        assert!(s.required.as_slice().iter().all(|r| (1..=3).contains(&r.level)));
        assert!(reference.iter().filter(|a| s.served_by(a)).count() >= MIN_ELIGIBLE);
    }
    assert!(Channel::ALL.iter().all(|&c| list.iter().any(|s| s.channel == c)), "every channel is used");
    let mix = ContactMix::new(7);
    assert!(mix.share(0) > 5.0 * mix.share(SIGNATURES - 1));
}

#[test]
fn queues_keep_their_size_and_every_arrival_with_idle_agents_is_offered() {
    let workload = Workload::new(7, 1_000, true);
    let mut sim = Sim::new(Engine::new(engine_config(1_000, 4_000)), &workload);
    for _ in 0..20 {
        sim.arrival_batch(64); // panics unless all 64 are offered
    }
    sim.complete_all();
    sim.fill_queue(2_000);
    let waiting = sim.waiting.clone();
    for _ in 0..20 {
        sim.freed_batch(32);
    }
    assert_eq!(sim.queued, 2_000);
    assert_eq!(sim.waiting, waiting, "replacements keep every signature's queue");
    for _ in 0..500 {
        sim.mixed_cycle();
    }
}

/// The engine and the reference router make the same offers for the same inputs (counted per
/// input), so the `engine/…` and `naive/…` benches do the same work.
#[cfg(feature = "naive")]
#[test]
fn engine_and_reference_router_offer_alike() {
    use vuoro_engine::Output;
    let workload = Workload::new(7, 500, true);
    let mut engine = Sim::new(Engine::new(engine_config(500, 2_000)), &workload);
    let mut naive = Sim::new(vuoro_engine_model::ReferenceRouter::new(engine_config(500, 2_000)), &workload);
    let offers = |out: &[Output]| {
        out.iter()
            .filter_map(|o| match o {
                Output::Offered { contact, target, .. } => Some((*contact, *target)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    for _ in 0..1_500 {
        let spec = engine.next_contact();
        assert_eq!(spec, naive.next_contact());
        engine.enqueue_unsettled(spec);
        naive.enqueue_unsettled(spec);
        assert_eq!(offers(engine.out()), offers(naive.out()));
        engine.settle();
        naive.settle();
    }
}
