//! Deterministic records: a builder for single records, a seeded generator of varied normal
//! traffic (several services, instances, callers, end users, hours), and a simulator that feeds
//! a detector, ticks it every second, and appends its alerts to a log like the collector would.

use meshlog_detect::alert::alert_record;
use meshlog_detect::{DetectConfig, Detector, IntegrityEvent, Record, State, Transition};
use serde_json::Value;
use std::collections::HashMap;

pub const S: u64 = 1_000_000_000;
pub const MIN: u64 = 60 * S;
pub const HOUR: u64 = 3600 * S;
/// 2026-12-01T00:00:00Z: a midnight, so hours of the day are easy to read.
pub const T0: u64 = 1_796_083_200 * S;

pub fn spiffe(sa: &str) -> String {
    format!("spiffe://cluster.local/ns/shop/sa/{sa}")
}

/// splitmix64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// One access record.
pub struct Rec(pub Record);

impl Rec {
    pub fn new(at: u64, service: &str, status: i64) -> Rec {
        let mut m = Record::new();
        m.insert("time_unix_nano".into(), Value::from(at));
        m.insert("observed_time_unix_nano".into(), Value::from(at));
        m.insert("event_name".into(), Value::from("meshlog.http.access"));
        m.insert("severity_number".into(), Value::from(9));
        m.insert("resource.service.name".into(), Value::from(service));
        m.insert("http.request.method".into(), Value::from("GET"));
        m.insert("http.response.status_code".into(), Value::from(status));
        m.insert("http.route".into(), Value::from("/api/items/{id}"));
        m.insert("url.path".into(), Value::from("/api/items/{id}"));
        Rec(m)
    }
    pub fn set(mut self, k: &str, v: impl Into<Value>) -> Rec {
        self.0.insert(k.into(), v.into());
        self
    }
    pub fn principal(self, p: &str) -> Rec {
        self.set("meshlog.peer.principal", p)
    }
    pub fn client(self, c: &str) -> Rec {
        self.set("client.address", c)
    }
    pub fn user(self, u: &str) -> Rec {
        self.set("enduser.id", u)
    }
    pub fn route(self, r: &str) -> Rec {
        self.set("http.route", r).set("url.path", r)
    }
    pub fn vm(self, service: &str, instance: &str, vm: &str, seq: u64) -> Rec {
        self.set("resource.service.name", service)
            .set("resource.service.instance.id", instance)
            .set("resource.meshlog.vm.id", vm)
            .set("meshlog.sequence", seq)
    }
}

/// A sidecar: one instance of a service, one VM, one sequence.
#[derive(Clone)]
pub struct Sidecar {
    pub service: &'static str,
    pub instance: String,
    pub vm: String,
    pub seq: u64,
}

/// The services, their instances and weights (requests per minute at the daily mean).
pub const SERVICES: [(&str, usize, f64); 6] = [
    ("frontend", 3, 50.0),
    ("checkout", 2, 34.0),
    ("payments", 2, 30.0),
    ("catalog", 2, 34.0),
    ("users", 2, 26.0),
    ("search", 2, 26.0),
];

/// Who calls whom: (caller kind, caller, service, weight).
pub fn edges() -> Vec<(&'static str, String, &'static str, f64)> {
    let mut e = vec![
        (
            "principal",
            "spiffe://cluster.local/ns/edge/sa/ingress-gateway".to_owned(),
            "frontend",
            10.0,
        ),
        ("principal", spiffe("frontend"), "checkout", 8.0),
        ("principal", spiffe("frontend"), "catalog", 6.0),
        ("principal", spiffe("frontend"), "users", 5.0),
        ("principal", spiffe("frontend"), "search", 6.0),
        ("principal", spiffe("checkout"), "payments", 8.0),
        ("principal", spiffe("checkout"), "users", 2.0),
        ("principal", spiffe("mobile-bff"), "catalog", 3.0),
        ("principal", spiffe("mobile-bff"), "search", 3.0),
        ("principal", spiffe("mobile-bff"), "users", 2.0),
        ("principal", spiffe("mobile-bff"), "checkout", 2.0),
        ("principal", spiffe("legacy-batch"), "payments", 1.0),
        ("principal", spiffe("reports"), "payments", 0.5),
        ("client", "10.0.0.0".to_owned(), "catalog", 1.0),
    ];
    e.sort_by(|a, b| a.2.cmp(b.2));
    e
}

