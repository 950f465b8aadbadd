//! The command line: `meshlog serve` runs the collector, `meshlog query` prints the store,
//! `meshlog keygen` creates keys for signed checkpoints and encryption at rest, `meshlog
//! receipts` lists and verifies retention's deletion receipts, `meshlog verify` checks the
//! store's integrity, `meshlog prove` and `meshlog verify-proof` make and check inclusion and
//! consistency proofs.
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
use tokio::signal::unix::{Signal, SignalKind};

/// How long `serve` waits for in-flight requests after a stop signal. Below Kubernetes' default
/// 30 s grace period, so we finish on our own terms before a SIGKILL.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

/// meshlog: audit-grade access logs from an Envoy service mesh.
#[derive(Debug, Parser)]
#[command(name = "meshlog", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive OTLP/HTTP logs on POST /v1/logs and store them durably.
    Serve(ServeArgs),
    /// Print every stored record as NDJSON (one JSON object per line), oldest first.
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
    /// Reading the store for a proof or verification failed.
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// A proof could not be made.
    #[error(transparent)]
    Prove(#[from] ProveError),
    /// A proof does not verify.
    #[error("the proof is NOT valid: {0}")]
    Proof(#[from] ProofError),
}

impl RunError {
    /// The process exit status for this error: 2 for usage errors, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Usage(_) | RunError::Scan(ScanError::NoDataDir(_)) => 2,
            _ => 1,
        }
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> RunError {
    let context = context.into();
    move |source| RunError::Io { context, source }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), RunError> {
    match cli.command {
        Command::Serve(a) => serve(a),
        Command::Query(a) => {
            let cfg = Config::load(a.config.as_deref())?;
            let data_dir = a.data_dir.unwrap_or(cfg.data_dir);
            let keys = load_data_keys(a.key_file.or(cfg.encryption_key_file).as_deref())?;
            let stdout = io::stdout().lock();
            let mut out = BufWriter::new(stdout);
            match query(&data_dir, keys, &mut out)
                .and_then(|_| out.flush().map_err(ReadError::Output))
            {
                // `meshlog query | head` is not a failure.
                Err(ReadError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                other => Ok(other.map(|_| ())?),
            }
        }
        Command::Keygen(a) => keygen(a, &mut io::stdout().lock()),
        Command::Receipts(a) => {
            let key = keys::read_verifier_key(&a.public_key)?;
            let data_dir = a
                .data_dir
                .unwrap_or_else(|| Config::default().data_dir.clone());
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
    }
}

impl From<ClassesError> for RunError {
    fn from(e: ClassesError) -> Self {
        RunError::Classes(Box::new(e))
    }
}

/// What `meshlog receipts` found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiptTally {
    /// Receipts read (a damaged log counts as one invalid receipt).
    pub total: usize,
    /// Of which not valid.
    pub invalid: usize,
}

/// Lists and verifies every receipt in `data_dir`'s class directories with `key`, writing a
/// line per receipt (or, with `json`, one JSON document) to `out`. A torn last entry of a
/// receipt log (a crash during an append: nothing was deleted for it) is noted on stderr and
/// is not a failure.
pub fn receipts(
    data_dir: &Path,
    key: &VerifierKey,
    json: bool,
    out: &mut impl Write,
) -> io::Result<ReceiptTally> {
    if !data_dir.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("data directory {} does not exist", data_dir.display()),
        ));
    }
    let mut tally = ReceiptTally::default();
    let mut items = Vec::new();
    for (class, dir) in classes::class_dirs(data_dir)? {
        let path = dir.join(RECEIPTS_FILE);
        let log = match receipt::read_log(&path) {
            Ok(l) => l,
            Err(e) => {
                tally.total += 1;
                tally.invalid += 1;
                items.push(
                    serde_json::json!({"class": class, "valid": false, "error": e.to_string()}),
                );
                if !json {
                    writeln!(out, "INVALID {class} {}: {e}", path.display())?;
                }
                continue;
            }
        };
        if log.torn_bytes > 0 {
            eprintln!(
                "meshlog: {}: {} bytes at offset {} are a receipt torn by a crash (its segment \
                 was not deleted; the next sweep cuts them)",
                path.display(),
                log.torn_bytes,
                log.good_len
            );
        }
        for entry in &log.entries {
            tally.total += 1;
            match receipt::verify_logged(entry, Some(&class), key) {
                Ok(r) => {
                    if json {
                        items.push(receipt_json(&r, entry.offset));
                    } else {
                        writeln!(out, "{}", receipt_line(&r))?;
                    }
                }
                Err(e) => {
                    tally.invalid += 1;
                    if json {
                        items.push(serde_json::json!({
                            "class": class, "offset": entry.offset, "valid": false,
                            "error": e.to_string(),
                        }));
                    } else {
                        writeln!(
                            out,
                            "INVALID {class} {} offset {}: {e}",
                            path.display(),
                            entry.offset
                        )?;
                    }
                }
            }
        }
    }
    if json {
        let doc = serde_json::json!({
            "receipts": items,
            "valid": tally.total - tally.invalid,
            "invalid": tally.invalid,
        });
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        writeln!(out)?;
    }
    Ok(tally)
}

