//! The settings in force when the report is made: what the collector's configuration says about
//! access, transmission, detection, redaction and retention. The `meshlog` binary fills this
//! from its configuration file (it owns the TOML and the server's types), so this crate needs
//! neither; the report states the file it came from.

use crate::model::{CollectorRedaction, Expiry, PrincipalInForce, TlsInForce};
use meshlog_format::time::rfc3339;
use meshlog_retention::policy::RetentionConfig;
use std::path::PathBuf;

/// Everything the report states as "in force".
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The configuration file read (none: defaults).
    pub config_file: Option<PathBuf>,
    /// Listeners, `(name, address)`.
    pub listeners: Vec<(String, String)>,
    /// `insecure`.
    pub insecure: bool,
    /// `[auth]` present.
    pub auth_enforced: bool,
    /// `[[auth.principals]]`.
    pub principals: Vec<PrincipalInForce>,
    /// `[[auth.tokens]]` ids.
    pub tokens: Vec<String>,
    /// `[tls]`.
    pub tls: Option<TlsSettings>,
    /// `[detect] enabled`.
    pub detection_enabled: bool,
    /// Detection rules in force, by name ([`rules_in_force`]).
    pub rules: Vec<String>,
    /// `[redaction]`.
    pub collector_redaction: CollectorRedaction,
    /// `[retention]`.
    pub retention: Option<RetentionConfig>,
}

/// `[tls]` and what its certificates say.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// `cert_file`.
    pub cert_file: PathBuf,
    /// `client_ca_file`.
    pub client_ca_file: Option<PathBuf>,
    /// `min_version`, as configured (`1.2`, `1.3`).
    pub min_version: String,
    /// `reload_interval_s`.
    pub reload_interval_s: u64,
    /// The server certificate's `notAfter`, Unix seconds.
    pub cert_not_after_unix_s: Option<i64>,
    /// The client CA certificate's `notAfter`, Unix seconds.
    pub client_ca_not_after_unix_s: Option<i64>,
}

fn expiry(not_after_s: Option<i64>, now_ns: u64) -> Option<Expiry> {
    let s = not_after_s?;
    let now_s = i64::try_from(now_ns / 1_000_000_000).unwrap_or(i64::MAX);
    Some(Expiry {
        not_after: rfc3339(u64::try_from(s).unwrap_or(0).saturating_mul(1_000_000_000)),
        days_left: (s - now_s).div_euclid(86_400),
    })
}

impl TlsSettings {
    /// As the report states it at `now_ns`.
    pub fn in_force(&self, now_ns: u64) -> TlsInForce {
        TlsInForce {
            cert_file: self.cert_file.display().to_string(),
            client_ca_file: self
                .client_ca_file
                .as_ref()
                .map(|p| p.display().to_string()),
            mutual: self.client_ca_file.is_some(),
            min_version: self.min_version.clone(),
            reload_interval_s: self.reload_interval_s,
            cert_expiry: expiry(self.cert_not_after_unix_s, now_ns),
            client_ca_expiry: expiry(self.client_ca_not_after_unix_s, now_ns),
        }
    }
}

/// The detection rules `[detect]` switches on, by name (none when detection is off).
pub fn rules_in_force(cfg: &meshlog_detect::DetectConfig) -> Vec<String> {
    if !cfg.enabled {
        return Vec::new();
    }
    meshlog_detect::Detector::new(cfg)
        .rule_names()
        .into_iter()
        .map(str::to_owned)
        .collect()
}
