//! Collector configuration: a TOML file (`--config meshlog.toml`), then command-line flags.
//!
//! The file is parsed into a plain TOML table and every key is checked here, so an operator sees
//! every problem in one go (each with its key and reason) instead of fixing them one restart at
//! a time. Unknown keys are errors: a misspelt limit that silently falls back to its default is
//! worse than a refusal to start. No file at all means all defaults. The `[retention]` section
//! is read by [`meshlog_retention::policy`], into the same list of problems.

use meshlog_core::config::fields::{self, FieldError, Fields};
use meshlog_retention::policy::{self, RetentionConfig};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

const KIB: i64 = 1024;
const MIB: i64 = 1024 * KIB;
const GIB: i64 = 1024 * MIB;

/// Smallest accepted body limit, bytes.
pub const MIN_BODY_BYTES: i64 = KIB;
/// Largest accepted body (and decoded body) limit, bytes.
pub const MAX_BODY_BYTES: i64 = GIB;
/// Smallest accepted segment size, bytes.
pub const MIN_SEGMENT_BYTES: i64 = 64 * KIB;
/// Largest accepted segment size, bytes.
pub const MAX_SEGMENT_BYTES: i64 = 1024 * GIB;
/// Smallest accepted ingest queue budget, bytes.
pub const MIN_QUEUE_BYTES: i64 = 64 * KIB;
/// Largest accepted ingest queue budget, bytes.
pub const MAX_QUEUE_BYTES: i64 = 64 * GIB;
/// Shortest accepted ack timeout, milliseconds.
pub const MIN_ACK_TIMEOUT_MS: i64 = 100;
/// Longest accepted ack timeout, milliseconds.
pub const MAX_ACK_TIMEOUT_MS: i64 = 600_000;
/// Smallest accepted dedup window, batch ids.
pub const MIN_DEDUP_WINDOW: i64 = 1000;
/// Largest accepted dedup window, batch ids (about 5 GiB of memory when full).
pub const MAX_DEDUP_WINDOW: i64 = 100_000_000;
pub use meshlog_store::config::{MAX_CHECKPOINT_INTERVAL_S, MIN_CHECKPOINT_INTERVAL_S};

