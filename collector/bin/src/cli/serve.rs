//! `meshlog serve`: open the stores (one per retention class, or the data directory itself),
//! start the sweeper when retention is on, serve HTTP until SIGTERM or Ctrl-C, then drain
//! in-flight requests, stop the sweeper, and close the stores, in that order.

use super::*;
use tokio::signal::unix::{Signal, SignalKind};

/// How long `serve` waits for in-flight requests after a stop signal. Below Kubernetes' default
/// 30 s grace period, so we finish on our own terms before a SIGKILL.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

pub(super) fn serve(args: ServeArgs) -> Result<(), RunError> {
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
    let app = meshlog_server::app(AppState::new(
        Pipeline::new(stores.routes(), limits, ack_timeout).with_redaction(cfg.redaction.clone()),
    ));
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
            let key = keys::read_signer_key(path).map_err(RunError::SigningKey)?;
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
            source: io::Error::other(e),
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
