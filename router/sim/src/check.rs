//! Proof against queueing theory: single-skill scenarios whose answers are known in closed
//! form, simulated on the real engine, compared with [`crate::analytic`].
//!
//! Each case is an M/M/c queue — Poisson arrivals, exponential handle times, `c` identical
//! agents always logged in, one in-house agent-level pool, strict priority and first come
//! first served (the engine's default policy with no aging). Erlang A adds exponential patience
//! (the customer cancels), the priority cases give the classes different priorities.
//!
//! Every replication starts empty and discards a warm-up; the figures then average over
//! replications with a Student-t interval. A figure **passes** when the analytic value lies in
//! its check interval: the confidence interval widened for the number of figures compared
//! (Bonferroni: each at level `1 − 0.05/m`, so that by chance alone the whole suite fails at
//! most one run in twenty), or within a relative tolerance of 2 % — whichever is wider. The
//! tolerance covers what the statistics cannot: the small bias that remains after the warm-up,
//! and times rounded to whole milliseconds. The plain 95 % interval is reported too, and
//! whether the analytic value falls in it (by chance, about one figure in twenty does not).

use serde::Serialize;
use vuoro_engine::hours::OpeningHours;
use vuoro_engine::{
    Capacity, Channel, ChannelPolicy, Languages, PoolConfig, PoolId, PoolKind, PoolMode, Segment, SkillList,
    TenantPolicy,
};

use crate::analytic::{self, ErlangA, ErlangC};
use crate::dist::{Duration, Mix};
use crate::model::{AgentGroup, Arrivals, DAY, HOUR, Pool, Scenario, Stream, TENANT, Windows};
use crate::report::{Report, Table};
use crate::run::{RunOptions, simulate};
use crate::stats::Estimate;

/// Family-wise error rate of a whole check run.
pub const FAMILY_ALPHA: f64 = 0.05;
/// Relative tolerance under which a figure always passes.
pub const RELATIVE_TOLERANCE: f64 = 0.02;

/// A single-skill M/M/c scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct TheorySpec {
    /// Agents, always logged in.
    pub agents: u32,
    /// Arrival rate per class, contacts per hour; class 0 has the highest priority.
    pub class_rates_per_hour: Vec<f64>,
    /// Mean handle time, seconds (exponential).
    pub handle_seconds: f64,
    /// Mean patience, seconds (exponential); `None` never abandons.
    pub patience_seconds: Option<f64>,
    /// Service-level threshold, seconds.
    pub threshold_seconds: f64,
    /// Arrival period, hours.
    pub horizon_hours: f64,
    /// Uncounted start, hours.
    pub warm_up_hours: f64,
    /// Replications.
    pub replications: u32,
    /// Seed.
    pub seed: u64,
}

/// Builds the scenario for a [`TheorySpec`]: one tenant, one always-open in-house agent-level
/// pool, `agents` voice agents with [`Capacity::single`], a FIFO strict-priority voice policy
/// (no aging, no wrap-up, no relaxation or overflow), one Poisson stream per class.
pub fn theory_scenario(spec: &TheorySpec) -> Scenario {
    let tz = chrono_tz::UTC;
    // 2026-01-05 00:00 UTC.
    let start = 1_767_571_200_000;
    let policy = ChannelPolicy {
        service_level_threshold: (spec.threshold_seconds * 1000.0).round() as u64,
        aging_step: None,
        offer_timeout: 60_000,
        max_missed_offers: 0,
        wrap_up: 0,
        default_handle_time: (spec.handle_seconds * 1000.0).round() as u64,
        ..ChannelPolicy::default()
    };
    let classes = spec.class_rates_per_hour.len();
    let streams = spec
        .class_rates_per_hour
        .iter()
        .enumerate()
        .map(|(k, &rate)| Stream {
            name: format!("class {k}"),
            channel: Channel::Voice,
            arrivals: Arrivals::Poisson { per_hour: [rate; 24] },
            handle_time: Duration::Exponential { mean: spec.handle_seconds },
            patience: spec.patience_seconds.map(|mean| Duration::Exponential { mean }),
            priorities: Mix::one((classes - 1 - k) as u8),
            segments: Mix::one(Segment::New),
            languages: Mix::one(None),
            required: SkillList::EMPTY,
            preferred: SkillList::EMPTY,
            callback: None,
        })
        .collect();
    Scenario {
        name: "theory".into(),
        tz,
        start,
        horizon: (spec.horizon_hours * HOUR as f64).round() as u64,
        warm_up: (spec.warm_up_hours * HOUR as f64).round() as u64,
        drain: DAY,
        replications: spec.replications,
        seed: spec.seed,
        interval: HOUR,
        policy: TenantPolicy {
            tenant: TENANT,
            channels: std::array::from_fn(|_| policy.clone()),
            segment_boost: [0; 3],
        },
        pools: vec![Pool {
            name: "agents".into(),
            config: PoolConfig {
                id: PoolId(1),
                tenant: TENANT,
                kind: PoolKind::InHouse,
                mode: PoolMode::AgentLevel,
                hours: None::<OpeningHours>,
                max_concurrent: None,
            },
            handle_time_factor: 1.0,
            capacity: None,
            windows: Windows::always(tz),
        }],
        groups: vec![AgentGroup {
            name: "agents".into(),
            pool: 0,
            count: spec.agents,
            skills: Vec::new(),
            languages: Languages::default(),
            capacity: Capacity::single(Channel::Voice),
            shifts: Windows::always(tz),
        }],
        streams,
        skill_names: Vec::new(),
        language_names: Vec::new(),
    }
}

