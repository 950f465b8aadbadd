//! `meshlog serve`: open the stores (one per retention class, or the data directory itself),
//! start the sweeper when retention is on, serve HTTP until SIGTERM or Ctrl-C, then drain
//! in-flight requests, stop the sweeper, and close the stores, in that order.
//!
//! Listeners: OTLP/HTTP on `listen`, OTLP/gRPC on `grpc_listen`, `/metrics` on
//! `metrics_listen` when set (else on `listen`), all with `[tls]` when configured. Without
//! `[tls]`, an address that is not loopback is refused unless `--insecure` is given. The
//! certificate files are checked for changes every `reload_interval_s` and on SIGHUP.

use super::*;
use meshlog_server::auth::AuthPolicy;
use meshlog_server::auth::tls::TlsReloader;
use meshlog_server::metrics::Metrics;
use meshlog_server::net;
use tokio::signal::unix::{Signal, SignalKind};

/// How often the witness thread looks for a new checkpoint to send.
const WITNESS_PUSH_INTERVAL: Duration = Duration::from_millis(500);

/// How long `serve` waits for in-flight requests after a stop signal. Below Kubernetes' default
/// 30 s grace period, so we finish on our own terms before a SIGKILL.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

pub(super) fn serve(args: ServeArgs) -> Result<(), RunError> {
    let config_file = args.config.clone();
    let cfg = Config::load(args.config.as_deref())?.with_overrides(Overrides {
        data_dir: args.data_dir,
        listen: args.listen,
        grpc_listen: args.grpc_listen,
    });
    let mut addrs = vec![("listen", cfg.listen), ("grpc_listen", cfg.grpc_addr())];
    addrs.extend(cfg.metrics_listen.map(|a| ("metrics_listen", a)));
    let loopback_only = addrs.iter().all(|(_, a)| a.ip().is_loopback());
    if cfg.tls.is_none() && !loopback_only {
        let open: Vec<String> = addrs
            .iter()
            .filter(|(_, a)| !a.ip().is_loopback())
            .map(|(what, a)| format!("{a} ({what})"))
            .collect();
        if !(args.insecure || cfg.insecure) {
            return Err(RunError::Usage(format!(
                "refusing to listen on {} without TLS: records and credentials would cross the \
                 network in plain text. Configure [tls] cert_file and key_file, listen on \
                 loopback, or pass --insecure (insecure = true in the file)",
                open.join(", ")
            )));
        }
        tracing::warn!(
            "--insecure: serving {} without TLS; records cross the network in plain text",
            open.join(", ")
        );
    }
    let tls = match &cfg.tls {
        None => None,
        Some(t) => Some(Arc::new(
            TlsReloader::load(t.clone()).map_err(|e| RunError::Usage(format!("[tls]: {e}")))?,
        )),
    };
    let mut metrics = Metrics::new();
    let sink_metrics = cfg.sink_clickhouse.as_ref().map(|_| {
        Arc::new(meshlog_sink::clickhouse::metrics::SinkMetrics::register(
            metrics.registry_mut(),
        ))
    });
    let metrics = Arc::new(metrics);
    if let Some(t) = &tls {
        let (cert, ca) = t.expiry();
        metrics.set_cert_expiry(cert, ca);
        tracing::info!(
            mutual = t.mutual(),
            min_version = ?t.config().min_version,
            "TLS on{}",
            if t.mutual() {
                ": client certificates required"
            } else {
                ""
            }
        );
    }
    let policy = match &cfg.auth {
        Some(a) => {
            tracing::info!(
                principals = a.principals.len(),
                tokens = a.tokens.len(),
                "authorization on ([auth])"
            );
            AuthPolicy::Enforced(a.clone())
        }
        None => {
            if loopback_only {
                tracing::warn!(
                    "no [auth] section: every local caller may ingest and scrape /metrics \
                     (listeners are loopback-only)"
                );
            } else {
                tracing::warn!(
                    "no [auth] section: every caller that reaches the collector may ingest; \
                     /metrics is refused (configure [auth] principals with roles)"
                );
            }
            AuthPolicy::Open { loopback_only }
        }
    };
    let keys = load_data_keys(cfg.encryption_key_file.as_deref())?;
    log_encryption(keys.as_ref());
    let read_keys = keys.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(io_err("starting the async runtime"))?;
    let integrity = integrity_options(&cfg.integrity, &cfg.data_dir)?;
    let witness_server = match &cfg.witness.serve {
        Some(w) => Some((
            w.listen,
            Arc::new(super::witness::open_witness(
                &w.key_file,
                w.logs.clone(),
                &w.state_dir,
            )?),
        )),
        None => None,
    };
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
    // What detection holds deletions to: the classes and holds, and new holds as the sweeper
    // reads them from the configuration file.
    let (detect_policy, detect_policy_rx) =
        tokio::sync::watch::channel(super::detect::retention_policy(
            cfg.retention.as_ref(),
            integrity.signer.as_ref().map(|s| s.verifier()),
        ));
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
            )
            .with_observer(metrics.clone());
            let mut last_holds = hold_names(&policy.holds);
            let holds = move || {
                let holds = reload_holds(config_file.as_deref())?;
                let names = hold_names(&holds);
                detect_policy.send_if_modified(|p| {
                    let now = super::detect::retention_holds(&holds);
                    (p.holds != now).then(|| p.holds = now).is_some()
                });
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
    let mut state = AppState::with(
        Pipeline::new(stores.routes(), limits, ack_timeout).with_redaction(cfg.redaction.clone()),
        metrics.clone(),
        policy,
    );
    state.serve_metrics = cfg.metrics_listen.is_none();
    state.read = Some(Arc::new(meshlog_server::query::ReadSource {
        data_dir: cfg.data_dir.clone(),
        keys: read_keys,
    }));
    if let Some(sc) = &cfg.sink_clickhouse {
        // Searches with `source=clickhouse` read the fleet's table (docs/clickhouse.md).
        let collector_id = match meshlog_sink::clickhouse::collector_id(sc, &cfg.data_dir) {
            Ok(id) => id,
            Err(e) => {
                if let Some(s) = sweeping {
                    s.stop();
                }
                let _ = stores.close();
                return Err(e.into());
            }
        };
        state.fleet = Some(Arc::new(meshlog_server::query::fleet::Fleet {
            clickhouse: sc.clone(),
            collector_id,
        }));
    }
    state.body_read_timeout = cfg.connections.body_read_timeout;
    let tails = state.tails.clone();
    let pipeline = state.pipeline.clone();
    let (verify_pipeline, verify_last) = (state.pipeline.clone(), state.verify.clone());
    let listener = |router| net::Listener {
        router,
        tls: tls.clone(),
        limits: cfg.connections,
        metrics: metrics.clone(),
    };
    let mut servers = vec![
        (
            "listening on",
            cfg.listen,
            listener(meshlog_server::app(state.clone())),
        ),
        (
            "OTLP/gRPC on",
            cfg.grpc_addr(),
            listener(meshlog_server::grpc_app(state.clone())),
        ),
    ];
    if let Some((addr, w)) = witness_server {
        tracing::info!(
            witness = %meshlog_tlog::cosignature::witness_id(&w.verifier()),
            "serving the witness endpoint ([witness.serve])"
        );
        servers.push((
            "witness on",
            addr,
            listener(meshlog_witness::http::router(w)),
        ));
    }
    // Each new checkpoint goes to the witnesses ([witness] ask) from a thread of its own.
    let push_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pusher = if cfg.witness.ask.is_empty() {
        None
    } else {
        // Each class store is a log of its own (`<origin>/<class>`), pushed on its own.
        let logs: Vec<(PathBuf, Option<String>)> = match &cfg.retention {
            Some(policy) => policy
                .class_names()
                .into_iter()
                .map(|c| (classes::class_dir(&cfg.data_dir, c), Some(c.to_owned())))
                .collect(),
            None => vec![(cfg.data_dir.clone(), None)],
        };
        let p = super::witness::Pusher::new(
            &logs,
            &cfg.witness.ask,
            Duration::from_millis(cfg.witness.timeout_ms),
        )?;
        Some(
            p.spawn(WITNESS_PUSH_INTERVAL, push_stop.clone())
                .map_err(io_err("starting the witness thread"))?,
        )
    };
    if let Some(addr) = cfg.metrics_listen {
        servers.push((
            "/metrics on",
            addr,
            listener(meshlog_server::metrics_app(state)),
        ));
    }
    let detection = super::detect::Detection::start(
        &rt,
        &cfg.detect,
        integrity.signer.is_some(),
        stores.routes().handles().to_vec(),
        pipeline,
        metrics.clone(),
        verify_last.clone(),
        detect_policy_rx,
        cfg.data_dir.join(super::detect::SNAPSHOT_FILE),
    );
    let _verifier = (cfg.integrity.verify_interval_s > 0)
        .then_some(integrity.signer.as_ref())
        .flatten()
        .map(|signer| {
            let p = verify_pipeline.clone();
            meshlog_server::verifier::spawn(
                rt.handle(),
                cfg.data_dir.clone(),
                vec![signer.verifier()],
                Duration::from_secs(cfg.integrity.verify_interval_s),
                verify_last.clone(),
                Arc::new(move || p.now_unix_nano()),
            )
        });
    // Each closed segment gets its query index now, not at the first query that reads it.
    let _indexers = meshlog_server::query::indexer::spawn(rt.handle(), stores.routes().handles());
    let sink = match (&cfg.sink_clickhouse, sink_metrics) {
        (Some(sc), Some(m)) => match start_sink(&rt, sc, &cfg, &stores.routes(), m) {
            Ok(r) => Some(r),
            Err(e) => {
                if let Some(d) = detection {
                    d.stop(&rt);
                }
                let _ = stores.close();
                return Err(e);
            }
        },
        _ => None,
    };
    let served = rt.block_on(run_server(servers, tls.clone(), metrics.clone(), tails));
    // The sink first: what it had not exported is sent after the next start.
    if let Some(s) = sink {
        rt.block_on(s.stop(Duration::from_secs(5)));
    }
    // Detection next: it appends its last alert records to the stores.
    if let Some(d) = detection {
        d.stop(&rt);
    }
    // The sweeper first: it appends receipt records to the stores.
    if let Some(s) = sweeping {
        s.stop();
    }
    push_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let pusher = pusher.and_then(|h| h.join().ok());
    // Whatever happened to the server, finish the queues and release the locks.
    let closed = stores.close();
    // The shutdown checkpoint goes to the witnesses too, so the last one is cosigned.
    if let Some(mut p) = pusher {
        p.tick();
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    served?;
    closed?;
    tracing::info!("stopped");
    Ok(())
}

/// Starts the ClickHouse sink over every class store (`Log` = class name; `""` without
/// `[retention]`).
fn start_sink(
    rt: &tokio::runtime::Runtime,
    sc: &meshlog_sink::clickhouse::config::ClickHouseConfig,
    cfg: &Config,
    routes: &meshlog_retention::classes::ClassRoutes,
    metrics: Arc<meshlog_sink::clickhouse::metrics::SinkMetrics>,
) -> Result<meshlog_sink::clickhouse::service::Running, RunError> {
    use meshlog_sink::clickhouse::{self as ch, service};
    let collector_id = ch::collector_id(sc, &cfg.data_dir)?;
    let sources = routes
        .names()
        .iter()
        .zip(routes.handles())
        .map(|(name, handle)| service::Source {
            log: if cfg.retention.is_some() {
                name.clone()
            } else {
                String::new()
            },
            handle: handle.clone(),
        })
        .collect();
    tracing::info!(
        url = %sc.url,
        table = %format_args!("{}.{}", sc.database, sc.table),
        collector_id = %collector_id,
        "ClickHouse sink on"
    );
    let _guard = rt.enter();
    Ok(service::start(
        service::Sink {
            cfg: sc.clone(),
            collector_id,
            sink_dir: cfg.data_dir.join(ch::SINK_DIR),
            metrics,
        },
        sources,
    )?)
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

/// Reads the signing key: the configured one, else the one `serve` made in the keys directory
/// beside the data directory (made on first start, with its verifier key printed).
fn integrity_options(cfg: &IntegrityConfig, data_dir: &Path) -> Result<IntegrityOptions, RunError> {
    let key = match &cfg.signing_key {
        Some(path) => keys::read_signer_key(path).map_err(RunError::SigningKey)?,
        None => match default_signing_key(data_dir) {
            Ok(k) => k,
            // A read-only or foreign parent directory (a hardened unit, a container volume):
            // serve as before, unsigned, and say loudly how to fix it.
            Err(e @ (RunError::Io { .. } | RunError::Key(KeyFileError::Io { .. }))) => {
                tracing::error!(
                    "no [integrity] signing_key configured and no key could be made beside the \
                     data directory ({e}): checkpoints are NOT signed. Configure [integrity] \
                     signing_key, or let the collector write {}",
                    meshlog_format::layout::default_keys_dir(data_dir).display()
                );
                return Ok(IntegrityOptions {
                    signer: None,
                    checkpoint_interval: Duration::from_secs(cfg.checkpoint_interval_s),
                });
            }
            Err(e) => return Err(e),
        },
    };
    tracing::info!(
        key = %format_args!("{}+{:08x}", key.name(), key.key_id()),
        interval_s = cfg.checkpoint_interval_s,
        "signing checkpoints"
    );
    Ok(IntegrityOptions {
        signer: Some(std::sync::Arc::new(key)),
        checkpoint_interval: Duration::from_secs(cfg.checkpoint_interval_s),
    })
}

/// The signing key in `<data_dir>-keys/` (beside the data directory: deleting or copying the
/// data directory leaves it), made on first start. Its verifier key is printed with where to
/// keep it: `verify` must take it from elsewhere than the machine that holds the store.
fn default_signing_key(data_dir: &Path) -> Result<SignerKey, RunError> {
    let dir = meshlog_format::layout::default_keys_dir(data_dir);
    let signing = dir.join(keys::SIGNING_KEY_FILE);
    let verifier = dir.join(keys::VERIFIER_KEY_FILE);
    if signing.exists() {
        tracing::info!(
            key_file = %signing.display(),
            "no [integrity] signing_key: using the key made on first start"
        );
        return keys::read_signer_key(&signing).map_err(RunError::SigningKey);
    }
    let key = SignerKey::generate_unique(DEFAULT_ORIGIN).map_err(|source| KeyFileError::Key {
        path: dir.clone(),
        source,
    })?;
    if dir.exists() && !dir.is_dir() {
        return Err(RunError::Usage(format!(
            "no [integrity] signing_key configured, and {} (where serve keeps the key it makes) \
             exists and is not a directory: configure signing_key or move that file",
            dir.display()
        )));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io_err(format!("creating {}", dir.display())))?;
    keys::write_signer_key(&signing, &key)?;
    keys::write_verifier_key(&verifier, &key.verifier())?;
    tracing::warn!(
        "no [integrity] signing_key configured: made a checkpoint signing key on first start \
         in {} (private: keep it, beside and not inside the data directory). Copy the verifier \
         key somewhere the collector's machine cannot write, verify with `meshlog verify \
         --public-key FILE`, and set [integrity] signing_key to choose the key yourself. \
         verifier key: {}",
        signing.display(),
        key.verifier()
    );
    Ok(key)
}

/// How often the ingest rate is logged.
const RATE_LOG_INTERVAL: Duration = Duration::from_secs(60);

async fn run_server(
    servers: Vec<(&'static str, SocketAddr, net::Listener)>,
    tls: Option<Arc<TlsReloader>>,
    metrics: Arc<Metrics>,
    tails: Arc<meshlog_server::query::tail::Tails>,
) -> Result<(), RunError> {
    let mut term = tokio::signal::unix::signal(SignalKind::terminate())
        .map_err(io_err("installing the SIGTERM handler"))?;
    let mut hup = tokio::signal::unix::signal(SignalKind::hangup())
        .map_err(io_err("installing the SIGHUP handler"))?;
    let mut bound = Vec::new();
    for (what, addr, l) in servers {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(io_err(format!("cannot listen on {addr}")))?;
        let local = listener
            .local_addr()
            .map_err(io_err("reading the listen address"))?;
        tracing::info!("{what} {local}");
        bound.push((listener, l));
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for (listener, l) in bound {
        let mut rx = stop_rx.clone();
        tasks.spawn(net::serve(
            listener,
            l,
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            },
            DRAIN_TIMEOUT,
        ));
    }
    let reload_every = tls.as_ref().map_or(Duration::from_secs(3600), |t| {
        Duration::from_secs(t.config().reload_interval_s)
    });
    let mut reload_tick = tokio::time::interval(reload_every);
    reload_tick.tick().await;
    let mut rate_tick = tokio::time::interval(RATE_LOG_INTERVAL);
    rate_tick.tick().await;
    let mut last_totals = metrics.totals();
    let sig = loop {
        tokio::select! {
            Some(res) = tasks.join_next() => {
                // A listener ended before a stop signal: that is an error.
                let _ = stop_tx.send(true);
                return server_result(res.map(|r| r.and(Err(io::Error::other("listener stopped")))));
            }
            sig = stop_signal(&mut term) => break sig,
            _ = hup.recv() => reload_tls(tls.as_deref(), &metrics, "SIGHUP"),
            _ = reload_tick.tick() => reload_tls(tls.as_deref(), &metrics, "periodic check"),
            _ = rate_tick.tick() => {
                let now = metrics.totals();
                let records = now.0.saturating_sub(last_totals.0);
                let empty = now.1.saturating_sub(last_totals.1);
                tracing::info!(
                    records,
                    empty_requests = empty,
                    per_second = records / RATE_LOG_INTERVAL.as_secs().max(1),
                    "ingest in the last {} s",
                    RATE_LOG_INTERVAL.as_secs()
                );
                last_totals = now;
            }
        }
    };
    tracing::info!("{sig} received; finishing in-flight requests");
    let _ = stop_tx.send(true);
    // Live tails never finish on their own: end them so the drain does not wait for them.
    tails.stop();
    let mut result = Ok(());
    while let Some(res) = tasks.join_next().await {
        if let Err(e) = server_result(res) {
            result = Err(e);
        }
    }
    result
}

/// Re-reads the TLS files; logs what happened.
fn reload_tls(tls: Option<&TlsReloader>, metrics: &Metrics, why: &str) {
    let Some(tls) = tls else { return };
    match tls.reload() {
        Ok(true) => {
            let (cert, ca) = tls.expiry();
            metrics.set_cert_expiry(cert, ca);
            tracing::info!(
                trigger = why,
                cert_not_after = cert,
                "TLS certificate files changed: new connections use them"
            );
        }
        Ok(false) => tracing::debug!(trigger = why, "TLS certificate files unchanged"),
        Err(e) => tracing::error!(
            trigger = why,
            "TLS certificate files not reloaded, the previous ones stay in use: {e}"
        ),
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
