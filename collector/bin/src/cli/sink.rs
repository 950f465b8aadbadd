//! `meshlog sink init` creates the ClickHouse table of `[sink.clickhouse]` (in the shape the
//! server supports); `meshlog sink check` compares what ClickHouse holds for this collector
//! with its log and names every missing, extra, altered or duplicated row (exit 0: it all
//! matches, 1: it does not). docs/clickhouse.md.

use super::{RunError, io_err, load_data_keys, require_dir};
use crate::config::Config;
use clap::{Args, Subcommand};
use meshlog_format::layout;
use meshlog_sink::clickhouse::{self as ch, check, config::ClickHouseConfig, schema};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `meshlog sink` subcommands.
#[derive(Debug, Args)]
pub struct SinkArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SinkCommand,
}

/// `meshlog sink` subcommands.
#[derive(Debug, Subcommand)]
pub enum SinkCommand {
    /// Create the ClickHouse database and table of [sink.clickhouse] (Map/DateTime64 columns on
    /// ClickHouse >= 22.8, Nested/UInt64 on older servers); an existing table is left alone.
    Init(SinkConfigArgs),
    /// Compare ClickHouse's rows of this collector with its log, per log and leaf range; name
    /// every missing, extra, altered or duplicated row (exit 0: all match, 1: not).
    Check(SinkConfigArgs),
}

/// The configuration file (its `data_dir`, `[encryption]` and `[sink.clickhouse]`).
#[derive(Debug, Args)]
pub struct SinkConfigArgs {
    /// The collector's configuration file, with a [sink.clickhouse] section.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Data directory; overrides `data_dir` from the file (check only).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Runs `meshlog sink …`.
pub fn sink(args: SinkArgs, out: &mut dyn Write) -> Result<(), RunError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_err("starting the async runtime"))?;
    match args.command {
        SinkCommand::Init(a) => {
            let (_, sink) = load(&a.config)?;
            let client = ch::connect(&sink)?;
            let created = rt.block_on(schema::init(&client, &sink.database, &sink.table))?;
            writeln!(
                out,
                "{} table {}.{} on ClickHouse {}: {}",
                if created.existed {
                    "kept the existing"
                } else {
                    "created"
                },
                sink.database,
                sink.table,
                created.version,
                created.flavor.name()
            )
            .map_err(io_err("writing to stdout"))?;
            Ok(())
        }
        SinkCommand::Check(a) => {
            let (cfg, sink) = load(&a.config)?;
            let data_dir = a.data_dir.unwrap_or(cfg.data_dir.clone());
            require_dir(&data_dir)?;
            let keys = load_data_keys(cfg.encryption_key_file.as_deref())?;
            let collector_id = ch::collector_id(&sink, &data_dir)?;
            let logs = logs(&data_dir).map_err(io_err(format!(
                "listing the stores of {}",
                data_dir.display()
            )))?;
            let report = rt.block_on(check::check(
                &sink,
                &collector_id,
                &data_dir.join(ch::SINK_DIR),
                &logs,
                keys.map(|k| k.keyring().clone()),
            ))?;
            report
                .write_text(out)
                .map_err(io_err("writing to stdout"))?;
            if report.matches() {
                Ok(())
            } else {
                let c = report.counts();
                Err(RunError::SinkMismatch(format!(
                    "ClickHouse does NOT match the log: {} missing, {} extra, {} altered, {} \
                     duplicated",
                    c.missing, c.extra, c.altered, c.duplicate
                )))
            }
        }
    }
}

fn load(path: &Path) -> Result<(Config, ClickHouseConfig), RunError> {
    let cfg = Config::load(Some(path))?;
    let sink = cfg.sink_clickhouse.clone().ok_or_else(|| {
        RunError::Usage(format!(
            "{} has no [sink.clickhouse] section (url, database, table)",
            path.display()
        ))
    })?;
    Ok((cfg, sink))
}

/// The logs `serve` exports from `data_dir`: the data directory itself when it holds a store
/// (log `""`), and every retention class directory (log = class name).
fn logs(data_dir: &Path) -> std::io::Result<Vec<check::LogDir>> {
    let mut out = Vec::new();
    if layout::segments_dir(data_dir).is_dir() {
        out.push(check::LogDir {
            log: String::new(),
            dir: data_dir.to_owned(),
        });
    }
    for (name, dir) in layout::class_dirs(data_dir)? {
        out.push(check::LogDir { log: name, dir });
    }
    Ok(out)
}
