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

use crate::host::{Counter, Counters, EnvoyAttributes, RedactionCounters, now_ns};
use crate::tcp::ConnectionLogger;
use meshlog_core::config::Mode;
use meshlog_core::otlp::Envelope;
use meshlog_core::record::SamplingMark;
use meshlog_core::resource::resource;
use meshlog_core::sample::{Decision, DropReason, RequestFacts, Sampler};
use meshlog_core::{Batch, Batcher, ConnectionCounts, FilterConfig, capture_http, capture_tcp};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext, StreamContext};
use proxy_wasm::types::ContextType;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// The upper bound on how long a due batch waits for the next tick.
const MAX_TICK_MS: u64 = 100;

/// What a VM knows after a successful `on_configure`.
pub(crate) struct Shipper {
    cfg: FilterConfig,
    batcher: Batcher,
    /// Calls in flight: token to (records, body bytes).
    in_flight: HashMap<u32, (usize, usize)>,
    /// Overflow drops already added to the Envoy counter.
    dropped_reported: u64,
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
        self.batcher.push_tally(&tally, now);
    }
}

pub(crate) type Shared = Rc<RefCell<Option<Shipper>>>;

/// The VM's root context.
#[derive(Default)]
pub struct Root {
    shared: Shared,
    counters: Counters,
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

    /// Ships every due batch the in-flight limit allows; `all` ships regardless of age.
    fn ship(&self, all: bool) {
        let Ok(mut guard) = self.shared.try_borrow_mut() else {
            return;
        };
        let Some(s) = guard.as_mut() else { return };
        let now = now_ns();
        let dropped = s.batcher.stats().records_dropped_overflow;
        self.counters.add(
            Counter::RecordsDropped,
            dropped.saturating_sub(s.dropped_reported),
        );
        s.dropped_reported = dropped;
        while s.in_flight.len() < s.cfg.batch.max_in_flight {
            let next = if all {
                s.batcher.take_any()
            } else {
                s.batcher.take_due(now)
            };
            let Some(batch) = next else { break };
            self.dispatch(s, batch);
        }
    }

    fn dispatch(&self, s: &mut Shipper, batch: Batch) {
        let c = &s.cfg.collector;
        let headers = vec![
            (":method", "POST"),
            (":path", c.path.as_str()),
            (":authority", c.authority.as_str()),
            ("content-type", "application/json"),
        ];
        let timeout = Duration::from_millis(c.timeout_ms);
        match hostcalls::dispatch_http_call(&c.cluster, headers, Some(&batch.body), vec![], timeout)
        {
            Ok(token) => {
                s.in_flight.insert(token, (batch.records, batch.body.len()));
            }
            Err(status) => {
                log::warn!(
                    "meshlog: cannot call collector cluster '{}' ({status:?}); {} records lost",
                    c.cluster,
                    batch.records
                );
                self.counters
                    .add(Counter::RecordsFailed, batch.records as u64);
                self.counters.add(Counter::BatchesFailed, 1);
            }
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
        let Some((records, bytes)) = self
            .shared
            .try_borrow_mut()
            .ok()
            .and_then(|mut g| g.as_mut().and_then(|s| s.in_flight.remove(&token)))
        else {
            return;
        };
        let status = self
            .get_http_call_response_header_bytes(":status")
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u16>().ok());
        if let Some(200..=299) = status {
            self.counters.add(Counter::RecordsSent, records as u64);
            self.counters.add(Counter::BatchesSent, 1);
            self.counters.add(Counter::BytesSent, bytes as u64);
        } else {
            let body = self
                .get_http_call_response_body(0, body_size.min(512))
                .unwrap_or_default();
            log::warn!(
                "meshlog: collector answered {} for a batch of {records} records: {}",
                status.map_or_else(|| "no status (reset)".to_owned(), |s| s.to_string()),
                String::from_utf8_lossy(&body)
            );
            self.counters.add(Counter::RecordsFailed, records as u64);
            self.counters.add(Counter::BatchesFailed, 1);
        }
        // A slot is free: due batches need not wait for the next tick.
        self.ship(false);
    }

    fn on_done(&mut self) -> bool {
        self.flush_tally();
        self.ship(true);
        true
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
        // A reconfiguration ships what the old configuration buffered first, with the old
        // policy's final tally; the new configuration gets a fresh sampler (and tally).
        self.flush_tally();
        self.ship(true);
        // Who sends: read once per VM from Envoy's node, then the configured attributes.
        let res = resource(&EnvoyAttributes, &cfg.resource, &vm_id());
        let envelope = Envelope::new(res.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let batcher = Batcher::new(&cfg.batch, envelope);
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
        let service = res.get("service.name").cloned();
        let Ok(mut guard) = self.shared.try_borrow_mut() else {
            log::error!("meshlog: configuration state busy");
            return false;
        };
        *guard = Some(Shipper {
            cfg,
            batcher,
            in_flight: HashMap::new(),
            dropped_reported: 0,
            redacted: RedactionCounters::define(),
            sampler,
            service,
            last_tally_ns: now,
        });
        drop(guard);
        self.counters = Counters::define();
        self.set_tick_period(tick);
        log::info!(
            "meshlog: configured; ticking every {} ms; redaction policy {}; {}",
            tick.as_millis(),
            policy,
            sampling
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

/// A random id for this VM (16 hex digits), so its sequence numbers are told apart from every
/// other VM's, across restarts too. If the host has no randomness, time and context stand in.
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
    let now = now_ns();
    if let Ok(mut g) = shared.try_borrow_mut()
        && let Some(s) = g.as_mut()
    {
        // The decision is taken after capture, from the captured record: simple and exactly what
        // is logged, but a dropped request still pays for capture and redaction. Deciding
        // before capture from raw attributes (trace id, request id, path, status, duration,
        // flags) is future work.
        let mut rec = capture_http(&EnvoyAttributes, &s.cfg.redaction, now);
        if s.sampler.policy().is_enabled() {
            let facts = RequestFacts {
                service: s.service.as_deref(),
                ..RequestFacts::from_record(&rec)
            };
            match s.sampler.decide(&facts, now) {
                Decision::Keep {
                    adjusted_count,
                    reason,
                } => {
                    rec.sampling = Some(SamplingMark {
                        adjusted_count,
                        reason: reason.name(),
                        policy_version: s.sampler.policy().version().to_owned(),
                    });
                }
                Decision::Drop(why) => {
                    counters.add(
                        match why {
                            DropReason::SampledOut => Counter::RecordsSampledOut,
                            DropReason::RateCap { .. } => Counter::RecordsRateCapped,
                            DropReason::HealthCheck => Counter::RecordsHealthCheckDropped,
                        },
                        1,
                    );
                    return;
                }
            }
        }
        s.redacted.add(&rec.redactions);
        s.batcher.push(&mut rec, now);
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
        s.batcher.push(&mut rec, now);
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
