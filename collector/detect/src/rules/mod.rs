//! The rules: each a state machine over records (and integrity events) that says when a group
//! starts and stops meeting its condition. The [`crate::engine::Detector`] turns those signals
//! into alert transitions (dedup, suppression, replay).

pub mod auth;
pub mod delivery;
pub mod errors;
pub mod integrity;
pub mod new_caller;
pub mod rare_hour;
pub mod secrets;
pub mod user;
pub mod volume;

use crate::engine::IntegrityEvent;
use crate::keys::Keys;
use crate::record::View;
use crate::retention::RetentionPolicy;
use meshlog_format::time::rfc3339;
use std::fmt;

/// What a group is: label/value pairs (`caller=spiffe://…`, `service=checkout`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Group {
    /// The labels, in the rule's order.
    pub labels: Vec<(String, String)>,
}

impl Group {
    /// A group of one label.
    pub fn one(label: &str, value: &str) -> Group {
        Group {
            labels: vec![(label.to_owned(), value.to_owned())],
        }
    }

    /// The key the rule and the detector index the group by.
    pub fn key(&self) -> String {
        let mut s = String::new();
        for (i, (k, v)) in self.labels.iter().enumerate() {
            if i > 0 {
                s.push('\u{1f}');
            }
            s.push_str(k);
            s.push('=');
            s.push_str(v);
        }
        s
    }

    /// The value of `label`.
    pub fn get(&self, label: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == label)
            .map(|(_, v)| v.as_str())
    }
}

/// The key of a one-label group, without building the [`Group`].
pub fn one_key(label: &str, value: &str) -> String {
    let mut s = String::with_capacity(label.len() + value.len() + 1);
    s.push_str(label);
    s.push('=');
    s.push_str(value);
    s
}

/// The key of a group of labels given as pairs, without building the [`Group`]; the same
/// string as [`Group::key`].
pub fn key_of(pairs: &[(&str, &str)]) -> String {
    let mut s = String::with_capacity(pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
    write_key(&mut s, pairs);
    s
}

/// [`key_of`] into `s` (cleared first), reusing its allocation.
pub fn write_key(s: &mut String, pairs: &[(&str, &str)]) {
    s.clear();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push('\u{1f}');
        }
        s.push_str(k);
        s.push('=');
        s.push_str(v);
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.labels.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// The `meshlog query` that lists the records behind an alert.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Query {
    /// `--service`.
    pub service: Option<String>,
    /// `--status` (`401,403`, `5xx`).
    pub status: Option<String>,
    /// `--principal`.
    pub principal: Option<String>,
    /// `--client`.
    pub client: Option<String>,
    /// `--where KEY=VALUE`, repeated.
    #[serde(rename = "where")]
    pub wheres: Vec<(String, String)>,
}

impl Query {
    /// A query for one caller, as [`crate::record::caller`] labels it.
    pub fn for_caller(label: &str, value: &str) -> Query {
        let mut q = Query::default();
        match label {
            "principal" => q.principal = Some(value.to_owned()),
            "client" => q.client = Some(value.to_owned()),
            other => q
                .wheres
                .push((caller_attribute(other).to_owned(), value.to_owned())),
        }
        q
    }

    /// The command line: `meshlog query --since … --until … [filters]`.
    pub fn command(&self, since_ns: u64, until_ns: u64) -> String {
        let mut s = format!(
            "meshlog query --since {} --until {}",
            rfc3339(since_ns),
            rfc3339(until_ns)
        );
        let mut flag = |name: &str, v: &str| {
            s.push_str(" --");
            s.push_str(name);
            s.push(' ');
            s.push_str(&shell_quote(v));
        };
        if let Some(v) = &self.service {
            flag("service", v);
        }
        if let Some(v) = &self.status {
            flag("status", v);
        }
        if let Some(v) = &self.principal {
            flag("principal", v);
        }
        if let Some(v) = &self.client {
            flag("client", v);
        }
        for (k, v) in &self.wheres {
            flag("where", &format!("{k}={v}"));
        }
        s
    }
}

fn caller_attribute(label: &str) -> &str {
    match label {
        "enduser" => crate::record::ENDUSER_ID,
        other => other,
    }
}

/// `v` quoted for a POSIX shell when it needs it.
pub fn shell_quote(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '-' | '_' | '.' | '/' | ':' | '=' | ',' | '@' | '+')
        });
    if plain {
        v.to_owned()
    } else {
        format!("'{}'", v.replace('\'', r"'\''"))
    }
}

/// Why a group fires: what was measured against what.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The group.
    pub group: Group,
    /// The measured value (a count, a ratio, a distinct count).
    pub value: f64,
    /// The threshold it crossed.
    pub threshold: f64,
    /// The window it was measured over, nanoseconds.
    pub window_ns: u64,
    /// The baseline it was compared with, for baseline rules.
    pub baseline: Option<f64>,
    /// One line for people.
    pub summary: String,
    /// The records behind it.
    pub query: Query,
}

/// A rule's output.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// The group started meeting the condition.
    Fire(Finding),
    /// The group stopped meeting it (for the resolve delay); `value` is the last measurement.
    Clear {
        /// [`Group::key`].
        key: String,
        /// The last measured value.
        value: f64,
    },
}

/// What the detector tells a rule besides the record.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    /// Baselines and histories are being learned (the first `learning_s`, or a replay): rules
    /// that compare with the past must not fire.
    pub learning: bool,
}

/// One rule.
pub trait Rule: Send {
    /// Its name (`auth_failure_burst`, or a user rule's).
    fn name(&self) -> &str;
    /// Adds the record keys the rule reads beyond [`View`]'s own ([`View::keys`]): a record is
    /// read keeping only those (debug builds check that no other is read).
    fn keys(&self, _keys: &mut Keys) {}
    /// Takes one committed record (read once for every rule: [`View`]) at `now`.
    fn observe(&mut self, v: &View<'_>, now: u64, ctx: Ctx, out: &mut Vec<Signal>);
    /// Time passes: windows close, silences and delays expire.
    fn tick(&mut self, now: u64, ctx: Ctx, out: &mut Vec<Signal>);
    /// Takes an integrity event (checkpoint, verify, retention); most rules ignore them.
    fn integrity(&mut self, _ev: &IntegrityEvent, _now: u64, _out: &mut Vec<Signal>) {}
    /// Takes the retention policy deletions are judged by; most rules ignore it.
    fn retention_policy(&mut self, _policy: &RetentionPolicy) {}
    /// After a replay: the log says `group` has been firing since `since`, but the replay did
    /// not rebuild it (a history rule learns during replay; integrity state is not in records).
    /// True when the rule takes it as firing (it will resolve it itself later); false when the
    /// replayed records are the truth (the detector then resolves it).
    fn restore(&mut self, _group: &Group, _since: u64, _now: u64) -> bool {
        false
    }
    /// What the rule learned that a replay of the recent window cannot rebuild (a history
    /// longer than `replay_s`), for [`crate::Detector::snapshot`]; `None` for rules whose state
    /// the replay rebuilds.
    fn snapshot(&self) -> Option<serde_json::Value> {
        None
    }
    /// Takes back what [`Rule::snapshot`] gave, at `now` (what is too old by now is left out).
    fn load_snapshot(&mut self, _v: &serde_json::Value, _now: u64) {}
    /// Groups held now.
    fn groups(&self) -> usize;
    /// Groups dropped for the memory cap.
    fn evicted(&self) -> u64;
}