/// The closed-form model a case is checked against.
#[derive(Clone, Debug, PartialEq)]
pub enum Model {
    /// M/M/c, FIFO: probability of waiting, ASA, service level, occupancy.
    ErlangC {
        /// Service-level threshold, seconds.
        threshold_seconds: f64,
    },
    /// M/M/c+M: probability of abandonment and of waiting, mean wait.
    ErlangA {
        /// Mean patience, seconds.
        patience_seconds: f64,
    },
    /// M/M/c with non-preemptive priority classes: mean wait per class.
    Priority {
        /// Share of the traffic per class, highest priority first.
        shares: Vec<f64>,
    },
}

/// One check: a model, its parameters and how long to simulate it.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    /// The model.
    pub model: Model,
    /// Agents.
    pub agents: u32,
    /// Offered load per agent, `λ·h/c` (may exceed 1 for Erlang A).
    pub load: f64,
    /// Mean handle time, seconds.
    pub handle_seconds: f64,
    /// Arrival period per replication, hours (warm-up included).
    pub horizon_hours: f64,
    /// Warm-up, hours.
    pub warm_up_hours: f64,
    /// Replications.
    pub replications: u32,
}

impl Case {
    /// A short name, e.g. `Erlang C c=20 ρ=0.90`.
    pub fn name(&self) -> String {
        let kind = match &self.model {
            Model::ErlangC { .. } => "Erlang C".to_owned(),
            Model::ErlangA { patience_seconds } => format!("Erlang A patience {patience_seconds:.0} s"),
            Model::Priority { shares } => format!("priority {} classes", shares.len()),
        };
        format!("{kind} c={} ρ={:.2}", self.agents, self.load)
    }

    fn spec(&self, seed: u64) -> TheorySpec {
        let total_per_hour = self.load * f64::from(self.agents) / self.handle_seconds * 3600.0;
        let (rates, patience, threshold) = match &self.model {
            Model::ErlangC { threshold_seconds } => (vec![total_per_hour], None, *threshold_seconds),
            Model::ErlangA { patience_seconds } => (vec![total_per_hour], Some(*patience_seconds), 20.0),
            Model::Priority { shares } => {
                let sum: f64 = shares.iter().sum();
                (shares.iter().map(|s| total_per_hour * s / sum).collect(), None, 20.0)
            }
        };
        TheorySpec {
            agents: self.agents,
            class_rates_per_hour: rates,
            handle_seconds: self.handle_seconds,
            patience_seconds: patience,
            threshold_seconds: threshold,
            horizon_hours: self.horizon_hours,
            warm_up_hours: self.warm_up_hours,
            replications: self.replications,
            seed,
        }
    }

    /// Simulated contacts the case needs (expected, all replications, warm-up included).
    pub fn expected_contacts(&self) -> f64 {
        self.load * f64::from(self.agents) / self.handle_seconds
            * self.horizon_hours
            * 3600.0
            * f64::from(self.replications)
    }
}

