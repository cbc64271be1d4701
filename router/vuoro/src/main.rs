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
    /// Run the router: the gRPC API over Kafka (an embedded cluster unless brokers are given),
    /// and the channel listeners when any channel is enabled.
    Serve(vuoro_service::serve::ServeArgs),
    /// Run only the channel listeners and the admin port against the router's Kafka cluster:
    /// a separate process that scales apart from the router.
    Adapters(vuoro_channels::AdaptersArgs),
    /// Load test: drive a service end to end and report throughput and latency.
    Loadgen(vuoro_service::loadgen::LoadgenArgs),
    /// What-if staffing: run a scenario through the real engine in virtual time.
    Simulate(vuoro_sim::cli::SimulateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => {
            vuoro_service::serve::run_with(args, vec![Box::new(vuoro_channels::ChannelsExtension)])
        }
        Command::Adapters(args) => vuoro_channels::service::run(args),
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
