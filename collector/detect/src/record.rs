//! Reading the attributes the rules need from a stored (flat) record.

use crate::flat::{Flat, Scalar};
use crate::keys::Keys;
use meshlog_core::schema;
use serde_json::{Map, Value};

/// One canonical stored record: a flat JSON object (see docs/schema.md).
pub type Record = Map<String, Value>;

/// The end user an edge proxy authenticated (OpenTelemetry's `enduser.id`).
pub const ENDUSER_ID: &str = "enduser.id";
/// The stored key of the service name resource attribute.
pub const SERVICE: &str = "resource.service.name";
/// The stored key of the service instance resource attribute.
pub const INSTANCE: &str = "resource.service.instance.id";
/// The stored key of the VM id resource attribute (names the sequence).
pub const VM_ID: &str = "resource.meshlog.vm.id";
/// The stored key of the event name.
pub const EVENT_NAME: &str = "event_name";
/// The stored key of the tenant the collector stamps on a tenant's records.
pub const TENANT: &str = "resource.meshlog.tenant";

/// The stored key of the time the collector received the record.
pub const OBSERVED_TIME: &str = "observed_time_unix_nano";
/// The stored key of the time the record happened.
pub const TIME: &str = "time_unix_nano";

/// A string attribute.
pub fn str_of<'a>(r: &'a Record, key: &str) -> Option<&'a str> {
    r.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// An integer attribute (also from a decimal string, as OTLP JSON writes 64-bit integers).
pub fn int_of(r: &Record, key: &str) -> Option<i64> {
    match r.get(key)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// An attribute as text for grouping and matching: strings as they are, numbers and booleans
/// in their JSON spelling.
pub fn text_of(r: &Record, key: &str) -> Option<String> {
    match r.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        v @ (Value::Number(_) | Value::Bool(_)) => Some(v.to_string()),
        _ => None,
    }
}

/// The record's event name.
pub fn event(r: &Record) -> Option<&str> {
    str_of(r, EVENT_NAME)
}

/// True for a request record: an HTTP access record (or any record with a status code).
pub fn is_request(r: &Record) -> bool {
    match event(r) {
        Some(schema::EVENT_NAME) => true,
        Some(_) => false,
        None => r.contains_key(schema::HTTP_RESPONSE_STATUS_CODE),
    }
}

/// The HTTP status code.
pub fn status(r: &Record) -> Option<i64> {
    int_of(r, schema::HTTP_RESPONSE_STATUS_CODE)
}

/// The destination service (the resource of the sidecar that logged the record).
pub fn service(r: &Record) -> Option<&str> {
    str_of(r, SERVICE)
}

/// The calling workload: the mTLS peer principal (SPIFFE id).
pub fn principal(r: &Record) -> Option<&str> {
    str_of(r, schema::MESHLOG_PEER_PRINCIPAL)
}

/// Who called, for per-caller rules: the end user when known, else the workload principal,
/// else the client address; with the label it is reported under.
pub fn caller(r: &Record) -> Option<(&'static str, &str)> {
    if let Some(u) = str_of(r, ENDUSER_ID) {
        return Some(("enduser", u));
    }
    if let Some(p) = principal(r) {
        return Some(("principal", p));
    }
    str_of(r, schema::CLIENT_ADDRESS).map(|c| ("client", c))
}

/// The route template, else the path.
pub fn route(r: &Record) -> Option<&str> {
    str_of(r, schema::HTTP_ROUTE).or_else(|| str_of(r, schema::URL_PATH))
}

/// The requests this record stands for: the sampling adjusted count, 1 when unsampled.
pub fn weight(r: &Record) -> f64 {
    match r.get(schema::MESHLOG_SAMPLING_ADJUSTED_COUNT) {
        Some(Value::Number(n)) => n.as_f64().filter(|w| *w >= 1.0).unwrap_or(1.0),
        _ => 1.0,
    }
}

/// When the collector received the record (its observed time), else when it happened: the
/// time replay assigns to a stored record.
pub fn stored_time(r: &Record) -> u64 {
    int_of(r, OBSERVED_TIME)
        .or_else(|| int_of(r, TIME))
        .and_then(|t| u64::try_from(t).ok())
        .unwrap_or(0)
}

/// The keys [`View`] reads, in the order of [`Vk`].
pub const VIEW_KEYS: [&str; 13] = [
    EVENT_NAME,
    schema::HTTP_RESPONSE_STATUS_CODE,
    SERVICE,
    schema::MESHLOG_PEER_PRINCIPAL,
    schema::CLIENT_ADDRESS,
    ENDUSER_ID,
    schema::HTTP_ROUTE,
    schema::URL_PATH,
    INSTANCE,
    VM_ID,
    schema::MESHLOG_SEQUENCE,
    schema::MESHLOG_SAMPLING_ADJUSTED_COUNT,
    TENANT,
];
/// The view's keys by their place in [`VIEW_KEYS`] (the same order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vk {
    Event,
    Status,
    Service,
    Principal,
    Client,
    Enduser,
    Route,
    Path,
    Instance,
    Vm,
    Sequence,
    Weight,
    Tenant,
}