pub const USERS: [&str; 10] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
];

/// Varied normal traffic, minute by minute, from a seed.
pub struct Traffic {
    pub rng: Rng,
    pub sidecars: Vec<Sidecar>,
    edges: Vec<(&'static str, String, &'static str, f64)>,
    pub minute: u64,
    /// Multiplies every rate (1.0: about 200 requests a minute).
    pub scale: f64,
}

impl Traffic {
    pub fn new(seed: u64) -> Traffic {
        let mut sidecars = Vec::new();
        for (s, n, _) in SERVICES {
            for i in 0..n {
                sidecars.push(Sidecar {
                    service: s,
                    instance: format!("{s}-{i}"),
                    vm: format!("{:016x}", Rng(seed ^ (sidecars.len() as u64 + 1)).next()),
                    seq: 0,
                });
            }
        }
        Traffic {
            rng: Rng(seed),
            sidecars,
            edges: edges(),
            minute: 0,
            scale: 1.0,
        }
    }

    /// Index of a sidecar of `service`.
    pub fn sidecar_of(&mut self, service: &str) -> usize {
        let ids: Vec<usize> = self
            .sidecars
            .iter()
            .enumerate()
            .filter(|(_, s)| s.service == service)
            .map(|(i, _)| i)
            .collect();
        ids[self.rng.below(ids.len() as u64) as usize]
    }

    fn status(&mut self) -> i64 {
        let u = self.rng.unit();
        match u {
            u if u < 0.015 => 404,
            u if u < 0.020 => 401,
            u if u < 0.023 => 403,
            u if u < 0.026 => 500,
            u if u < 0.028 => 503,
            u if u < 0.030 => 429,
            u if u < 0.10 => 201,
            _ => 200,
        }
    }

