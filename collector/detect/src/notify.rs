//! Delivery to people: every transition goes to each configured Prometheus Alertmanager
//! (`POST /api/v2/alerts`, re-sending firing alerts every `resend_s` since Alertmanager expires
//! alerts that are not) and to each plain webhook (Alertmanager's webhook JSON, one POST per
//! transition). Each target has its own worker thread and bounded queue: a full queue drops
//! the new transition and counts it; a failed POST is retried with exponential backoff and full
//! jitter (core's [`Backoff`]) up to `max_attempts`, honouring `Retry-After`; a refused one
//! (4xx) is not retried. The engine never waits for any of it.

use crate::NS_PER_S;
use crate::config::NotifyConfig;
use crate::engine::{State, Transition};
use meshlog_core::retry::{Backoff, Outcome};
use meshlog_format::time::rfc3339;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why the notifier could not start.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The HTTP client could not be built.
    #[error("alert notifier: cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// A worker thread could not be started.
    #[error("alert notifier: cannot start a worker thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// What a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// Prometheus Alertmanager, API v2.
    Alertmanager,
    /// A plain webhook.
    Webhook,
}

/// Counters of one target (for `/metrics`).
#[derive(Debug, Default)]
pub struct TargetStats {
    /// POSTs that got a 2xx.
    pub sent: AtomicU64,
    /// Transitions given up on (refused, or out of attempts).
    pub failed: AtomicU64,
    /// Retries made.
    pub retries: AtomicU64,
    /// Transitions dropped because the queue was full.
    pub dropped: AtomicU64,
}

struct Queue {
    items: Mutex<VecDeque<Transition>>,
    ready: Condvar,
    stop: AtomicBool,
}

struct Target {
    url: String,
    kind: TargetKind,
    queue: Arc<Queue>,
    stats: Arc<TargetStats>,
    handle: Option<JoinHandle<()>>,
}

/// Sends transitions to Alertmanagers and webhooks.
pub struct Notifier {
    targets: Vec<Target>,
    capacity: usize,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A label name Alertmanager accepts: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn label_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The Alertmanager labels of `t`: `alertname` (the rule), `severity`, the group labels.
pub fn labels(t: &Transition) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("alertname".into(), Value::from(t.rule.as_str()));
    m.insert("severity".into(), Value::from(t.severity.as_str()));
    m.insert("source".into(), Value::from("meshlog"));
    for (k, v) in &t.group.labels {
        m.entry(label_name(k))
            .or_insert_with(|| Value::from(v.as_str()));
    }
    m
}

/// The annotations of `t`: summary, the query, the numbers.
pub fn annotations(t: &Transition) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("summary".into(), Value::from(t.summary.as_str()));
    m.insert("query".into(), Value::from(t.query_command()));
    m.insert("alert_id".into(), Value::from(t.id.as_str()));
    m.insert("count".into(), Value::from(t.value.to_string()));
    m.insert("threshold".into(), Value::from(t.threshold.to_string()));
    m.insert(
        "window_s".into(),
        Value::from((t.window_ns / NS_PER_S).to_string()),
    );
    if let Some(b) = t.baseline {
        m.insert("baseline".into(), Value::from(b.to_string()));
    }
    m
}

fn generator_url(external: Option<&str>, t: &Transition) -> String {
    external.map_or_else(String::new, |base| {
        format!("{}/api/v1/alerts?id={}", base.trim_end_matches('/'), t.id)
    })
}

/// `t` as one Alertmanager API v2 alert. A firing alert ends at `firing_ends_ns` unless
/// re-sent; a resolved one ends when it resolved.
pub fn alertmanager_alert(t: &Transition, firing_ends_ns: u64, external: Option<&str>) -> Value {
    let ends = match t.state {
        State::Firing => firing_ends_ns,
        State::Resolved => t.at_ns,
    };
    json!({
        "labels": labels(t),
        "annotations": annotations(t),
        "startsAt": rfc3339(t.since_ns),
        "endsAt": rfc3339(ends),
        "generatorURL": generator_url(external, t),
    })
}

/// `t` in Alertmanager's webhook JSON (version 4), one alert per message.
pub fn webhook_message(t: &Transition, external: Option<&str>) -> Value {
    let labels = labels(t);
    let annotations = annotations(t);
    let ends = match t.state {
        State::Firing => "0001-01-01T00:00:00Z".to_owned(),
        State::Resolved => rfc3339(t.at_ns),
    };
    json!({
        "version": "4",
        "groupKey": format!("{}:{}", t.rule, t.group),
        "truncatedAlerts": 0,
        "status": t.state.as_str(),
        "receiver": "meshlog",
        "groupLabels": {"alertname": t.rule},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external.unwrap_or_default(),
        "alerts": [{
            "status": t.state.as_str(),
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(t.since_ns),
            "endsAt": ends,
            "generatorURL": generator_url(external, t),
            "fingerprint": t.id,
        }],
    })
}

