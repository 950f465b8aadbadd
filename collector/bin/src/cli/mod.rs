//! The command line: `meshlog serve` runs the collector, `meshlog query` prints the store,
//! `meshlog keygen` creates keys for signed checkpoints and encryption at rest, `meshlog
//! receipts` lists and verifies retention's deletion receipts, `meshlog verify` checks the
//! store's integrity, `meshlog prove` and `meshlog verify-proof` make and check inclusion and
//! consistency proofs, `meshlog report` writes the signed SOC 2 evidence report and `meshlog
//! verify-report` checks one.
//!
//! Exit status: 0 success (for `verify` and `verify-proof`: intact, valid), 1 a runtime error
//! or, for `verify` and `verify-proof`, not intact / not valid, 2 a usage error (bad flags, a
//! data directory or key file that is not there or not a key).
//!
//! With `[retention]` in the configuration, `serve` opens one store per retention class and runs
//! the sweeper (see [`meshlog_retention`]); it re-reads the legal holds from the configuration
//! file before every pass, so a hold takes effect, or is lifted, without a restart. `verify` on
//! a data directory with `classes/` checks every store in it (its own, if it has segments, and
//! each class store with its deletion receipts) and reports per class; exit 1 if any is not
//! intact.
//!
//! With `[encryption] key_file` in the configuration, `serve` loads the data-encryption keys
//! at start (a bad key file stops it, naming file and line) and logs the id of the key that
//! seals new batches, never key bytes; `query` takes the same configuration (`--config`) or
//! just the key file (`--key-file`) to read sealed frames.
//!
//! `serve` shuts down gracefully on SIGTERM or Ctrl-C: it stops accepting, lets in-flight
//! requests finish (each is answered only after its fsync), then stops the writer. Since every
//! 200 already implies an fsync, even a forced stop loses nothing acknowledged.

