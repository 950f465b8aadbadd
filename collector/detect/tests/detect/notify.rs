//! Delivery to people: a real Prometheus Alertmanager (Debian `prometheus-alertmanager`, started
//! here on a free port with its own storage and no cluster listener) receives the alert and
//! sees it resolve; webhooks get Alertmanager's webhook JSON, with retries, refusals and a
//! bounded queue.

use crate::traffic::*;
use meshlog_detect::config::{NotifyConfig, Severity};
use meshlog_detect::notify::Notifier;
use meshlog_detect::rules::{Group, Query};
use meshlog_detect::{State, Transition};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn transition(state: State, rule: &str, since: u64, at: u64) -> Transition {
    Transition {
        id: "00c0ffee00c0ffee".into(),
        rule: rule.into(),
        group: Group::one("client", "203.0.113.0"),
        state,
        at_ns: at,
        since_ns: since,
        value: 20.0,
        threshold: 20.0,
        window_ns: 60 * S,
        baseline: None,
        severity: Severity::Warning,
        summary: "20 authentication failures for client 203.0.113.0 in 60s".into(),
        query: Query {
            status: Some("401,403".into()),
            client: Some("203.0.113.0".into()),
            ..Query::default()
        },
        suppressed: 0,
        tenant: None,
    }
}

/// A free TCP port on loopback.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Alertmanager {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn alertmanager_bin() -> String {
    for name in ["prometheus-alertmanager", "alertmanager"] {
        if Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return name.into();
        }
    }
    panic!(
        "Prometheus Alertmanager not found: install the Debian package prometheus-alertmanager \
         (scripts/test does it through ensure_alertmanager in scripts/lib.sh)"
    );
}