/// The collector's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `data_dir`: directory holding the segment store; created if missing.
    /// Default `./meshlog-data`.
    pub data_dir: PathBuf,
    /// `listen`: socket address for OTLP/HTTP, `IP:PORT` (port 0 picks a free port).
    /// Default `127.0.0.1:4318`, the OTLP/HTTP port.
    pub listen: SocketAddr,
    /// `max_body_bytes`: largest request body accepted as received (before gzip decoding),
    /// bytes, 1024 to 1073741824. Larger → 413. Default 16777216 (16 MiB).
    pub max_body_bytes: usize,
    /// `max_decoded_bytes`: largest request body after gzip or zstd decoding, bytes, from
    /// `max_body_bytes` to 1073741824. Larger → 413; decoding stops there, so a zip bomb costs at
    /// most this much memory. The canonical records of one request may take at most 4× this
    /// (uncompressed). Default 67108864 (64 MiB).
    pub max_decoded_bytes: usize,
    /// `segment_max_bytes`: start a new segment file rather than grow the active one past this,
    /// bytes, 65536 to 1099511627776 (a single larger frame still gets a segment of its own).
    /// Default 67108864 (64 MiB).
    pub segment_max_bytes: u64,
    /// `max_queue_bytes`: bytes of accepted batches that may wait to be stored (request bodies
    /// being decoded, then encoded frames until their fsync), 65536 to 68719476736. Past it new
    /// batches get 503 with `Retry-After` at once instead of waiting in memory. Default 67108864
    /// (64 MiB).
    pub max_queue_bytes: u64,
    /// `ack_timeout_ms`: how long a request waits for the fsync of its batch, milliseconds, 100
    /// to 600000. Past it the answer is 503 (not acknowledged; the batch may still be stored,
    /// and a retry with the same batch id is then a duplicate). Default 15000.
    pub ack_timeout_ms: u64,
    /// `dedup_window_batches`: how many distinct batch ids (`meshlog-batch-id`) are remembered
    /// so a retried batch is stored once, 1000 to 100000000. About 52 bytes each when full. A
    /// retry older than the window is stored again. Default 2000000 (3 h 20 min at 10,000
    /// batches a minute; about 100 MiB).
    pub dedup_window_batches: usize,
    /// `[encryption] key_file`: encryption at rest. The data-encryption key file (made with
    /// `meshlog keygen --data-key FILE`; a relative path is relative to the working directory,
    /// like `data_dir`): every batch is sealed with its last key; frames sealed with any key in
    /// it stay readable. Read once at start, so rotation is adding a key and restarting. A
    /// `[encryption]` section without `key_file` is an error. Default: none (off; batches are
    /// stored compressed but in plain).
    pub encryption_key_file: Option<PathBuf>,
    /// `[redaction]`: the filter's redaction engine applied in ingest to records without a
    /// meshlog policy version (`scope = "all"`: every record). On by default with the secure
    /// default policy; `enabled = false` stores records as received. The other fields are the
    /// filter's `redaction` section's (docs/redaction.md).
    pub redaction: meshlog_server::ingest::pipeline::Redaction,
    /// `[integrity]`: signed checkpoints of the store's Merkle tree, and the key that signs
    /// them and retention's deletion receipts.
    pub integrity: IntegrityConfig,
    /// `[retention]`: retention classes, legal holds and the sweeper (see
    /// [`meshlog_retention`]). Default: none (one store in `data_dir`, nothing is ever deleted).
    pub retention: Option<RetentionConfig>,
    /// `grpc_listen`: socket address for OTLP/gRPC. Default: `listen`'s IP with port 4317
    /// when `listen`'s port is 4318 (so `127.0.0.1:4317` by default), else `listen`'s IP with
    /// port 0 (a free port, logged as `OTLP/gRPC on ADDR`): two collectors on other ports do
    /// not fight over 4317.
    pub grpc_listen: Option<SocketAddr>,
    /// `metrics_listen`: a listener of its own for `/metrics` (then not served on `listen`).
    /// Default: none.
    pub metrics_listen: Option<SocketAddr>,
    /// `[tls]`: TLS on every listener (see [`TlsConfig`]). Default: none (plain TCP, and
    /// `serve` refuses a non-loopback address without `--insecure`).
    pub tls: Option<TlsConfig>,
    /// `[auth]`: principals and tokens (see [`AuthConfig`]). Default: none.
    pub auth: Option<AuthConfig>,
    /// `[connections]`: connection caps and timeouts (see [`ConnLimits::parse`]).
    pub connections: ConnLimits,
    /// `insecure`: serve plain TCP on addresses that are not loopback, as `--insecure` does:
    /// for a collector whose own sidecar terminates mutual TLS in the pod (deploy/kubernetes).
    /// Default false: without `[tls]`, `serve` refuses such an address.
    pub insecure: bool,
    /// `[detect]`: streaming detection and alert delivery (docs/detection.md), read by
    /// [`meshlog_detect::parse`]. Default: every built-in rule on, no notification targets.
    pub detect: meshlog_detect::DetectConfig,
    /// `[witness]`: the witnesses asked to cosign each checkpoint, and the witness endpoint
    /// served for peers (see [`meshlog_witness::config`], docs/integrity.md). Default: none.
    pub witness: meshlog_witness::config::WitnessConfig,
    /// `[sink.clickhouse]`: export committed records to ClickHouse (docs/clickhouse.md), read
    /// by [`meshlog_sink::clickhouse::config`]. Default: none.
    pub sink_clickhouse: Option<meshlog_sink::clickhouse::config::ClickHouseConfig>,
}

pub use meshlog_server::auth::roles::AuthConfig;
pub use meshlog_server::auth::tls::TlsConfig;
pub use meshlog_server::net::ConnLimits;

/// The OTLP/gRPC port.
pub const DEFAULT_GRPC_PORT: u16 = 4317;

impl Config {
    /// The OTLP/gRPC address in effect (see [`Config::grpc_listen`]).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_listen.unwrap_or_else(|| {
            let port = if self.listen.port() == 4318 {
                DEFAULT_GRPC_PORT
            } else {
                0
            };
            SocketAddr::new(self.listen.ip(), port)
        })
    }
}