    /// The next minute of normal traffic, in time order (unsequenced: see [`Traffic::number`]).
    pub fn minute(&mut self) -> Vec<(u64, usize, Rec)> {
        let start = T0 + self.minute * MIN;
        let hour = (self.minute / 60) % 24;
        let diurnal = 1.0 + 0.3 * (2.0 * std::f64::consts::PI * (hour as f64 - 6.0) / 24.0).sin();
        let mut out = Vec::new();
        let first = self.minute == 0;
        for (service, _, rate) in SERVICES {
            let n = (rate * self.scale * diurnal * (0.85 + 0.3 * self.rng.unit())).round() as u64;
            let callers: Vec<(&'static str, String, f64)> = self
                .edges
                .iter()
                .filter(|e| e.2 == service)
                .map(|e| (e.0, e.1.clone(), e.3))
                .collect();
            let total: f64 = callers.iter().map(|c| c.2).sum();
            for k in 0..n {
                // The first minute calls every edge once, so all of them are learned.
                let (kind, caller) = if first && (k as usize) < callers.len() {
                    let c = &callers[k as usize];
                    (c.0, c.1.clone())
                } else {
                    let mut x = self.rng.unit() * total;
                    let mut pick = &callers[0];
                    for c in &callers {
                        if x < c.2 {
                            pick = c;
                            break;
                        }
                        x -= c.2;
                    }
                    (pick.0, pick.1.clone())
                };
                let at = start + self.rng.below(MIN);
                let status = self.status();
                let i = self.sidecar_of(service);
                let mut r = Rec::new(at, service, status)
                    .route(
                        ["/api/items/{id}", "/api/cart", "/api/search", "/health"]
                            [self.rng.below(4) as usize],
                    )
                    .set("client.port", 40000 + self.rng.below(20000) as i64);
                r = if kind == "principal" {
                    r.principal(&caller).client("10.1.2.0")
                } else {
                    r.client(&caller)
                };
                if service == "frontend" && (8..18).contains(&hour) && self.rng.chance(0.5) {
                    r = r.user(USERS[self.rng.below(USERS.len() as u64) as usize]);
                }
                if caller.ends_with("legacy-batch") {
                    r = r
                        .set("meshlog.redacted.secret_param", 1)
                        .set("url.query", "token=[REDACTED:secret_param]");
                }
                if self.rng.chance(0.1) {
                    r = r.set("meshlog.redacted.ip", 1);
                }
                if self.rng.chance(0.02) {
                    r = r.set("meshlog.redacted.cookie", 1);
                }
                out.push((at, i, r));
            }
        }
        out.sort_by_key(|(at, _, _)| *at);
        self.minute += 1;
        out
    }

    /// Numbers records in their sidecar's sequence and stamps the resource, in time order.
    pub fn number(&mut self, recs: Vec<(u64, usize, Rec)>) -> Vec<Record> {
        recs.into_iter()
            .map(|(_, i, r)| {
                let sc = &mut self.sidecars[i];
                let seq = sc.seq;
                sc.seq += 1;
                r.vm(sc.service, &sc.instance.clone(), &sc.vm.clone(), seq)
                    .0
            })
            .collect()
    }
}

/// The twin's transitions are the detector's (in any order: groups are held in hash maps
/// seeded per map, so a tick resolves them in either's own order).
fn same(a: &[Transition], b: &[Transition], at: &str) {
    let sorted = |ts: &[Transition]| {
        let mut v = ts.to_vec();
        v.sort_by(|x, y| (&x.id, x.state.as_str()).cmp(&(&y.id, y.state.as_str())));
        v
    };
    assert_eq!(sorted(a), sorted(b), "the stored-line twin after {at}");
}

/// Feeds a detector like the collector would: ticks every second up to each record, a signed
/// checkpoint every minute, and every transition appended to `log` as a `meshlog.alert` record.
/// A twin detector is fed the same records as the store keeps them (JSON lines, read with
/// only the keys the rules declare, as `serve` reads them) and must answer the same at every
/// step, so every scenario also proves the stored-line path.
pub struct Sim {
    pub det: Detector,
    twin: Detector,
    pub log: Vec<Record>,
    pub transitions: Vec<Transition>,
    pub now: u64,
    pub checkpoints: bool,
    next_checkpoint: u64,
}

impl Sim {
    pub fn new(cfg: &DetectConfig) -> Sim {
        Sim {
            det: Detector::new(cfg),
            twin: Detector::new(cfg),
            log: Vec::new(),
            transitions: Vec::new(),
            now: T0,
            checkpoints: true,
            next_checkpoint: T0,
        }
    }

    fn take(&mut self, ts: Vec<Transition>) {
        for t in ts {
            self.log.push(alert_record(&t));
            self.transitions.push(t);
        }
    }

    /// Ticks every second up to `to`.
    pub fn advance(&mut self, to: u64) {
        let mut t = (self.now / S + 1) * S;
        while t <= to {
            if self.checkpoints && t >= self.next_checkpoint {
                let ts = self.det.integrity(&IntegrityEvent::Checkpoint, t);
                let twin = self.twin.integrity(&IntegrityEvent::Checkpoint, t);
                same(&ts, &twin, "the checkpoint");
                self.take(ts);
                self.next_checkpoint = t + MIN;
            }
            let ts = self.det.tick(t);
            same(&ts, &self.twin.tick(t), "a tick");
            self.take(ts);
            t += S;
        }
        self.now = self.now.max(to);
    }

    pub fn feed(&mut self, r: Record) {
        let at = r
            .get("observed_time_unix_nano")
            .and_then(Value::as_u64)
            .unwrap_or(self.now);
        self.advance(at);
        let ts = self.det.observe(&r, at.max(self.now));
        let line = serde_json::to_vec(&r).unwrap();
        let twin = self.twin.observe_json(&line, at.max(self.now)).unwrap();
        same(&ts, &twin, "a record");
        self.log.push(r);
        self.take(ts);
    }

