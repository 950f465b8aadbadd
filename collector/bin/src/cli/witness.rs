//! `meshlog witness`: an independent checkpoint witness ([`meshlog_witness`]) over HTTP; and
//! the collector's side of witnessing ([`Pusher`]): each new signed checkpoint is sent to the
//! configured witnesses (`[witness] ask`) with a consistency proof from the size each last
//! cosigned, and the returned cosignatures are appended to `cosigned.log` beside the
//! checkpoints. With `[retention]`, every class store is a log of its own (origin
//! `<origin>/<class>`): each is pushed, and keeps its cosignatures, on its own.

use super::*;
use meshlog_audit::proof::prove_consistency;
use meshlog_format::checkpoint_log::{self, Item as LogItem};
use meshlog_format::layout::{checkpoint_log_path, cosigned_log_path};
use meshlog_tlog::checkpoint::Checkpoint;
use meshlog_tlog::cosignature::{split_note, verify_cosignature, witness_id};
use meshlog_tlog::merkle::Hash;
use meshlog_witness::config::AskWitness;
use meshlog_witness::{AddRequest, Witness};
use std::sync::atomic::{AtomicBool, Ordering};

/// `meshlog witness` options.
#[derive(Debug, Args)]
pub struct WitnessArgs {
    /// Listen address IP:PORT for POST /add-checkpoint and GET /checkpoint/<origin>.
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Directory keeping the latest cosigned checkpoint of each log (created if missing).
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// The witness's signing key file (`meshlog keygen --out DIR --name WITNESS-NAME`).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Verifier key file of a log this witness cosigns (the collector's `verifier.pub`; it also
    /// covers that collector's retention class logs, `<name>/<class>`); repeat for each log.
    #[arg(long, value_name = "FILE", required = true)]
    pub log: Vec<PathBuf>,
}

/// Opens a witness from its key file, the logs' verifier key files and its state directory.
pub(super) fn open_witness(
    key: &Path,
    logs: Vec<VerifierKey>,
    state_dir: &Path,
) -> Result<Witness, RunError> {
    let key = keys::read_signer_key(key)
        .map_err(|e| RunError::Usage(format!("witness key (--key / key_file): {e}")))?;
    Witness::open(key, logs, state_dir).map_err(|e| RunError::Usage(e.to_string()))
}