fn receipt_line(r: &Receipt) -> String {
    use meshlog_retention::policy::rfc3339;
    format!(
        "valid {} {} records={} frames={} bytes={} sha256={} observed={}..{} days={} swept={}",
        r.class,
        r.segment,
        r.records,
        r.frames,
        r.bytes,
        hex::encode(r.sha256),
        rfc3339(r.oldest_observed_unix_ns),
        rfc3339(r.newest_observed_unix_ns),
        r.retention_days,
        rfc3339(r.swept_unix_ns),
    )
}

fn receipt_json(r: &Receipt, offset: u64) -> serde_json::Value {
    serde_json::json!({
        "class": r.class,
        "offset": offset,
        "valid": true,
        "segment": r.segment,
        "bytes": r.bytes,
        "sha256": hex::encode(r.sha256),
        "frames": r.frames,
        "records": r.records,
        "leaves_sha256": hex::encode(r.leaves_sha256),
        "first_leaf": hex::encode(r.first_leaf),
        "last_leaf": hex::encode(r.last_leaf),
        "oldest_observed_unix_ns": r.oldest_observed_unix_ns,
        "newest_observed_unix_ns": r.newest_observed_unix_ns,
        "retention_days": r.retention_days,
        "swept_unix_ns": r.swept_unix_ns,
    })
}

/// Reads verifier key files; a bad one is a usage error.
fn read_keys(paths: &[PathBuf]) -> Result<Vec<VerifierKey>, RunError> {
    paths
        .iter()
        .map(|p| keys::read_verifier_key(p).map_err(|e| RunError::Usage(e.to_string())))
        .collect()
}

fn stdout_err(e: io::Error) -> RunError {
    RunError::Io {
        context: "writing to stdout".into(),
        source: e,
    }
}

/// Runs `meshlog verify`: the report on `out` (text or JSON), a progress bar on a terminal's
/// stderr, `NotIntact` when anything was found.
pub fn verify(args: VerifyArgs, out: &mut impl Write) -> Result<(), RunError> {
    let keys = read_keys(&args.public_key)?;
    if !args.data_dir.is_dir() {
        return Err(RunError::Usage(format!(
            "data directory {} does not exist",
            args.data_dir.display()
        )));
    }
    let bar = io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "verifying {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        ) {
            bar.set_style(style);
        }
        bar
    });
    let mut progress = |done, total| {
        if let Some(b) = &bar {
            b.set_length(total);
            b.set_position(done);
        }
    };
    // With retention classes, every store in the data directory, each with its receipts.
    let with_classes = !classes::class_dirs(&args.data_dir)
        .map_err(io_err(format!(
            "listing {}",
            args.data_dir.join(classes::CLASSES_DIR).display()
        )))?
        .is_empty();
    let report = if with_classes {
        Verified::DataDir(meshlog_audit::verify::verify_data_dir(
            &args.data_dir,
            &keys,
            &mut progress,
        )?)
    } else {
        Verified::Store(Box::new(meshlog_audit::verify::verify(
            &args.data_dir,
            &keys,
            &mut progress,
        )?))
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let (written, intact, findings) = match &report {
        Verified::DataDir(r) => (
            if args.json {
                write_json(out, r)
            } else {
                r.write_text(out)
            },
            r.intact,
            r.findings(),
        ),
        Verified::Store(r) => (
            if args.json {
                write_json(out, r.as_ref())
            } else {
                r.write_text(out)
            },
            r.intact,
            r.findings.len(),
        ),
    };
    written.map_err(stdout_err)?;
    out.flush().map_err(stdout_err)?;
    if intact {
        Ok(())
    } else {
        Err(RunError::NotIntact(findings))
    }
}

