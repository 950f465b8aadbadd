//! The `[detect]` section: defaults, every parameter read, and errors that name the path.

use meshlog_core::config::fields::{FieldError, Fields};
use meshlog_detect::config::{Correlation, Op, SecretsGroup, Severity};
use meshlog_detect::{DetectConfig, parse};

fn read(toml_text: &str) -> Result<DetectConfig, Vec<FieldError>> {
    let doc: serde_json::Value = toml::from_str(toml_text).unwrap();
    let mut errs = Vec::new();
    let section = doc.get("detect");
    let cfg = parse(Fields::object("detect", section, &mut errs), &mut errs);
    cfg.filter(|_| errs.is_empty()).ok_or(errs)
}

#[test]
fn absent_section_is_every_rule_on_with_defaults() {
    let c = read("").unwrap();
    assert_eq!(c, DetectConfig::default());
    assert!(c.enabled);
    assert_eq!(c.auth_failure_burst.threshold, 20);
    assert_eq!(c.auth_failure_burst.statuses, vec![401, 403]);
    assert_eq!(c.error_spike.min_volume, 20);
    assert_eq!(c.new_caller.history_s, 604_800);
    assert!(c.secrets.kinds.contains(&"jwt".to_owned()));
    assert!(!c.secrets.kinds.contains(&"email".to_owned()));
    assert_eq!(meshlog_detect::Detector::new(&c).rule_names().len(), 8);
}

#[test]
fn every_parameter_is_read() {
    let c = read(
        r#"
[detect]
replay_s = 7200
learning_s = 60
[detect.auth_failure_burst]
window_s = 30
threshold = 5
statuses = [401]
severity = "critical"
resolve_after_s = 10
suppress_s = 600
max_groups = 50
[detect.error_spike]
interval_s = 30
min_volume = 10
min_ratio = 0.5
factor = 2.0
alpha = 0.2
[detect.new_caller]
history_s = 86400
services = ["payments"]
[detect.rare_hour]
min_requests = 10
min_history_s = 3600
rare_ratio = 0.05
utc_offset_minutes = 60
business_hours = [8, 18]
[detect.secrets]
interval_s = 120
min_count = 1
factor = 2.0
sigmas = 1.0
alpha = 0.5
kinds = ["jwt", "bearer"]
group_by = "route"
[detect.delivery_loss]
gap_grace_s = 5
silent_s = 60
forget_s = 600
[detect.integrity]
checkpoint_max_age_s = 120
[detect.volume]
enabled = false
interval_s = 10
min_count = 5
factor = 5.0
sigmas = 2.0
alpha = 0.3
warmup_intervals = 3
[detect.notify]
alertmanagers = ["http://am:9093"]
webhooks = ["https://hooks.example/x"]
queue = 10
max_attempts = 3
initial_backoff_ms = 100
max_backoff_ms = 1000
timeout_ms = 2000
resend_s = 30
external_url = "https://meshlog.example"
[[detect.rules]]
name = "admin-deletes"
type = "event_count"
where = { "http.request.method" = "DELETE", "http.response.status_code" = ["2xx"] }
group_by = ["meshlog.peer.principal"]
timespan = "10m"
condition = { gte = 5 }
suppress_s = 3600
[[detect.rules]]
name = "scanner"
type = "value_count"
field = "url.path"
group_by = ["client.address"]
timespan = "1m"
condition = { gt = 50 }
[[detect.rules]]
name = "new-route"
type = "new_terms"
fields = ["meshlog.peer.principal", "http.route"]
history = "14d"
"#,
    )
    .unwrap();
    assert_eq!((c.replay_s, c.learning_s), (7200, 60));
    let a = &c.auth_failure_burst;
    assert_eq!(
        (a.window_s, a.threshold, a.statuses.clone()),
        (30, 5, vec![401])
    );
    assert_eq!(a.common.severity, Severity::Critical);
    assert_eq!(
        (
            a.common.resolve_after_s,
            a.common.suppress_s,
            a.common.max_groups
        ),
        (10, 600, 50)
    );
    assert_eq!(c.error_spike.min_ratio, 0.5);
    assert_eq!(c.new_caller.services, vec!["payments"]);
    assert_eq!(c.rare_hour.business_hours, Some((8, 18)));
    assert_eq!(c.rare_hour.utc_offset_minutes, 60);
    assert_eq!(c.secrets.group_by, SecretsGroup::Route);
    assert_eq!(c.secrets.kinds, vec!["jwt", "bearer"]);
    assert_eq!(c.delivery_loss.gap_grace_s, 5);
    assert_eq!(c.integrity.checkpoint_max_age_s, 120);
    assert!(!c.volume.common.enabled);
    assert_eq!(c.volume.warmup_intervals, 3);
    assert_eq!(c.notify.alertmanagers, vec!["http://am:9093"]);
    assert_eq!(c.notify.resend_s, 30);
    assert_eq!(c.rules.len(), 3);
    assert_eq!(c.rules[0].timespan_ns, 600_000_000_000);
    assert_eq!(c.rules[0].condition, (Op::Gte, 5.0));
    assert_eq!(c.rules[0].common.suppress_s, 3600);
    assert_eq!(c.rules[0].wheres.len(), 2);
    assert_eq!(
        c.rules[1].correlation,
        Correlation::ValueCount {
            field: "url.path".into()
        }
    );
    assert_eq!(c.rules[1].condition, (Op::Gt, 50.0));
    assert!(
        matches!(&c.rules[2].correlation, Correlation::NewTerms { fields, history_ns }
        if fields.len() == 2 && *history_ns == 14 * 86_400 * 1_000_000_000)
    );
    let d = meshlog_detect::Detector::new(&c);
    assert_eq!(d.rule_names().len(), 7 + 3);
}

#[test]
fn errors_name_each_path() {
    let errs = read(
        r#"
[detect]
replay_s = 0
[detect.auth_failure_burst]
threshold = -1
statuses = [999]
severity = "loud"
tresholds = 3
[detect.error_spike]
min_ratio = 2.0
[detect.secrets]
kinds = ["jwt", "nonsense"]
group_by = "tenant"
[detect.rare_hour]
business_hours = [18, 8]
[detect.notify]
webhooks = ["ftp://x"]
[[detect.rules]]
name = "auth_failure_burst"
type = "temporal"
condition = { lt = 3 }
timespan = "5 minutes"
[[detect.rules]]
type = "value_count"
"#,
    )
    .unwrap_err();
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    for want in [
        "detect.replay_s",
        "detect.auth_failure_burst.threshold",
        "detect.auth_failure_burst.statuses",
        "detect.auth_failure_burst.severity",
        "detect.auth_failure_burst.tresholds",
        "detect.error_spike.min_ratio",
        "detect.secrets.kinds",
        "detect.secrets.group_by",
        "detect.rare_hour.business_hours",
        "detect.notify.webhooks[0]",
        "detect.rules[0].name",
        "detect.rules[0].type",
        "detect.rules[0].condition",
        "detect.rules[0].timespan",
        "detect.rules[1].name",
        "detect.rules[1].field",
        "detect.rules[1].condition",
    ] {
        assert!(paths.contains(&want), "no error at {want}: {errs:#?}");
    }
    let e = errs
        .iter()
        .find(|e| e.path == "detect.secrets.kinds")
        .unwrap();
    assert!(e.reason.contains("nonsense"), "{e}");
    let e = errs
        .iter()
        .find(|e| e.path == "detect.rules[0].name")
        .unwrap();
    assert!(e.reason.contains("duplicate"), "{e}");
}
