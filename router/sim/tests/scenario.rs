//! Scenario files, end to end: validation, determinism, the shipped examples and the charts.

use std::path::{Path, PathBuf};

use vuoro_sim::model::{HOUR, Scenario};
use vuoro_sim::run::{RunOptions, simulate};
use vuoro_sim::scenario::{ScenarioFile, load};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn scenario(text: &str) -> Scenario {
    ScenarioFile::parse(text).expect("parses").validate(Path::new(".")).expect("valid")
}

fn quick(mut sc: Scenario, hours: u64, replications: u32) -> Scenario {
    sc.horizon = hours * HOUR;
    sc.warm_up = sc.warm_up.min(sc.horizon / 2);
    sc.replications = replications;
    sc
}

const SMALL: &str = r#"
name = "small"
[simulation]
time_zone = "Europe/Helsinki"
replications = 3
seed = 5
[policy.voice]
service_level_seconds = 20
wrap_up_seconds = 10
overflow = { after_wait_seconds = 30 }
[[pools]]
name = "home"
hours = "08:00-18:00"
[[pools]]
name = "partner"
kind = "outsourced"
mode = "capacity_level"
skills = { sales = 3 }
languages = ["fi"]
capacity = { voice = 3 }
[[agents]]
name = "day"
pool = "home"
count = 6
skills = { sales = 4 }
languages = ["fi", "en"]
capacity = { voice = 1 }
shifts = ["08:00-12:00", "13:00-17:00"]
[[traffic]]
name = "calls"
channel = "voice"
arrivals = { rate_per_hour = 60 }
handle_time = { distribution = "exponential", mean_seconds = 240 }
patience = { distribution = "lognormal", mean_seconds = 120, sd_seconds = 60 }
priority_mix = [{ priority = 0, share = 3 }, { priority = 2, share = 1 }]
required_skills = { sales = 2 }
language = "fi"
"#;

#[test]
fn every_problem_in_a_scenario_is_reported_at_once() {
    let text = r#"
[simulation]
start = "2026-13-01"
time_zone = "Mars/Olympus"
replications = 0
interval_minutes = 7
[policy.voice]
service_level_target_pct = 120
relaxation = [{ after_seconds = 10, action = "lower_required_levels" }]
[[pools]]
name = "p"
mode = "capacity_level"
hours = "09:00-25:00"
[[pools]]
name = "p"
[[agents]]
name = "a"
pool = "nowhere"
count = 2
skills = { sales = 7 }
shifts = ["8-16"]
[[traffic]]
name = "t"
channel = "voice"
arrivals = { per_hour = [1, 2, 3] }
handle_time = { distribution = "lognormal", mean_seconds = 100 }
language_mix = { fi = -1 }
callback = { share = 1.5, delay = { distribution = "constant", mean_seconds = 60 } }
"#;
    let errors = ScenarioFile::parse(text).unwrap().validate(Path::new(".")).unwrap_err();
    let expected = [
        "unknown time zone \"Mars/Olympus\"",
        "start must be a date",
        "replications must be at least 1",
        "interval_minutes must be at least 1, divide a day",
        "service_level_target_pct must be 0–100",
        "lower_required_levels needs `by`",
        "pools[0] \"p\": a capacity-level pool needs a capacity",
        "window \"09:00-25:00\"",
        "pools[1] \"p\": another pool has the same name",
        "agents[0] \"a\": no pool named \"nowhere\"",
        "skill \"sales\" has level 7",
        "window \"8-16\"",
        "arrivals.per_hour needs 24 values",
        "lognormal",
        "language_mix shares",
        "callback.share must be 0–1",
    ];
    let text = errors.to_string();
    for e in expected {
        assert!(errors.problems.iter().any(|p| p.contains(e)), "missing {e:?} in\n{text}");
    }
    assert!(text.starts_with(&format!("{} problems in the scenario:", errors.problems.len())), "{text}");
}

