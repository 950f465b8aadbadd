//! The `[witness]` section of the collector's configuration: which witnesses `serve` asks to
//! cosign each new checkpoint, and whether it serves the witness endpoint for its peers.
//!
//! ```toml
//! [witness]
//! timeout_ms = 5000                     # per request to a witness
//! [[witness.ask]]                       # repeat for each witness
//! url = "http://127.0.0.1:7380"         # its base URL (POST <url>/add-checkpoint)
//! public_key = "example.com/w1+0a1b2c3d+AQ..."   # its verifier key (`meshlog keygen`)
//! [witness.serve]                       # optional: be a witness for peers
//! listen = "127.0.0.1:7380"
//! key_file = "/etc/meshlog/witness.key" # the witness signing key (never the log's)
//! state_dir = "/var/lib/meshlog-witness"
//! logs = ["peer.example/meshlog+12345678+AQ..."]  # verifier keys of the logs it witnesses
//! ```
//!
//! Every key is parsed here, so a bad one is a problem naming its field
//! (`witness.ask[1].public_key`), reported with every other problem of the file.

use meshlog_core::config::{FieldError, Fields};
use meshlog_tlog::keys::VerifierKey;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Default time for one request to a witness, milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 5000;

/// The `[witness]` section.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WitnessConfig {
    /// `[[witness.ask]]`: the witnesses asked to cosign each new checkpoint.
    pub ask: Vec<AskWitness>,
    /// `[witness.serve]`: the witness endpoint this collector serves for its peers.
    pub serve: Option<ServeWitness>,
    /// `timeout_ms`: per request to a witness, 100 to 60000 (default 5000).
    pub timeout_ms: u64,
}

/// A witness to ask.
#[derive(Debug, Clone, PartialEq)]
pub struct AskWitness {
    /// `url`: its base URL, `http://` or `https://`.
    pub url: String,
    /// `public_key`: its verifier key.
    pub public_key: VerifierKey,
}

/// The witness endpoint to serve.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeWitness {
    /// `listen`: its own listener.
    pub listen: SocketAddr,
    /// `key_file`: the witness's signing key file.
    pub key_file: PathBuf,
    /// `state_dir`: where it keeps the latest checkpoint of each log.
    pub state_dir: PathBuf,
    /// `logs`: the verifier keys of the logs it cosigns (each also covering its retention
    /// class logs, `<name>/<class>`).
    pub logs: Vec<VerifierKey>,
}

/// A verifier key at `path`, or a problem naming it.
fn verifier(text: &str, path: &str, errs: &mut Vec<FieldError>) -> Option<VerifierKey> {
    VerifierKey::parse(text.trim())
        .map_err(|e| {
            errs.push(FieldError::invalid(
                path,
                format!(
                    "not a verifier key (<name>+<key id>+<base64>, as `meshlog keygen` prints): {e}"
                ),
            ))
        })
        .ok()
}

impl WitnessConfig {
    /// Reads the `[witness]` table, every problem into `errs`.
    pub fn parse(mut t: Fields<'_>, errs: &mut Vec<FieldError>) -> WitnessConfig {
        let mut cfg = WitnessConfig {
            timeout_ms: t
                .int("timeout_ms", 100..=60_000, errs)
                .map_or(DEFAULT_TIMEOUT_MS, |v| v as u64),
            ..WitnessConfig::default()
        };
        for mut a in t.tables("ask", errs) {
            let url_path = a.child_path("url");
            let key_path = a.child_path("public_key");
            let url = a.required_string("url", errs);
            if let Some(u) = &url
                && !(u.starts_with("http://") || u.starts_with("https://"))
            {
                errs.push(FieldError::invalid(
                    &url_path,
                    format!("must start with http:// or https://, got {u:?}"),
                ));
            }
            let key = a
                .required_string("public_key", errs)
                .and_then(|k| verifier(&k, &key_path, errs));
            a.finish(errs);
            if let (Some(url), Some(public_key)) = (url, key) {
                cfg.ask.push(AskWitness {
                    url: url.trim_end_matches('/').to_owned(),
                    public_key,
                });
            }
        }
        if let Some(mut s) = t.table("serve", errs) {
            let listen_path = s.child_path("listen");
            let listen = s.required_string("listen", errs).and_then(|l| {
                l.parse::<SocketAddr>()
                    .map_err(|_| {
                        errs.push(FieldError::invalid(
                            &listen_path,
                            format!("not a socket address such as \"127.0.0.1:7380\": {l:?}"),
                        ))
                    })
                    .ok()
            });
            let key_file = s.required_string("key_file", errs).map(PathBuf::from);
            let state_dir = s.required_string("state_dir", errs).map(PathBuf::from);
            let logs_path = s.child_path("logs");
            let logs: Vec<VerifierKey> = s
                .strings("logs", errs)
                .unwrap_or_default()
                .iter()
                .enumerate()
                .filter_map(|(i, k)| verifier(k, &format!("{logs_path}[{i}]"), errs))
                .collect();
            s.finish(errs);
            if let (Some(listen), Some(key_file), Some(state_dir)) = (listen, key_file, state_dir) {
                cfg.serve = Some(ServeWitness {
                    listen,
                    key_file,
                    state_dir,
                    logs,
                });
            }
        }
        t.finish(errs);
        cfg
    }
}