/// What `meshlog verify` checked: one store, or a data directory with retention classes.
enum Verified {
    Store(Box<meshlog_audit::verify::Report>),
    DataDir(meshlog_audit::verify::DataDirReport),
}

fn write_json(out: &mut impl Write, value: &impl serde::Serialize) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}

/// Runs `meshlog prove`: the proof, as JSON, on `out`.
pub fn prove(args: ProveArgs, out: &mut impl Write) -> Result<(), RunError> {
    if !args.data_dir.is_dir() {
        return Err(RunError::Usage(format!(
            "data directory {} does not exist",
            args.data_dir.display()
        )));
    }
    let json = match (&args.record, args.consistency.as_deref()) {
        (Some(sel), _) => serde_json::to_string_pretty(&proof::prove_record(&args.data_dir, sel)?),
        (None, Some(&[old, new])) => {
            serde_json::to_string_pretty(&proof::prove_consistency(&args.data_dir, old, new)?)
        }
        _ => {
            return Err(RunError::Usage(
                "give a RECORD or --consistency OLD_SIZE NEW_SIZE".into(),
            ));
        }
    }
    .map_err(io::Error::from)
    .map_err(stdout_err)?;
    writeln!(out, "{json}").map_err(stdout_err)
}

/// Runs `meshlog verify-proof`: each check passed on `out`, or the failure.
pub fn verify_proof(args: VerifyProofArgs, out: &mut impl Write) -> Result<(), RunError> {
    let keys = read_keys(&args.public_key)?;
    let bytes = if args.proof.as_os_str() == "-" {
        let mut b = Vec::new();
        io::stdin()
            .read_to_end(&mut b)
            .map_err(io_err("reading the proof from stdin"))?;
        b
    } else {
        std::fs::read(&args.proof).map_err(|e| {
            RunError::Usage(format!("cannot read proof {}: {e}", args.proof.display()))
        })?
    };
    let checks = proof::verify_proof(&bytes, &keys)?;
    for c in &checks {
        writeln!(out, "ok: {c}").map_err(stdout_err)?;
    }
    writeln!(out, "VALID").map_err(stdout_err)
}

/// Runs `meshlog keygen`: what is printed on `out` is for scripts (the verifier key, or the
/// new data key's id); what was written where goes to stderr.
pub fn keygen(args: KeygenArgs, out: &mut impl Write) -> Result<(), RunError> {
    let printed = |e: io::Error| RunError::Io {
        context: "writing to stdout".into(),
        source: e,
    };
    if let Some(file) = args.export {
        let key = keys::read_signer_key(&file)?;
        return writeln!(out, "{}", key.verifier()).map_err(printed);
    }
    if let Some(file) = args.data_key {
        let id = keys::append_data_key(&file)?;
        writeln!(out, "{id}").map_err(printed)?;
        eprintln!(
            "meshlog: added data-encryption key {id} to {}; it encrypts new data from now on",
            file.display()
        );
        return Ok(());
    }
    let Some(dir) = args.out else {
        // clap requires one of the two.
        return Ok(());
    };
    let name = args.name.as_deref().unwrap_or(DEFAULT_ORIGIN);
    let key = SignerKey::generate(name).map_err(|source| KeyFileError::Key {
        path: dir.clone(),
        source,
    })?;
    // Only the owner needs the directory that holds the private key.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io_err(format!("creating {}", dir.display())))?;
    let signing = dir.join(keys::SIGNING_KEY_FILE);
    let verifier = dir.join(keys::VERIFIER_KEY_FILE);
    // Check both first, so a refusal leaves no half-written pair behind.
    for path in [&signing, &verifier] {
        if path.symlink_metadata().is_ok() {
            return Err(KeyFileError::AlreadyExists { path: path.clone() }.into());
        }
    }
    keys::write_signer_key(&signing, &key)?;
    if let Err(e) = keys::write_verifier_key(&verifier, &key.verifier()) {
        // Without its public half the new private key is useless: take it back.
        let _ = std::fs::remove_file(&signing);
        return Err(e.into());
    }
    writeln!(out, "{}", key.verifier()).map_err(printed)?;
    eprintln!(
        "meshlog: wrote the checkpoint signing key {} (private, keep it secret) and the \
         verifier key {} (public)",
        signing.display(),
        verifier.display()
    );
    Ok(())
}

