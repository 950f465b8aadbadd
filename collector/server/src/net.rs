//! The collector's listeners: one accept loop for plain TCP and TLS (optionally mutual), serving
//! an axum router over HTTP/1.1 and HTTP/2 (gRPC rides on HTTP/2). Every request carries a
//! [`Peer`]: the real TCP peer and the SPIFFE id of a verified client certificate, never
//! anything the client merely claims in a header.
//!
//! Under abuse ([`ConnLimits`]): a cap on open connections and a lower one per peer address (so
//! one address cannot take every slot), a TLS handshake timeout, HTTP/1 header read timeout, an
//! idle timeout for connections that neither send nor receive; connections over a cap are
//! closed at once and counted (`meshlog_refusals_total{reason="connection_limit"|
//! "peer_connection_limit"}`), with the log line rate-limited.

use crate::auth::Peer;
use crate::auth::tls::TlsReloader;
use crate::metrics::Metrics;
use crate::ratelog::RateLimited;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::Service;

/// Connection limits and timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Open connections at most, all peers.
    pub max_connections: usize,
    /// Open connections at most from one peer address.
    pub max_connections_per_peer: usize,
    /// Time for a TLS handshake.
    pub handshake_timeout: Duration,
    /// Time for a request's headers (HTTP/1).
    pub header_read_timeout: Duration,
    /// Time for a request's body once its headers are in.
    pub body_read_timeout: Duration,
    /// A connection with no bytes in or out for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 1024,
            max_connections_per_peer: 256,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

static CAP_LOG: RateLimited = RateLimited::new(Duration::from_secs(10));
static TLS_LOG: RateLimited = RateLimited::new(Duration::from_secs(10));

type PeerCounts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One slot of a peer's connection allowance, given back on drop.
struct PeerSlot {
    counts: PeerCounts,
    ip: IpAddr,
}

impl PeerSlot {
    fn take(counts: &PeerCounts, ip: IpAddr, max: usize) -> Option<PeerSlot> {
        let mut m = match counts.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut m = match self.counts.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(n) = m.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// A stream that notes when bytes last moved.
struct Activity<S> {
    inner: S,
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl<S> Activity<S> {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Activity<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Activity<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What a listener serves.
#[derive(Debug, Clone)]
pub struct Listener {
    /// The routes.
    pub router: Router,
    /// TLS, when configured.
    pub tls: Option<Arc<TlsReloader>>,
    /// Limits and timeouts.
    pub limits: ConnLimits,
    /// Where connections and refusals are counted.
    pub metrics: Arc<Metrics>,
}

/// Serves `listener` until `shutdown` completes, then lets open connections finish their
/// requests for at most `drain`.
pub async fn serve(
    listener: TcpListener,
    this: Listener,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> io::Result<()> {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(this.limits.max_connections));
    let peers: PeerCounts = Arc::default();
    tokio::pin!(shutdown);
    loop {
        let (sock, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refuse_conn(&this.metrics, "connection_limit", addr);
            continue;
        };
        let Some(slot) = PeerSlot::take(&peers, addr.ip(), this.limits.max_connections_per_peer)
        else {
            refuse_conn(&this.metrics, "peer_connection_limit", addr);
            continue;
        };
        let _ = sock.set_nodelay(true);
        let watcher = graceful.watcher();
        let this = this.clone();
        tokio::spawn(async move {
            this.metrics.connection(1);
            connection(sock, addr, &this, watcher).await;
            this.metrics.connection(-1);
            drop((permit, slot));
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain) => {
            tracing::warn!("requests still in flight after {drain:?}; closing them unanswered");
        }
    }
    Ok(())
}

fn refuse_conn(metrics: &Metrics, reason: &'static str, addr: SocketAddr) {
    metrics.refusal(reason);
    if let Some(suppressed) = CAP_LOG.allow() {
        tracing::warn!(peer = %addr, suppressed, "connection refused: {reason}");
    }
}

async fn connection(
    sock: TcpStream,
    addr: SocketAddr,
    this: &Listener,
    watcher: hyper_util::server::graceful::Watcher,
) {
    match &this.tls {
        None => {
            let peer = Peer {
                addr,
                tls: false,
                spiffe_id: None,
            };
            http(sock, peer, this, watcher).await;
        }
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
            let hs = tokio::time::timeout(this.limits.handshake_timeout, acceptor.accept(sock));
            let stream = match hs.await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    this.metrics.refusal("tls_handshake");
                    if let Some(suppressed) = TLS_LOG.allow() {
                        tracing::warn!(peer = %addr, suppressed, "TLS handshake failed: {e}");
                    }
                    return;
                }
                Err(_) => {
                    this.metrics.refusal("tls_handshake_timeout");
                    return;
                }
            };
            let spiffe_id = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| crate::auth::identity::spiffe_id(c.as_ref()));
            let peer = Peer {
                addr,
                tls: true,
                spiffe_id,
            };
            http(stream, peer, this, watcher).await;
        }
    }
}

async fn http<S>(io: S, peer: Peer, this: &Listener, watcher: hyper_util::server::graceful::Watcher)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let last_ms = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let io = Activity {
        inner: io,
        start,
        last_ms: last_ms.clone(),
    };
    let router = this.router.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(peer.clone());
        let mut router = router.clone();
        async move { router.call(req.map(axum::body::Body::new)).await }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(this.limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256);
    let conn = watcher.watch(builder.serve_connection(TokioIo::new(io), svc).into_owned());
    tokio::pin!(conn);
    let idle = this.limits.idle_timeout;
    let tick = (idle / 4).max(Duration::from_millis(10));
    loop {
        tokio::select! {
            r = &mut conn => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep(tick) => {
                let last = Duration::from_millis(last_ms.load(Ordering::Relaxed));
                if start.elapsed().saturating_sub(last) >= idle {
                    tracing::debug!("closing an idle connection");
                    return;
                }
            }
        }
    }
}

impl ConnLimits {
    /// Reads the `[connections]` table, every problem into `errs`: `max_connections` (1 to
    /// 1000000, default 1024), `max_connections_per_peer` (1 to 1000000, default 256),
    /// `handshake_timeout_ms`, `header_read_timeout_ms` (default 10000 each),
    /// `body_read_timeout_ms` (default 60000), `idle_timeout_ms` (default 120000), each 100
    /// to 3600000.
    pub fn parse(
        mut t: meshlog_core::config::fields::Fields<'_>,
        errs: &mut Vec<meshlog_core::config::fields::FieldError>,
    ) -> ConnLimits {
        let mut c = ConnLimits::default();
        let count = 1..=1_000_000;
        if let Some(v) = t.int("max_connections", count.clone(), errs) {
            c.max_connections = v as usize;
        }
        if let Some(v) = t.int("max_connections_per_peer", count, errs) {
            c.max_connections_per_peer = v as usize;
        }
        let ms = 100..=3_600_000;
        for (key, slot) in [
            ("handshake_timeout_ms", &mut c.handshake_timeout),
            ("header_read_timeout_ms", &mut c.header_read_timeout),
            ("body_read_timeout_ms", &mut c.body_read_timeout),
            ("idle_timeout_ms", &mut c.idle_timeout),
        ] {
            if let Some(v) = t.int(key, ms.clone(), errs) {
                *slot = Duration::from_millis(v as u64);
            }
        }
        t.finish(errs);
        c
    }
}