/// How big a suite to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// The full suite of `vuoro simulate --check`.
    Full,
    /// A smaller suite for the test suite: the same kinds of case, shorter runs.
    Quick,
}

fn case(
    model: Model,
    agents: u32,
    load: f64,
    horizon_hours: f64,
    warm_up_hours: f64,
    replications: u32,
) -> Case {
    Case { model, agents, load, handle_seconds: 180.0, horizon_hours, warm_up_hours, replications }
}

/// The cases of a suite.
pub fn suite(size: Size) -> Vec<Case> {
    let c = |t: f64| Model::ErlangC { threshold_seconds: t };
    let a = |p: f64| Model::ErlangA { patience_seconds: p };
    let p = |s: &[f64]| Model::Priority { shares: s.to_vec() };
    match size {
        Size::Full => vec![
            case(c(20.0), 1, 0.5, 400.0, 20.0, 20),
            case(c(60.0), 1, 0.8, 2000.0, 50.0, 20),
            case(c(20.0), 10, 0.85, 200.0, 10.0, 20),
            case(c(20.0), 50, 0.9, 100.0, 5.0, 20),
            case(c(10.0), 200, 0.95, 60.0, 4.0, 20),
            case(c(10.0), 500, 0.95, 40.0, 3.0, 20),
            case(a(300.0), 1, 0.9, 400.0, 20.0, 20),
            case(a(180.0), 20, 1.0, 100.0, 5.0, 20),
            case(a(120.0), 100, 1.1, 40.0, 3.0, 20),
            case(p(&[0.3, 0.7]), 5, 0.85, 400.0, 20.0, 20),
            case(p(&[0.2, 0.3, 0.5]), 20, 0.9, 200.0, 10.0, 20),
            case(p(&[0.1, 0.2, 0.3, 0.4]), 50, 0.9, 200.0, 10.0, 20),
        ],
        Size::Quick => vec![
            case(c(20.0), 1, 0.7, 150.0, 10.0, 10),
            case(c(20.0), 20, 0.9, 40.0, 3.0, 10),
            case(c(10.0), 500, 0.95, 4.0, 0.5, 20),
            case(a(180.0), 10, 1.0, 40.0, 3.0, 10),
            case(p(&[0.3, 0.7]), 5, 0.85, 100.0, 5.0, 10),
            case(p(&[0.1, 0.2, 0.3, 0.4]), 20, 0.9, 60.0, 5.0, 10),
        ],
    }
}

/// One compared figure.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    /// The case.
    pub case: String,
    /// What is compared.
    pub figure: String,
    /// The closed-form value.
    pub analytic: f64,
    /// The simulated estimate (95 % interval).
    pub simulated: Estimate,
    /// Half-width of the interval the check uses: the Bonferroni-widened interval or the
    /// relative tolerance, whichever is wider.
    pub check_half_width: f64,
    /// Whether the analytic value lies in the plain 95 % interval.
    pub within_95: bool,
    /// Whether the figure passes.
    pub pass: bool,
}

/// The outcome of a check run.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    /// Every compared figure.
    pub figures: Vec<Figure>,
    /// Per-figure error rate of the check intervals (`FAMILY_ALPHA / figures`).
    pub per_figure_alpha: f64,
    /// Contacts simulated.
    pub contacts: u64,
    /// CPU seconds spent simulating.
    pub cpu_seconds: f64,
    /// Whether every figure passed.
    pub passed: bool,
}

struct Pending {
    case: String,
    figure: String,
    analytic: f64,
    simulated: Option<Estimate>,
}

fn pending(case: &str, figure: &str, analytic: f64, simulated: Option<Estimate>) -> Pending {
    Pending { case: case.into(), figure: figure.into(), analytic, simulated }
}