    /// `minutes` of normal traffic.
    pub fn normal(&mut self, traffic: &mut Traffic, minutes: u64) {
        for _ in 0..minutes {
            let m = traffic.minute();
            for r in traffic.number(m) {
                self.feed(r);
            }
        }
        let end = T0 + traffic.minute * MIN;
        self.advance(end);
    }

    /// Firing transitions per rule.
    pub fn fired(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for t in &self.transitions {
            if t.state == State::Firing {
                *m.entry(t.rule.clone()).or_default() += 1;
            }
        }
        m
    }

    pub fn of_rule(&self, rule: &str) -> Vec<&Transition> {
        self.transitions.iter().filter(|t| t.rule == rule).collect()
    }
}

impl Sim {
    /// `minutes` of normal traffic with `inject` adding records to each minute (its start
    /// time and the traffic, for sidecar indices) before they are numbered.
    pub fn run_with(
        &mut self,
        traffic: &mut Traffic,
        minutes: u64,
        mut inject: impl FnMut(u64, &mut Traffic, &mut Vec<(u64, usize, Rec)>),
    ) {
        for _ in 0..minutes {
            let start = T0 + traffic.minute * MIN;
            let mut m = traffic.minute();
            inject(start, traffic, &mut m);
            m.sort_by_key(|(at, _, _)| *at);
            for r in traffic.number(m) {
                self.feed(r);
            }
        }
        let end = T0 + traffic.minute * MIN;
        self.advance(end);
    }
}

/// The default configuration with only `rules` enabled.
pub fn only(rules: &[&str]) -> DetectConfig {
    let mut c = DetectConfig::default();
    let on = |n: &str| rules.contains(&n);
    c.auth_failure_burst.common.enabled = on("auth_failure_burst");
    c.error_spike.common.enabled = on("error_spike");
    c.new_caller.common.enabled = on("new_caller");
    c.rare_hour.common.enabled = on("rare_hour");
    c.secrets.common.enabled = on("secrets");
    c.delivery_loss.common.enabled = on("delivery_loss");
    c.integrity.common.enabled = on("integrity");
    c.volume.common.enabled = on("volume");
    c
}

impl Sim {
    /// A collector restart at `self.now`: a new detector replays the last `replay_s` of the
    /// log (alerts included) and finishes the replay; what that raises or resolves is logged.
    pub fn restart(&mut self, cfg: &DetectConfig) -> Vec<Transition> {
        let mut det = Detector::new(cfg);
        let mut twin = Detector::new(cfg);
        let from = self.now.saturating_sub(det.replay_ns());
        for r in &self.log {
            if meshlog_detect::record::stored_time(r) >= from {
                det.replay(r);
                twin.replay_json(&serde_json::to_vec(r).unwrap()).unwrap();
            }
        }
        let ts = det.finish_replay(self.now);
        same(&ts, &twin.finish_replay(self.now), "the replay");
        self.det = det;
        self.twin = twin;
        self.take(ts.clone());
        ts
    }

    /// Every firing has exactly one resolution with its id (when `resolved`), and no alert id
    /// fires twice.
    pub fn assert_paired(&self, resolved: bool) {
        let mut firing: HashMap<&str, usize> = HashMap::new();
        let mut done: HashMap<&str, usize> = HashMap::new();
        for t in &self.transitions {
            let m = if t.state == State::Firing {
                &mut firing
            } else {
                &mut done
            };
            *m.entry(t.id.as_str()).or_default() += 1;
        }
        for (id, n) in &firing {
            assert_eq!(*n, 1, "alert {id} fired {n} times");
            if resolved {
                assert_eq!(
                    done.get(id),
                    Some(&1),
                    "alert {id} not resolved exactly once"
                );
            }
        }
        for (id, n) in &done {
            assert_eq!(*n, 1, "alert {id} resolved {n} times");
            assert!(
                firing.contains_key(id),
                "alert {id} resolved without firing"
            );
        }
    }
}
