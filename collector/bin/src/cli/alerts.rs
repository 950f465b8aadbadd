//! `meshlog alerts`: the alerts of a data directory (`--data-dir`, local administration, not
//! audited) or of a running collector (`--server URL`, its `GET /api/v1/alerts`, audited and
//! tenant-scoped), one JSON object per alert and line: id, rule, group, state, when it fired
//! and resolved, its triage and time to acknowledge (docs/detection.md).

use super::*;
use meshlog_server::query::ReadSource;
use meshlog_server::query::alerts::{entry_json, load};
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

/// `meshlog alerts` options.
#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// Data directory to read [default: ./meshlog-data].
    #[arg(long, value_name = "DIR", conflicts_with = "server")]
    pub data_dir: Option<PathBuf>,
    /// The data-encryption key file, for an encrypted store.
    #[arg(long, value_name = "FILE", conflicts_with = "server")]
    pub key_file: Option<PathBuf>,
    /// Ask the collector at URL (http(s)://host:port) instead of reading a data directory.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// A bearer token ([[auth.tokens]]) for `--server`.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MESHLOG_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Only alerts firing now, or only resolved ones.
    #[arg(long, value_parser = ["firing", "resolved"])]
    pub state: Option<String>,
}

/// Runs `meshlog alerts`, printing to `out`.
pub(super) fn alerts(a: &AlertsArgs, out: &mut impl Write) -> Result<(), RunError> {
    let list: Vec<Value> = match &a.server {
        Some(url) => remote(url, a)?,
        None => {
            let source = ReadSource {
                data_dir: a
                    .data_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("./meshlog-data")),
                keys: query::load_data_keys(a.key_file.as_deref())?,
            };
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
            let h = load(&source, |_| true, now).map_err(RunError::Query)?;
            h.alerts()
                .into_iter()
                .filter(|e| match a.state.as_deref() {
                    Some("firing") => e.is_firing(),
                    Some(_) => !e.is_firing(),
                    None => true,
                })
                .map(entry_json)
                .collect()
        }
    };
    for v in list {
        writeln!(out, "{v}").map_err(|e| RunError::Read(ReadError::Output(e)))?;
    }
    Ok(())
}

fn remote(server: &str, a: &AlertsArgs) -> Result<Vec<Value>, RunError> {
    let url = format!("{}/api/v1/alerts", server.trim_end_matches('/'));
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| RunError::Remote(e.to_string()))?;
    let mut req = client.get(&url);
    if let Some(s) = &a.state {
        req = req.query(&[("state", s)]);
    }
    if let Some(t) = &a.token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .map_err(|e| RunError::Remote(format!("{url}: {e}")))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .map_err(|e| RunError::Remote(format!("{url}: answer is not JSON: {e}")))?;
    if !status.is_success() {
        let msg = body.get("message").and_then(Value::as_str).unwrap_or("");
        return Err(RunError::Remote(format!(
            "{url}: the collector answered {status}: {msg}"
        )));
    }
    Ok(body
        .get("alerts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}
