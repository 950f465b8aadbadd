//! `[sink.clickhouse]`: where the sink writes, as whom, and how it batches. Read by the one
//! configuration walker ([`Fields`]), so every bad key is named with the others and unknown
//! keys are refused.

use meshlog_core::config::fields::{FieldError, Fields, Problem};
use std::path::PathBuf;

/// Default database.
pub const DEFAULT_DATABASE: &str = "default";
/// Default table: the OpenTelemetry exporter's name.
pub const DEFAULT_TABLE: &str = "otel_logs";
/// Default most rows per INSERT (ClickHouse wants thousands per insert, not one).
pub const DEFAULT_BATCH_MAX_RECORDS: u64 = 50_000;
/// Default longest wait before a partial batch is sent, milliseconds.
pub const DEFAULT_FLUSH_INTERVAL_MS: u64 = 1_000;
/// Default request timeout, milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// The `[sink.clickhouse]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickHouseConfig {
    /// `url`: the HTTP(S) interface, e.g. `http://127.0.0.1:8123` (required).
    pub url: String,
    /// `database` (default `default`): letters, digits and `_`.
    pub database: String,
    /// `table` (default `otel_logs`): letters, digits and `_`.
    pub table: String,
    /// `user` (default: ClickHouse's `default` user).
    pub user: Option<String>,
    /// `password`.
    pub password: Option<String>,
    /// `ca_file`: PEM CA certificates to trust for an `https://` url (default: the WebPKI
    /// roots).
    pub ca_file: Option<PathBuf>,
    /// `collector_id`: this collector's name in the table's `CollectorId` column (default: the
    /// one kept in `<data_dir>/sink/collector-id`, made from the host name on first start).
    pub collector_id: Option<String>,
    /// `batch_max_records`: most rows per INSERT, 1 to 1000000.
    pub batch_max_records: u64,
    /// `flush_interval_ms`: longest wait for a fuller batch, 10 to 60000.
    pub flush_interval_ms: u64,
    /// `timeout_ms`: one request's timeout, 1000 to 600000.
    pub timeout_ms: u64,
}

impl ClickHouseConfig {
    /// A configuration for `url` with every default.
    pub fn new(url: impl Into<String>) -> Self {
        ClickHouseConfig {
            url: url.into(),
            database: DEFAULT_DATABASE.into(),
            table: DEFAULT_TABLE.into(),
            user: None,
            password: None,
            ca_file: None,
            collector_id: None,
            batch_max_records: DEFAULT_BATCH_MAX_RECORDS,
            flush_interval_ms: DEFAULT_FLUSH_INTERVAL_MS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }

    /// Reads the section; every problem goes to `errs`. `None` when a required key is missing
    /// or wrong.
    pub fn parse(mut t: Fields<'_>, errs: &mut Vec<FieldError>) -> Option<ClickHouseConfig> {
        let url_path = t.child_path("url");
        let url = match t.raw("url") {
            None => {
                errs.push(FieldError::new(
                    url_path,
                    Problem::Missing {
                        expected: "the ClickHouse HTTP interface, e.g. \"http://127.0.0.1:8123\""
                            .into(),
                    },
                ));
                None
            }
            Some(serde_json::Value::String(s)) => match check_url(s) {
                Ok(()) => Some(s.trim_end_matches('/').to_owned()),
                Err(reason) => {
                    errs.push(FieldError::invalid(url_path, reason));
                    None
                }
            },
            Some(v) => {
                errs.push(FieldError::new(
                    url_path,
                    Problem::WrongType {
                        expected: "a string (an http:// or https:// URL)".into(),
                        got: v.to_string(),
                    },
                ));
                None
            }
        };
        let database = t.text("database", DEFAULT_DATABASE, check_identifier, errs);
        let table = t.text("table", DEFAULT_TABLE, check_identifier, errs);
        let user = non_empty(&mut t, "user", errs);
        let password = t.string("password", errs);
        let ca_file = non_empty(&mut t, "ca_file", errs).map(PathBuf::from);
        let collector_id = t.raw("collector_id").and_then(|_| {
            let p = t.child_path("collector_id");
            let s = t.string("collector_id", errs)?;
            match check_collector_id(&s) {
                None => Some(s),
                Some(reason) => {
                    errs.push(FieldError::invalid(p, reason));
                    None
                }
            }
        });
        let batch_max_records = t.int_in(
            "batch_max_records",
            DEFAULT_BATCH_MAX_RECORDS,
            1,
            1_000_000,
            errs,
        );
        let flush_interval_ms = t.int_in(
            "flush_interval_ms",
            DEFAULT_FLUSH_INTERVAL_MS,
            10,
            60_000,
            errs,
        );
        let timeout_ms = t.int_in("timeout_ms", DEFAULT_TIMEOUT_MS, 1_000, 600_000, errs);
        if ca_file.is_some() && url.as_deref().is_some_and(|u| u.starts_with("http://")) {
            errs.push(FieldError::invalid(
                t.child_path("ca_file"),
                "set, but url is http:// (plain text): use an https:// url",
            ));
        }
        t.finish(errs);
        Some(ClickHouseConfig {
            url: url?,
            database,
            table,
            user,
            password,
            ca_file,
            collector_id,
            batch_max_records,
            flush_interval_ms,
            timeout_ms,
        })
    }
}

fn non_empty(t: &mut Fields<'_>, key: &'static str, errs: &mut Vec<FieldError>) -> Option<String> {
    let path = t.child_path(key);
    let s = t.string(key, errs)?;
    if s.is_empty() {
        errs.push(FieldError::invalid(path, "must not be empty"));
        return None;
    }
    Some(s)
}

fn check_url(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| format!("expected an http:// or https:// URL, got {s:?}"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("no host in {s:?}"));
    }
    if rest.contains(['?', '#']) {
        return Err(format!(
            "{s:?} has a query or fragment: give settings as keys of [sink.clickhouse]"
        ));
    }
    if host.contains('@') {
        return Err("credentials in the URL: use the user and password keys".into());
    }
    Ok(())
}