/// Analytic values and simulated estimates for one case.
fn compare(case: &Case, report: &Report) -> Vec<Pending> {
    let name = case.name();
    let voice = report.channels.first();
    let f = voice.map(|v| &v.figures);
    let get = |e: fn(&crate::report::Figures) -> Option<Estimate>| f.and_then(e);
    let lambda = case.load * f64::from(case.agents) / case.handle_seconds;
    let occupancy = report.pools.first().and_then(|p| p.occupancy);
    match &case.model {
        Model::ErlangC { threshold_seconds } => {
            let m = ErlangC::new(case.agents, lambda, case.handle_seconds).expect("valid Erlang C case");
            vec![
                pending(&name, "P(wait)", m.prob_wait(), get(|f| f.prob_wait)),
                pending(&name, "ASA s", m.mean_wait(), get(|f| f.asa_seconds)),
                pending(
                    &name,
                    &format!("service level {threshold_seconds:.0} s"),
                    m.service_level(*threshold_seconds),
                    get(|f| f.service_level),
                ),
                pending(&name, "occupancy", m.occupancy(), occupancy),
            ]
        }
        Model::ErlangA { patience_seconds } => {
            let m = ErlangA::new(case.agents, lambda, case.handle_seconds, *patience_seconds)
                .expect("valid Erlang A case");
            vec![
                pending(&name, "P(abandon)", m.prob_abandon(), get(|f| f.abandonment)),
                pending(&name, "P(wait)", m.prob_wait(), get(|f| f.prob_wait)),
                pending(&name, "mean wait s", m.mean_wait(), get(|f| f.mean_wait_seconds)),
                pending(&name, "occupancy", m.occupancy(), occupancy),
            ]
        }
        Model::Priority { shares } => {
            let sum: f64 = shares.iter().sum();
            let rates: Vec<f64> = shares.iter().map(|s| lambda * s / sum).collect();
            let waits = analytic::priority_mean_waits(case.agents, &rates, case.handle_seconds)
                .expect("valid priority case");
            let classes = voice.map(|v| v.classes.as_slice()).unwrap_or_default();
            let n = shares.len();
            waits
                .iter()
                .enumerate()
                .map(|(k, &w)| {
                    // Class k has priority n − 1 − k.
                    let sim = classes
                        .iter()
                        .find(|c| usize::from(c.priority) == n - 1 - k)
                        .and_then(|c| c.mean_wait_seconds);
                    pending(&name, &format!("class {k} mean wait s"), w, sim)
                })
                .collect()
        }
    }
}

/// Compares one figure: it passes when the analytic value lies within the confidence interval
/// at level `1 − alpha`, or within [`RELATIVE_TOLERANCE`] of it.
fn judge(p: Pending, alpha: f64) -> Figure {
    let simulated = p.simulated.unwrap_or(Estimate { mean: f64::NAN, half_width: None, sd: None, n: 0 });
    let widened = simulated.half_width_at(alpha).unwrap_or(0.0);
    let check_half_width = widened.max(RELATIVE_TOLERANCE * p.analytic.abs());
    let error = (simulated.mean - p.analytic).abs();
    Figure {
        case: p.case,
        figure: p.figure,
        analytic: p.analytic,
        within_95: simulated.half_width.is_some_and(|h| error <= h),
        // A missing (NaN) estimate never passes.
        pass: error <= check_half_width,
        check_half_width,
        simulated,
    }
}

/// Runs a suite: every case simulated on the real engine and compared with its closed form.
/// `progress` is called after each case with its name.
pub fn run(
    size: Size,
    seed: u64,
    replications: Option<u32>,
    options: RunOptions,
    progress: &dyn Fn(&str),
) -> CheckReport {
    let mut all = Vec::new();
    let (mut contacts, mut cpu) = (0, 0.0);
    for (i, case) in suite(size).into_iter().enumerate() {
        let mut case = case;
        if let Some(r) = replications {
            case.replications = r.max(2);
        }
        let sc = theory_scenario(&case.spec(seed.wrapping_add(1_000_003 * i as u64)));
        let sim = simulate(&sc, RunOptions { progress: false, ..options });
        contacts += sim.contacts;
        cpu += sim.cpu.as_secs_f64();
        all.extend(compare(&case, &sim.report));
        progress(&case.name());
    }
    let alpha = FAMILY_ALPHA / all.len().max(1) as f64;
    let figures: Vec<Figure> = all.into_iter().map(|p| judge(p, alpha)).collect();
    CheckReport {
        passed: figures.iter().all(|f| f.pass),
        per_figure_alpha: alpha,
        contacts,
        cpu_seconds: cpu,
        figures,
    }
}

