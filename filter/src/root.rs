//! The root context (one per VM) and the per-request HTTP context.
//!
//! One module, three attachments: as an HTTP filter (`envoy.filters.http.wasm`, what Istio's
//! WasmPlugin installs) each request gets an HTTP context whose `on_log` captures the record; as
//! an access logger (`envoy.access_loggers.wasm`) Envoy calls the root context's `on_log` once
//! per request, the cheap path: one VM entry instead of one per stream callback; as a network
//! filter (`mode: network`) each TCP connection gets a [`ConnectionLogger`] whose `on_log`
//! captures one record per connection.
//!
//! Both share the VM's [`Shipper`] through an `Rc<RefCell<_>>`: a VM is single-threaded, and the
//! borrow is always `try_borrow_mut`, so even a host that re-entered us could not make it panic.
//!
//! Delivery is core's [`Outbox`]: this module only moves its batches through
//! `dispatch_http_call`, reports back what the host and the collector said, and adds its
//! counters to Envoy's.

use crate::host::{
    Counter, Counters, EnvoyAttributes, RedactionCounters, call_response_body,
    call_response_header, now_ns, random_u64,
};
use crate::tcp::ConnectionLogger;
use meshlog_core::config::{CollectorTarget, Mode};
use meshlog_core::counters::outbox_deltas;
use meshlog_core::enduser;
use meshlog_core::otlp::Envelope;
use meshlog_core::record::SamplingMark;
use meshlog_core::resource::resource;
use meshlog_core::retry::Outcome;
use meshlog_core::sample::{Decision, Sampler};
use meshlog_core::{
    BatchId, ConnectionCounts, Dispatch, FilterConfig, Outbox, OutboxStats, RequestView, Settled,
    capture_tcp,
};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext, StreamContext};
use proxy_wasm::types::{ContextType, Status};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// The upper bound on how long a due batch waits for the next tick.
const MAX_TICK_MS: u64 = 100;

/// What a VM knows after a successful `on_configure`.
pub(crate) struct Shipper {
    cfg: FilterConfig,
    /// Everything on its way to the collector; carried over a reconfiguration.
    outbox: Outbox,
    /// Calls in flight: token to batch.
    in_flight: HashMap<u32, BatchId>,
    /// The outbox's counters as already added to Envoy's.
    reported: OutboxStats,
    /// Per-kind redaction counters.
    redacted: RedactionCounters,
    /// The VM's sampler (policy, rate-cap bucket, running tally); a fresh one per configuration,
    /// so no tally mixes two policies. Unused when sampling is off.
    sampler: Sampler,
    /// The resource's `service.name`: the service `sampling.rules[].service` matches.
    service: Option<String>,
    /// When the tally was last considered for shipping, unix ns.
    last_tally_ns: u64,
}