/// Loads the data-encryption key file, if one is configured.
fn load_data_keys(key_file: Option<&Path>) -> Result<Option<DataKeys>, RunError> {
    key_file
        .map(|p| DataKeys::load(p).map_err(RunError::DataKeys))
        .transpose()
}

/// Writes every record in `data_dir` to `out`, one per line, opening encrypted frames with
/// `keys`; returns the number written. Order: the store in `data_dir` itself (without
/// retention), then each retention class's store by class name, each in store order.
pub fn query(
    data_dir: &Path,
    keys: Option<DataKeys>,
    out: &mut impl Write,
) -> Result<u64, ReadError> {
    let mut n = 0;
    let first = reader::frames(data_dir)?;
    let classes = classes::store_dirs(data_dir).map_err(|source| ReadError::Io {
        path: data_dir.join(classes::CLASSES_DIR),
        source,
    })?;
    let mut stores = vec![first];
    for dir in classes.iter().skip(1) {
        stores.push(reader::frames(dir)?);
    }
    for frames in stores {
        for frame in frames.with_keys(keys.clone()) {
            frame?.for_each_line(|line| {
                n += 1;
                out.write_all(line)?;
                out.write_all(b"\n")
            })?;
        }
    }
    Ok(n)
}

fn serve(args: ServeArgs) -> Result<(), RunError> {
    let config_file = args.config.clone();
    let cfg = Config::load(args.config.as_deref())?.with_overrides(Overrides {
        data_dir: args.data_dir,
        listen: args.listen,
    });
    let keys = load_data_keys(cfg.encryption_key_file.as_deref())?;
    log_encryption(keys.as_ref());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(io_err("starting the async runtime"))?;
    let integrity = integrity_options(&cfg.integrity)?;
    // The update fills the test hooks when a test build turns them on.
    #[allow(clippy::needless_update)]
    let opts = StoreOptions {
        segment_max_bytes: cfg.segment_max_bytes,
        max_queue_bytes: cfg.max_queue_bytes,
        dedup_window: cfg.dedup_window_batches,
        encryption: keys.as_ref().map(|k| k.keyring().clone()),
        integrity: integrity.clone(),
        ..StoreOptions::default()
    };
    let limits = Limits {
        max_body_bytes: cfg.max_body_bytes,
        max_decoded_bytes: cfg.max_decoded_bytes,
    };
    let ack_timeout = Duration::from_millis(cfg.ack_timeout_ms);
    let stores = match &cfg.retention {
        Some(policy) => ClassStores::open(&cfg.data_dir, policy, &opts)?,
        None => ClassStores::single(&cfg.data_dir, opts)?,
    };
    let sweeping = match &cfg.retention {
        None => None,
        Some(policy) => {
            let signer = integrity.signer.clone();
            log_retention(policy, signer.as_deref());
            let sweeper = Sweeper::for_classes(
                &cfg.data_dir,
                policy,
                &stores.routes(),
                signer,
                keys.map(|k| k.keyring().clone()),
            );
            let mut last_holds = hold_names(&policy.holds);
            let holds = move || {
                let holds = reload_holds(config_file.as_deref())?;
                let names = hold_names(&holds);
                if names != last_holds {
                    tracing::info!(holds = %names, "legal holds changed in the configuration file");
                    last_holds = names;
                }
                Ok(holds)
            };
            let interval = Duration::from_secs(policy.sweep_interval_s);
            match sweeper.spawn(Arc::new(SystemClock), interval, holds) {
                Ok(t) => Some(t),
                Err(e) => {
                    let _ = stores.close();
                    return Err(io_err("starting the sweeper thread")(e));
                }
            }
        }
    };
    let app = meshlog_server::app(AppState::new(Pipeline::new(
        stores.routes(),
        limits,
        ack_timeout,
    )));
    let served = rt.block_on(run_server(cfg.listen, app));
    // The sweeper first: it appends receipt records to the stores.
    if let Some(s) = sweeping {
        s.stop();
    }
    // Whatever happened to the server, finish the queues and release the locks.
    let closed = stores.close();
    rt.shutdown_timeout(Duration::from_secs(1));
    served?;
    closed?;
    tracing::info!("stopped");
    Ok(())
}

