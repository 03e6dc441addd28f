//! The `weir` binary: `weir serve` runs a broker; further subcommands arrive with the
//! features they drive (`topic`, `group`, `produce`, `consume`, `bench`).
//!
//! # Layout
//! - `settings`: where each setting comes from — flag, environment, TOML file, default.
//! - `serve`: opens the store, runs maintenance, stops cleanly on SIGINT/SIGTERM.
//! - `bench`: storage benchmarks whose figures go to docs/benchmarks.md.

mod bench;
mod serve;
mod settings;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "weir",
    version,
    about = "A message broker for Kafka and RocketMQ clients"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a single-node broker (data in ./weir-data unless told otherwise).
    Serve(settings::ServeArgs),
    /// Measure the storage engine on this machine.
    Bench(bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Serve(args) => serve::run(settings::Settings::resolve(args)?),
        Command::Bench(args) => bench::run(args),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal; log files and pipes get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}