use crate::config::{Config, ConfigError, IntegrityConfig, Overrides};
use clap::{ArgGroup, Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use meshlog_audit::proof::{self, ProofError, ProveError, RecordSel};
use meshlog_audit::scan::ScanError;
use meshlog_format::encryption::DataKeys;
use meshlog_format::reader::{self, ReadError};
use meshlog_format::receipt::{self, RECEIPTS_FILE, Receipt};
use meshlog_retention::classes::{self, ClassStores, ClassesError};
use meshlog_retention::policy::{Hold, RetentionConfig};
use meshlog_retention::sweep::{Sweeper, SystemClock};
use meshlog_server::{AppState, Limits, Pipeline};
use meshlog_store::ledger::IntegrityOptions;
use meshlog_store::{StoreError, StoreOptions};
use meshlog_tlog::keys::{self, KeyFileError, SignerKey, VerifierKey};
use std::io::{self, BufWriter, Write};
use std::io::{IsTerminal, Read};
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod alerts;
mod audit;
mod detect;
mod keygen;
mod query;
mod receipts;
mod remote;
mod report;
mod serve;
mod sink;
mod tail;
mod validate;
mod witness;

pub use audit::{prove, verify, verify_proof};
pub use keygen::keygen;
use query::load_data_keys;
pub use query::query;
pub use receipts::{ReceiptTally, receipts};
pub use serve::DRAIN_TIMEOUT;

/// meshlog: audit-grade access logs from an Envoy service mesh.
#[derive(Debug, Parser)]
#[command(name = "meshlog", version, about, long_about = None)]
pub struct Cli {
    /// Log lines on stderr as text or as JSON objects (one per line); RUST_LOG sets the level,
    /// e.g. RUST_LOG=debug or RUST_LOG=meshlog_store=debug,info.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "MESHLOG_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive OTLP/HTTP logs on POST /v1/logs and store them durably.
    Serve(ServeArgs),
    /// Find records: filters (--service, --status 5xx, --since 1h, --trace-id, --text, --where
    /// KEY=VALUE, …), newest or oldest first, as NDJSON, a table or CSV; --count and
    /// --group-by KEY [--every 1m] count instead; --server URL asks a running collector.
    Query(QueryArgs),
    /// Create the checkpoint signing key pair (--out), or add a data-encryption key
    /// (--data-key).
    Keygen(KeygenArgs),
    /// List retention's deletion receipts and verify each with the public key (exit 0: all
    /// valid, 1: any invalid).
    Receipts(ReceiptsArgs),
    /// Check the store: every frame, the hash chain, the Merkle tree and every signed
    /// checkpoint, and with retention classes every class store and its deletion receipts;
    /// name every problem (exit 0 intact, 1 not).
    Verify(VerifyArgs),
    /// Print a JSON proof that a record is in the signed log, or a consistency proof between
    /// two checkpoints.
    Prove(ProveArgs),
    /// Check a proof printed by `meshlog prove` with the public key alone (exit 0 valid, 1 not).
    VerifyProof(VerifyProofArgs),
    /// Check a configuration file without starting anything: every problem at once, including
    /// key files that do not load (exit 0 valid, 1 not).
    Validate(ValidateArgs),
    /// Follow a running collector's new records as NDJSON, resuming without gap or duplicate
    /// when the connection drops.
    Tail(Box<tail::TailArgs>),
    /// List detection's alerts (firing and resolved, with their triage) from a data directory
    /// or a running collector (--server URL).
    Alerts(alerts::AlertsArgs),
    /// Run a checkpoint witness (C2SP tlog-witness): cosign each log's new checkpoints after
    /// checking them consistent with the last one seen; refuse rollbacks and forks (409).
    Witness(witness::WitnessArgs),
    /// The ClickHouse sink: `init` creates its table, `check` compares ClickHouse with the log
    /// (exit 0: all match, 1: not).
    Sink(sink::SinkArgs),
    /// Write the signed SOC 2 evidence report for a period (--from, --to) as HTML or JSON,
    /// and append its record to the log (docs/report.md).
    Report(Box<report::ReportArgs>),
    /// Check a report from `meshlog report` with the public key alone (exit 0 valid, 1 not).
    VerifyReport(report::VerifyReportArgs),
}

/// `meshlog validate` options.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// `meshlog receipts` options.
#[derive(Debug, Args)]
pub struct ReceiptsArgs {
    /// Data directory whose retention classes' receipts are read [default: ./meshlog-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The verifier key (`verifier.pub` from `meshlog keygen --out`) of the signing key the
    /// collector was configured with.
    #[arg(long, value_name = "FILE")]
    pub public_key: PathBuf,
    /// Print one JSON document instead of a line per receipt.
    #[arg(long)]
    pub json: bool,
}

/// `meshlog verify` options.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Data directory to check (with `classes/`: its own store if it has segments, and every
    /// class store; or one class directory).
    #[arg(long, value_name = "DIR", default_value = "./meshlog-data")]
    pub data_dir: PathBuf,
    /// Verifier key file (`verifier.pub` from `meshlog keygen`) to check checkpoint and
    /// deletion receipt signatures with; repeat for keys used before a rotation. Take it from
    /// where you keep it, never from the data directory. Without one, signatures are not
    /// checked (deletions are then accepted on their receipts' form and reported as not
    /// authenticated).
    #[arg(long, value_name = "FILE")]
    pub public_key: Vec<PathBuf>,
    /// Witness verifier key file; repeat for several. The latest checkpoint must carry a valid
    /// cosignature by each (in `cosigned.log`); the report names every witness missing.
    #[arg(long, value_name = "FILE")]
    pub witness: Vec<PathBuf>,
    /// A witness's state directory (`meshlog witness --state-dir`, or a copy of it): the store
    /// must extend the latest checkpoint the witness cosigned for this log. A log rolled back,
    /// forked or deleted whole fails here.
    #[arg(long, value_name = "DIR")]
    pub witness_state: Option<PathBuf>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `meshlog prove` options.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).args(["record", "consistency"])))]
