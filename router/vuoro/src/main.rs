//! `vuoro`: the command-line entry point. Parses arguments and hands over to library code;
//! every subcommand lives in its own crate so tests can call it directly.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Vuoro, the omnichannel contact router.
#[derive(Parser)]
#[command(name = "vuoro", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the router: the gRPC API over Kafka (an embedded cluster unless brokers are given).
    Serve(vuoro_service::serve::ServeArgs),
    /// Load test: drive a service end to end and report throughput and latency.
    Loadgen(vuoro_service::loadgen::LoadgenArgs),
    /// What-if staffing: run a scenario through the real engine in virtual time.
    Simulate(vuoro_sim::cli::SimulateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => vuoro_service::serve::run(args),
        Command::Loadgen(args) => vuoro_service::loadgen::run(args),
        Command::Simulate(args) => vuoro_sim::cli::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
