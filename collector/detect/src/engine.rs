//! The detector: runs every enabled rule on each record, turns their signals into alert
//! [`Transition`]s (one firing, one resolution per alert; suppression per group), and rebuilds
//! its state after a restart by replaying the recent window of the store.
//!
//! Restart without loss or duplicates: every transition is appended to the log as a
//! `meshlog.alert` record ([`crate::alert`]). At start the collector replays the last
//! `replay_s` of records, alerts included, through [`Detector::replay`]; the rules rebuild their
//! windows silently while the alert records say what the log holds as firing. Then
//! [`Detector::finish_replay`] compares: an alert the rules find firing but the log does not
//! hold is raised now (it was lost in the crash); one the log holds but the rules no longer find
//! is resolved now; one both hold is adopted as it is, raised again never.

use crate::NS_PER_S;
use crate::alert::{self, LoggedAlert};
use crate::config::{DetectConfig, Severity};
use crate::flat::{Flat, ReadError};
use crate::keys::Keys;
use crate::record::{self, Record};
use crate::rules::{
    self, Ctx, Finding, Group, Query, Rule, Signal, auth::AuthBurst, delivery::DeliveryLossRule,
    errors::ErrorSpikeRule, integrity::IntegrityRule, new_caller::NewCallerRule,
    rare_hour::RareHourRule, secrets::SecretsRule, user::UserRuleState, volume::VolumeRule,
};
use crate::scan::KeyMemo;
use std::collections::HashMap;

/// Groups whose suppressed alerts are remembered for their next alert, at most (beyond it,
/// groups neither firing nor suppressed are let go).
const MAX_PENDING_SUPPRESSED: usize = 100_000;

/// The layout of [`Detector::snapshot`].
const SNAPSHOT_VERSION: u64 = 1;

/// An event of the store's integrity the collector feeds in ([`Detector::integrity`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntegrityEvent {
    /// A signed checkpoint was written.
    Checkpoint,
    /// A verify run passed.
    VerifyPassed,
    /// A verify run failed.
    VerifyFailed {
        /// What failed.
        detail: String,
    },
    /// Retention deleted something its policy does not allow.
    RetentionOutsidePolicy {
        /// What was deleted.
        detail: String,
    },
}

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The condition started to hold.
    Firing,
    /// It stopped holding.
    Resolved,
}

impl State {
    /// `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Firing => "firing",
            State::Resolved => "resolved",
        }
    }
}

/// One alert changing state: what is appended to the log and sent to people.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The alert's id: stable from firing to resolution (16 hex digits).
    pub id: String,
    /// The rule's name.
    pub rule: String,
    /// The group.
    pub group: Group,
    /// Firing or resolved.
    pub state: State,
    /// When this transition happened, unix ns.
    pub at_ns: u64,
    /// When the alert started firing, unix ns.
    pub since_ns: u64,
    /// The measured value (at firing; the last one at resolution).
    pub value: f64,
    /// The threshold.
    pub threshold: f64,
    /// The window measured over, ns.
    pub window_ns: u64,
    /// The baseline compared with.
    pub baseline: Option<f64>,
    /// The rule's severity.
    pub severity: Severity,
    /// One line for people.
    pub summary: String,
    /// The records behind it.
    pub query: Query,
    /// Alerts for this group suppressed since the last one raised.
    pub suppressed: u64,
    /// The tenant of the record that raised it (stamped on its alert records, so that
    /// tenant's readers see it); none for alerts raised by time passing (silences, gaps,
    /// integrity), which only operators see.
    pub tenant: Option<String>,
}

impl Transition {
    /// The `meshlog query` command listing the records behind the alert: from one window
    /// before it fired to this transition.
    pub fn query_command(&self) -> String {
        self.query.command(
            self.since_ns.saturating_sub(self.window_ns),
            self.at_ns.max(self.since_ns),
        )
    }
}

/// Counters of one rule (for `/metrics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleStats {
    /// The rule.
    pub rule: String,
    /// Alerts raised.
    pub fired: u64,
    /// Alerts resolved.
    pub resolved: u64,
    /// Alerts suppressed.
    pub suppressed: u64,
    /// Alerts firing now.
    pub firing: u64,
    /// Groups held now.
    pub groups: u64,
    /// Groups evicted for the memory cap.
    pub evicted: u64,
}

struct Slot {
    rule: Box<dyn Rule>,
    severity: Severity,
    suppress_ns: u64,
    fired: u64,
    resolved: u64,
    suppressed: u64,
}