/// The place of `key` in [`VIEW_KEYS`].
pub(crate) fn view_code(key: &str) -> Option<usize> {
    VIEW_KEYS.iter().position(|k| *k == key)
}

/// What the built-in rules read of a record, found in one pass over its keys rather than
/// by a lookup per attribute per rule.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// The record itself, for what is not here (user rules, redaction counts, tallies).
    pub r: &'a Flat<'a>,
    /// [`event`].
    pub event: Option<&'a str>,
    /// [`is_request`].
    pub request: bool,
    /// [`status`].
    pub status: Option<i64>,
    /// [`service`].
    pub service: Option<&'a str>,
    /// [`principal`].
    pub principal: Option<&'a str>,
    /// The client address.
    pub client: Option<&'a str>,
    /// The end user.
    pub enduser: Option<&'a str>,
    /// [`route`] (read only when a rule asked for it, see [`View::route_keys`]).
    pub route: Option<&'a str>,
    /// The service instance resource attribute.
    pub instance: Option<&'a str>,
    /// The VM id resource attribute.
    pub vm: Option<&'a str>,
    /// `meshlog.sequence`.
    pub sequence: Option<u64>,
    /// [`weight`].
    pub weight: f64,
    /// The tenant the record was stamped with.
    pub tenant: Option<&'a str>,
}

impl<'a> View<'a> {
    /// The keys [`View::of`] and [`Flat::stored_time`] read.
    pub fn keys(k: &mut Keys) {
        View::live_keys(k);
        k.insert(OBSERVED_TIME);
        k.insert(TIME);
    }

    /// The keys [`View::of`] reads (a record observed live is timed by the collector's clock,
    /// not by [`Flat::stored_time`]).
    /// The route ([`View::route`]) only when a rule asks for it ([`View::route_keys`]).
    pub fn live_keys(k: &mut Keys) {
        for (c, key) in VIEW_KEYS.iter().enumerate() {
            if c != Vk::Route as usize && c != Vk::Path as usize {
                k.insert(key);
            }
        }
    }

    /// The keys [`View::route`] is read from: a rule that reads it adds them
    /// ([`crate::rules::Rule::keys`]); without them it is `None`.
    pub fn route_keys(k: &mut Keys) {
        k.insert(schema::HTTP_ROUTE);
        k.insert(schema::URL_PATH);
    }

    /// Reads `r`: each view key found where the reader put it (or by name), a repeated key's
    /// last value counting, as in the map.
    pub fn of(r: &'a Flat<'a>) -> View<'a> {
        let at = r.view_at();
        let get = |c: Vk| at.get(c as usize).and_then(|&i| r.value_at(i));
        let text = |c: Vk| get(c).and_then(Scalar::as_str);
        let status = get(Vk::Status);
        let event = text(Vk::Event);
        View {
            r,
            event,
            request: match event {
                Some(schema::EVENT_NAME) => true,
                Some(_) => false,
                None => status.is_some(),
            },
            status: status.and_then(Scalar::int),
            service: text(Vk::Service),
            principal: text(Vk::Principal),
            client: text(Vk::Client),
            enduser: text(Vk::Enduser),
            route: text(Vk::Route).or_else(|| text(Vk::Path)),
            instance: text(Vk::Instance),
            vm: text(Vk::Vm),
            sequence: get(Vk::Sequence)
                .and_then(Scalar::int)
                .and_then(|s| u64::try_from(s).ok()),
            weight: get(Vk::Weight)
                .and_then(Scalar::as_f64)
                .filter(|w| *w >= 1.0)
                .unwrap_or(1.0),
            tenant: text(Vk::Tenant),
        }
    }

    /// [`caller`]: the end user, else the principal, else the client address, with its label.
    pub fn caller(&self) -> Option<(&'static str, &'a str)> {
        self.enduser
            .map(|u| ("enduser", u))
            .or_else(|| self.principal.map(|p| ("principal", p)))
            .or_else(|| self.client.map(|c| ("client", c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_view_key_is_at_its_place() {
        for (k, v) in [
            (EVENT_NAME, Vk::Event),
            (schema::HTTP_RESPONSE_STATUS_CODE, Vk::Status),
            (SERVICE, Vk::Service),
            (schema::MESHLOG_PEER_PRINCIPAL, Vk::Principal),
            (schema::CLIENT_ADDRESS, Vk::Client),
            (ENDUSER_ID, Vk::Enduser),
            (schema::HTTP_ROUTE, Vk::Route),
            (schema::URL_PATH, Vk::Path),
            (INSTANCE, Vk::Instance),
            (VM_ID, Vk::Vm),
            (schema::MESHLOG_SEQUENCE, Vk::Sequence),
            (schema::MESHLOG_SAMPLING_ADJUSTED_COUNT, Vk::Weight),
            (TENANT, Vk::Tenant),
        ] {
            assert_eq!(view_code(k), Some(v as usize), "{k}");
        }
    }
}