/// Runs `meshlog witness` until SIGTERM or Ctrl-C.
pub fn run(args: WitnessArgs) -> Result<(), RunError> {
    let logs = args
        .log
        .iter()
        .map(|p| keys::read_verifier_key(p).map_err(|e| RunError::Usage(format!("--log: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<String> = logs.iter().map(|k| k.name().to_owned()).collect();
    let witness = Arc::new(open_witness(&args.key, logs, &args.state_dir)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(io_err("starting the async runtime"))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(io_err(format!("cannot listen on {}", args.listen)))?;
        let local = listener
            .local_addr()
            .map_err(io_err("reading the listen address"))?;
        tracing::info!(
            witness = %witness_id(&witness.verifier()),
            logs = %names.join(", "),
            state_dir = %args.state_dir.display(),
            "witness started"
        );
        tracing::info!("listening on {local}");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(io_err("installing the SIGTERM handler"))?;
        axum::serve(listener, meshlog_witness::http::router(witness))
            .with_graceful_shutdown(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                tracing::info!("stopping the witness");
            })
            .await
            .map_err(io_err("serving HTTP"))
    })
}

/// The last intact entry of a store's `checkpoints.log`.
fn latest_checkpoint(store_dir: &Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(checkpoint_log_path(store_dir)).ok()?;
    checkpoint_log::parse(&bytes)
        .into_iter()
        .filter_map(|i| match i {
            LogItem::Entry(e) => Some(e.note),
            LogItem::Damaged(_) => None,
        })
        .next_back()
}

/// The largest size `key` cosigned in a store's `cosigned.log` (0: none).
fn cosigned_size(store_dir: &Path, key: &VerifierKey) -> u64 {
    let bytes = std::fs::read(cosigned_log_path(store_dir)).unwrap_or_default();
    checkpoint_log::parse(&bytes)
        .into_iter()
        .filter_map(|i| match i {
            LogItem::Entry(e) if verify_cosignature(&e.note, key).is_ok() => split_note(&e.note)
                .ok()
                .and_then(|(t, _)| Checkpoint::parse_body(t).ok())
                .map(|c| c.size),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// One witness the collector asks.
struct Target {
    ask: AskWitness,
    id: String,
    /// The size the witness holds for this log, once known.
    old: Option<u64>,
    /// The last note it cosigned, or that it refused (not sent again).
    settled: Option<Vec<u8>>,
    /// A transient failure was logged for this note.
    warned: Option<Vec<u8>>,
}

/// How a push ended.
enum Pushed {
    Cosigned,
    /// Permanently refused (logged as an error).
    Refused,
    /// Try again at the next tick.
    Retry(String),
}

/// One log the collector pushes: a store (the data directory, or a retention class store) and
/// where each witness stands with it.
struct Log {
    store_dir: PathBuf,
    /// The retention class (None: the data directory's own store), named in the log lines.
    class: Option<String>,
    targets: Vec<Target>,
}

/// Sends the stores' new checkpoints to their witnesses and keeps their cosignatures, each
/// store's in its own `cosigned.log`.
pub(super) struct Pusher {
    logs: Vec<Log>,
    client: reqwest::blocking::Client,
}

impl Pusher {
    /// A pusher for the stores `stores` (directory, retention class: each class store is a log
    /// of its own, signed under `<origin>/<class>`) and the witnesses `ask`.
    pub(super) fn new(
        stores: &[(PathBuf, Option<String>)],
        ask: &[AskWitness],
        timeout: Duration,
    ) -> Result<Self, RunError> {
        let client = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| RunError::Remote(format!("[witness]: {e}")))?;
        let targets = || {
            ask.iter()
                .map(|a| Target {
                    id: witness_id(&a.public_key),
                    ask: a.clone(),
                    old: None,
                    settled: None,
                    warned: None,
                })
                .collect()
        };
        Ok(Pusher {
            logs: stores
                .iter()
                .map(|(dir, class)| Log {
                    store_dir: dir.clone(),
                    class: class.clone(),
                    targets: targets(),
                })
                .collect(),
            client,
        })
    }

    /// Runs [`Pusher::tick`] every `every` on a thread of its own until `stop` is set; the
    /// thread hands the pusher back when joined (for the last push after shutdown).
    pub(super) fn spawn(
        mut self,
        every: Duration,
        stop: Arc<AtomicBool>,
    ) -> io::Result<std::thread::JoinHandle<Pusher>> {
        std::thread::Builder::new()
            .name("meshlog-witness-push".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    self.tick();
                    std::thread::sleep(every);
                }
                self
            })
    }

    /// Sends each store's latest checkpoint to every witness that has not settled it yet.
    pub(super) fn tick(&mut self) {
        for log in &mut self.logs {
            log.tick(&self.client);
        }
    }
}

impl Log {
    fn tick(&mut self, client: &reqwest::blocking::Client) {
        let Some(note) = latest_checkpoint(&self.store_dir) else {
            return;
        };
        let Some(cp) = split_note(&note)
            .ok()
            .and_then(|(t, _)| Checkpoint::parse_body(t).ok())
        else {
            return;
        };
        let class = self.class.as_deref().unwrap_or("");
        for t in &mut self.targets {
            if t.settled.as_ref() == Some(&note) {
                continue;
            }
            match push(&self.store_dir, client, t, &note, &cp) {
                Pushed::Cosigned | Pushed::Refused => t.settled = Some(note.clone()),
                Pushed::Retry(why) => {
                    if t.warned.as_ref() != Some(&note) {
                        tracing::warn!(witness = %t.id, url = %t.ask.url, class, "cannot reach the witness, retrying: {why}");
                        t.warned = Some(note.clone());
                    }
                }
            }
        }
    }
}

/// The consistency proof from `old` to `size` leaves of the store.
fn proof(store_dir: &Path, old: u64, size: u64) -> Result<Vec<Hash>, String> {
    if old == 0 || old == size {
        return Ok(Vec::new());
    }
    let p = prove_consistency(store_dir, old, size).map_err(|e| e.to_string())?;
    p.proof
        .iter()
        .map(|h| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(h)
                .ok()
                .and_then(|v| Hash::try_from(v).ok())
                .ok_or_else(|| "a proof hash is not base64 SHA-256".to_owned())
        })
        .collect()
}

/// Sends `note` (checkpoint `cp`) to the witness `t`.
fn push(
    store_dir: &Path,
    client: &reqwest::blocking::Client,
    t: &mut Target,
    note: &[u8],
    cp: &Checkpoint,
) -> Pushed {
    let (id, url) = (t.id.clone(), format!("{}/add-checkpoint", t.ask.url));
    let mut old = t
        .old
        .unwrap_or_else(|| cosigned_size(store_dir, &t.ask.public_key));
    let refused = |why: String| {
        tracing::error!(
            witness = %id,
            log = %cp.origin,
            size = cp.size,
            "witness refused the checkpoint: {why}; the log was rolled back, forked or \
             replaced since this witness last cosigned it (run `meshlog verify --witness`)"
        );
        Pushed::Refused
    };
    for attempt in 0..2 {
        if old > cp.size {
            t.old = Some(old);
            return refused(format!(
                "it holds {old} leaves of this log, the checkpoint has {}",
                cp.size
            ));
        }
        let proof = match proof(store_dir, old, cp.size) {
            Ok(p) => p,
            Err(e) => {
                return refused(format!(
                    "it holds {old} leaves; no consistency proof from there to {}: {e}",
                    cp.size
                ));
            }
        };
        let body = AddRequest {
            old,
            proof,
            note: note.to_vec(),
        }
        .encode();
        let resp = match client.post(&url).body(body).send() {
            Ok(r) => r,
            Err(e) => return Pushed::Retry(e.to_string()),
        };
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        match status {
            200 => {
                let cosigned = format!("{}{text}", String::from_utf8_lossy(note));
                if let Err(e) = verify_cosignature(cosigned.as_bytes(), &t.ask.public_key) {
                    return refused(format!("its answer is no valid cosignature: {e}"));
                }
                if let Err(e) =
                    checkpoint_log::append_entry(&cosigned_log_path(store_dir), cosigned.as_bytes())
                {
                    return Pushed::Retry(format!("cannot write cosigned.log: {e}"));
                }
                t.old = Some(cp.size);
                tracing::info!(witness = %id, log = %cp.origin, size = cp.size, "checkpoint cosigned by witness");
                return Pushed::Cosigned;
            }
            409 => {
                let held = text.trim().parse::<u64>().unwrap_or(u64::MAX);
                t.old = Some(held);
                if attempt == 0 && held != old {
                    old = held;
                    continue;
                }
                return refused(format!(
                    "it holds {held} leaves of this log and the checkpoint of {} is not \
                         consistent with them (HTTP 409)",
                    cp.size
                ));
            }
            400..=499 => return refused(format!("HTTP {status}: {}", text.trim())),
            _ => return Pushed::Retry(format!("HTTP {status}: {}", text.trim())),
        }
    }
    Pushed::Retry("no answer".into())
}
