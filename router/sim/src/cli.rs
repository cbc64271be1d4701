//! `vuoro simulate`: run a scenario (or the theory checks) from the command line.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::check::{self, Size};
use crate::model::HOUR;
use crate::run::{RunOptions, default_threads, simulate};

/// Arguments of `vuoro simulate`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct SimulateArgs {
    /// Scenario file (TOML; see docs/simulate.md).
    #[arg(long, value_name = "FILE", required_unless_present = "check", conflicts_with = "check")]
    pub scenario: Option<PathBuf>,
    /// Run the theory checks (Erlang C, Erlang A, priority classes) instead of a scenario;
    /// exits non-zero when a simulated figure misses its closed form.
    #[arg(long)]
    pub check: bool,
    /// Print the results as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Write charts of the day to PATH_PREFIX.svg and PATH_PREFIX.png.
    #[arg(long, value_name = "PATH_PREFIX")]
    pub chart: Option<PathBuf>,
    /// Number of replications (overrides the scenario's).
    #[arg(long, value_name = "N")]
    pub replications: Option<u32>,
    /// Random seed (overrides the scenario's).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Arrival period in hours (overrides the scenario's).
    #[arg(long, value_name = "HOURS")]
    pub horizon_hours: Option<f64>,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Hide the progress bar and the closing speed line.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `vuoro simulate`.
pub fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let threads = args.threads.unwrap_or_else(default_threads).max(1);
    let progress = !args.quiet && std::io::stderr().is_terminal();
    if args.check {
        return run_check(&args, threads, progress);
    }
    let path = args.scenario.as_ref().context("--scenario FILE is required")?;
    let mut sc = crate::scenario::load(path)?;
    if let Some(r) = args.replications {
        anyhow::ensure!(r >= 1, "--replications must be at least 1");
        sc.replications = r;
    }
    if let Some(seed) = args.seed {
        sc.seed = seed;
    }
    if let Some(h) = args.horizon_hours {
        let horizon = (h * HOUR as f64).round() as u64;
        anyhow::ensure!(
            h.is_finite() && horizon > sc.warm_up,
            "--horizon-hours must be longer than the warm-up"
        );
        sc.horizon = horizon;
        if sc.interval > horizon {
            let mut minutes = [60, 30, 15, 10, 5, 1].into_iter().map(|m| m * crate::model::MINUTE);
            sc.interval = minutes.find(|&i| i <= horizon).unwrap_or(crate::model::MINUTE);
        }
    }
    let sim = simulate(&sc, RunOptions { threads, progress });
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &sim.report)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", sim.report.to_text())?;
    }
    stdout.flush()?;
    if let Some(prefix) = &args.chart {
        let (svg, png) = crate::chart::write(&sim.report, prefix)?;
        if !args.quiet {
            eprintln!("charts: {} and {}", svg.display(), png.display());
        }
    }
    if let Some(first) = sim.results.iter().find_map(|r| r.first_rejection.as_deref()) {
        eprintln!("warning: the engine refused {} inputs; first: {first}", sim.report.engine_rejections);
    }
    if !args.quiet {
        eprintln!(
            "simulated {} contacts ({} engine inputs) in {:.2} s of CPU: {:.0} contacts per CPU second; wall {:.2} s on {} threads",
            sim.contacts,
            sim.inputs,
            sim.cpu.as_secs_f64(),
            sim.contacts_per_cpu_second(),
            sim.wall.as_secs_f64(),
            threads.min(sc.replications as usize),
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn run_check(args: &SimulateArgs, threads: usize, progress: bool) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.chart.is_none(), "--chart applies to a scenario, not to --check");
    let cases = check::suite(Size::Full);
    let bar = progress.then(|| {
        let bar = indicatif::ProgressBar::new(cases.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} checking [{bar:30}] {pos}/{len} cases, last: {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    });
    let started = std::time::Instant::now();
    let report = check::run(
        Size::Full,
        args.seed.unwrap_or(1),
        args.replications,
        RunOptions { threads, progress: false },
        &|name| {
            if let Some(bar) = &bar {
                bar.set_message(name.to_owned());
                bar.inc(1);
            }
        },
    );
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", report.to_text())?;
    }
    stdout.flush()?;
    if !args.quiet {
        eprintln!(
            "simulated {} contacts in {:.2} s of CPU: {:.0} contacts per CPU second; wall {:.2} s",
            report.contacts,
            report.cpu_seconds,
            report.contacts as f64 / report.cpu_seconds.max(1e-9),
            started.elapsed().as_secs_f64(),
        );
    }
    Ok(if report.passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