#[test]
fn unknown_fields_and_unservable_traffic_are_refused() {
    let err = ScenarioFile::parse("[simulation]\nhorizon = 3\n").unwrap_err().to_string();
    assert!(err.contains("unknown field `horizon`"), "{err}");
    let err =
        ScenarioFile::parse(&SMALL.replace("name = \"calls\"", "name = \"calls\"\nfoo = 1")).unwrap_err();
    assert!(err.to_string().contains("unknown field `foo`"), "{err}");
    // Swedish callers: nobody speaks Swedish.
    let sv = SMALL.replace("language = \"fi\"", "language = \"sv\"");
    let errors = ScenarioFile::parse(&sv).unwrap().validate(Path::new(".")).unwrap_err();
    assert!(
        errors.problems.iter().any(|p| p.contains("no agent group or pool can ever take its \"sv\"")),
        "{errors}"
    );
}

#[test]
fn the_same_seed_gives_the_same_json_whatever_the_threads() {
    let sc = scenario(SMALL);
    let json = |sc: &Scenario, threads| {
        serde_json::to_string(&simulate(sc, RunOptions { threads, progress: false }).report).unwrap()
    };
    let one = json(&sc, 1);
    assert_eq!(one, json(&sc, 2));
    assert_eq!(one, json(&sc, 1));
    let mut other = sc.clone();
    other.seed += 1;
    assert_ne!(one, json(&other, 2));
}

#[test]
fn shifts_breaks_overflow_and_priorities_show_in_the_figures() {
    let sim = simulate(&scenario(SMALL), RunOptions { threads: 2, progress: false });
    let r = &sim.report;
    assert_eq!(r.engine_rejections, 0);
    let voice = &r.channels[0];
    assert_eq!(voice.channel, "voice");
    let f = &voice.figures;
    // 60 calls an hour for a day.
    let arrivals = f.arrivals.unwrap();
    assert!((arrivals.mean - 1440.0).abs() < 100.0, "{arrivals:?}");
    // Six agents for eight hours, with a lunch break: 48 agent-hours over 24.
    let home = &r.pools[0];
    assert!((home.mean_staffed.unwrap().mean - 2.0).abs() < 0.05, "{:?}", home.mean_staffed);
    // The partner takes calls that waited 30 s, and everything when the home pool is closed
    // or its agents are out.
    assert!(f.outsourced_share.unwrap().mean > 0.3, "{:?}", f.outsourced_share);
    assert!(r.pools[1].answered.unwrap().mean > 0.0);
    // Priority 2 waits less than priority 0.
    let waits: Vec<f64> = voice.classes.iter().map(|c| c.mean_wait_seconds.unwrap().mean).collect();
    assert_eq!(voice.classes.iter().map(|c| c.priority).collect::<Vec<_>>(), vec![0, 2]);
    assert!(waits[1] < waits[0], "{waits:?}");
    // Every counted contact ended.
    assert!(f.unfinished.unwrap().mean < 1.0);
    // Queue and staffing over the day: nobody in-house before 08:00, six at 09:00.
    let staffing = &r.series.staffing[0].values;
    let per_hour = staffing.len() / 24;
    assert_eq!(staffing[7 * per_hour], Some(0.0));
    assert_eq!(staffing[9 * per_hour], Some(6.0));
    assert!(staffing[12 * per_hour + 2].unwrap() < 0.05, "{:?}", staffing[12 * per_hour + 2]);
}