/// A database or table name the sink can put in SQL as it is.
pub fn check_identifier(s: &str) -> Option<&'static str> {
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && s.len() <= 128 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        None
    } else {
        Some("expected a name of letters, digits and '_' (not starting with a digit), at most 128")
    }
}

/// A collector id: 1 to 128 visible ASCII characters.
pub fn check_collector_id(s: &str) -> Option<&'static str> {
    if !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()) {
        None
    } else {
        Some("expected 1 to 128 visible ASCII characters (no spaces)")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> (Option<ClickHouseConfig>, Vec<String>) {
        let mut errs = Vec::new();
        let t = Fields::object("sink.clickhouse", Some(&v), &mut errs);
        let c = ClickHouseConfig::parse(t, &mut errs);
        (c, errs.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn defaults_and_every_key() {
        let (c, e) = parse(json!({"url": "http://127.0.0.1:8123/"}));
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(c.unwrap(), ClickHouseConfig::new("http://127.0.0.1:8123"));
        let (c, e) = parse(json!({
            "url": "https://ch.example:8443", "database": "logs", "table": "mesh",
            "user": "meshlog", "password": "pw", "ca_file": "/etc/ca.pem",
            "collector_id": "c-1", "batch_max_records": 10, "flush_interval_ms": 50,
            "timeout_ms": 2000,
        }));
        assert!(e.is_empty(), "{e:?}");
        let c = c.unwrap();
        assert_eq!(
            (c.database.as_str(), c.table.as_str(), c.batch_max_records),
            ("logs", "mesh", 10)
        );
        assert_eq!(c.collector_id.as_deref(), Some("c-1"));
    }

    #[test]
    fn every_bad_key_is_named() {
        let (c, e) = parse(json!({
            "url": "ftp://x", "database": "a-b", "table": "1x", "user": "",
            "collector_id": "has space", "batch_max_records": 0, "flush_interval_ms": "1s",
            "tls": true,
        }));
        assert!(c.is_none());
        let joined = e.join("\n");
        for key in [
            "sink.clickhouse.url:",
            "sink.clickhouse.database:",
            "sink.clickhouse.table:",
            "sink.clickhouse.user:",
            "sink.clickhouse.collector_id:",
            "sink.clickhouse.batch_max_records:",
            "sink.clickhouse.flush_interval_ms:",
            "sink.clickhouse.tls: unknown field",
        ] {
            assert!(joined.contains(key), "{key} in {joined}");
        }
        let (_, e) = parse(json!({}));
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("sink.clickhouse.url: required"), "{e:?}");
        let (_, e) = parse(json!({"url": "http://h:1", "ca_file": "/ca.pem"}));
        assert!(e[0].contains("ca_file"), "{e:?}");
    }
}
