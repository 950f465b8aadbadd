//! The command line: `meshlog serve` runs the collector, `meshlog query` prints the store,
//! `meshlog keygen` creates keys for signed checkpoints and encryption at rest, `meshlog
//! verify` checks the store's integrity, `meshlog prove` and `meshlog verify-proof` make and
//! check inclusion and consistency proofs.
//!
//! Exit status: 0 success (for `verify` and `verify-proof`: intact, valid), 1 a runtime error
//! or, for `verify` and `verify-proof`, not intact / not valid, 2 a usage error (bad flags, a
//! data directory or key file that is not there or not a key).
//!
//! `serve` shuts down gracefully on SIGTERM or Ctrl-C: it stops accepting, lets in-flight
//! requests finish (each is answered only after its fsync), then stops the writer. Since every
//! 200 already implies an fsync, even a forced stop loses nothing acknowledged.

use crate::config::{Config, ConfigError, IntegrityConfig, Overrides};
use crate::ingest::{AppState, Limits};
use crate::integrity;
use crate::integrity::keys::VerifierKey;
use crate::integrity::keys::{self, KeyFileError, SignerKey};
use crate::integrity::leaves::IntegrityOptions;
use crate::integrity::proof::{self, ProofError, ProveError, RecordSel};
use crate::integrity::scan::ScanError;
use crate::store::reader::{self, ReadError};
use crate::store::{Store, StoreError, StoreOptions};
use clap::{ArgGroup, Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{self, BufWriter, Write};
use std::io::{IsTerminal, Read};
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
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
    /// Check the store: every frame, the hash chain, the Merkle tree and every signed
    /// checkpoint; name every problem (exit 0 intact, 1 not).
    Verify(VerifyArgs),
    /// Print a JSON proof that a record is in the signed log, or a consistency proof between
    /// two checkpoints.
    Prove(ProveArgs),
    /// Check a proof printed by `meshlog prove` with the public key alone (exit 0 valid, 1 not).
    VerifyProof(VerifyProofArgs),
}

/// `meshlog verify` options.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Data directory to check.
    #[arg(long, value_name = "DIR", default_value = "./meshlog-data")]
    pub data_dir: PathBuf,
    /// Verifier key file (`verifier.pub` from `meshlog keygen`) to check checkpoint signatures
    /// with; repeat for keys used before a rotation. Take it from where you keep it, never from
    /// the data directory. Without one, signatures are not checked.
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
    /// Data directory to read.
    #[arg(long, value_name = "DIR", default_value = "./meshlog-data")]
    pub data_dir: PathBuf,
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
            let stdout = io::stdout().lock();
            let mut out = BufWriter::new(stdout);
            match query(&a.data_dir, &mut out).and_then(|_| out.flush().map_err(ReadError::Output))
            {
                // `meshlog query | head` is not a failure.
                Err(ReadError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                other => Ok(other.map(|_| ())?),
            }
        }
        Command::Keygen(a) => keygen(a, &mut io::stdout().lock()),
        Command::Verify(a) => verify(a, &mut io::stdout().lock()),
        Command::Prove(a) => prove(a, &mut io::stdout().lock()),
        Command::VerifyProof(a) => verify_proof(a, &mut io::stdout().lock()),
    }
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
    let report = integrity::verify::verify(&args.data_dir, &keys, &mut |done, total| {
        if let Some(b) = &bar {
            b.set_length(total);
            b.set_position(done);
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report)
            .map_err(io::Error::from)
            .map_err(stdout_err)?;
        writeln!(out).map_err(stdout_err)?;
    } else {
        report.write_text(out).map_err(stdout_err)?;
    }
    out.flush().map_err(stdout_err)?;
    if report.intact {
        Ok(())
    } else {
        Err(RunError::NotIntact(report.findings.len()))
    }
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

/// Writes every record in `data_dir` to `out`, one per line; returns the number written.
pub fn query(data_dir: &Path, out: &mut impl Write) -> Result<u64, ReadError> {
    let mut n = 0;
    for frame in reader::frames(data_dir)? {
        frame?.for_each_line(|line| {
            n += 1;
            out.write_all(line)?;
            out.write_all(b"\n")
        })?;
    }
    Ok(n)
}

fn serve(args: ServeArgs) -> Result<(), RunError> {
    let cfg = Config::load(args.config.as_deref())?.with_overrides(Overrides {
        data_dir: args.data_dir,
        listen: args.listen,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(io_err("starting the async runtime"))?;
    let store = Store::open(
        &cfg.data_dir,
        StoreOptions {
            segment_max_bytes: cfg.segment_max_bytes,
            max_queue_bytes: cfg.max_queue_bytes,
            dedup_window: cfg.dedup_window_batches,
            pause: None,
            integrity: integrity_options(&cfg.integrity)?,
        },
    )?;
    let state = AppState {
        store: store.handle(),
        limits: Limits {
            max_body_bytes: cfg.max_body_bytes,
            max_decoded_bytes: cfg.max_decoded_bytes,
        },
        ack_timeout: Duration::from_millis(cfg.ack_timeout_ms),
    };
    let served = rt.block_on(run_server(cfg.listen, state));
    // Whatever happened to the server, finish the queue and release the lock.
    let closed = store.close();
    rt.shutdown_timeout(Duration::from_secs(1));
    served?;
    closed?;
    tracing::info!("stopped");
    Ok(())
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

async fn run_server(listen: SocketAddr, state: AppState) -> Result<(), RunError> {
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
    let server = axum::serve(listener, crate::app(state)).with_graceful_shutdown(async {
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
        assert_eq!(q.data_dir, PathBuf::from("./meshlog-data"));

        let e = Cli::try_parse_from(["meshlog", "serve", "--listen", "nope"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = Cli::try_parse_from(["meshlog", "query", "--config", "x"]).unwrap_err();
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