impl Shipper {
    /// Buffers the sampling tally as a `meshlog.sampling.tally` record when sampling is on, the
    /// tally has counted something and `force` is set or an interval has passed. An empty tally
    /// is not taken, so the next one starts where the last shipped one ended: each VM's tallies
    /// cover its time without gaps or overlaps.
    fn push_tally(&mut self, now: u64, force: bool) {
        if !self.sampler.policy().is_enabled() {
            return;
        }
        let interval_ns = self
            .cfg
            .sampling
            .tally_interval_ms()
            .saturating_mul(1_000_000);
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

    /// Hands the batches the outbox releases to the host; `all` (the VM is stopping) releases
    /// everything at once, whatever the pause and the in-flight limit.
    fn ship(&mut self, all: bool) {
        let now = now_ns();
        if all {
            let results: Vec<(BatchId, Result<u32, Status>)> = self
                .outbox
                .flush(now)
                .iter()
                .map(|d| (d.id, call(&self.cfg.collector, d)))
                .collect();
            for (id, r) in results {
                self.sent(id, r, now);
            }
            return;
        }
        while let Some(d) = self.outbox.next_dispatch(now) {
            let id = d.id;
            let r = call(&self.cfg.collector, &d);
            // A refusal pauses the outbox; stop here either way rather than spin on it.
            if !self.sent(id, r, now) {
                break;
            }
        }
    }

    /// Reports the host's answer to `dispatch_http_call`; true when it took the call.
    fn sent(&mut self, id: BatchId, r: Result<u32, Status>, now: u64) -> bool {
        match r {
            Ok(token) => {
                self.outbox.on_sent(id);
                self.in_flight.insert(token, id);
                true
            }
            Err(status) => {
                let settled = self.outbox.on_dispatch_error(id, now, random_u64());
                log::warn!(
                    "meshlog: cannot call collector cluster '{}' ({status:?}) for batch {}: {}",
                    self.cfg.collector.cluster,
                    id.header_value(self.outbox.vm_id()),
                    describe(settled)
                );
                false
            }
        }
    }

    /// Adds what the outbox counted since last time to Envoy's counters.
    fn export(&mut self, counters: &Counters) {
        let now = self.outbox.stats();
        let was = self.reported;
        for (counter, by) in outbox_deltas(&now, &was) {
            counters.add(counter, by);
        }
        self.reported = now;
    }
}

/// One POST of a batch to the collector.
fn call(c: &CollectorTarget, d: &Dispatch<'_>) -> Result<u32, Status> {
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(3 + d.headers.len());
    headers.push((":method", "POST"));
    headers.push((":path", c.path.as_str()));
    headers.push((":authority", c.authority.as_str()));
    headers.extend(d.headers.iter().map(|(k, v)| (*k, v.as_str())));
    let timeout = Duration::from_millis(c.timeout_ms);
    hostcalls::dispatch_http_call(&c.cluster, headers, Some(d.body), vec![], timeout)
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

pub(crate) type Shared = Rc<RefCell<Option<Shipper>>>;

/// The VM's root context.
#[derive(Default)]
pub struct Root {
    shared: Shared,
    counters: Counters,
    /// This VM's id (16 hex digits), drawn at the first configuration and kept across
    /// reconfigurations, like the outbox and its sequence numbers.
    vm_id: Option<String>,
    /// `on_done` came: the plugin is being removed (a configuration update replaced it, or the
    /// VM is shutting down) and only the final flush's calls remain.
    stopping: bool,
}

impl Root {
    /// Buffers the running sampling tally now, whatever its age (shutdown, reconfiguration).
    fn flush_tally(&self) {
        if let Ok(mut g) = self.shared.try_borrow_mut()
            && let Some(s) = g.as_mut()
        {
            s.push_tally(now_ns(), true);
        }
    }

    fn calls_in_flight(&self) -> usize {
        self.shared
            .try_borrow()
            .ok()
            .and_then(|g| g.as_ref().map(|s| s.in_flight.len()))
            .unwrap_or(0)
    }

    /// Ships what the outbox releases (`all`: everything) and exports its counters.
    fn ship(&self, all: bool) {
        if let Ok(mut g) = self.shared.try_borrow_mut()
            && let Some(s) = g.as_mut()
        {
            s.ship(all);
            s.export(&self.counters);
        }
    }
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let now = now_ns();
        // No headers at all: reset, timeout or no healthy host. Retried like a 503.
        let status = call_response_header(":status")
            .and_then(|v| std::str::from_utf8(&v).ok()?.trim().parse::<u16>().ok());
        let retry_after = call_response_header("retry-after");
        let outcome = Outcome::classify(status, retry_after.as_deref(), now);
        {
            let Ok(mut g) = self.shared.try_borrow_mut() else {
                return;
            };
            let Some(s) = g.as_mut() else { return };
            let Some(id) = s.in_flight.remove(&token) else {
                return;
            };
            let settled = s.outbox.on_response(id, outcome, now, random_u64());
            if !matches!(settled, Some(Settled::Delivered { .. })) {
                let body = call_response_body(body_size.min(512));
                log::warn!(
                    "meshlog: collector answered {} for batch {}: {}{}{}",
                    status.map_or_else(
                        || "nothing (reset or timeout)".to_owned(),
                        |s| s.to_string()
                    ),
                    id.header_value(s.outbox.vm_id()),
                    describe(settled),
                    if body.is_empty() { "" } else { ": " },
                    String::from_utf8_lossy(&body)
                );
            }
        }
        if self.stopping {
            // The final flush's answers: once the last is in, the host may delete us.
            if let Ok(mut g) = self.shared.try_borrow_mut()
                && let Some(s) = g.as_mut()
            {
                s.export(&self.counters);
            }
            if self.calls_in_flight() == 0 {
                let _ = hostcalls::done();
            }
            return;
        }
        // A slot is free: due batches need not wait for the next tick.
        self.ship(false);
    }

    /// Ships everything held. Returning false keeps this context alive until the calls are
    /// answered (`proxy_done` then): Envoy cancels a deleted context's calls, and with them the
    /// last batches. A host that does not wait (process exit) loses at most those.
    fn on_done(&mut self) -> bool {
        self.flush_tally();
        self.ship(true);
        self.stopping = true;
        self.calls_in_flight() == 0
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        if let Ok(level) = hostcalls::get_log_level() {
            proxy_wasm::set_log_level(level);
        }
        let raw = self.get_plugin_configuration().unwrap_or_default();
        let cfg = match FilterConfig::from_json(&raw) {
            Ok(cfg) => cfg,
            Err(e) => {
                log::error!("meshlog: {e}");
                return false;
            }
        };
        // The old policy's final tally joins what the old configuration buffered; the outbox
        // seals all of it under the old resource and keeps it (and its calls in flight, and
        // the VM's sequence) across the change. The new configuration gets a fresh sampler.
        self.flush_tally();
        let vm_id = self.vm_id.get_or_insert_with(vm_id).clone();
        // Who sends: read once per VM from Envoy's node, then the configured attributes.
        let res = resource(&EnvoyAttributes, &cfg.resource, &vm_id);
        let envelope = Envelope::with_protocol(
            cfg.collector.protocol,
            res.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let tick = Duration::from_millis(cfg.batch.max_age_ms.min(MAX_TICK_MS));
        let policy = cfg.redaction.version().to_owned();
        let now = now_ns();
        let sampler = Sampler::new(cfg.sampling.clone(), now);
        let sampling = if cfg.sampling.is_enabled() {
            format!(
                "sampling policy {}, tally every {} ms",
                cfg.sampling.version(),
                cfg.sampling.tally_interval_ms()
            )
        } else {
            "sampling off".to_owned()
        };
        let enduser = match &cfg.enduser {
            Some(e) => format!("end user from metadata '{}' ({:?} id)", e.namespace, e.id),
            None => "end user off".to_owned(),
        };
        let service = res.get("service.name").cloned();
        let Ok(mut guard) = self.shared.try_borrow_mut() else {
            log::error!("meshlog: configuration state busy");
            return false;
        };
        let (outbox, in_flight, reported) = match guard.take() {
            Some(mut old) => {
                let compression = cfg.collector.compression;
                old.outbox.reconfigure(&cfg.batch, compression, envelope);
                (old.outbox, old.in_flight, old.reported)
            }
            None => (
                Outbox::new(&cfg.batch, cfg.collector.compression, envelope, &vm_id),
                HashMap::new(),
                OutboxStats::default(),
            ),
        };
        *guard = Some(Shipper {
            cfg,
            outbox,
            in_flight,
            reported,
            redacted: RedactionCounters::define(),
            sampler,
            service,
            last_tally_ns: now,
        });
        drop(guard);
        self.counters = Counters::define();
        self.set_tick_period(tick);
        log::info!(
            "meshlog: configured; ticking every {} ms; redaction policy {}; {}; {}",
            tick.as_millis(),
            policy,
            sampling,
            enduser
        );
        true
    }

    fn on_tick(&mut self) {
        if let Ok(mut g) = self.shared.try_borrow_mut()
            && let Some(s) = g.as_mut()
        {
            s.push_tally(now_ns(), false);
        }
        self.ship(false);
    }

    /// Access-logger mode: Envoy logs each request through the root context.
    fn on_log(&mut self) {
        log_request(&self.shared, &self.counters);
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(RequestLogger {
            shared: Rc::clone(&self.shared),
            counters: self.counters,
        }))
    }

    fn create_stream_context(&self, _context_id: u32) -> Option<Box<dyn StreamContext>> {
        Some(Box::new(ConnectionLogger {
            shared: Rc::clone(&self.shared),
            counters: self.counters,
            counts: ConnectionCounts::default(),
        }))
    }

    /// Asked by the SDK for every new stream, always after a successful `on_configure`.
    fn get_type(&self) -> Option<ContextType> {
        let network = self
            .shared
            .try_borrow()
            .ok()
            .and_then(|g| g.as_ref().map(|s| s.cfg.mode == Mode::Network))
            .unwrap_or(false);
        Some(if network {
            ContextType::StreamContext
        } else {
            ContextType::HttpContext
        })
    }
}

/// A random id for this VM (16 hex digits), so its sequence numbers (and batch ids) are told
/// apart from every other VM's, across restarts too. If the host has no randomness, time and context stand in.
fn vm_id() -> String {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        b = now_ns().to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Captures the finished request the host is logging, asks the sampler (when sampling is on)
/// and buffers its record if kept; a dropped request is counted (Envoy counter and tally).
fn log_request(shared: &Shared, counters: &Counters) {
    if crate::floor::probe() {
        return;
    }
    let now = now_ns();
    if let Ok(mut g) = shared.try_borrow_mut()
        && let Some(s) = g.as_mut()
    {
        // Sampling decides from the raw view (both header lists, duration, flags: four
        // hostcalls) before anything else is read, redacted or encoded: a dropped request
        // costs only that.
        let view = RequestView::fetch(&EnvoyAttributes);
        let mut mark = None;
        if s.sampler.policy().is_enabled() {
            let facts = view.facts(&s.cfg.redaction);
            match s
                .sampler
                .decide(&facts.as_request_facts(s.service.as_deref()), now)
            {
                Decision::Keep {
                    adjusted_count,
                    reason,
                } => {
                    mark = Some(SamplingMark {
                        adjusted_count,
                        reason: reason.name(),
                        policy_version: s.sampler.policy().version().to_owned(),
                    });
                }
                Decision::Drop(why) => {
                    counters.add(Counter::dropped(&why), 1);
                    return;
                }
            }
        }
        let mut rec = view.record(&s.cfg.redaction, now);
        // The end user: one metadata read, only what Envoy verified; unreadable is absent.
        if let Some(e) = &s.cfg.enduser {
            rec.enduser =
                enduser::capture(&EnvoyAttributes, e, &s.cfg.redaction, &mut rec.redactions);
        }
        rec.sampling = mark;
        s.redacted.add(&rec.redactions);
        s.outbox.push(&mut rec, now);
        counters.add(Counter::RecordsLogged, 1);
    }
}

/// Captures the closed connection the host is logging and buffers its record. Connections are
/// not sampled: there are few of them next to requests, and each is an access an audit needs.
pub(crate) fn log_connection(shared: &Shared, counters: &Counters, counts: ConnectionCounts) {
    let now = now_ns();
    if let Ok(mut g) = shared.try_borrow_mut()
        && let Some(s) = g.as_mut()
    {
        let mut rec = capture_tcp(&EnvoyAttributes, &s.cfg.redaction, counts, now);
        s.redacted.add(&rec.redactions);
        s.outbox.push(&mut rec, now);
        counters.add(Counter::RecordsLogged, 1);
    }
}

/// Per-request context: captures the record at `on_log`, nothing else.
struct RequestLogger {
    shared: Shared,
    counters: Counters,
}

impl Context for RequestLogger {}

impl HttpContext for RequestLogger {
    fn on_log(&mut self) {
        log_request(&self.shared, &self.counters);
    }
}
