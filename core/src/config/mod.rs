//! The filter's plugin configuration: JSON, parsed once in `on_configure`.
//!
//! Every problem is reported at once, each with its JSON path (`$.batch.max_records`) and the
//! reason, so an operator fixes a config in one round. Unknown fields are errors: a typo must not
//! silently fall back to a default. An empty configuration means all defaults.
//!
//! The reading itself is [`fields`], a leaf walker shared with the `redaction` and `sampling`
//! section readers and usable by any other config reader (the collector's).

use crate::compress::Compression;
use crate::enduser::EndUserConfig;
use crate::otlp::Protocol;
use crate::redact::RedactionPolicy;
use crate::sample::SamplingPolicy;
use std::collections::BTreeMap;

pub mod fields;

use fields::read_json;
pub use fields::{ConfigErrors, FieldError, Fields, Problem};

/// Where and how batches are shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorTarget {
    /// Envoy cluster of the collector. Default `meshlog_collector`.
    pub cluster: String,
    /// `:authority` sent to the collector. Default `meshlog-collector`.
    pub authority: String,
    /// OTLP/HTTP logs path. Default `/v1/logs`; must start with `/`.
    pub path: String,
    /// Per-call timeout in milliseconds, 1 to 60000. Default 5000.
    pub timeout_ms: u64,
    /// How batch bodies are encoded: `compression` `"gzip"` (default) or `"none"`, and for gzip
    /// `compression_level` 1 (fastest, default) to 9 (smallest).
    pub compression: Compression,
    /// The body format, `protocol`: `"http/json"` (default) or `"http/protobuf"` (about half
    /// the bytes to encode and compress per record).
    pub protocol: Protocol,
}

/// When a batch is shipped and how much may wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchConfig {
    /// Ship when this many records wait, 1 to 100000. Default 500.
    pub max_records: usize,
    /// Ship when the oldest waiting record is this old, milliseconds, 10 to 600000. Default 1000.
    pub max_age_ms: u64,
    /// Encoded bytes that may wait per VM before the oldest are dropped (and counted),
    /// 65536 to 268435456. Default 8388608 (8 MiB).
    pub max_buffer_bytes: usize,
    /// Calls to the collector in flight per VM, 1 to 64. Default 4. While the collector keeps
    /// failing, one call at a time probes it.
    pub max_in_flight: usize,
    /// First retry delay bound, milliseconds, 1 to 60000. Default 200. The bound doubles with
    /// each consecutive failure; the delay is drawn uniformly below it (full jitter).
    pub retry_initial_ms: u64,
    /// Largest retry delay, milliseconds, 100 to 3600000 and at least `retry_initial_ms`.
    /// Default 30000. Also caps a collector's `Retry-After`.
    pub retry_max_ms: u64,
}

/// How the module is attached to Envoy, which decides what one record is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `http`: an HTTP filter (`envoy.filters.http.wasm`, Istio's WasmPlugin) or an access logger
    /// (`envoy.access_loggers.wasm`); one record per request.
    #[default]
    Http,
    /// `network`: a network filter (`envoy.filters.network.wasm`, WasmPlugin `type: NETWORK`);
    /// one record per TCP connection. Envoy cannot tell the module which filter chain it is in
    /// before the first connection, so the configuration says it.
    Network,
}

/// The whole plugin configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterConfig {
    /// `mode`: `http` (default) or `network`; must match the filter type in Envoy's config.
    pub mode: Mode,
    /// `collector`: where batches go.
    pub collector: CollectorTarget,
    /// `batch`: when they go.
    pub batch: BatchConfig,
    /// `resource`: static resource attributes (string to string), e.g. `service.name`.
    pub resource: BTreeMap<String, String>,
    /// `redaction`: what may be logged and how secrets are replaced. Absent means the secure
    /// default: every detector on. See `crate::redact` for the reference.
    pub redaction: RedactionPolicy,
    /// `sampling`: which requests are kept. Absent (or `null`) means sampling off: every request
    /// is kept and records carry no `meshlog.sampling.*` attributes. See `crate::sample` for the
    /// reference.
    pub sampling: SamplingPolicy,
    /// `enduser`: the end user from claims Envoy verified. Absent (or `null`) means off. Its
    /// settings are folded into the redaction policy version. See `crate::enduser`.
    pub enduser: Option<EndUserConfig>,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            mode: Mode::Http,
            collector: CollectorTarget {
                cluster: "meshlog_collector".into(),
                authority: "meshlog-collector".into(),
                path: "/v1/logs".into(),
                timeout_ms: 5000,
                compression: Compression::default(),
                protocol: Protocol::Json,
            },
            batch: BatchConfig {
                max_records: 500,
                max_age_ms: 1000,
                max_buffer_bytes: 8 << 20,
                max_in_flight: 4,
                retry_initial_ms: 200,
                retry_max_ms: 30_000,
            },
            resource: BTreeMap::new(),
            redaction: RedactionPolicy::default(),
            sampling: SamplingPolicy::default(),
            enduser: None,
        }
    }
}