impl CheckReport {
    /// The report as a plain-text table.
    pub fn to_text(&self) -> String {
        let mut t = Table::new(&[
            "case",
            "figure",
            "theory",
            "simulated (95 % CI)",
            "check interval",
            "in 95 %",
            "result",
        ]);
        for f in &self.figures {
            let digits = if f.analytic.abs() < 10.0 { 4 } else { 2 };
            t.row(vec![
                f.case.clone(),
                f.figure.clone(),
                format!("{:.*}", digits, f.analytic),
                match f.simulated.half_width {
                    Some(h) => format!("{:.*} ± {:.*}", digits, f.simulated.mean, digits, h),
                    None => format!("{:.*}", digits, f.simulated.mean),
                },
                format!("± {:.*}", digits, f.check_half_width),
                if f.within_95 { "yes" } else { "no" }.into(),
                if f.pass { "pass" } else { "FAIL" }.into(),
            ]);
        }
        let failed = self.figures.iter().filter(|f| !f.pass).count();
        let outside = self.figures.iter().filter(|f| !f.within_95).count();
        format!(
            "Simulation on the real engine against queueing theory\n\
             check interval: the 95 % CI widened to {:.5} per figure (Bonferroni over {} figures), at least ±{:.0} % of theory\n\n{}\n\
             {} of {} figures pass; {} outside their plain 95 % interval (about {:.1} expected by chance)\n{}\n",
            1.0 - self.per_figure_alpha,
            self.figures.len(),
            RELATIVE_TOLERANCE * 100.0,
            t.render(),
            self.figures.len() - failed,
            self.figures.len(),
            outside,
            0.05 * self.figures.len() as f64,
            if self.passed { "CHECK PASSED" } else { "CHECK FAILED" },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(analytic: f64, values: &[f64]) -> Figure {
        let simulated = Estimate::from_values(values.iter().map(|&v| Some(v)));
        judge(pending("case", "figure", analytic, simulated), 0.05 / 40.0)
    }

    #[test]
    fn a_figure_passes_inside_its_widened_interval_or_the_tolerance() {
        // Mean 10, sd 0.85, n 10: the 95 % half-width is 0.61, the widened one (α = 0.00125)
        // about 1.2.
        let values = [8.5, 9.0, 9.5, 10.0, 10.0, 10.0, 10.0, 10.5, 11.0, 11.5];
        let inside = figure(10.5, &values);
        assert!(inside.pass && inside.within_95, "{inside:?}");
        let widened = figure(11.0, &values);
        assert!(widened.pass && !widened.within_95, "{widened:?}");
        assert!(!figure(12.0, &values).pass);
        // Tight estimates still get 2 % of the analytic value.
        let tight = figure(101.5, &[100.0, 100.001, 99.999]);
        assert!(tight.pass && !tight.within_95 && (tight.check_half_width - 2.03).abs() < 1e-9, "{tight:?}");
        assert!(!figure(103.0, &[100.0, 100.001, 99.999]).pass);
        // No estimate: fail.
        assert!(!judge(pending("case", "figure", 1.0, None), 0.01).pass);
    }

    #[test]
    fn the_check_catches_a_simulation_that_differs_from_its_model() {
        // Simulate 8 % more traffic than the Erlang C model of the case assumes.
        let case = case(Model::ErlangC { threshold_seconds: 20.0 }, 10, 0.8, 30.0, 3.0, 10);
        let mut spec = case.spec(3);
        spec.class_rates_per_hour[0] *= 1.08;
        let sim = simulate(&theory_scenario(&spec), RunOptions { threads: 2, progress: false });
        let figures: Vec<Figure> =
            compare(&case, &sim.report).into_iter().map(|p| judge(p, 0.05 / 4.0)).collect();
        let failed: Vec<&str> = figures.iter().filter(|f| !f.pass).map(|f| f.figure.as_str()).collect();
        assert!(failed.contains(&"P(wait)") && failed.contains(&"occupancy"), "{figures:#?}");
        // The same case simulated as modelled passes.
        let sim = simulate(&theory_scenario(&case.spec(3)), RunOptions { threads: 2, progress: false });
        assert!(compare(&case, &sim.report).into_iter().all(|p| judge(p, 0.05 / 4.0).pass));
    }
}