fn hold_names(holds: &[Hold]) -> String {
    let names: Vec<&str> = holds.iter().map(|h| h.name.as_str()).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The legal holds in the configuration file as it is now.
fn reload_holds(config_file: Option<&Path>) -> Result<Vec<Hold>, String> {
    let cfg = Config::load(config_file).map_err(|e| e.to_string())?;
    cfg.retention.map(|r| r.holds).ok_or_else(|| {
        "the configuration file no longer has a [retention] section (restart meshlog to turn \
         retention off)"
            .to_owned()
    })
}

/// Says which classes keep records how long, which holds are in force, and whether deletions
/// can be signed.
fn log_retention(policy: &RetentionConfig, signer: Option<&SignerKey>) {
    let classes: Vec<String> = policy
        .class_names()
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{n}={}d", policy.days(i)))
        .collect();
    tracing::info!(
        classes = %classes.join(" "),
        holds = %hold_names(&policy.holds),
        sweep_interval_s = policy.sweep_interval_s,
        segment_max_age_s = policy.segment_max_age_s,
        "retention on"
    );
    match signer {
        Some(k) => tracing::info!(
            key = %format!("{}+{:08x}", k.name(), k.key_id()),
            "deletion receipts are signed with this key"
        ),
        None => tracing::error!(
            "retention is on but no signing key is configured ([integrity] signing_key): \
             expired data is kept, since every deletion needs a signed receipt"
        ),
    }
}

/// Says whether batches will be sealed, and with which key (its id, never its bytes).
fn log_encryption(keys: Option<&DataKeys>) {
    match keys {
        Some(k) => tracing::info!(
            key_id = k.keyring().current().id(),
            keys = k.keyring().len(),
            key_file = %k.path().display(),
            "encryption at rest on: new batches are sealed with data-encryption key {}",
            k.keyring().current().id()
        ),
        None => tracing::info!(
            "encryption at rest off: batches are stored in plain ([encryption] key_file turns \
             it on)"
        ),
    }
}

/// Reads the signing key, if configured.
fn integrity_options(cfg: &IntegrityConfig) -> Result<IntegrityOptions, RunError> {
    let signer = match &cfg.signing_key {
        Some(path) => {
            let key = keys::read_signer_key(path)?;
            tracing::info!(
                key = %format_args!("{}+{:08x}", key.name(), key.key_id()),
                interval_s = cfg.checkpoint_interval_s,
                "signing checkpoints"
            );
            Some(std::sync::Arc::new(key))
        }
        None => {
            tracing::warn!(
                "no checkpoint signing key configured ([integrity] signing_key): frames are \
                 chained and hashed, but no checkpoint is signed, so rewriting the whole store \
                 would go unnoticed"
            );
            None
        }
    };
    Ok(IntegrityOptions {
        signer,
        checkpoint_interval: Duration::from_secs(cfg.checkpoint_interval_s),
    })
}

async fn run_server(listen: SocketAddr, app: axum::Router) -> Result<(), RunError> {
    let mut term = tokio::signal::unix::signal(SignalKind::terminate())
        .map_err(io_err("installing the SIGTERM handler"))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(io_err(format!("cannot listen on {listen}")))?;
    let addr = listener
        .local_addr()
        .map_err(io_err("reading the listen address"))?;
    tracing::info!("listening on {addr}");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async {
        let _ = stop_rx.await;
    });
    let mut server = tokio::spawn(std::future::IntoFuture::into_future(server));
    tokio::select! {
        res = &mut server => return server_result(res),
        sig = stop_signal(&mut term) => {
            tracing::info!("{sig} received; finishing in-flight requests");
        }
    }
    let _ = stop_tx.send(());
    match tokio::time::timeout(DRAIN_TIMEOUT, &mut server).await {
        Ok(res) => server_result(res),
        Err(_) => {
            tracing::warn!(
                "requests still in flight after {DRAIN_TIMEOUT:?}; closing them unanswered"
            );
            server.abort();
            Ok(())
        }
    }
}

fn server_result(res: Result<io::Result<()>, tokio::task::JoinError>) -> Result<(), RunError> {
    match res {
        Ok(r) => r.map_err(io_err("serving HTTP")),
        Err(e) => Err(RunError::Io {
            context: "serving HTTP".into(),
            source: io::Error::other(e.to_string()),
        }),
    }
}

async fn stop_signal(term: &mut Signal) -> &'static str {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            // Without a Ctrl-C handler we still stop on SIGTERM.
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = ctrl_c => "SIGINT",
        _ = term.recv() => "SIGTERM",
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