pub struct ProveArgs {
    /// Data directory.
    #[arg(long, value_name = "DIR", default_value = "./meshlog-data")]
    pub data_dir: PathBuf,
    /// The record: VM_ID:SEQUENCE (its resource.meshlog.vm.id and meshlog.sequence, as
    /// `meshlog query` prints them) or LEAF/LINE (line, from 1, of the frame that is leaf LEAF).
    #[arg(value_name = "RECORD", value_parser = clap::value_parser!(RecordSel))]
    pub record: Option<RecordSel>,
    /// Prove that the checkpoint of OLD_SIZE leaves is a prefix of the one of NEW_SIZE.
    #[arg(long, num_args = 2, value_names = ["OLD_SIZE", "NEW_SIZE"])]
    pub consistency: Option<Vec<u64>>,
    /// Data-encryption key file, to find a record in sealed frames (encryption at rest).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Configuration file whose `[encryption] key_file` opens sealed frames.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `meshlog verify-proof` options.
#[derive(Debug, Args)]
pub struct VerifyProofArgs {
    /// Verifier key file (`verifier.pub`); repeat for several.
    #[arg(long, value_name = "FILE", required = true)]
    pub public_key: Vec<PathBuf>,
    /// The proof (JSON from `meshlog prove`); `-` reads stdin.
    #[arg(value_name = "PROOF")]
    pub proof: PathBuf,
}

/// `meshlog serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (without one, all defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory; overrides `data_dir` from the file [default: ./meshlog-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Listen address IP:PORT (port 0 picks a free one); overrides `listen` from the file
    /// [default: 127.0.0.1:4318].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// OTLP/gRPC listen address IP:PORT; overrides `grpc_listen` from the file [default:
    /// 127.0.0.1:4317, or port 0 when --listen's port is 0].
    #[arg(long, value_name = "ADDR")]
    pub grpc_listen: Option<SocketAddr>,
    /// Serve plain TCP on an address that is not loopback. Without [tls] in the configuration,
    /// `serve` refuses to listen beyond loopback unless this is given: records and tokens
    /// would cross the network in plain text. `insecure = true` in the file does the same.
    #[arg(long, env = "MESHLOG_INSECURE")]
    pub insecure: bool,
}

/// `meshlog query` options.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The collector's TOML configuration: `data_dir` and `[encryption] key_file` are taken
    /// from it (the other keys are checked, not used).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory to read; overrides `data_dir` from the file [default: ./meshlog-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Data-encryption key file to open encrypted frames with; overrides `[encryption]
    /// key_file` from the file. Only needed when the store has encrypted frames.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Filters, output and the remote collector (docs/query.md).
    #[command(flatten)]
    pub q: Box<query::QueryFlags>,
}

/// The origin `keygen` names keys after without `--name`.
pub const DEFAULT_ORIGIN: &str = "meshlog";

/// `meshlog keygen` options: exactly one of `--out` and `--data-key`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).args(["out", "data_key", "export"])))]
pub struct KeygenArgs {
    /// Write a new checkpoint signing key pair into DIR (created if missing, mode 0700):
    /// `signing.key` (private, mode 0600) and `verifier.pub` (public); prints the verifier
    /// key. Existing key files are never overwritten.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The log's origin, the name in the keys and in every checkpoint, e.g.
    /// example.com/meshlog: no spaces or '+' [default: meshlog].
    #[arg(long, value_name = "ORIGIN", conflicts_with_all = ["data_key", "export"], value_parser = parse_origin)]
    pub name: Option<String>,
    /// Append a new data-encryption key to FILE (created with mode 0600 if missing) and print
    /// its id. The new key encrypts from now on; older keys in the file still decrypt.
    #[arg(long, value_name = "FILE")]
    pub data_key: Option<PathBuf>,
    /// Print the public verifier key of the signing key in FILE (e.g. to rewrite a lost
    /// `verifier.pub`); writes nothing.
    #[arg(long, value_name = "SIGNING_KEY")]
    pub export: Option<PathBuf>,
}