fn start_alertmanager() -> Alertmanager {
    let bin = alertmanager_bin();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: sink\n  group_wait: 1s\nreceivers:\n  - name: sink\n",
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let am = Alertmanager {
        child,
        url,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if reqwest::blocking::get(format!("{}/-/ready", am.url))
            .is_ok_and(|r| r.status().is_success())
        {
            return am;
        }
        assert!(
            Instant::now() < deadline,
            "alertmanager did not become ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn am_alerts(am: &Alertmanager) -> Vec<Value> {
    let v: Value = reqwest::blocking::get(format!("{}/api/v2/alerts", am.url))
        .unwrap()
        .json()
        .unwrap();
    v.as_array().cloned().unwrap_or_default()
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn alertmanager_receives_firing_and_resolved() {
    let am = start_alertmanager();
    let cfg = NotifyConfig {
        alertmanagers: vec![am.url.clone()],
        resend_s: 1,
        external_url: Some("https://meshlog.example:4318".into()),
        ..NotifyConfig::default()
    };
    let n = Notifier::start(&cfg).unwrap();
    let since = now_ns();
    n.send(&transition(
        State::Firing,
        "auth_failure_burst",
        since,
        since,
    ));
    wait_for("the alert in Alertmanager", 20, || {
        am_alerts(&am)
            .iter()
            .any(|a| a["labels"]["alertname"] == "auth_failure_burst")
    });
    let a = am_alerts(&am)
        .into_iter()
        .find(|a| a["labels"]["alertname"] == "auth_failure_burst")
        .unwrap();
    assert_eq!(a["labels"]["client"], "203.0.113.0");
    assert_eq!(a["labels"]["severity"], "warning");
    assert_eq!(a["status"]["state"], "active");
    assert_eq!(a["annotations"]["alert_id"], "00c0ffee00c0ffee");
    assert!(
        a["annotations"]["query"]
            .as_str()
            .unwrap()
            .contains("--client 203.0.113.0")
    );
    assert_eq!(
        a["generatorURL"],
        "https://meshlog.example:4318/api/v1/alerts?id=00c0ffee00c0ffee"
    );
    // Firing alerts end 4 resends ahead unless re-sent: still active after 6 s.
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        am_alerts(&am)
            .iter()
            .any(|a| a["labels"]["alertname"] == "auth_failure_burst"),
        "the firing alert expired: it was not re-sent"
    );
    n.send(&transition(
        State::Resolved,
        "auth_failure_burst",
        since,
        now_ns(),
    ));
    wait_for("the alert to resolve", 20, || {
        !am_alerts(&am)
            .iter()
            .any(|a| a["labels"]["alertname"] == "auth_failure_burst")
    });
    let stats = n.stats();
    assert_eq!(stats[0].2.failed.load(Ordering::Relaxed), 0);
    assert!(stats[0].2.sent.load(Ordering::Relaxed) >= 3);
    n.shutdown();
}

/// A webhook receiver: answers each POST with the next status of `statuses` (then 200),
/// keeping the bodies; with `hang` it reads and never answers.
struct Hook {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

fn hook(statuses: Vec<u16>, hang: bool) -> Hook {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let b = bodies.clone();
    std::thread::spawn(move || {
        let mut statuses = statuses.into_iter();
        let mut held = Vec::new();
        for stream in l.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.to_ascii_lowercase();
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_err() {
                continue;
            }
            b.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap());
            if hang {
                held.push(s);
                continue;
            }
            let code = statuses.next().unwrap_or(200);
            let _ = write!(
                s,
                "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    Hook { url, bodies }
}

fn webhook_cfg(url: &str) -> NotifyConfig {
    NotifyConfig {
        webhooks: vec![url.into()],
        initial_backoff_ms: 10,
        max_backoff_ms: 50,
        max_attempts: 5,
        ..NotifyConfig::default()
    }
}

#[test]
fn webhook_gets_alertmanager_json_with_retries() {
    let h = hook(vec![503, 500], false);
    let n = Notifier::start(&webhook_cfg(&h.url)).unwrap();
    let t = transition(State::Firing, "error_spike", T0, T0);
    n.send(&t);
    wait_for("the webhook", 20, || h.bodies.lock().unwrap().len() >= 3);
    let bodies = h.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 3, "two retries, then taken");
    let b = &bodies[2];
    assert_eq!(b["version"], "4");
    assert_eq!(b["status"], "firing");
    assert_eq!(b["alerts"][0]["labels"]["alertname"], "error_spike");
    assert_eq!(b["alerts"][0]["fingerprint"], "00c0ffee00c0ffee");
    assert_eq!(b["alerts"][0]["startsAt"], "2026-12-01T00:00:00Z");
    let s = &n.stats()[0].2;
    assert_eq!(
        (
            s.sent.load(Ordering::Relaxed),
            s.retries.load(Ordering::Relaxed),
            s.failed.load(Ordering::Relaxed)
        ),
        (1, 2, 0)
    );
    n.shutdown();
}

#[test]
fn webhook_refusal_is_not_retried() {
    let h = hook(vec![400], false);
    let n = Notifier::start(&webhook_cfg(&h.url)).unwrap();
    n.send(&transition(State::Firing, "volume", T0, T0));
    wait_for("the refusal", 20, || {
        n.stats()[0].2.failed.load(Ordering::Relaxed) == 1
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(h.bodies.lock().unwrap().len(), 1);
    assert_eq!(n.stats()[0].2.retries.load(Ordering::Relaxed), 0);
}

#[test]
fn a_full_queue_drops_and_counts() {
    let h = hook(vec![], true);
    let mut cfg = webhook_cfg(&h.url);
    cfg.queue = 2;
    cfg.timeout_ms = 60_000;
    let n = Notifier::start(&cfg).unwrap();
    n.send(&transition(State::Firing, "volume", T0, T0));
    wait_for("the worker to take the first", 20, || {
        h.bodies.lock().unwrap().len() == 1
    });
    for _ in 0..5 {
        n.send(&transition(State::Firing, "volume", T0, T0));
    }
    assert_eq!(n.stats()[0].2.dropped.load(Ordering::Relaxed), 3);
}