fn non_empty(s: &str) -> Option<&'static str> {
    s.is_empty().then_some("must not be empty")
}

impl FilterConfig {
    /// Parses the plugin configuration. Empty or whitespace-only input means all defaults.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigErrors> {
        read_json(bytes, "$", |root, errs| Self::read(root, errs, "gzip"))
    }

    /// The same configuration as the native module reads it: `collector.compression` defaults
    /// to `"zstd"` (7.9k fewer instructions per request than gzip on the edge harness, for a
    /// smaller body; `crate::compress`). Everything else as [`FilterConfig::from_json`].
    pub fn from_json_native(bytes: &[u8]) -> Result<Self, ConfigErrors> {
        // Empty input means all defaults, which are the Wasm module's: read `{}` instead.
        let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            bytes
        };
        read_json(bytes, "$", |root, errs| Self::read(root, errs, "zstd"))
    }

    fn read(mut root: Fields<'_>, errs: &mut Vec<FieldError>, compression: &str) -> Self {
        let d = Self::default();

        let mode = root.get("mode", d.mode, errs);
        let mut c = root.section("collector", errs);
        let collector = CollectorTarget {
            cluster: c.text("cluster", &d.collector.cluster, non_empty, errs),
            authority: c.text("authority", &d.collector.authority, non_empty, errs),
            path: c.text(
                "path",
                &d.collector.path,
                |p| (!p.starts_with('/')).then_some("must start with '/'"),
                errs,
            ),
            timeout_ms: c.int_in("timeout_ms", d.collector.timeout_ms, 1, 60_000, errs),
            compression: read_compression(&mut c, errs, compression),
            protocol: match c
                .text(
                    "protocol",
                    "http/json",
                    |s| match s {
                        "http/json" | "http/protobuf" => None,
                        _ => Some("expected \"http/json\" or \"http/protobuf\""),
                    },
                    errs,
                )
                .as_str()
            {
                "http/protobuf" => Protocol::Protobuf,
                _ => Protocol::Json,
            },
        };
        c.finish(errs);

        let mut b = root.section("batch", errs);
        let batch = BatchConfig {
            max_records: to_usize(b.int_in(
                "max_records",
                d.batch.max_records as u64,
                1,
                100_000,
                errs,
            )),
            max_age_ms: b.int_in("max_age_ms", d.batch.max_age_ms, 10, 600_000, errs),
            max_buffer_bytes: to_usize(b.int_in(
                "max_buffer_bytes",
                d.batch.max_buffer_bytes as u64,
                65_536,
                268_435_456,
                errs,
            )),
            max_in_flight: to_usize(b.int_in(
                "max_in_flight",
                d.batch.max_in_flight as u64,
                1,
                64,
                errs,
            )),
            retry_initial_ms: b.int_in(
                "retry_initial_ms",
                d.batch.retry_initial_ms,
                1,
                60_000,
                errs,
            ),
            retry_max_ms: b.int_in("retry_max_ms", d.batch.retry_max_ms, 100, 3_600_000, errs),
        };
        if batch.retry_max_ms < batch.retry_initial_ms {
            errs.push(FieldError::invalid(
                b.child_path("retry_max_ms"),
                format!(
                    "must be at least retry_initial_ms ({}), got {}",
                    batch.retry_initial_ms, batch.retry_max_ms
                ),
            ));
        }
        b.finish(errs);

        let resource: BTreeMap<String, String> = root.get("resource", BTreeMap::new(), errs);
        let redaction = crate::redact::parse(root.section("redaction", errs), errs);
        let sampling =
            crate::sample::parse(root.child_path("sampling"), root.raw("sampling"), errs);
        let enduser = crate::enduser::parse(
            root.child_path("enduser"),
            root.raw("enduser"),
            &redaction,
            errs,
        );
        let redaction = match &enduser {
            Some(e) => redaction.with_extension(&e.canonical()),
            None => redaction,
        };
        root.finish(errs);
        FilterConfig {
            mode,
            collector,
            batch,
            resource,
            redaction,
            sampling,
            enduser,
        }
    }
}

