//! Redaction at the collector, end to end: the OpenTelemetry Python SDK (opentelemetry-sdk with
//! the OTLP/HTTP exporter, installed into `.venv` by `scripts/test`) sends a log record carrying
//! secrets in its attributes and body to the real `meshlog serve`; what is stored is redacted,
//! counted and stamped with the policy version, and the benign fields are intact.

use meshlog_e2e::{Collector, repo_root};
use std::process::Command;

const SCRIPT: &str = r#"
import sys, time
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry._logs import LogRecord, SeverityNumber

endpoint = sys.argv[1]
provider = LoggerProvider(resource=Resource.create({"service.name": "sdk-okapi"}))
provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=endpoint)))
logger = provider.get_logger("sdk-test")
logger.emit(LogRecord(
    timestamp=time.time_ns(),
    severity_number=SeverityNumber.INFO,
    body={"msg": "card 4111 1111 1111 1111 charged for jane.doe@example.com",
          "nested": {"token": "npm_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3d"}},
    attributes={
        "app.password": "hunter2-quokka",
        "user.email": "omar.patel@example.org",
        "http.request.header.authorization": "Bearer TEmxI6CmuxV5EbOApZOXzcycDeZ6dqmV",
        "url.query": "page=2&api_key=sk_live_4bZWOz648JJnUfd7UACNWiP3",
        "note": "deploy with ghp_bciOx9gy1CJdObOIRpFqaDZeV7G5IfQHeVVE today",
        "order.id": "ORD2819482199351819",
    },
))
provider.shutdown()
"#;

fn python() -> String {
    std::env::var("MESHLOG_OTEL_PYTHON").unwrap_or_else(|_| {
        repo_root()
            .join(".venv/bin/python")
            .to_string_lossy()
            .into_owned()
    })
}

#[test]
fn an_sdk_record_with_secrets_is_stored_redacted() {
    let data = tempfile::tempdir().unwrap();
    let collector = Collector::start(data.path());
    let endpoint = format!("http://{}/v1/logs", collector.addr);
    let out = Command::new(python())
        .args(["-c", SCRIPT, &endpoint])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}. scripts/test installs the OpenTelemetry SDK into .venv (ensure_otel_sdk)",
                python()
            )
        });
    assert!(
        out.status.success(),
        "the SDK script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The exporter returned after its 200, which means fsync'd: the record is stored.
    let records = collector.query();
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    let text = r.to_string();
    for secret in [
        "4111 1111 1111 1111",
        "jane.doe@example.com",
        "npm_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3d",
        "hunter2-quokka",
        "omar.patel@example.org",
        "TEmxI6CmuxV5EbOApZOXzcycDeZ6dqmV",
        "sk_live_4bZWOz648JJnUfd7UACNWiP3",
        "ghp_bciOx9gy1CJdObOIRpFqaDZeV7G5IfQHeVVE",
    ] {
        assert!(!text.contains(secret), "{secret} stored: {text}");
    }
    assert_eq!(r["resource.service.name"], "sdk-okapi");
    assert_eq!(r["order.id"], "ORD2819482199351819");
    assert!(
        r["note"]
            .as_str()
            .unwrap()
            .starts_with("deploy with [REDACTED:github_token]"),
        "{text}"
    );
    assert!(
        r["url.query"]
            .as_str()
            .unwrap()
            .starts_with("page=2&api_key="),
        "{text}"
    );
    let version = meshlog_core::redact::RedactionPolicy::default();
    assert_eq!(r["meshlog.policy_version"], version.version());
    let count = |k: &str| r[format!("meshlog.redacted.{k}")].as_u64().unwrap_or(0);
    assert_eq!(count("email"), 2, "{text}");
    assert_eq!(count("card"), 1, "{text}");
    assert_eq!(count("github_token"), 1, "{text}");
    assert_eq!(count("api_key"), 1, "{text}");
    assert!(count("secret_param") + count("stripe_key") >= 2, "{text}");
}
