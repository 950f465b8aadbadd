//! The `meshlog` binary: parse the command line, set up logging, run, map errors to exit codes
//! (0 success; 1 what running found: a store, proof, receipt or configuration that is not
//! intact or valid, a storage failure; 2 bad usage: clap's, a missing data directory, a key
//! file that cannot be read or is not a key). Logs go to stderr, as text or JSON
//! (`--log-format`), at the level `RUST_LOG` sets (default `info`).

use clap::Parser;
use meshlog::cli::{self, Cli, LogFormat};
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => logs.json().with_current_span(false).init(),
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshlog: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
