//! One Envoy worker's access logger: captures the finished request through core's
//! [`RequestView`], samples it as the Wasm module does and buffers the redacted record in the
//! worker's [`Lane`]. No I/O and no waiting on the collector here: the shipping thread sends.

use crate::abi::LogView;
use crate::counters::Counter;
use crate::ship::{Hub, Lane, now_ns};
use crate::source::LogSource;
use meshlog_core::RequestView;
use meshlog_core::record::SamplingMark;
use meshlog_core::sample::Decision;
use std::sync::Arc;

/// The logger Envoy creates per worker thread (`on_access_logger_new`).
pub struct Logger {
    /// The configuration's shared state.
    pub hub: Arc<Hub>,
    /// This worker's outbox and sampler.
    pub lane: Arc<Lane>,
}

impl Logger {
    /// Logs the request `view` shows; sampling first, from the raw view, so a dropped request
    /// costs only its header lists, duration and flags.
    pub fn log(&self, view: LogView) {
        let now = now_ns();
        let hub = &self.hub;
        let src = LogSource::new(view);
        let request = RequestView::fetch(&src);
        let mut mark = None;
        if hub.cfg.sampling.is_enabled() {
            let facts = request.facts(&hub.cfg.redaction);
            let decision = self
                .lane
                .lock()
                .sampler
                .decide(&facts.as_request_facts(hub.service.as_deref()), now);
            match decision {
                Decision::Keep {
                    adjusted_count,
                    reason,
                } => {
                    mark = Some(SamplingMark {
                        adjusted_count,
                        reason: reason.name(),
                        policy_version: hub.cfg.sampling.version().to_owned(),
                    });
                }
                Decision::Drop(why) => {
                    hub.counters.add(Counter::dropped(&why), 1);
                    return;
                }
            }
        }
        // Redaction and building happen outside the lane's lock; only the push is inside.
        let mut rec = request.record(&hub.cfg.redaction, now);
        rec.sampling = mark;
        hub.counters.redacted(&rec.redactions);
        self.lane.lock().outbox.push(&mut rec, now);
        hub.counters.add(Counter::RecordsLogged, 1);
    }
}