#[test]
fn callbacks_wait_for_their_promised_time() {
    let text = SMALL.replace(
        "language = \"fi\"",
        "language = \"fi\"\ncallback = { share = 1.0, delay = { distribution = \"constant\", mean_seconds = 1800 } }",
    );
    let sc = scenario(&text);
    let sim = simulate(&sc, RunOptions { threads: 2, progress: false });
    let f = &sim.report.traffic[0].figures;
    assert_eq!(f.callbacks.unwrap().mean, f.arrivals.unwrap().mean);
    assert_eq!(sim.report.engine_rejections, 0);
    assert!(f.answered.unwrap().mean > 0.0);
    // Waits count from the promised time: with agents to spare, a callback is made right then.
    let spare = scenario(&text.replace("count = 6", "count = 30").replace("08:00-18:00", "always"));
    let spare = quick(spare, 24, 2);
    let sim = simulate(&spare, RunOptions { threads: 2, progress: false });
    let f = &sim.report.traffic[0].figures;
    assert!(f.prob_wait.unwrap().mean > 0.0, "promised times outside the shifts wait");
    let daytime = &sim.report.series.service_level[0].values;
    assert_eq!(daytime[10 * daytime.len() / 24], Some(1.0), "{daytime:?}");
}

#[test]
fn the_example_scenarios_parse_and_run() {
    let mut found = 0;
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        found += 1;
        let sc = load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        let sc = quick(sc, 4, 2);
        let sim = simulate(&sc, RunOptions { threads: 2, progress: false });
        let r = &sim.report;
        assert_eq!(r.engine_rejections, 0, "{}: {:?}", path.display(), sim.results[0].first_rejection);
        assert!(!r.channels.is_empty() && !r.pools.is_empty(), "{}", path.display());
        assert!(sim.contacts > 0, "{}: no contacts", path.display());
        assert!(r.to_text().contains("Channels"));
    }
    assert!(found >= 3, "expected the three example scenarios, found {found}");
}

