//! Delivery from a thread the module owns. Envoy gives an access-logger module no HTTP callout,
//! so one thread per configuration POSTs the batches (OTLP/HTTP, blocking `ureq`) to
//! `http://<collector.authority><collector.path>`, driving core's [`Outbox`] exactly as the Wasm
//! module drives it from `on_tick` and `on_http_call_response`: same batches, batch ids,
//! sequence numbers, retries with backoff, byte bound and delivery tallies.
//!
//! Each Envoy worker's logger owns a [`Lane`]: its own VM id, outbox and sampler, like one Wasm
//! VM per worker. A worker only locks its lane to decide sampling and to buffer an encoded
//! record; the shipping thread locks it only to copy a batch out and to record the answer, never
//! across network I/O, so a worker never waits on the collector.

use crate::abi::{LogLevel, log};
use crate::counters::Live;
use crate::source::NoNode;
use meshlog_core::config::CollectorTarget;
use meshlog_core::otlp::Envelope;
use meshlog_core::resource::resource;
use meshlog_core::retry::Outcome;
use meshlog_core::sample::Sampler;
use meshlog_core::{BatchId, Dispatch, FilterConfig, Outbox, OutboxStats, Settled};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a stopping configuration keeps trying to deliver what its lanes hold.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Upper bound on how long a due batch waits for the thread to look.
const MAX_TICK_MS: u64 = 100;

/// Wall clock, unix ns (0 before 1970).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A random draw (jitter, VM ids); the clock stands in if the OS has no randomness.
pub fn random_u64() -> u64 {
    getrandom::u64().unwrap_or_else(|_| now_ns().rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15)
}

/// What one worker's logger holds: the Wasm module's per-VM state.
pub struct LaneState {
    /// Everything on its way to the collector.
    pub outbox: Outbox,
    /// The worker's sampler and its running tally.
    pub sampler: Sampler,
    last_tally_ns: u64,
    reported: OutboxStats,
}

impl LaneState {
    /// Buffers the sampling tally when due (`force`: now), as the Wasm module does.
    pub fn push_tally(&mut self, cfg: &FilterConfig, now: u64, force: bool) {
        if !self.sampler.policy().is_enabled() {
            return;
        }
        let interval_ns = cfg.sampling.tally_interval_ms().saturating_mul(1_000_000);
        if !force && now.saturating_sub(self.last_tally_ns) < interval_ns {
            return;
        }
        self.last_tally_ns = now;
        if self.sampler.tally().is_empty() {
            return;
        }
        let tally = self.sampler.take_tally(now);
        self.outbox.push_tally(&tally, now);
    }

    fn export(&mut self, counters: &Live) {
        let now = self.outbox.stats();
        counters.outbox(&now, &self.reported);
        self.reported = now;
    }
}

/// One worker's share.
pub struct Lane {
    state: Mutex<LaneState>,
    /// The worker's logger is gone: ship everything, then forget the lane.
    closing: AtomicBool,
    /// Its open records were sealed and sent regardless of age (once, when closing).
    flushed: AtomicBool,
}

impl Lane {
    /// The lane's state. A poisoned lock (a panic caught while it was held) is taken over: the
    /// outbox's invariants hold between its calls.
    pub fn lock(&self) -> MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a configuration shares between Envoy's threads and its shipping thread.
pub struct Hub {
    /// The parsed configuration.
    pub cfg: FilterConfig,
    /// Envoy counters.
    pub counters: Live,
    /// The resource's `service.name`, which sampling rules match.
    pub service: Option<String>,
    lanes: Mutex<Vec<Arc<Lane>>>,
    stopping: AtomicBool,
    wake: (Mutex<bool>, Condvar),
}

impl Hub {
    /// A hub for `cfg`; start its thread with [`Hub::spawn`].
    pub fn new(cfg: FilterConfig, counters: Live) -> Self {
        let service = resource(&NoNode, &cfg.resource, "")
            .get("service.name")
            .cloned();
        Hub {
            cfg,
            counters,
            service,
            lanes: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            wake: (Mutex::new(false), Condvar::new()),
        }
    }