impl Notifier {
    /// Starts one worker per target in `cfg`.
    pub fn start(cfg: &NotifyConfig) -> Result<Notifier, NotifyError> {
        let mut targets = Vec::new();
        let all = cfg
            .alertmanagers
            .iter()
            .map(|u| (u, TargetKind::Alertmanager))
            .chain(cfg.webhooks.iter().map(|u| (u, TargetKind::Webhook)));
        for (url, kind) in all {
            let queue = Arc::new(Queue {
                items: Mutex::new(VecDeque::new()),
                ready: Condvar::new(),
                stop: AtomicBool::new(false),
            });
            let stats = Arc::new(TargetStats::default());
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_millis(cfg.timeout_ms))
                .build()?;
            let worker = Worker {
                url: match kind {
                    TargetKind::Alertmanager => {
                        format!("{}/api/v2/alerts", url.trim_end_matches('/'))
                    }
                    TargetKind::Webhook => url.clone(),
                },
                kind,
                cfg: cfg.clone(),
                queue: queue.clone(),
                stats: stats.clone(),
                client,
                rand: now_ns() ^ 0x9e37_79b9_7f4a_7c15,
            };
            let handle = std::thread::Builder::new()
                .name("meshlog-notify".into())
                .spawn(move || worker.run())?;
            targets.push(Target {
                url: url.clone(),
                kind,
                queue,
                stats,
                handle: Some(handle),
            });
        }
        Ok(Notifier {
            targets,
            capacity: cfg.queue,
        })
    }

    /// Queues `t` for every target; never blocks. A full queue drops it (counted).
    pub fn send(&self, t: &Transition) {
        for target in &self.targets {
            let Ok(mut q) = target.queue.items.lock() else {
                continue;
            };
            if q.len() >= self.capacity {
                target.stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            q.push_back(t.clone());
            target.queue.ready.notify_one();
        }
    }

    /// Each target's URL, kind and counters.
    pub fn stats(&self) -> Vec<(&str, TargetKind, &TargetStats)> {
        self.targets
            .iter()
            .map(|t| (t.url.as_str(), t.kind, &*t.stats))
            .collect()
    }

    /// Stops the workers once their queues are empty (or their current retries give up).
    pub fn shutdown(mut self) {
        for t in &self.targets {
            t.queue.stop.store(true, Ordering::SeqCst);
            t.queue.ready.notify_all();
        }
        for t in &mut self.targets {
            if let Some(h) = t.handle.take() {
                let _ = h.join();
            }
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        for t in &self.targets {
            t.queue.stop.store(true, Ordering::SeqCst);
            t.queue.ready.notify_all();
        }
    }
}

struct Worker {
    url: String,
    kind: TargetKind,
    cfg: NotifyConfig,
    queue: Arc<Queue>,
    stats: Arc<TargetStats>,
    client: reqwest::blocking::Client,
    rand: u64,
}

impl Worker {
    fn next_rand(&mut self) -> u64 {
        // xorshift64*: jitter only, not security.
        let mut x = self.rand;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rand = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn run(mut self) {
        let resend = Duration::from_secs(self.cfg.resend_s);
        // Alertmanager only: firing alerts by id, re-sent until resolved.
        let mut active: HashMap<String, Transition> = HashMap::new();
        let mut last_resend = std::time::Instant::now();
        loop {
            let batch: Vec<Transition> = {
                let Ok(mut q) = self.queue.items.lock() else {
                    return;
                };
                while q.is_empty() && !self.queue.stop.load(Ordering::SeqCst) {
                    let wait = resend.saturating_sub(last_resend.elapsed());
                    if wait.is_zero() && !active.is_empty() {
                        break;
                    }
                    let wait = if wait.is_zero() { resend } else { wait };
                    match self.queue.ready.wait_timeout(q, wait) {
                        Ok((g, _)) => q = g,
                        Err(_) => return,
                    }
                }
                if q.is_empty() && self.queue.stop.load(Ordering::SeqCst) {
                    return;
                }
                q.drain(..).collect()
            };
            match self.kind {
                TargetKind::Webhook => {
                    for t in batch {
                        let body = webhook_message(&t, self.cfg.external_url.as_deref());
                        self.post(&body);
                    }
                }
                TargetKind::Alertmanager => {
                    let now = now_ns();
                    let ends = now + 4 * self.cfg.resend_s * NS_PER_S;
                    let mut alerts = Vec::new();
                    let due = last_resend.elapsed() >= resend;
                    for t in &batch {
                        match t.state {
                            State::Firing => {
                                active.insert(t.id.clone(), t.clone());
                            }
                            State::Resolved => {
                                active.remove(&t.id);
                            }
                        }
                    }
                    let ext = self.cfg.external_url.clone();
                    for t in &batch {
                        alerts.push(alertmanager_alert(t, ends, ext.as_deref()));
                    }
                    if due {
                        for t in active.values() {
                            if !batch.iter().any(|b| b.id == t.id) {
                                alerts.push(alertmanager_alert(t, ends, ext.as_deref()));
                            }
                        }
                        last_resend = std::time::Instant::now();
                    }
                    if !alerts.is_empty() {
                        self.post(&Value::Array(alerts));
                    }
                }
            }
        }
    }

    /// POSTs `body` until it is taken, refused, or out of attempts.
    fn post(&mut self, body: &Value) {
        let backoff = Backoff::new(self.cfg.initial_backoff_ms, self.cfg.max_backoff_ms);
        let mut failures = 0u32;
        loop {
            let answer = self.client.post(&self.url).json(body).send();
            let outcome = match &answer {
                Ok(r) => Outcome::classify(
                    Some(r.status().as_u16()),
                    r.headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .map(|v| v.as_bytes()),
                    now_ns(),
                ),
                Err(_) => Outcome::classify(None, None, now_ns()),
            };
            match outcome {
                Outcome::Delivered => {
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Outcome::Rejected { status } => {
                    tracing::warn!(url = %self.url, status, "alert delivery refused");
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Outcome::Retry { after_ns, .. } => {
                    failures += 1;
                    if failures >= self.cfg.max_attempts {
                        tracing::warn!(url = %self.url, failures, "alert delivery given up");
                        self.stats.failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    let r = self.next_rand();
                    let delay = backoff.delay_ns(failures, after_ns, r);
                    std::thread::sleep(Duration::from_nanos(delay));
                }
            }
        }
    }
}