#[test]
fn charts_are_written_as_svg_and_png() {
    let sim = simulate(&quick(scenario(SMALL), 24, 2), RunOptions { threads: 2, progress: false });
    let dir = std::env::temp_dir().join(format!("vuoro-sim-chart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (svg, png) = vuoro_sim::chart::write(&sim.report, &dir.join("day")).unwrap();
    assert_eq!(svg, dir.join("day.svg"));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("Queue length") && text.contains("hour of day"));
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    let mut reader = png::Decoder::new(std::io::Cursor::new(&bytes)).read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), vuoro_sim::chart::SIZE);
    // Not blank: some dark (text, axes) and some coloured pixels.
    let dark = pixels.chunks(3).filter(|p| p.iter().all(|&c| c < 60)).count();
    let blue = pixels.chunks(3).filter(|p| p[2] > 150 && p[0] < 80).count();
    assert!(dark > 1000 && blue > 100, "dark {dark}, blue {blue}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_command_runs_a_scenario_with_overrides_and_charts() {
    use std::process::ExitCode;
    use vuoro_sim::cli::{SimulateArgs, run};
    let dir = std::env::temp_dir().join(format!("vuoro-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let args = SimulateArgs {
        scenario: Some(examples_dir().join("webshop.toml")),
        json: true,
        chart: Some(dir.join("webshop")),
        replications: Some(2),
        seed: Some(3),
        horizon_hours: Some(6.0),
        threads: Some(2),
        quiet: true,
        ..SimulateArgs::default()
    };
    assert_eq!(run(args).unwrap(), ExitCode::SUCCESS);
    assert!(std::fs::metadata(dir.join("webshop.svg")).unwrap().len() > 1000);
    assert!(std::fs::metadata(dir.join("webshop.png")).unwrap().len() > 1000);
    std::fs::remove_dir_all(&dir).ok();
    let missing =
        SimulateArgs { scenario: Some(dir.join("missing.toml")), quiet: true, ..SimulateArgs::default() };
    let err = run(missing).unwrap_err().to_string();
    assert!(err.contains("cannot read scenario"), "{err}");
}

/// One always-open desk answering a steady stream of calls; nobody hangs up.
const DESK: &str = r#"
name = "desk"
[simulation]
horizon_hours = 8
replications = 4
seed = 11
[[pools]]
name = "desk"
[[agents]]
name = "staff"
pool = "desk"
count = 5
[[traffic]]
name = "calls"
channel = "voice"
arrivals = { rate_per_hour = 55 }
handle_time = { distribution = "exponential", mean_seconds = 300 }
"#;

#[test]
fn wait_estimates_are_scored_against_the_waits_they_promised() {
    // One agent, calls of exactly 300 s, 83 % busy: most callers wait. A caller with p − 1
    // callers ahead is told p × 300 s and waits the residual R of the call in service plus
    // (p − 1) × 300 s, so each estimate is 300 s − R too long: between 0 and 300 s, 150 s on
    // average (arrivals land uniformly within the call in service).
    let text = DESK
        .replace("count = 5", "count = 1")
        .replace("rate_per_hour = 55", "rate_per_hour = 10")
        .replace("distribution = \"exponential\"", "distribution = \"constant\"");
    let sim = simulate(&quick(scenario(&text), 24, 10), RunOptions { threads: 2, progress: false });
    for r in &sim.results {
        let t = &r.channels[0];
        assert!(t.answered_with_estimate > 0, "{t:?}");
        assert!(t.answered_with_estimate <= t.answered.min(t.waited), "{t:?}");
        assert_eq!(t.estimate_abs_error_ms, t.estimate_error_ms as u64, "never too short: {t:?}");
        assert!(t.estimate_abs_error_ms <= 300_000 * t.answered_with_estimate, "{t:?}");
    }
    let f = &sim.report.channels[0].figures;
    let signed = f.estimate_error_seconds.expect("callers were given estimates");
    let abs = f.estimate_abs_error_seconds.expect("callers were given estimates");
    assert!(f.answered_with_estimate.unwrap().mean <= f.answered.unwrap().mean);
    assert!(abs.mean >= signed.mean.abs(), "{signed:?} {abs:?}");
    assert!((signed.mean - 150.0).abs() < 20.0, "{signed:?}");
    // One stream: it has the channel's figures.
    assert_eq!(
        serde_json::to_value(&sim.report.traffic[0].figures).unwrap(),
        serde_json::to_value(f).unwrap()
    );
    assert!(sim.report.to_text().contains("|estimate error| s"));
}

#[test]
fn contacts_never_given_an_estimate_are_left_out_of_its_error() {
    // Fifty agents for 4.6 Erlangs: every call is offered at once.
    let ample = simulate(
        &scenario(&DESK.replace("count = 5", "count = 50")),
        RunOptions { threads: 2, progress: false },
    );
    let f = &ample.report.channels[0].figures;
    assert_eq!(f.prob_wait.unwrap().mean, 0.0);
    assert_eq!(f.answered_with_estimate.unwrap().mean, 0.0);
    assert!(f.estimate_error_seconds.is_none() && f.estimate_abs_error_seconds.is_none(), "{f:?}");
    // Calls before 08:00 wait for the shift: with nobody logged in the engine has no estimate
    // to give, so they all wait and are all answered, without an estimate.
    let mut night = vec!["0"; 24];
    night[..6].fill("50");
    let text = DESK
        .replace("count = 5", "count = 5\nshifts = [\"08:00-16:00\"]")
        .replace("rate_per_hour = 55", &format!("per_hour = [{}]", night.join(", ")));
    let sim = simulate(&quick(scenario(&text), 24, 2), RunOptions { threads: 2, progress: false });
    let f = &sim.report.channels[0].figures;
    assert_eq!(f.prob_wait.unwrap().mean, 1.0);
    assert!(f.answered.unwrap().mean > 200.0, "{f:?}");
    assert_eq!(f.answered_with_estimate.unwrap().mean, 0.0);
    assert!(f.estimate_error_seconds.is_none() && f.estimate_abs_error_seconds.is_none(), "{f:?}");
    let text = sim.report.to_text();
    let voice = text.lines().find(|l| l.starts_with("voice")).unwrap();
    assert!(voice.split_whitespace().rev().take(2).all(|cell| cell == "–"), "{voice}");
}