    /// Starts the shipping thread.
    pub fn spawn(self: &Arc<Self>) -> std::io::Result<()> {
        let hub = Arc::clone(self);
        std::thread::Builder::new()
            .name("meshlog-ship".into())
            .spawn(move || {
                // A panic here must not take Envoy down: it ends delivery, loudly.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hub.run()));
                if r.is_err() {
                    log(
                        LogLevel::Error,
                        "meshlog: shipping thread failed; delivery stopped",
                    );
                }
            })
            .map(|_| ())
    }

    /// A new lane (one per Envoy worker thread), with a fresh VM id.
    pub fn lane(&self) -> Arc<Lane> {
        let vm_id = format!("{:016x}", random_u64());
        // Who sends: the configured resource and this lane's id (Envoy's node is not offered
        // to an access-logger module).
        let res = resource(&NoNode, &self.cfg.resource, &vm_id);
        let envelope = Envelope::with_protocol(
            self.cfg.collector.protocol,
            res.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let now = now_ns();
        let lane = Arc::new(Lane {
            state: Mutex::new(LaneState {
                outbox: Outbox::new(
                    &self.cfg.batch,
                    self.cfg.collector.compression,
                    envelope,
                    &vm_id,
                ),
                sampler: Sampler::new(self.cfg.sampling.clone(), now),
                last_tally_ns: now,
                reported: OutboxStats::default(),
            }),
            closing: AtomicBool::new(false),
            flushed: AtomicBool::new(false),
        });
        if let Ok(mut l) = self.lanes.lock() {
            l.push(Arc::clone(&lane));
        }
        lane
    }

    /// The worker's logger is going: its final tally is buffered and everything it holds is
    /// shipped by the thread.
    pub fn close(&self, lane: &Lane) {
        lane.lock().push_tally(&self.cfg, now_ns(), true);
        lane.closing.store(true, Ordering::Release);
        self.notify();
    }

    /// Envoy destroys the configuration: ship what is held (for at most [`STOP_GRACE`]), then
    /// the thread ends. Counting stops now.
    pub fn stop(&self) {
        if let Ok(lanes) = self.lanes.lock() {
            for lane in lanes.iter() {
                lane.lock().push_tally(&self.cfg, now_ns(), true);
                lane.closing.store(true, Ordering::Release);
            }
        }
        self.counters.retire();
        self.stopping.store(true, Ordering::Release);
        self.notify();
    }

    fn notify(&self) {
        let (m, c) = &self.wake;
        if let Ok(mut woken) = m.lock() {
            *woken = true;
            c.notify_one();
        }
    }

    fn sleep(&self, d: Duration) {
        let (m, c) = &self.wake;
        if let Ok(mut woken) = m.lock() {
            if !*woken {
                woken = c
                    .wait_timeout(woken, d)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            *woken = false;
        }
    }

    fn run(&self) {
        let tick = Duration::from_millis(self.cfg.batch.max_age_ms.clamp(1, MAX_TICK_MS));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_millis(self.cfg.collector.timeout_ms)))
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!(
            "http://{}{}",
            self.cfg.collector.authority, self.cfg.collector.path
        );
        let mut stop_deadline: Option<Instant> = None;
        loop {
            self.sleep(tick);
            let lanes: Vec<Arc<Lane>> = self.lanes.lock().map(|l| l.clone()).unwrap_or_default();
            for lane in &lanes {
                self.drain(lane, &agent, &url);
            }
            // Forget closed lanes once they hold nothing.
            if let Ok(mut l) = self.lanes.lock() {
                l.retain(|lane| {
                    !(lane.closing.load(Ordering::Acquire) && lane.lock().outbox.is_idle())
                });
                if self.stopping.load(Ordering::Acquire) {
                    let deadline =
                        *stop_deadline.get_or_insert_with(|| Instant::now() + STOP_GRACE);
                    if l.is_empty() || Instant::now() >= deadline {
                        return;
                    }
                }
            }
        }
    }

