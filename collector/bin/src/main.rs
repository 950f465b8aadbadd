//! The `meshlog` binary: parse the command line, set up logging, run, map errors to exit codes
//! (0 success, 1 runtime error or a store / proof that is not intact, 2 bad usage: clap's, or
//! a missing data directory or bad key file).

use clap::Parser;
use meshlog::cli::{self, Cli};
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshlog: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