pub use meshlog_store::config::IntegrityConfig;
use meshlog_store::config::path_value;

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./meshlog-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 4318)),
            max_body_bytes: 16 << 20,
            max_decoded_bytes: 64 << 20,
            segment_max_bytes: 64 << 20,
            max_queue_bytes: 64 << 20,
            ack_timeout_ms: 15_000,
            dedup_window_batches: 2_000_000,
            encryption_key_file: None,
            redaction: Default::default(),
            integrity: IntegrityConfig::default(),
            retention: None,
            grpc_listen: None,
            metrics_listen: None,
            tls: None,
            auth: None,
            connections: ConnLimits::default(),
            insecure: false,
            detect: meshlog_detect::DetectConfig::default(),
            witness: Default::default(),
            sink_clickhouse: None,
        }
    }
}

/// Command-line values that take precedence over the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--data-dir`
    pub data_dir: Option<PathBuf>,
    /// `--listen`
    pub listen: Option<SocketAddr>,
    /// `--grpc-listen`
    pub grpc_listen: Option<SocketAddr>,
}

/// One bad key: its dotted path and what is wrong with it.
pub type Problem = FieldError;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {} is not valid TOML: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// The file is TOML, but keys are unknown or values wrong.
    #[error(
        "invalid configuration in {} ({} problem{}): {}",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems.iter().map(Problem::to_string).collect::<Vec<_>>().join("; ")
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found, in key order.
        problems: Vec<Problem>,
    },
}

impl Config {
    /// Reads `path` if given, else all defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text).map_err(|e| match e {
            TomlError::Syntax(message) => ConfigError::Syntax {
                path: path.to_owned(),
                message,
            },
            TomlError::Invalid(problems) => ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            },
        })
    }

    /// Parses TOML text, checking every key: each section is read by the component that owns
    /// it (`[integrity]` by the store, `[encryption]` by the on-disk format, `[retention]` by
    /// retention), all through one walker that finds unknown keys itself and reports every
    /// problem, sorted by key.
    pub fn from_toml(text: &str) -> Result<Config, TomlError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| TomlError::Syntax(e.to_string().trim_end().to_owned()))?;
        let doc = policy::toml_to_json(&toml::Value::Table(table));
        let mut errs = Vec::new();
        let mut root = Fields::root(&doc, &mut errs);
        let mut cfg = Config::default();
        if let Some(s) = path_value(&mut root, "data_dir", "a directory path", &mut errs) {
            cfg.data_dir = s;
        }
        if let Some(a) = socket_addr(&mut root, "listen", "127.0.0.1:4318", &mut errs) {
            cfg.listen = a;
        }
        cfg.grpc_listen = socket_addr(&mut root, "grpc_listen", "127.0.0.1:4317", &mut errs);
        cfg.metrics_listen = socket_addr(&mut root, "metrics_listen", "127.0.0.1:9464", &mut errs);
        let body = MIN_BODY_BYTES..=MAX_BODY_BYTES;
        if let Some(v) = root.int("max_body_bytes", body.clone(), &mut errs) {
            cfg.max_body_bytes = v as usize;
        }
        let decoded_path = root.child_path("max_decoded_bytes");
        let decoded = root.int("max_decoded_bytes", body, &mut errs);
        if let Some(v) = decoded {
            cfg.max_decoded_bytes = v as usize;
        }
        let segment = MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES;
        if let Some(v) = root.int("segment_max_bytes", segment, &mut errs) {
            cfg.segment_max_bytes = v as u64;
        }
        let queue = MIN_QUEUE_BYTES..=MAX_QUEUE_BYTES;
        if let Some(v) = root.int("max_queue_bytes", queue, &mut errs) {
            cfg.max_queue_bytes = v as u64;
        }
        let ack = MIN_ACK_TIMEOUT_MS..=MAX_ACK_TIMEOUT_MS;
        if let Some(v) = root.int("ack_timeout_ms", ack, &mut errs) {
            cfg.ack_timeout_ms = v as u64;
        }
        let dedup = MIN_DEDUP_WINDOW..=MAX_DEDUP_WINDOW;
        if let Some(v) = root.int("dedup_window_batches", dedup, &mut errs) {
            cfg.dedup_window_batches = v as usize;
        }
        if let Some(t) = root.table("encryption", &mut errs) {
            cfg.encryption_key_file = meshlog_format::encryption::parse_section(t, &mut errs);
        }
        if let Some(t) = root.table("redaction", &mut errs) {
            cfg.redaction =
                meshlog_server::ingest::pipeline::Redaction::parse_section(t, &mut errs);
        }
        if let Some(t) = root.table("integrity", &mut errs) {
            cfg.integrity = IntegrityConfig::parse(t, &mut errs);
        }
        if let Some(t) = root.table("retention", &mut errs) {
            cfg.retention = policy::parse(t, &mut errs);
        }
        if let Some(t) = root.table("tls", &mut errs) {
            cfg.tls = TlsConfig::parse(t, &mut errs);
        }
        if let Some(t) = root.table("auth", &mut errs) {
            cfg.auth = Some(AuthConfig::parse(t, &mut errs));
        }
        if let Some(t) = root.table("connections", &mut errs) {
            cfg.connections = ConnLimits::parse(t, &mut errs);
        }
        if let Some(b) = root.bool("insecure", &mut errs) {
            cfg.insecure = b;
        }
        if let Some(d) = meshlog_detect::parse(root.section("detect", &mut errs), &mut errs) {
            cfg.detect = d;
        }
        if let Some(t) = root.table("witness", &mut errs) {
            cfg.witness = meshlog_witness::config::WitnessConfig::parse(t, &mut errs);
        }
        if let Some(mut sink) = root.table("sink", &mut errs) {
            if let Some(t) = sink.table("clickhouse", &mut errs) {
                cfg.sink_clickhouse =
                    meshlog_sink::clickhouse::config::ClickHouseConfig::parse(t, &mut errs);
            }
            sink.finish(&mut errs);
        }
        root.finish(&mut errs);
        // Checked only when both values are individually valid, so one mistake is one problem.
        if decoded.is_some()
            && !errs.iter().any(|e| e.path == "max_body_bytes")
            && cfg.max_decoded_bytes < cfg.max_body_bytes
        {
            errs.push(FieldError::invalid(
                decoded_path,
                format!(
                    "must be at least max_body_bytes ({}), got {}",
                    cfg.max_body_bytes, cfg.max_decoded_bytes
                ),
            ));
        }
        if errs.is_empty() {
            return Ok(cfg);
        }
        errs.sort_by(|a, b| a.path.cmp(&b.path));
        Err(TomlError::Invalid(errs))
    }

    /// Applies command-line values over the file's.
    pub fn with_overrides(mut self, o: Overrides) -> Config {
        if let Some(d) = o.data_dir {
            self.data_dir = d;
        }
        if let Some(l) = o.listen {
            self.listen = l;
        }
        if let Some(l) = o.grpc_listen {
            self.grpc_listen = Some(l);
        }
        self
    }
}

