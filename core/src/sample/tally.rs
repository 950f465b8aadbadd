//! What the sampler saw, kept and dropped in an interval, per reason: so every gap in the audit
//! trail is explained and volumes and error rates can be re-estimated.

use super::{Decision, DropReason};
use crate::record::{AttrValue, Event, Severity};
use std::collections::BTreeMap;

/// At most this many routes are tallied separately per interval; the rest go to [`OTHER_ROUTE`].
pub const MAX_TALLY_ROUTES: usize = 64;
/// Route key for requests without a route.
pub const NO_ROUTE: &str = "(none)";
/// Route key for routes beyond [`MAX_TALLY_ROUTES`] in one interval.
pub const OTHER_ROUTE: &str = "(other)";

/// Requests dropped by the health-check drop list (integer).
pub use crate::schema::MESHLOG_DROPPED_HEALTH_CHECK as ATTR_DROPPED_HEALTH_CHECK;
/// Records selected by sampling but dropped by the per-VM rate cap (integer).
pub use crate::schema::MESHLOG_DROPPED_RATE_CAP as ATTR_DROPPED_RATE_CAP;
/// Sum of the adjusted counts of the records the rate cap dropped, rounded (integer): the
/// requests they stood for.
pub use crate::schema::MESHLOG_DROPPED_RATE_CAP_ADJUSTED as ATTR_DROPPED_RATE_CAP_ADJUSTED;
/// Requests not selected by their sampling rate (integer).
pub use crate::schema::MESHLOG_DROPPED_SAMPLED as ATTR_DROPPED_SAMPLED;
/// Per-route counts as a JSON object string:
/// `{"/api/{id}":{"seen":10,"sampled":8,"rate_cap":0,"health_check":0}}`. Absent when empty.
pub use crate::schema::MESHLOG_SAMPLING_BY_ROUTE as ATTR_BY_ROUTE;
/// Interval end, unix ns (integer).
pub use crate::schema::MESHLOG_SAMPLING_INTERVAL_END_NS as ATTR_END_NS;
/// Interval start, unix ns (integer).
pub use crate::schema::MESHLOG_SAMPLING_INTERVAL_START_NS as ATTR_START_NS;
/// Records kept, whatever the reason (integer).
pub use crate::schema::MESHLOG_SAMPLING_KEPT as ATTR_KEPT;
/// Sum of the kept records' adjusted counts, rounded (integer).
pub use crate::schema::MESHLOG_SAMPLING_KEPT_ADJUSTED as ATTR_KEPT_ADJUSTED;
/// Of those, kept by an always-keep rule (integer).
pub use crate::schema::MESHLOG_SAMPLING_KEPT_ALWAYS as ATTR_KEPT_ALWAYS;
/// Requests decided (integer).
pub use crate::schema::MESHLOG_SAMPLING_SEEN as ATTR_SEEN;
/// `eventName` suggested for the record that ships a tally.
pub use crate::schema::SAMPLING_TALLY_EVENT_NAME as TALLY_EVENT_NAME;

/// Counts for one route in a [`Tally`]. Kept = `seen − sampled − rate_cap − health_check`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteTally {
    /// Requests decided.
    pub seen: u64,
    /// Dropped: sampled out.
    pub sampled: u64,
    /// Dropped: rate cap.
    pub rate_cap: u64,
    /// Dropped: health check.
    pub health_check: u64,
}

/// Counts over one interval `[start_ns, end_ns)`. Invariant: `seen == kept + dropped()`.
///
/// Estimating the traffic a VM saw (health checks excluded):
/// `kept_adjusted + dropped_rate_cap_adjusted`; its errors are all in the kept records (always
/// kept, adjusted count 1). Records lost *after* this point (batch overflow, failed shipping)
/// show as `kept` here without a stored record (and as `meshlog.sequence` gaps).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// When counting began (the previous `take`, or the sampler's creation), unix ns.
    pub start_ns: u64,
    /// When the tally was taken, unix ns; 0 while it is still being counted.
    pub end_ns: u64,
    /// The sampling policy version (16 hex) in force for the whole interval.
    pub policy_version: String,
    /// Requests decided.
    pub seen: u64,
    /// Records kept (any reason).
    pub kept: u64,
    /// Records kept by an always-keep rule (included in `kept`).
    pub kept_always: u64,
    /// Sum of the adjusted counts of the kept records.
    pub kept_adjusted: f64,
    /// Requests not selected by their sampling rate.
    pub dropped_sampled: u64,
    /// Records selected by sampling but over the per-VM rate cap.
    pub dropped_rate_cap: u64,
    /// Sum of the adjusted counts of the records dropped by the rate cap.
    pub dropped_rate_cap_adjusted: f64,
    /// Requests on the health-check drop list.
    pub dropped_health_check: u64,
    /// Per route (`http.route`; [`NO_ROUTE`] without one; [`OTHER_ROUTE`] for routes first seen
    /// after [`MAX_TALLY_ROUTES`] others in the interval, so at most `MAX_TALLY_ROUTES + 1`
    /// entries).
    pub by_route: BTreeMap<String, RouteTally>,
}