    /// Ships what `lane` releases now, one call at a time, until it releases nothing or a call
    /// fails (the outbox then waits out its backoff).
    fn drain(&self, lane: &Lane, agent: &ureq::Agent, url: &str) {
        lane.lock().push_tally(&self.cfg, now_ns(), false);
        if lane.closing.load(Ordering::Acquire) && !lane.flushed.swap(true, Ordering::AcqRel) {
            // The logger is gone: everything held goes now, whatever its age or the pause, as
            // the Wasm module's final flush; what fails is retried below like any batch.
            let all: Vec<Copied> = {
                let mut s = lane.lock();
                let all: Vec<Copied> = s.outbox.flush(now_ns()).iter().map(copy).collect();
                for (id, _, _) in &all {
                    s.outbox.on_sent(*id);
                }
                all
            };
            for (id, body, headers) in all {
                let outcome = post(agent, url, &self.cfg.collector, &headers, &body);
                self.settle(lane, id, outcome, url);
            }
        }
        loop {
            let (id, body, headers) = {
                let mut s = lane.lock();
                let Some(d) = s.outbox.next_dispatch(now_ns()) else {
                    s.export(&self.counters);
                    return;
                };
                let copied = copy(&d);
                s.outbox.on_sent(copied.0);
                copied
            };
            let outcome = post(agent, url, &self.cfg.collector, &headers, &body);
            // A failure pauses the outbox: stop here rather than spin on it.
            if !self.settle(lane, id, outcome, url) {
                return;
            }
        }
    }

    /// Reports the answer for `id`; true when the outbox may go on (delivered, or refused for
    /// good and so settled).
    fn settle(&self, lane: &Lane, id: BatchId, outcome: Outcome, url: &str) -> bool {
        let mut s = lane.lock();
        let settled = s.outbox.on_response(id, outcome, now_ns(), random_u64());
        s.export(&self.counters);
        if matches!(settled, Some(Settled::Delivered { .. })) {
            return true;
        }
        log(
            LogLevel::Warn,
            &format!(
                "meshlog: batch {} to {url}: {}",
                id.header_value(s.outbox.vm_id()),
                describe(settled)
            ),
        );
        matches!(settled, Some(Settled::Rejected { .. }))
    }
}

/// A batch copied out of the outbox, so no lock is held while it is on the wire.
type Copied = (BatchId, Vec<u8>, Vec<(&'static str, String)>);

fn copy(d: &Dispatch<'_>) -> Copied {
    (
        d.id,
        d.body.to_vec(),
        d.headers.iter().map(|(k, v)| (*k, v.clone())).collect(),
    )
}

/// One POST; the answer classified as the Wasm module classifies Envoy's (no answer = retry).
fn post(
    agent: &ureq::Agent,
    url: &str,
    c: &CollectorTarget,
    headers: &[(&'static str, String)],
    body: &[u8],
) -> Outcome {
    let mut req = agent.post(url).header("host", c.authority.as_str());
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let now = now_ns();
    match req.send(body) {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .map(|v| v.as_bytes().to_vec());
            // Read the answer so the connection is reused.
            let _ = resp.body_mut().read_to_vec();
            Outcome::classify(Some(status), retry_after.as_deref(), now)
        }
        Err(_) => Outcome::classify(None, None, now),
    }
}

/// What became of a batch, for a log line.
fn describe(s: Option<Settled>) -> String {
    match s {
        Some(Settled::Retry {
            records,
            delay_ns,
            failures,
        }) => format!(
            "{records} records kept for retry {failures} in {} ms",
            delay_ns / 1_000_000
        ),
        Some(Settled::Rejected { records, status }) => {
            format!("{records} records refused ({status}), not retried")
        }
        Some(Settled::Delivered { records, .. }) => format!("{records} records delivered"),
        None => "not in flight".to_owned(),
    }
}
