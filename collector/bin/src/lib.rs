//! The `meshlog` binary's library half: [`cli`] (every subcommand, ordered start and shutdown
//! of `serve`) and [`config`] (the TOML file, composed from each component's section). The
//! components live in their own crates: `meshlog-server` (ingest), `meshlog-store`,
//! `meshlog-retention`, `meshlog-audit`, `meshlog-format`, `meshlog-tlog`.

pub mod cli;
pub mod config;

pub use config::Config;