impl Tally {
    /// An empty tally starting at `start_ns` under policy `policy_version`.
    pub fn new(policy_version: &str, start_ns: u64) -> Self {
        Tally {
            start_ns,
            policy_version: policy_version.to_owned(),
            ..Tally::default()
        }
    }

    /// Every dropped request, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_sampled
            .saturating_add(self.dropped_rate_cap)
            .saturating_add(self.dropped_health_check)
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.seen == 0
    }

    /// Estimated requests the VM saw, health checks excluded: the adjusted counts of the kept
    /// records plus those of the records the rate cap dropped.
    pub fn estimated_requests(&self) -> f64 {
        self.kept_adjusted + self.dropped_rate_cap_adjusted
    }

    /// Returns the tally so far, ended at `now_ns`, and starts a new one at `now_ns`.
    pub fn take(&mut self, now_ns: u64) -> Tally {
        let fresh = Tally::new(&self.policy_version, now_ns);
        let mut out = std::mem::replace(self, fresh);
        out.end_ns = now_ns;
        out
    }

    /// Counts one decision for a request on `route`.
    pub(crate) fn count(&mut self, route: Option<&str>, d: &Decision) {
        let inc = |c: &mut u64| *c = c.saturating_add(1);
        inc(&mut self.seen);
        match *d {
            Decision::Keep {
                adjusted_count,
                reason,
            } => {
                inc(&mut self.kept);
                self.kept_adjusted += adjusted_count;
                if reason.is_always() {
                    inc(&mut self.kept_always);
                }
            }
            Decision::Drop(DropReason::SampledOut) => inc(&mut self.dropped_sampled),
            Decision::Drop(DropReason::RateCap { adjusted_count }) => {
                inc(&mut self.dropped_rate_cap);
                self.dropped_rate_cap_adjusted += adjusted_count;
            }
            Decision::Drop(DropReason::HealthCheck) => inc(&mut self.dropped_health_check),
        }
        if let Some(r) = self.route_entry(route) {
            inc(&mut r.seen);
            match *d {
                Decision::Keep { .. } => {}
                Decision::Drop(DropReason::SampledOut) => inc(&mut r.sampled),
                Decision::Drop(DropReason::RateCap { .. }) => inc(&mut r.rate_cap),
                Decision::Drop(DropReason::HealthCheck) => inc(&mut r.health_check),
            }
        }
    }

    fn route_entry(&mut self, route: Option<&str>) -> Option<&mut RouteTally> {
        let mut key = route.unwrap_or(NO_ROUTE);
        if !self.by_route.contains_key(key) {
            if self.by_route.len() >= MAX_TALLY_ROUTES {
                key = OTHER_ROUTE;
            }
            // Allocates only for a route not yet seen in this interval.
            if !self.by_route.contains_key(key) {
                self.by_route.insert(key.to_owned(), RouteTally::default());
            }
        }
        self.by_route.get_mut(key)
    }

    /// Calls `f(key, value)` for every attribute of the tally record, keys as in the `ATTR_*`
    /// constants of this module. Adjusted sums are rounded to integers (the struct keeps them
    /// exact).
    pub fn for_each_attribute(&self, mut f: impl FnMut(&str, AttrValue<'_>)) {
        let i = |v: u64| AttrValue::Int(i64::try_from(v).unwrap_or(i64::MAX));
        // `as` saturates (and maps NaN to 0).
        let r = |v: f64| AttrValue::Int(v.round() as i64);
        f(ATTR_START_NS, i(self.start_ns));
        f(ATTR_END_NS, i(self.end_ns));
        f(
            crate::schema::MESHLOG_SAMPLING_POLICY_VERSION,
            AttrValue::Str(&self.policy_version),
        );
        f(ATTR_SEEN, i(self.seen));
        f(ATTR_KEPT, i(self.kept));
        f(ATTR_KEPT_ALWAYS, i(self.kept_always));
        f(ATTR_KEPT_ADJUSTED, r(self.kept_adjusted));
        f(ATTR_DROPPED_SAMPLED, i(self.dropped_sampled));
        f(ATTR_DROPPED_RATE_CAP, i(self.dropped_rate_cap));
        f(
            ATTR_DROPPED_RATE_CAP_ADJUSTED,
            r(self.dropped_rate_cap_adjusted),
        );
        f(ATTR_DROPPED_HEALTH_CHECK, i(self.dropped_health_check));
        if !self.by_route.is_empty() {
            let json = self.by_route_json();
            f(ATTR_BY_ROUTE, AttrValue::Str(&json));
        }
    }

    /// [`Tally::by_route`] as the JSON object of [`ATTR_BY_ROUTE`].
    pub fn by_route_json(&self) -> String {
        let mut out = Vec::with_capacity(64 * self.by_route.len() + 2);
        out.push(b'{');
        for (n, (route, c)) in self.by_route.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            crate::json::push_str(&mut out, route);
            out.extend_from_slice(b":{\"seen\":");
            push_u64(&mut out, c.seen);
            out.extend_from_slice(b",\"sampled\":");
            push_u64(&mut out, c.sampled);
            out.extend_from_slice(b",\"rate_cap\":");
            push_u64(&mut out, c.rate_cap);
            out.extend_from_slice(b",\"health_check\":");
            push_u64(&mut out, c.health_check);
            out.push(b'}');
        }
        out.push(b'}');
        // Only valid UTF-8 went in (escaped `&str`s and ASCII).
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Shipped as `meshlog.sampling.tally`, severity INFO, timed at the end of its interval.
impl Event for Tally {
    fn event_name(&self) -> &'static str {
        TALLY_EVENT_NAME
    }

    fn severity(&self) -> Severity {
        Severity::Info
    }

    fn time_ns(&self, _now_ns: u64) -> u64 {
        self.end_ns
    }

    fn visit_attributes(&self, f: &mut dyn FnMut(&str, AttrValue<'_>)) {
        self.for_each_attribute(f);
    }
}

fn push_u64(out: &mut Vec<u8>, v: u64) {
    crate::json::push_int(out, i64::try_from(v).unwrap_or(i64::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::{Envelope, encode_event_record};
    use crate::sample::{RequestFacts, Sampler};
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;

    #[test]
    fn a_tally_record_decodes_with_every_count() {
        let policy = crate::FilterConfig::from_json(br#"{"sampling":{"default_rate":0.0}}"#)
            .unwrap()
            .sampling;
        let mut s = Sampler::new(policy.clone(), 1_000);
        let ok = RequestFacts {
            trace_id: Some([7; 16]),
            path: Some("/a"),
            route: Some("/a"),
            status: Some(200),
            ..RequestFacts::default()
        };
        let err = RequestFacts {
            status: Some(503),
            ..ok
        };
        let hc = RequestFacts {
            path: Some("/healthz"),
            route: None,
            ..ok
        };
        for f in [ok, ok, err, hc] {
            s.decide(&f, 2_000);
        }
        let t = s.take_tally(5_000);
        let mut a = Vec::new();
        encode_event_record(&mut a, &t, Some(7), 6_000);
        let body = Envelope::new([("service.name", "x")]).wrap([a.as_slice()], a.len());
        let req: ExportLogsServiceRequest = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
        let lr = &req.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(lr.event_name, "meshlog.sampling.tally");
        assert_eq!(lr.time_unix_nano, 5_000);
        assert_eq!(lr.observed_time_unix_nano, 6_000);
        assert_eq!(lr.severity_number, 9);
        assert!(lr.trace_id.is_empty());
        let get = |k: &str| {
            lr.attributes
                .iter()
                .find(|kv| kv.key == k)
                .and_then(|kv| kv.value.as_ref()?.value.clone())
                .unwrap_or_else(|| panic!("no {k} in {lr:?}"))
        };
        assert_eq!(get("meshlog.sampling.seen"), Value::IntValue(4));
        assert_eq!(get("meshlog.sampling.kept"), Value::IntValue(1));
        assert_eq!(get("meshlog.sampling.kept.always"), Value::IntValue(1));
        assert_eq!(get("meshlog.dropped.sampled"), Value::IntValue(2));
        assert_eq!(get("meshlog.dropped.health_check"), Value::IntValue(1));
        assert_eq!(get("meshlog.dropped.rate_cap"), Value::IntValue(0));
        assert_eq!(
            get("meshlog.sampling.interval.start_ns"),
            Value::IntValue(1_000)
        );
        assert_eq!(
            get("meshlog.sampling.interval.end_ns"),
            Value::IntValue(5_000)
        );
        assert_eq!(
            get("meshlog.sampling.policy_version"),
            Value::StringValue(policy.version().into())
        );
        assert_eq!(get("meshlog.sequence"), Value::IntValue(7));
        let Value::StringValue(by_route) = get("meshlog.sampling.by_route") else {
            panic!("by_route is a string")
        };
        let v: serde_json::Value = serde_json::from_str(&by_route).unwrap();
        assert_eq!(v["/a"]["sampled"], 2);
        // Without a sequence, the attribute list stays valid JSON.
        let mut b = Vec::new();
        encode_event_record(&mut b, &Tally::default(), None, 0);
        let _: serde_json::Value = serde_json::from_slice(&b).unwrap();
    }
}