fn parse_origin(s: &str) -> Result<String, String> {
    keys::check_key_name(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

/// A runtime failure (exit status 1).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading the store failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A key could not be made or a key file written.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// The data-encryption key file could not be loaded.
    #[error("cannot load the keys for encryption at rest: {0}")]
    DataKeys(KeyFileError),
    /// The signing key could not be loaded.
    #[error("cannot load the signing key ([integrity] signing_key): {0}")]
    SigningKey(KeyFileError),
    /// The retention class stores could not be opened (boxed: the largest error by far).
    #[error(transparent)]
    Classes(Box<ClassesError>),
    /// Some deletion receipts are not valid.
    #[error("{invalid} of {total} deletion receipts are not valid")]
    InvalidReceipts {
        /// Invalid receipts (a damaged receipt log counts as one).
        invalid: usize,
        /// All receipts.
        total: usize,
    },
    /// Anything else, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
    /// A usage error found after parsing (a missing data directory, a bad key file).
    #[error("{0}")]
    Usage(String),
    /// `verify` found problems (the report says which).
    #[error("the store is NOT intact: {0} finding{s} (see the report)", s = if *.0 == 1 { "" } else { "s" })]
    NotIntact(usize),
    /// `validate` found problems (printed on stdout).
    #[error("the configuration is NOT valid: {0} problem{s}", s = if *.0 == 1 { "" } else { "s" })]
    InvalidConfig(usize),
    /// Reading the store for a proof or verification failed.
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// A proof could not be made.
    #[error(transparent)]
    Prove(#[from] ProveError),
    /// A proof does not verify.
    #[error("the proof is NOT valid: {0}")]
    Proof(#[from] ProofError),
    /// A query flag has a bad value (exit 2).
    #[error("{0}")]
    QueryParam(#[from] meshlog_query::FilterError),
    /// A query failed.
    #[error(transparent)]
    Query(#[from] meshlog_query::QueryError),
    /// Asking a collector (`--server`) failed.
    #[error("{0}")]
    Remote(String),
    /// The ClickHouse sink (ClickHouse unreachable or refusing, the sink's state on disk).
    #[error(transparent)]
    Sink(#[from] meshlog_sink::clickhouse::Error),
    /// `sink check` found rows that do not match the log (the report says which).
    #[error("{0}")]
    SinkMismatch(String),
    /// `report` or `verify-report` failed.
    #[error(transparent)]
    Report(#[from] report::ReportError),
}

impl RunError {
    /// The process exit status for this error, one rule for every command: 2 when the
    /// command cannot run as given (bad flags, a data directory that does not exist, a key
    /// file, named on the command line or in the configuration, that cannot be read or is not
    /// a key of the right kind); 1 for what running it found (a store, proof or receipt that
    /// is not intact, a configuration with problems, a key file that would be overwritten, a
    /// storage or I/O failure).
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Usage(_)
            | RunError::QueryParam(_)
            | RunError::Scan(ScanError::NoDataDir(_))
            | RunError::DataKeys(_)
            | RunError::SigningKey(_) => 2,
            RunError::Key(KeyFileError::AlreadyExists { .. }) => 1,
            RunError::Key(_) => 2,
            RunError::Report(e) => e.exit_code(),
            _ => 1,
        }
    }
}

/// A data directory a command reads must exist: a usage error (exit 2) when it does not.
fn require_dir(data_dir: &Path) -> Result<(), RunError> {
    if data_dir.is_dir() {
        Ok(())
    } else {
        Err(RunError::Usage(format!(
            "data directory {} does not exist",
            data_dir.display()
        )))
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> RunError {
    let context = context.into();
    move |source| RunError::Io { context, source }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), RunError> {
    match cli.command {
        Command::Serve(a) => serve::serve(a),
        Command::Query(a) => query::run(a),
        Command::Keygen(a) => keygen(a, &mut io::stdout().lock()),
        Command::Receipts(a) => {
            let key = keys::read_verifier_key(&a.public_key)?;
            let data_dir = a
                .data_dir
                .unwrap_or_else(|| Config::default().data_dir.clone());
            require_dir(&data_dir)?;
            let mut out = BufWriter::new(io::stdout().lock());
            let tally = receipts(&data_dir, &key, a.json, &mut out)
                .and_then(|t| out.flush().map(|()| t))
                .map_err(io_err("writing to stdout"))?;
            if tally.invalid > 0 {
                return Err(RunError::InvalidReceipts {
                    invalid: tally.invalid,
                    total: tally.total,
                });
            }
            eprintln!(
                "meshlog: {} deletion receipt{}, all valid",
                tally.total,
                if tally.total == 1 { "" } else { "s" }
            );
            Ok(())
        }
        Command::Verify(a) => verify(a, &mut io::stdout().lock()),
        Command::Prove(a) => prove(a, &mut io::stdout().lock()),
        Command::VerifyProof(a) => verify_proof(a, &mut io::stdout().lock()),
        Command::Validate(a) => validate::validate(&a.config, &mut io::stdout().lock()),
        Command::Tail(a) => tail::tail(&a, &mut io::stdout().lock()),
        Command::Alerts(a) => alerts::alerts(&a, &mut io::stdout().lock()),
        Command::Witness(a) => witness::run(a),
        Command::Sink(a) => sink::sink(a, &mut io::stdout().lock()),
        Command::Report(a) => report::report(*a),
        Command::VerifyReport(a) => report::verify_report(&a, &mut io::stdout().lock()),
    }
}

impl From<ClassesError> for RunError {
    fn from(e: ClassesError) -> Self {
        RunError::Classes(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse_and_bad_usage_is_a_usage_error() {
        let c = Cli::try_parse_from([
            "meshlog",
            "serve",
            "--config",
            "m.toml",
            "--data-dir",
            "/d",
            "--listen",
            "127.0.0.1:0",
        ])
        .unwrap();
        let Command::Serve(a) = c.command else {
            panic!("not serve")
        };
        assert_eq!(a.config, Some(PathBuf::from("m.toml")));
        assert_eq!(a.data_dir, Some(PathBuf::from("/d")));
        assert_eq!(a.listen.unwrap().port(), 0);

        let c = Cli::try_parse_from(["meshlog", "query"]).unwrap();
        let Command::Query(q) = c.command else {
            panic!("not query")
        };
        assert_eq!((q.config, q.data_dir, q.key_file), (None, None, None));
        let c = Cli::try_parse_from([
            "meshlog",
            "query",
            "--config",
            "m.toml",
            "--data-dir",
            "/d",
            "--key-file",
            "k",
        ])
        .unwrap();
        let Command::Query(q) = c.command else {
            panic!("not query")
        };
        assert_eq!(q.config, Some(PathBuf::from("m.toml")));
        assert_eq!(q.data_dir, Some(PathBuf::from("/d")));
        assert_eq!(q.key_file, Some(PathBuf::from("k")));

        let e = Cli::try_parse_from(["meshlog", "serve", "--listen", "nope"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = Cli::try_parse_from(["meshlog", "query", "--listen", "x"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn verify_prove_and_verify_proof_parse() {
        let c = Cli::try_parse_from([
            "meshlog",
            "verify",
            "--data-dir",
            "d",
            "--public-key",
            "a",
            "--public-key",
            "b",
            "--json",
        ])
        .unwrap();
        let Command::Verify(v) = c.command else {
            panic!("not verify")
        };
        assert_eq!(v.public_key, [PathBuf::from("a"), PathBuf::from("b")]);
        assert!(v.json);
        let c = Cli::try_parse_from(["meshlog", "prove", "vm:7"]).unwrap();
        let Command::Prove(p) = c.command else {
            panic!("not prove")
        };
        assert_eq!(
            p.record,
            Some(RecordSel::VmSeq {
                vm: "vm".into(),
                seq: 7
            })
        );
        let c = Cli::try_parse_from(["meshlog", "prove", "--consistency", "3", "9"]).unwrap();
        let Command::Prove(p) = c.command else {
            panic!("not prove")
        };
        assert_eq!(p.consistency, Some(vec![3, 9]));
        for bad in [
            &["meshlog", "prove"][..],
            &["meshlog", "prove", "vm:1", "--consistency", "1", "2"],
            &["meshlog", "prove", "--consistency", "1"],
            &["meshlog", "verify-proof", "p.json"],
            &["meshlog", "verify", "--public-key"],
        ] {
            assert_eq!(
                Cli::try_parse_from(bad).unwrap_err().exit_code(),
                2,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn keygen_takes_exactly_one_of_out_and_data_key() {
        let c = Cli::try_parse_from(["meshlog", "keygen", "--out", "d", "--name", "a.example/l"])
            .unwrap();
        let Command::Keygen(k) = c.command else {
            panic!("not keygen")
        };
        assert_eq!(k.out, Some(PathBuf::from("d")));
        assert_eq!(k.name.as_deref(), Some("a.example/l"));
        assert_eq!(k.data_key, None);
        let c = Cli::try_parse_from(["meshlog", "keygen", "--data-key", "k"]).unwrap();
        let Command::Keygen(k) = c.command else {
            panic!("not keygen")
        };
        assert_eq!(k.data_key, Some(PathBuf::from("k")));
        for bad in [
            &["meshlog", "keygen"][..],
            &["meshlog", "keygen", "--out", "d", "--data-key", "k"],
            &["meshlog", "keygen", "--data-key", "k", "--name", "n"],
            &["meshlog", "keygen", "--out", "d", "--name", "has space"],
            &["meshlog", "keygen", "--out", "d", "--name", "a+b"],
            &["meshlog", "keygen", "--export", "k", "--out", "d"],
            &["meshlog", "keygen", "--export", "k", "--name", "n"],
        ] {
            let e = Cli::try_parse_from(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }
}