/// A socket address at `key`, or a problem.
fn socket_addr(
    t: &mut Fields<'_>,
    key: &'static str,
    example: &str,
    errs: &mut Vec<FieldError>,
) -> Option<SocketAddr> {
    let path = t.child_path(key);
    match t.raw(key)? {
        Value::String(s) if s.parse::<SocketAddr>().is_ok() => s.parse().ok(),
        v => {
            errs.push(FieldError::new(
                path,
                fields::Problem::WrongType {
                    expected: format!("a socket address such as \"{example}\""),
                    got: v.to_string(),
                },
            ));
            None
        }
    }
}

/// Why TOML text was rejected (no file name attached yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TomlError {
    /// Not TOML.
    Syntax(String),
    /// Every bad key.
    Invalid(Vec<Problem>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn problems(text: &str) -> Vec<Problem> {
        match Config::from_toml(text) {
            Err(TomlError::Invalid(p)) => p,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn the_redaction_section_takes_the_filter_fields() {
        use meshlog_server::ingest::pipeline::redact::Scope;
        let d = Config::default();
        assert!(d.redaction.enabled, "on by default");
        assert_eq!(d.redaction.scope, Scope::Unmarked);
        let c = Config::from_toml(
            "[redaction]\nenabled = false\nscope = \"all\"\nmax_value_bytes = 4096\n\
             [redaction.detectors]\nemail = \"partial\"\n",
        )
        .unwrap();
        assert!(!c.redaction.enabled);
        assert_eq!(c.redaction.scope, Scope::All);
        assert_ne!(c.redaction.policy.version(), d.redaction.policy.version());
        let p = problems("[redaction]\nenabled = 1\n[redaction.detectors]\nemial = \"mask\"\n");
        let p: Vec<String> = p.iter().map(ToString::to_string).collect();
        assert!(
            p.iter().any(|e| e.starts_with("redaction.enabled")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|e| e.starts_with("redaction.detectors.emial")),
            "{p:?}"
        );
    }

    #[test]
    fn empty_file_and_no_file_are_all_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
        assert_eq!(Config::load(None).unwrap(), Config::default());
        let d = Config::default();
        assert_eq!(d.listen.to_string(), "127.0.0.1:4318");
        assert_eq!(d.data_dir, PathBuf::from("./meshlog-data"));
        assert_eq!(d.max_body_bytes, 16 * 1024 * 1024);
        assert_eq!(d.max_decoded_bytes, 64 * 1024 * 1024);
        assert_eq!(d.segment_max_bytes, 64 * 1024 * 1024);
        assert_eq!(d.max_queue_bytes, 64 * 1024 * 1024);
        assert_eq!(d.ack_timeout_ms, 15_000);
        assert_eq!(d.dedup_window_batches, 2_000_000);
        assert_eq!(d.integrity.signing_key, None);
        assert_eq!(d.integrity.checkpoint_interval_s, 60);
        assert_eq!(
            std::time::Duration::from_secs(d.integrity.checkpoint_interval_s),
            meshlog_store::ledger::DEFAULT_CHECKPOINT_INTERVAL,
            "one default"
        );
        let p = problems("integrity = 3\n");
        assert_eq!(
            p[0].to_string(),
            "integrity: expected an object, got a number"
        );
        assert_eq!(
            d.dedup_window_batches,
            meshlog_store::DEFAULT_DEDUP_WINDOW,
            "one default"
        );
        assert_eq!(
            Duration::from_millis(d.ack_timeout_ms),
            meshlog_server::ingest::DEFAULT_ACK_TIMEOUT,
            "one default"
        );
    }

    #[test]
    fn every_field_is_read() {
        let c = Config::from_toml(
            r#"
            data_dir = "/var/lib/meshlog"
            listen = "0.0.0.0:14318"
            max_body_bytes = 2048
            max_decoded_bytes = 4096
            segment_max_bytes = 65536
            max_queue_bytes = 1048576
            ack_timeout_ms = 250
            dedup_window_batches = 5000

            [encryption]
            key_file = "/etc/meshlog/data.keys"

            [integrity]
            signing_key = "/etc/meshlog/keys/signing.key"
            checkpoint_interval_s = 5

            [retention]
            default_days = 400
            "#,
        )
        .unwrap();
        assert_eq!(
            c,
            Config {
                data_dir: "/var/lib/meshlog".into(),
                listen: "0.0.0.0:14318".parse().unwrap(),
                max_body_bytes: 2048,
                max_decoded_bytes: 4096,
                segment_max_bytes: 65536,
                max_queue_bytes: 1 << 20,
                ack_timeout_ms: 250,
                dedup_window_batches: 5000,
                encryption_key_file: Some("/etc/meshlog/data.keys".into()),
                redaction: Default::default(),
                integrity: IntegrityConfig {
                    signing_key: Some("/etc/meshlog/keys/signing.key".into()),
                    checkpoint_interval_s: 5,
                    verify_interval_s: 3600,
                },
                retention: Some(RetentionConfig::default()),
                ..Config::default()
            }
        );
    }

    #[test]
    fn all_problems_are_reported_together_with_key_and_reason() {
        let p = problems(
            r#"
            listen = "localhost"
            max_body_bytes = "16MiB"
            max_decoded_bytes = 0
            segment_max_bytes = 1.5
            data_dir = 7
            bogus = true
            max_queue_bytes = 1024
            ack_timeout_ms = "15s"
            dedup_window_batches = -1
            [integrity]
            signing_key = ""
            checkpoint_interval_s = 0
            verify_interval_s = -1
            sign = true
            "#,
        );
        let got: Vec<String> = p.iter().map(Problem::to_string).collect();
        assert_eq!(
            got,
            vec![
                "ack_timeout_ms: expected an integer from 100 to 600000, got \"15s\"",
                "bogus: unknown field; expected one of: data_dir, listen, grpc_listen, \
                 metrics_listen, max_body_bytes, max_decoded_bytes, segment_max_bytes, \
                 max_queue_bytes, ack_timeout_ms, dedup_window_batches, encryption, redaction, \
                 integrity, retention, tls, auth, connections, insecure, detect, witness, sink",
                "data_dir: expected a non-empty string (a directory path), got 7",
                "dedup_window_batches: expected an integer from 1000 to 100000000, got -1",
                "integrity.checkpoint_interval_s: expected an integer from 1 to 86400, got 0",
                "integrity.sign: unknown field; expected one of: signing_key, checkpoint_interval_s, verify_interval_s",
                "integrity.signing_key: expected a non-empty string (a key file path), got \"\"",
                "integrity.verify_interval_s: expected an integer from 0 to 604800, got -1",
                "listen: expected a socket address such as \"127.0.0.1:4318\", got \"localhost\"",
                "max_body_bytes: expected an integer from 1024 to 1073741824, got \"16MiB\"",
                "max_decoded_bytes: expected an integer from 1024 to 1073741824, got 0",
                "max_queue_bytes: expected an integer from 65536 to 68719476736, got 1024",
                "segment_max_bytes: expected an integer from 65536 to 1099511627776, got 1.5",
            ]
        );
    }

    #[test]
    fn encryption_is_off_by_default_and_its_section_is_checked_key_by_key() {
        assert_eq!(Config::default().encryption_key_file, None);
        let c = Config::from_toml("[encryption]\nkey_file = \"keys/data.keys\"\n").unwrap();
        assert_eq!(c.encryption_key_file, Some(PathBuf::from("keys/data.keys")));
        let got =
            |text: &str| -> Vec<String> { problems(text).iter().map(Problem::to_string).collect() };
        assert_eq!(
            got("[encryption]\nkey_fil = \"x\"\n"),
            [
                "encryption.key_fil: unknown field; expected one of: key_file",
                "encryption.key_file: required: the data-encryption key file (without the \
                 section, batches are stored in plain)",
            ]
        );
        assert_eq!(
            got("[encryption]\nkey_file = \"\"\n"),
            ["encryption.key_file: expected a non-empty string (a key file path), got \"\""]
        );
        assert_eq!(
            got("encryption = \"on\"\nlisten = 1\n"),
            [
                "encryption: expected an object, got a string",
                "listen: expected a socket address such as \"127.0.0.1:4318\", got 1",
            ]
        );
    }

    #[test]
    fn retention_and_integrity_problems_join_the_others() {
        assert_eq!(
            Config::default().retention,
            None,
            "nothing expires by default"
        );
        let got: Vec<String> = problems(
            r#"
            listen = 1
            [integrity]
            signing_key = ""
            sign = true
            [retention]
            default_days = 0
            [[retention.classes]]
            name = "short"
            days = 30
            match = { "service.name" = "checkout" }
            [[retention.classes]]
            name = "short"
            days = 0
            match = { "service.name" = "cart" }
            [[retention.holds]]
            name = "case-1"
            reason = "litigation"
            classes = ["long"]
            "#,
        )
        .iter()
        .map(Problem::to_string)
        .collect();
        assert_eq!(
            got,
            [
                "integrity.sign: unknown field; expected one of: signing_key, checkpoint_interval_s, verify_interval_s",
                "integrity.signing_key: expected a non-empty string (a key file path), got \"\"",
                "listen: expected a socket address such as \"127.0.0.1:4318\", got 1",
                "retention.classes[1].days: expected an integer from 1 to 36500, got 0",
                "retention.classes[1].name: duplicate class name \"short\"",
                "retention.default_days: expected an integer from 1 to 36500, got 0",
                "retention.holds[0].classes: unknown class \"long\" (classes: short, default)",
            ]
        );
    }

    #[test]
    fn the_readme_retention_example_is_a_valid_configuration() {
        let readme = include_str!("../../../README.md");
        let section = readme.split("### Retention").nth(1).unwrap();
        let example = section
            .split("```toml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .unwrap();
        let c = Config::from_toml(example).unwrap();
        let r = c.retention.unwrap();
        assert_eq!(r.class_names(), ["short", "default"]);
        assert_eq!((r.days(0), r.days(1)), (30, 400));
        assert_eq!(r.holds[0].name, "case-4711");
        assert!(r.holds[0].from_unix_ns < r.holds[0].until_unix_ns);
        assert!(c.integrity.signing_key.is_some());
    }

    #[test]
    fn the_detect_section_is_read_by_the_detection_crate_with_every_problem_named() {
        let c = Config::from_toml(
            r#"
            [detect]
            replay_s = 600
            [detect.auth_failure_burst]
            threshold = 5
            [detect.notify]
            alertmanagers = ["http://127.0.0.1:9093"]
            "#,
        )
        .unwrap();
        assert_eq!(c.detect.replay_s, 600);
        assert_eq!(c.detect.auth_failure_burst.threshold, 5);
        assert_eq!(c.detect.notify.alertmanagers.len(), 1);
        assert!(Config::default().detect.enabled);

        let got = problems(
            r#"
            [detect]
            replay = 1
            [detect.error_spike]
            min_ratio = 2.0
            "#,
        );
        assert!(got.iter().any(|p| p.path == "detect.replay"), "{got:?}");
        assert!(
            got.iter().any(|p| p.path == "detect.error_spike.min_ratio"),
            "{got:?}"
        );
    }

    #[test]
    fn tls_auth_and_connections_sections_are_read_and_checked() {
        let c = Config::from_toml(
            r#"
            grpc_listen = "0.0.0.0:14317"
            metrics_listen = "127.0.0.1:9464"
            [tls]
            cert_file = "/etc/meshlog/tls/server.pem"
            key_file = "/etc/meshlog/tls/server.key"
            client_ca_file = "/etc/meshlog/tls/ca.pem"
            min_version = "1.3"
            [[auth.principals]]
            id = "spiffe://cluster.local/ns/*/sa/checkout"
            roles = ["ingest"]
            tenant = "shop"
            [[auth.tokens]]
            id = "scraper"
            sha256 = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
            [connections]
            max_connections_per_peer = 8
            header_read_timeout_ms = 2000
            "#,
        )
        .unwrap();
        assert_eq!(c.grpc_addr().to_string(), "0.0.0.0:14317");
        assert_eq!(c.metrics_listen.unwrap().port(), 9464);
        let tls = c.tls.unwrap();
        assert_eq!(
            tls.client_ca_file.as_deref(),
            Some(Path::new("/etc/meshlog/tls/ca.pem"))
        );
        assert_eq!(
            tls.min_version,
            meshlog_server::auth::tls::MinVersion::Tls13
        );
        let auth = c.auth.unwrap();
        assert_eq!(auth.principals[0].tenant.as_deref(), Some("shop"));
        assert_eq!(
            auth.tokens[0].sha256,
            meshlog_server::auth::identity::token_sha256("abc")
        );
        assert_eq!(c.connections.max_connections_per_peer, 8);
        assert_eq!(c.connections.header_read_timeout, Duration::from_secs(2));

        let d = Config::default();
        assert_eq!(d.grpc_addr().to_string(), "127.0.0.1:4317");
        let other = d.with_overrides(Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Overrides::default()
        });
        assert_eq!(other.grpc_addr().port(), 0);

        let got: Vec<String> = problems(
            r#"
            [tls]
            key_file = ""
            min_version = "1.1"
            [[auth.principals]]
            id = "x"
            roles = ["root"]
            [[auth.tokens]]
            id = "t"
            sha256 = "s3cret"
            [connections]
            idle_timeout_ms = 1
            "#,
        )
        .iter()
        .map(Problem::to_string)
        .collect();
        assert_eq!(
            got,
            [
                "auth.principals[0].roles: expected roles from \"ingest\", \"read\", \"admin\", \
                 \"metrics\", got \"root\"",
                "auth.tokens[0].sha256: expected 64 hex digits (the token's SHA-256, never the \
                 token), got 6 characters",
                "connections.idle_timeout_ms: expected an integer from 100 to 3600000, got 1",
                "tls.cert_file: required: a PEM file path",
                "tls.key_file: expected a non-empty string (a PEM file path), got \"\"",
                "tls.min_version: expected \"1.2\" or \"1.3\", got \"1.1\"",
            ]
        );
    }

    #[test]
    fn the_witness_section_names_every_bad_key() {
        let w = "example/w+00000000+AQ";
        let ps = problems(&format!(
            "[witness]\ntimeout_ms = 1\n[[witness.ask]]\nurl = \"ftp://x\"\npublic_key = \"{w}\"\n\
             [[witness.ask]]\nurl = \"http://ok\"\n[witness.serve]\nlisten = \"nope\"\n\
             key_file = \"k\"\nstate_dir = \"s\"\nlogs = [\"bad\"]\n"
        ));
        let paths: Vec<&str> = ps.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "witness.ask[0].public_key",
                "witness.ask[0].url",
                "witness.ask[1].public_key",
                "witness.serve.listen",
                "witness.serve.logs[0]",
                "witness.timeout_ms",
            ],
            "{ps:?}"
        );
        let key = meshlog_tlog::keys::SignerKey::from_seed("example/w", &[7; 32])
            .unwrap()
            .verifier();
        let cfg = Config::from_toml(&format!(
            "[[witness.ask]]\nurl = \"http://127.0.0.1:7380/\"\npublic_key = \"{key}\"\n"
        ))
        .unwrap();
        assert_eq!(cfg.witness.ask[0].url, "http://127.0.0.1:7380");
        assert_eq!(cfg.witness.ask[0].public_key, key);
        // With retention classes too: each class log is witnessed under its own origin.
        let cfg = Config::from_toml(&format!(
            "[[witness.ask]]\nurl = \"http://127.0.0.1:7380\"\npublic_key = \"{key}\"\n\
             [retention]\ndefault_days = 400\n[[retention.classes]]\nname = \"short\"\ndays = 1\n\
             match = {{ \"service.name\" = \"checkout\" }}\n"
        ))
        .unwrap();
        assert_eq!(cfg.witness.ask.len(), 1);
        assert_eq!(cfg.retention.unwrap().class_names(), ["short", "default"]);
    }

    #[test]
    fn the_clickhouse_sink_section_is_read_and_checked_key_by_key() {
        assert_eq!(Config::default().sink_clickhouse, None);
        let c = Config::from_toml(
            "[sink.clickhouse]\nurl = \"http://127.0.0.1:8123\"\ndatabase = \"logs\"\n\
             table = \"mesh\"\nuser = \"u\"\npassword = \"p\"\n",
        )
        .unwrap();
        let s = c.sink_clickhouse.unwrap();
        assert_eq!(
            (s.url.as_str(), s.database.as_str(), s.table.as_str()),
            ("http://127.0.0.1:8123", "logs", "mesh")
        );
        let got: Vec<String> = problems(
            "[sink.kafka]\nbrokers = 1\n[sink.clickhouse]\nurl = \"tcp://x\"\ntable = \"a.b\"\n\
             batch = 3\n",
        )
        .iter()
        .map(Problem::to_string)
        .collect();
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(
            got[0].starts_with("sink.clickhouse.batch: unknown field"),
            "{got:?}"
        );
        assert!(got[1].starts_with("sink.clickhouse.table: "), "{got:?}");
        assert!(
            got[2].starts_with("sink.clickhouse.url: expected an http:// or https:// URL"),
            "{got:?}"
        );
        assert!(
            got[3].starts_with("sink.kafka: unknown field; expected one of: clickhouse"),
            "{got:?}"
        );
    }

    #[test]
    fn decoded_limit_below_body_limit_is_a_problem() {
        let p = problems("max_body_bytes = 4096\nmax_decoded_bytes = 2048\n");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].path, "max_decoded_bytes");
        assert!(
            p[0].reason.contains("at least max_body_bytes (4096)"),
            "{}",
            p[0]
        );
    }

    #[test]
    fn syntax_errors_carry_the_position() {
        match Config::from_toml("listen = ") {
            Err(TomlError::Syntax(m)) => assert!(m.contains("line 1"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn file_errors_name_the_file_and_flags_override_the_file() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("meshlog.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9\"\ndata_dir = \"/from/file\"\nnope = 1\n",
        )
        .unwrap();
        let msg = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(
            msg.contains(
                "meshlog.toml (1 problem): nope: unknown field; expected one of: data_dir,"
            ),
            "{msg}"
        );

        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9\"\ndata_dir = \"/from/file\"\n",
        )
        .unwrap();
        let file = Config::load(Some(&path)).unwrap();
        let c = file.clone().with_overrides(Overrides {
            data_dir: Some("/from/flag".into()),
            listen: None,
            grpc_listen: None,
        });
        assert_eq!(c.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(c.listen.to_string(), "127.0.0.1:9", "file value kept");
        let c = file.with_overrides(Overrides {
            data_dir: None,
            listen: Some("127.0.0.1:0".parse().unwrap()),
            grpc_listen: None,
        });
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.data_dir, PathBuf::from("/from/file"));

        let missing = Config::load(Some(&d.path().join("missing.toml"))).unwrap_err();
        assert!(
            missing.to_string().contains("cannot read config file"),
            "{missing}"
        );
    }
}