/// `collector.compression` (`default` when absent) and `collector.compression_level`.
fn read_compression(c: &mut Fields<'_>, errs: &mut Vec<FieldError>, default: &str) -> Compression {
    let name = c.text(
        "compression",
        default,
        |s| match s {
            "gzip" | "none" => None,
            "zstd" if Compression::ZSTD => None,
            "zstd" => Some(
                "zstd is only in the native module (its only pure-Rust encoder is slower than \
                 gzip in the filter's Wasm VM for no smaller body); expected \"gzip\" or \"none\"",
            ),
            _ if Compression::ZSTD => Some("expected \"gzip\", \"zstd\" or \"none\""),
            _ => Some("expected \"gzip\" or \"none\""),
        },
        errs,
    );
    let level = c.int_in("compression_level", 1, 1, 9, errs);
    let level = u32::try_from(level).unwrap_or(1);
    match name.as_str() {
        "none" => Compression::None,
        "zstd" => Compression::zstd(level),
        _ => Compression::Gzip { level },
    }
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_means_defaults() {
        assert_eq!(
            FilterConfig::from_json(b"").unwrap(),
            FilterConfig::default()
        );
        assert_eq!(
            FilterConfig::from_json(b"{}").unwrap(),
            FilterConfig::default()
        );
    }

    #[test]
    fn reads_every_field() {
        let c = FilterConfig::from_json(
            br#"{"collector":{"cluster":"c","authority":"a","path":"/p","timeout_ms":7},
                "batch":{"max_records":3,"max_age_ms":50,"max_buffer_bytes":70000,"max_in_flight":2},
                "resource":{"service.name":"s"}}"#,
        )
        .unwrap();
        assert_eq!(c.collector.cluster, "c");
        assert_eq!(c.collector.timeout_ms, 7);
        assert_eq!(c.batch.max_records, 3);
        assert_eq!(c.batch.max_buffer_bytes, 70000);
        assert_eq!(c.resource["service.name"], "s");
    }

    #[test]
    fn mode_is_http_unless_network_is_asked_for() {
        assert_eq!(FilterConfig::default().mode, Mode::Http);
        let c = FilterConfig::from_json(br#"{"mode":"network"}"#).unwrap();
        assert_eq!(c.mode, Mode::Network);
        let e =
            FilterConfig::from_json(br#"{"mode":"tcp","batch":{"max_records":0}}"#).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("$.mode: unknown variant `tcp`, expected `http` or `network`"),
            "{msg}"
        );
        assert!(msg.contains("$.batch.max_records"), "{msg}");
    }

    #[test]
    fn reports_every_problem_at_once() {
        let e = FilterConfig::from_json(
            br#"{"collector":{"path":"v1/logs","timeout_ms":"soon"},
                "batch":{"max_records":0,"max_age_msec":5},
                "resource":{"k":1}, "extra": true}"#,
        )
        .unwrap_err();
        let paths: Vec<&str> = e.0.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "$.collector.path",
                "$.collector.timeout_ms",
                "$.batch.max_records",
                "$.batch.max_age_msec",
                "$.resource",
                "$.extra"
            ]
        );
        let msg = e.to_string();
        assert!(msg.contains("6 problems"), "{msg}");
        assert!(
            msg.contains("$.batch.max_records: expected an integer from 1 to 100000, got 0"),
            "{msg}"
        );
        assert!(
            msg.contains("unknown field; expected one of: max_records, max_age_ms"),
            "{msg}"
        );
    }

    #[test]
    fn delivery_fields() {
        let d = FilterConfig::default();
        assert_eq!(d.collector.compression, Compression::Gzip { level: 1 });
        assert_eq!(
            (d.batch.retry_initial_ms, d.batch.retry_max_ms),
            (200, 30_000)
        );
        let c = FilterConfig::from_json(
            br#"{"collector":{"compression":"gzip","compression_level":6},
                "batch":{"retry_initial_ms":50,"retry_max_ms":100}}"#,
        )
        .unwrap();
        assert_eq!(c.collector.compression, Compression::Gzip { level: 6 });
        assert_eq!((c.batch.retry_initial_ms, c.batch.retry_max_ms), (50, 100));
        let c = FilterConfig::from_json(br#"{"collector":{"compression":"none"}}"#).unwrap();
        assert_eq!(c.collector.compression, Compression::None);
        assert_eq!(c.collector.protocol, Protocol::Json);
        let c = FilterConfig::from_json(br#"{"collector":{"protocol":"http/protobuf"}}"#).unwrap();
        assert_eq!(c.collector.protocol, Protocol::Protobuf);
        let e = FilterConfig::from_json(br#"{"collector":{"protocol":"grpc"}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("$.collector.protocol") && e.contains("http/protobuf"),
            "{e}"
        );
    }

    /// What an unknown `collector.compression` is told: zstd only where the build has it.
    fn compression_choices() -> &'static str {
        if Compression::ZSTD {
            r#"expected "gzip", "zstd" or "none""#
        } else {
            r#"expected "gzip" or "none""#
        }
    }

    #[test]
    fn zstd_is_refused_where_the_build_has_none() {
        let r = FilterConfig::from_json(br#"{"collector":{"compression":"zstd"}}"#);
        if Compression::ZSTD {
            assert!(r.is_ok(), "{r:?}");
        } else {
            let e = r.unwrap_err();
            assert!(
                e.0[0].path == "$.collector.compression"
                    && e.0[0]
                        .reason
                        .starts_with("zstd is only in the native module"),
                "{e}"
            );
        }
    }

    // zstd is the native builds' (core's tests also run compiled to Wasm).
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn the_native_module_defaults_to_zstd_and_keeps_an_explicit_choice() {
        let d = FilterConfig::from_json_native(b"").unwrap();
        assert_eq!(d.collector.compression, Compression::Zstd { level: 1 });
        let c =
            FilterConfig::from_json_native(br#"{"collector":{"compression_level":3}}"#).unwrap();
        assert_eq!(c.collector.compression, Compression::Zstd { level: 3 });
        let c = FilterConfig::from_json_native(br#"{"collector":{"compression":"gzip"}}"#).unwrap();
        assert_eq!(c.collector.compression, Compression::Gzip { level: 1 });
        let c = FilterConfig::from_json(br#"{"collector":{"compression":"zstd"}}"#).unwrap();
        assert_eq!(
            c.collector.compression,
            Compression::Zstd { level: 1 },
            "natively the Wasm module's parser accepts it too (its glue is tested natively)"
        );
        assert_eq!(
            FilterConfig::from_json(b"").unwrap().collector.compression,
            Compression::Gzip { level: 1 },
            "gzip stays the Wasm module's default"
        );
    }

    #[test]
    fn delivery_errors_are_reported_with_paths() {
        let e = FilterConfig::from_json(
            br#"{"collector":{"compression":"brotli","compression_level":0},
                "batch":{"retry_initial_ms":0,"retry_max_ms":99}}"#,
        )
        .unwrap_err();
        let got: Vec<(&str, &str)> =
            e.0.iter()
                .map(|f| (f.path.as_str(), f.reason.as_str()))
                .collect();
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0].0, "$.collector.compression");
        assert_eq!(got[0].1, compression_choices(), "{got:?}");
        assert_eq!(
            got[1],
            (
                "$.collector.compression_level",
                "expected an integer from 1 to 9, got 0"
            )
        );
        assert_eq!(
            got[2],
            (
                "$.batch.retry_initial_ms",
                "expected an integer from 1 to 60000, got 0"
            )
        );
        assert_eq!(
            got[3],
            (
                "$.batch.retry_max_ms",
                "expected an integer from 100 to 3600000, got 99"
            )
        );
        let e = FilterConfig::from_json(
            br#"{"collector":{"compression":"brotli"},"batch":{"retry_initial_ms":5000,"retry_max_ms":1000}}"#,
        )
        .unwrap_err();
        let got: Vec<String> =
            e.0.iter()
                .map(|f| format!("{}: {}", f.path, f.reason))
                .collect();
        assert_eq!(
            got,
            [
                format!("$.collector.compression: {}", compression_choices()),
                "$.batch.retry_max_ms: must be at least retry_initial_ms (5000), got 1000".into()
            ]
        );
        let e = FilterConfig::from_json(br#"{"collector":{"compresion":"gzip"}}"#).unwrap_err();
        assert!(
            e.0[0].reason.contains("compression, compression_level"),
            "{e}"
        );
    }

    #[test]
    fn redaction_errors_join_the_others_with_their_paths() {
        let e = FilterConfig::from_json(
            br#"{"batch":{"max_records":0},
                "redaction":{"detectors":{"emial":"mask","card":"shred"},"ip":{"ipv4_prefix":40},"bogus":1}}"#,
        )
        .unwrap_err();
        let paths: Vec<&str> = e.0.iter().map(|f| f.path.as_str()).collect();
        for p in [
            "$.batch.max_records",
            "$.redaction.detectors.emial",
            "$.redaction.detectors.card",
            "$.redaction.ip.ipv4_prefix",
            "$.redaction.bogus",
        ] {
            assert!(paths.contains(&p), "{p} missing from {paths:?}");
        }
    }

    #[test]
    fn no_redaction_section_is_the_secure_default() {
        let c = FilterConfig::from_json(b"{}").unwrap();
        assert_eq!(c.redaction.version(), RedactionPolicy::default().version());
        let custom =
            FilterConfig::from_json(br#"{"redaction":{"ip":{"ipv4_prefix":16}}}"#).unwrap();
        assert_ne!(
            custom.redaction.version(),
            c.redaction.version(),
            "the version tracks the policy"
        );
    }

    #[test]
    fn sampling_is_off_without_a_section_and_read_with_one() {
        let off = FilterConfig::from_json(br#"{"sampling":null}"#).unwrap();
        assert!(!off.sampling.is_enabled());
        assert!(!FilterConfig::default().sampling.is_enabled());
        assert_eq!(
            off.sampling.tally_interval_ms(),
            crate::sample::DEFAULT_TALLY_INTERVAL_MS
        );
        let on = FilterConfig::from_json(
            br#"{"sampling":{"default_rate":0.5,"tally_interval_ms":500,
                "rules":[{"route":"/api*","rate":0.1}]}}"#,
        )
        .unwrap();
        assert!(on.sampling.is_enabled());
        assert_eq!(on.sampling.tally_interval_ms(), 500);
        let same = FilterConfig::from_json(
            br#"{"sampling":{"default_rate":0.5,"rules":[{"route":"/api*","rate":0.1}]}}"#,
        )
        .unwrap();
        assert_eq!(
            on.sampling.version(),
            same.sampling.version(),
            "the tally interval is not part of the policy"
        );
        assert_ne!(on.sampling.version(), off.sampling.version());
        assert!(
            FilterConfig::from_json(br#"{"sampling":{}}"#)
                .unwrap()
                .sampling
                .is_enabled(),
            "an empty section turns sampling on"
        );
    }

    #[test]
    fn sampling_errors_join_the_others_with_their_paths() {
        let e = FilterConfig::from_json(
            br#"{"batch":{"max_records":0},
                "sampling":{"default_rate":1.5,"tally_interval_ms":5,"rules":[{"rate":-1}],"bogus":1}}"#,
        )
        .unwrap_err();
        let paths: Vec<&str> = e.0.iter().map(|f| f.path.as_str()).collect();
        for p in [
            "$.batch.max_records",
            "$.sampling.default_rate",
            "$.sampling.tally_interval_ms",
            "$.sampling.rules[0].rate",
            "$.sampling.bogus",
        ] {
            assert!(paths.contains(&p), "{p} missing from {paths:?}");
        }
        let e = FilterConfig::from_json(br#"{"sampling":5}"#).unwrap_err();
        assert_eq!(e.0[0].path, "$.sampling");
    }

    #[test]
    fn wrong_shapes() {
        let e = FilterConfig::from_json(br#"{"batch": 5}"#).unwrap_err();
        assert_eq!(e.0[0].path, "$.batch");
        let e = FilterConfig::from_json(b"[1]").unwrap_err();
        assert_eq!(e.0[0].path, "$");
        let e = FilterConfig::from_json(b"{not json").unwrap_err();
        assert!(e.0[0].reason.starts_with("not valid JSON"));
    }
}
