//! Running a scenario's replications, in parallel, deterministically.
//!
//! Replication `r` always uses the random stream derived from `(seed, r)` and its results are
//! combined in replication order, so the report does not depend on the number of threads or
//! on which thread ran what.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use vuoro_engine::Millis;

use crate::model::{MINUTE, Scenario};
use crate::report::Report;
use crate::sim::{Plan, RepResult, run_replication};

/// How to run.
#[derive(Clone, Copy, Debug)]
pub struct RunOptions {
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Show a progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { threads: default_threads(), progress: false }
    }
}

/// Threads to use by default: the machine's cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The outcome of a run.
#[derive(Debug)]
pub struct Simulation {
    /// Figures with confidence intervals.
    pub report: Report,
    /// Per-replication results, in order.
    pub results: Vec<RepResult>,
    /// Contacts simulated, warm-up included.
    pub contacts: u64,
    /// Inputs applied to the engine.
    pub inputs: u64,
    /// CPU time spent simulating: the replications' threads' CPU times, summed (Linux; elsewhere
    /// their wall times).
    pub cpu: Duration,
    /// Wall time.
    pub wall: Duration,
}

impl Simulation {
    /// Simulated contacts per second of CPU.
    pub fn contacts_per_cpu_second(&self) -> f64 {
        self.contacts as f64 / self.cpu.as_secs_f64().max(1e-9)
    }
}

/// Runs every replication of `sc` and aggregates them.
pub fn simulate(sc: &Scenario, options: RunOptions) -> Simulation {
    let bar = options.progress.then(|| {
        let total = u64::from(sc.replications) * (sc.horizon / MINUTE).max(1);
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} simulating [{bar:40}] {percent:>3}% of {len} virtual minutes, eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    });
    let done_ms = std::sync::atomic::AtomicU64::new(0);
    let report_progress = |ms: Millis| {
        if let Some(bar) = &bar {
            let before = done_ms.fetch_add(ms, Ordering::Relaxed);
            let minutes = (before + ms) / MINUTE - before / MINUTE;
            if minutes > 0 {
                bar.inc(minutes);
            }
        }
    };
    let started = Instant::now();
    let plan = Plan::new(sc);
    let progress = bar.as_ref().map(|_| &report_progress as &(dyn Fn(Millis) + Sync));
    let results = run_all(sc, &plan, options.threads, progress);
    let wall = started.elapsed();
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = Report::new(sc, &plan, &results);
    Simulation {
        report,
        contacts: results.iter().map(|r| r.contacts).sum(),
        inputs: results.iter().map(|r| r.inputs).sum(),
        cpu: results.iter().map(|r| r.elapsed).sum(),
        wall,
        results,
    }
}

/// Runs the replications on `threads` workers; results in replication order.
pub fn run_all(
    sc: &Scenario,
    plan: &Plan,
    threads: usize,
    progress: Option<&(dyn Fn(Millis) + Sync)>,
) -> Vec<RepResult> {
    let n = sc.replications as usize;
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<RepResult>>> = Mutex::new(vec![None; n]);
    let workers = threads.clamp(1, n.max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let r = next.fetch_add(1, Ordering::Relaxed);
                    if r >= n {
                        break;
                    }
                    let result = run_replication(sc, plan, r as u32, progress);
                    slots.lock().unwrap_or_else(|e| e.into_inner())[r] = Some(result);
                }
            });
        }
    });
    slots.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().flatten().collect()
}