struct Active {
    firing: Transition,
    suppressed: bool,
}

/// Runs the rules.
pub struct Detector {
    slots: Vec<Slot>,
    active: HashMap<(usize, String), Active>,
    last_start: HashMap<(usize, String), u64>,
    pending_suppressed: HashMap<(usize, String), u64>,
    learning_ns: u64,
    replay_ns: u64,
    started: Option<u64>,
    replaying: bool,
    logged: HashMap<(String, String), LoggedAlert>,
    buf: Vec<Signal>,
    /// The tenant of the record being observed (for the alerts it raises).
    tenant: Option<String>,
    /// The record keys the enabled rules read: a stored line is read keeping only these.
    keys: Keys,
    /// The same without the record's times, which only a replay reads (live, time is the
    /// collector's clock): what [`Detector::observe_indexed`] reads.
    live_keys: Keys,
    /// The previous indexed line's keys ([`Flat::parse_indexed`]).
    memo: KeyMemo,
    /// The last record's emptied fields: the next one is read into their allocation.
    spare: Vec<crate::scan::Field<'static>>,
}

fn fingerprint(rule: &str, key: &str, since: u64) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in rule
        .bytes()
        .chain([0])
        .chain(key.bytes())
        .chain([0])
        .chain(since.to_le_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

impl Detector {
    /// A detector with every rule `cfg` enables.
    pub fn new(cfg: &DetectConfig) -> Detector {
        let mut rules: Vec<(Box<dyn Rule>, &crate::config::Common)> = Vec::new();
        if cfg.enabled {
            let c = cfg;
            rules.push((
                Box::new(AuthBurst::new(c.auth_failure_burst.clone())),
                &c.auth_failure_burst.common,
            ));
            rules.push((
                Box::new(ErrorSpikeRule::new(c.error_spike.clone())),
                &c.error_spike.common,
            ));
            rules.push((
                Box::new(NewCallerRule::new(c.new_caller.clone())),
                &c.new_caller.common,
            ));
            rules.push((
                Box::new(RareHourRule::new(c.rare_hour.clone())),
                &c.rare_hour.common,
            ));
            rules.push((
                Box::new(SecretsRule::new(c.secrets.clone())),
                &c.secrets.common,
            ));
            rules.push((
                Box::new(DeliveryLossRule::new(c.delivery_loss.clone())),
                &c.delivery_loss.common,
            ));
            rules.push((
                Box::new(IntegrityRule::new(c.integrity.clone())),
                &c.integrity.common,
            ));
            rules.push((
                Box::new(VolumeRule::new(c.volume.clone())),
                &c.volume.common,
            ));
            for u in &c.rules {
                rules.push((Box::new(UserRuleState::new(u.clone())), &u.common));
            }
        }
        let slots = rules
            .into_iter()
            .filter(|(_, c)| c.enabled)
            .map(|(rule, c)| Slot {
                rule,
                severity: c.severity,
                suppress_ns: c.suppress_s.saturating_mul(NS_PER_S),
                fired: 0,
                resolved: 0,
                suppressed: 0,
            })
            .collect::<Vec<Slot>>();
        let mut live_keys = Keys::none();
        record::View::live_keys(&mut live_keys);
        for s in &slots {
            s.rule.keys(&mut live_keys);
        }
        let mut keys = live_keys.clone();
        record::View::keys(&mut keys);
        Detector {
            keys,
            live_keys,
            memo: KeyMemo::default(),
            spare: Vec::new(),
            slots,
            active: HashMap::new(),
            last_start: HashMap::new(),
            pending_suppressed: HashMap::new(),
            learning_ns: cfg.learning_s.saturating_mul(NS_PER_S),
            replay_ns: cfg.replay_s.saturating_mul(NS_PER_S),
            started: None,
            replaying: false,
            logged: HashMap::new(),
            buf: Vec::new(),
            tenant: None,
        }
    }

    /// How far back to replay at start, ns: records observed at or after `now - replay_ns()`.
    pub fn replay_ns(&self) -> u64 {
        self.replay_ns
    }

    /// What the rules learned beyond what a replay rebuilds (new-caller edges, a principal's
    /// hours), and when learning started, as JSON: the collector writes it to the data
    /// directory now and then and at shutdown, and [`Detector::load_snapshot`] takes it back
    /// at start, so a history longer than `replay_s` survives a restart.
    pub fn snapshot(&self) -> serde_json::Value {
        let mut rules = serde_json::Map::new();
        for s in &self.slots {
            if let Some(v) = s.rule.snapshot() {
                rules.insert(s.rule.name().to_owned(), v);
            }
        }
        serde_json::json!({
            "version": SNAPSHOT_VERSION,
            "started_unix_nano": self.started,
            "rules": rules,
        })
    }

    /// Takes back a [`Detector::snapshot`] at `now`, before the replay. Learning does not
    /// start over: the snapshot's start stands. A snapshot of another version, or of rules no
    /// longer enabled, is ignored (the replay and learning rebuild what they can).
    pub fn load_snapshot(&mut self, v: &serde_json::Value, now: u64) -> bool {
        if v["version"].as_u64() != Some(SNAPSHOT_VERSION) {
            return false;
        }
        if let Some(t) = v["started_unix_nano"].as_u64() {
            self.started = Some(t.min(now));
        }
        for s in &mut self.slots {
            if let Some(r) = v["rules"].get(s.rule.name()) {
                s.rule.load_snapshot(r, now);
            }
        }
        true
    }

    /// Sets the retention policy `meshlog.retention.deletion` records are judged by (the
    /// `integrity` rule); until it is set, deletions are not judged.
    pub fn set_retention_policy(&mut self, policy: &crate::RetentionPolicy) {
        for s in &mut self.slots {
            s.rule.retention_policy(policy);
        }
    }

    /// The enabled rules' names.
    pub fn rule_names(&self) -> Vec<&str> {
        self.slots.iter().map(|s| s.rule.name()).collect()
    }

    fn ctx(&mut self, now: u64) -> Ctx {
        let started = *self.started.get_or_insert(now);
        Ctx {
            learning: self.replaying || now < started.saturating_add(self.learning_ns),
        }
    }

    /// Takes one committed record at `now` (unix ns); returns the transitions it caused.
    /// The detector's own `meshlog.alert` records are not evaluated.
    pub fn observe(&mut self, r: &Record, now: u64) -> Vec<Transition> {
        if is_own(record::event(r)) {
            if self.replaying {
                self.log(r);
            }
            return Vec::new();
        }
        self.evaluate(&record::View::of(&Flat::of_map(r)), now)
    }

    /// [`Detector::observe`] for a record as the store keeps it (one JSON object): read in
    /// place ([`Flat`]), not parsed into a map, keeping only the keys the rules read (the
    /// line is still checked whole), which is what the collector feeds.
    pub fn observe_json(&mut self, line: &[u8], now: u64) -> Result<Vec<Transition>, ReadError> {
        self.observe_indexed(line, &[], 0, now)
    }

    /// [`Detector::observe_json`] for a line with its member index and shape (what the store hands over
    /// for records it just wrote; see [`Flat::parse_indexed`]): the same transitions, without
    /// reading the whole line. An empty index reads the line.
    pub fn observe_indexed(
        &mut self,
        line: &[u8],
        members: &[u32],
        shape: u64,
        now: u64,
    ) -> Result<Vec<Transition>, ReadError> {
        // Taken out for the call: the record borrows the keys while the rules change.
        let keys = std::mem::take(&mut self.live_keys);
        let mut memo = std::mem::take(&mut self.memo);
        let spare = crate::flat::recycle(std::mem::take(&mut self.spare));
        let r = match Flat::parse_indexed_into(line, members, shape, &keys, &mut memo, spare) {
            Ok(flat) => {
                let r = self.observe_flat(&flat, line, now);
                self.spare = flat.into_spare();
                r
            }
            Err(e) => Err(e.into()),
        };
        self.live_keys = keys;
        self.memo = memo;
        r
    }

    /// The keys a stored line is read with ([`Detector::observe_json`]).
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    fn observe_flat(
        &mut self,
        flat: &Flat<'_>,
        line: &[u8],
        now: u64,
    ) -> Result<Vec<Transition>, ReadError> {
        let view = record::View::of(flat);
        if is_own(view.event) {
            if self.replaying {
                // Alert records are few: the map is what the log's alerts are read from.
                self.log(&serde_json::from_slice(line)?);
            }
            return Ok(Vec::new());
        }
        Ok(self.evaluate(&view, now))
    }

    fn evaluate(&mut self, view: &record::View<'_>, now: u64) -> Vec<Transition> {
        let mut out = Vec::new();
        let ctx = self.ctx(now);
        if self.tenant.as_deref() != view.tenant {
            self.tenant = view.tenant.map(str::to_owned);
        }
        let mut buf = std::mem::take(&mut self.buf);
        for i in 0..self.slots.len() {
            if let Some(slot) = self.slots.get_mut(i) {
                slot.rule.observe(view, now, ctx, &mut buf);
            }
            // Most records raise nothing.
            if !buf.is_empty() {
                self.apply(i, &mut buf, now, &mut out);
            }
        }
        self.buf = buf;
        out
    }

    /// Lets time pass: closes windows, finds silences and stalls, resolves. Call it every
    /// second or so (and at least once per the shortest window).
    pub fn tick(&mut self, now: u64) -> Vec<Transition> {
        let mut out = Vec::new();
        self.tenant = None;
        let ctx = self.ctx(now);
        for i in 0..self.slots.len() {
            let mut buf = std::mem::take(&mut self.buf);
            if let Some(slot) = self.slots.get_mut(i) {
                slot.rule.tick(now, ctx, &mut buf);
            }
            self.apply(i, &mut buf, now, &mut out);
            self.buf = buf;
        }
        let suppress: Vec<u64> = self.slots.iter().map(|s| s.suppress_ns).collect();
        self.last_start
            .retain(|(i, _), t| now.saturating_sub(*t) < suppress.get(*i).copied().unwrap_or(0));
        // Suppressed counts wait for the group's next alert; past a bound, those of groups
        // neither firing nor in a suppression window are let go (memory stays bounded).
        if self.pending_suppressed.len() > MAX_PENDING_SUPPRESSED {
            let (active, last) = (&self.active, &self.last_start);
            self.pending_suppressed
                .retain(|k, _| active.contains_key(k) || last.contains_key(k));
        }
        out
    }

    /// Takes an integrity event at `now`.
    pub fn integrity(&mut self, ev: &IntegrityEvent, now: u64) -> Vec<Transition> {
        let mut out = Vec::new();
        self.tenant = None;
        for i in 0..self.slots.len() {
            let mut buf = std::mem::take(&mut self.buf);
            if let Some(slot) = self.slots.get_mut(i) {
                slot.rule.integrity(ev, now, &mut buf);
            }
            self.apply(i, &mut buf, now, &mut out);
            self.buf = buf;
        }
        out
    }

    /// Replays one stored record (oldest first), at its stored time: rules rebuild their
    /// state, alert records say what the log holds; nothing is raised.
    pub fn replay(&mut self, r: &Record) {
        self.replaying = true;
        let now = record::stored_time(r);
        let _ = self.observe(r, now);
    }

    /// [`Detector::replay`] for a record as the store keeps it (see
    /// [`Detector::observe_json`]).
    pub fn replay_json(&mut self, line: &[u8]) -> Result<(), ReadError> {
        self.replaying = true;
        let keys = std::mem::take(&mut self.keys);
        let r = match Flat::parse_keys(line, &keys) {
            Ok(flat) => {
                let now = flat.stored_time();
                self.observe_flat(&flat, line, now).map(drop)
            }
            Err(e) => Err(e.into()),
        };
        self.keys = keys;
        r
    }

    /// Ends a replay at `now`: raises what the rules find firing that the log lost, resolves
    /// what the log holds firing that no longer is, and adopts the rest (see the module doc).
    pub fn finish_replay(&mut self, now: u64) -> Vec<Transition> {
        self.replaying = true;
        let _ = self.tick(now);
        self.replaying = false;
        let mut out = Vec::new();
        let logged = std::mem::take(&mut self.logged);
        let mut logged_keys = Vec::new();
        for ((rule, key), l) in logged {
            let Some(i) = self.slots.iter().position(|s| s.rule.name() == rule) else {
                continue;
            };
            logged_keys.push((i, key.clone()));
            if let Some(a) = self.active.get_mut(&(i, key.clone())) {
                // Both hold it: the log's alert stays the alert.
                a.firing.id = l.transition.id.clone();
                a.firing.since_ns = l.transition.since_ns;
                continue;
            }
            let restored = self.slots.get_mut(i).is_some_and(|s| {
                s.rule
                    .restore(&l.transition.group, l.transition.since_ns, now)
            });
            if restored {
                self.active.insert(
                    (i, key),
                    Active {
                        firing: l.transition,
                        suppressed: false,
                    },
                );
            } else {
                let mut t = l.transition;
                t.state = State::Resolved;
                t.at_ns = now;
                if let Some(s) = self.slots.get_mut(i) {
                    s.resolved += 1;
                }
                out.push(t);
            }
        }
        // Firing by the records, not in the log: lost in the crash, raised now.
        let mut lost: Vec<_> = self
            .active
            .iter()
            .filter(|(k, a)| !a.suppressed && !logged_keys.contains(k))
            .map(|(k, a)| (k.0, a.firing.clone()))
            .collect();
        lost.sort_by_key(|(_, t)| t.since_ns);
        for (i, mut t) in lost {
            if let Some(s) = self.slots.get_mut(i) {
                s.fired += 1;
            }
            // Raised now (the record's time), with its original start and id.
            t.at_ns = now;
            out.push(t);
        }
        out
    }

    fn log(&mut self, r: &Record) {
        if let Some(l) = alert::parse_alert(r) {
            let k = (l.transition.rule.clone(), l.transition.group.key());
            match l.transition.state {
                State::Firing => {
                    self.logged.insert(k, l);
                }
                State::Resolved => {
                    self.logged.remove(&k);
                }
            }
        }
    }

    fn apply(&mut self, i: usize, buf: &mut Vec<Signal>, now: u64, out: &mut Vec<Transition>) {
        for s in buf.drain(..) {
            match s {
                Signal::Fire(f) => self.fire(i, f, now, out),
                Signal::Clear { key, value } => self.clear(i, key, value, now, out),
            }
        }
    }

    fn fire(&mut self, i: usize, f: Finding, now: u64, out: &mut Vec<Transition>) {
        let key = f.group.key();
        let k = (i, key);
        if self.active.contains_key(&k) {
            return;
        }
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        let t = Transition {
            id: fingerprint(slot.rule.name(), &k.1, now),
            rule: slot.rule.name().to_owned(),
            group: f.group,
            state: State::Firing,
            at_ns: now,
            since_ns: now,
            value: f.value,
            threshold: f.threshold,
            window_ns: f.window_ns,
            baseline: f.baseline,
            severity: slot.severity,
            summary: f.summary,
            query: f.query,
            suppressed: 0,
            tenant: self.tenant.clone(),
        };
        if self.replaying {
            self.active.insert(
                k,
                Active {
                    firing: t,
                    suppressed: false,
                },
            );
            return;
        }
        let suppressed = slot.suppress_ns > 0
            && self
                .last_start
                .get(&k)
                .is_some_and(|t0| now.saturating_sub(*t0) < slot.suppress_ns);
        if suppressed {
            slot.suppressed += 1;
            *self.pending_suppressed.entry(k.clone()).or_default() += 1;
            self.active.insert(
                k,
                Active {
                    firing: t,
                    suppressed: true,
                },
            );
            return;
        }
        slot.fired += 1;
        let mut t = t;
        t.suppressed = self.pending_suppressed.remove(&k).unwrap_or(0);
        if slot.suppress_ns > 0 {
            self.last_start.insert(k.clone(), now);
        }
        out.push(t.clone());
        self.active.insert(
            k,
            Active {
                firing: t,
                suppressed: false,
            },
        );
    }

    fn clear(&mut self, i: usize, key: String, value: f64, now: u64, out: &mut Vec<Transition>) {
        let Some(a) = self.active.remove(&(i, key)) else {
            return;
        };
        if a.suppressed || self.replaying {
            return;
        }
        if let Some(s) = self.slots.get_mut(i) {
            s.resolved += 1;
        }
        let mut t = a.firing;
        t.state = State::Resolved;
        t.at_ns = now;
        t.value = value;
        t.suppressed = 0;
        out.push(t);
    }

    /// The alerts firing now (the raised ones, not the suppressed), oldest first.
    pub fn firing(&self) -> Vec<&Transition> {
        let mut v: Vec<&Transition> = self
            .active
            .values()
            .filter(|a| !a.suppressed)
            .map(|a| &a.firing)
            .collect();
        v.sort_by_key(|t| t.since_ns);
        v
    }

    /// Per-rule counters.
    pub fn stats(&self) -> Vec<RuleStats> {
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| RuleStats {
                rule: s.rule.name().to_owned(),
                fired: s.fired,
                resolved: s.resolved,
                suppressed: s.suppressed,
                firing: self
                    .active
                    .iter()
                    .filter(|((j, _), a)| *j == i && !a.suppressed)
                    .count() as u64,
                groups: s.rule.groups() as u64,
                evicted: s.rule.evicted(),
            })
            .collect()
    }
}

/// True for the event of the detector's own records (alerts and triage), which no rule
/// evaluates.
fn is_own(event: Option<&str>) -> bool {
    matches!(event, Some(alert::ALERT_EVENT | alert::TRIAGE_EVENT))
}

#[doc(hidden)]
pub use rules::one_key as _one_key;
