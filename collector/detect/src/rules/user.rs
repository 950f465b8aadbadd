//! User rules (`[[detect.rules]]`): Sigma correlation semantics over the records a `where`
//! filter keeps — `event_count` (records per group in the timespan), `value_count` (distinct
//! values of a field per group) and `new_terms` (a combination of up to three fields not seen
//! within a history window) — grouped by up to three attributes.

use super::{Ctx, Finding, Group, Query, Rule, Signal};
use crate::config::{Correlation, Match, Op, UserRule};
use crate::flat::Flat;
use crate::record::{self, View};
use crate::window::{Edge, Groups, Latch, RollingCount};
use meshlog_core::schema::HTTP_RESPONSE_STATUS_CODE;
use std::borrow::Cow;
use std::collections::HashMap;

/// Distinct values remembered per group for `value_count`, past the threshold.
const MAX_DISTINCT: usize = 4096;

enum Measure {
    Count(RollingCount),
    Distinct(HashMap<String, u64>),
    Term,
}

struct State {
    group: Group,
    measure: Measure,
    latch: Latch,
}

/// One user rule.
pub struct UserRuleState {
    rule: UserRule,
    groups: Groups<State>,
    next_gc: u64,
}

impl UserRuleState {
    /// The rule `rule`.
    pub fn new(rule: UserRule) -> Self {
        UserRuleState {
            groups: Groups::new(rule.common.max_groups),
            next_gc: 0,
            rule,
        }
    }
}

/// True when `m` holds for `r`: the attribute has one of the values; `5xx`-style classes match
/// integer status codes of that hundred.
pub fn matches(m: &Match, r: &Flat<'_>) -> bool {
    let Some(v) = r.text(&m.key) else {
        return false;
    };
    m.values.iter().any(|want| {
        *want == *v
            || (want.len() == 3
                && want.ends_with("xx")
                && v.len() == 3
                && want.get(..1) == v.get(..1))
    })
}

fn met(op: Op, value: f64, n: f64) -> bool {
    match op {
        Op::Gt => value > n,
        Op::Gte => value >= n,
    }
}

impl UserRuleState {
    fn query(&self, group: &Group) -> Query {
        let mut q = Query::default();
        let mut add = |k: &str, v: &str| match k {
            record::SERVICE => q.service = Some(v.to_owned()),
            meshlog_core::schema::MESHLOG_PEER_PRINCIPAL => q.principal = Some(v.to_owned()),
            meshlog_core::schema::CLIENT_ADDRESS => q.client = Some(v.to_owned()),
            HTTP_RESPONSE_STATUS_CODE => q.status = Some(v.to_owned()),
            _ => q.wheres.push((k.to_owned(), v.to_owned())),
        };
        for m in &self.rule.wheres {
            if m.key == HTTP_RESPONSE_STATUS_CODE {
                add(&m.key, &m.values.join(","));
            } else if let [one] = m.values.as_slice() {
                add(&m.key, one);
            }
        }
        for (k, v) in &group.labels {
            if v != "-" && !self.rule.wheres.iter().any(|m| &m.key == k) {
                add(k, v);
            }
        }
        q
    }
}

impl Rule for UserRuleState {
    fn name(&self) -> &str {
        &self.rule.name
    }

    fn keys(&self, keys: &mut crate::keys::Keys) {
        for m in &self.rule.wheres {
            keys.insert(&m.key);
        }
        for k in &self.rule.group_by {
            keys.insert(k);
        }
        match &self.rule.correlation {
            Correlation::ValueCount { field } => keys.insert(field),
            Correlation::NewTerms { fields, .. } => fields.iter().for_each(|f| keys.insert(f)),
            Correlation::EventCount => {}
        }
    }

    fn observe(&mut self, v: &View<'_>, now: u64, ctx: Ctx, out: &mut Vec<Signal>) {
        let r = v.r;
        if !self.rule.wheres.iter().all(|m| matches(m, r)) {
            return;
        }
        let mut labels: Vec<(String, String)> = self
            .rule
            .group_by
            .iter()
            .map(|k| {
                (
                    k.clone(),
                    r.text(k).map_or_else(|| "-".into(), Cow::into_owned),
                )
            })
            .collect();
        let distinct_value = match &self.rule.correlation {
            Correlation::ValueCount { field } => match r.text(field) {
                Some(v) => Some(v.into_owned()),
                None => return,
            },
            Correlation::NewTerms { fields, .. } => {
                for f in fields {
                    match r.text(f) {
                        Some(v) => labels.push((f.clone(), v.into_owned())),
                        None => return,
                    }
                }
                None
            }
            Correlation::EventCount => None,
        };
        let group = Group { labels };
        let key = group.key();
        let span = self.rule.timespan_ns;
        let is_new = !matches!(self.rule.correlation, Correlation::NewTerms { .. })
            || self.groups.get_mut(&key).is_none();
        let correlation = &self.rule.correlation;
        let Some(s) = self.groups.get_or_insert(
            &key,
            now,
            || State {
                group: group.clone(),
                measure: match correlation {
                    Correlation::EventCount => Measure::Count(RollingCount::new(span)),
                    Correlation::ValueCount { .. } => Measure::Distinct(HashMap::new()),
                    Correlation::NewTerms { .. } => Measure::Term,
                },
                latch: Latch::default(),
            },
            |s| s.latch.firing,
        ) else {
            return;
        };
        let (op, n) = self.rule.condition;
        let value = match &mut s.measure {
            Measure::Count(c) => {
                c.add(now, 1.0);
                c.total(now)
            }
            Measure::Distinct(d) => {
                if let Some(v) = distinct_value
                    && (d.len() < MAX_DISTINCT || d.contains_key(&v))
                {
                    d.insert(v, now);
                }
                d.retain(|_, t| now.saturating_sub(*t) < span);
                d.len() as f64
            }
            Measure::Term => {
                if !is_new || ctx.learning {
                    return;
                }
                1.0
            }
        };
        let cond = matches!(s.measure, Measure::Term) || met(op, value, n);
        if s.latch
            .update(cond, now, self.rule.common.resolve_after_ns())
            == Some(Edge::Fire)
        {
            let group = s.group.clone();
            let (window_ns, what) = match &self.rule.correlation {
                Correlation::EventCount => (span, format!("{value} matching records")),
                Correlation::ValueCount { field } => {
                    (span, format!("{value} distinct values of {field}"))
                }
                Correlation::NewTerms { history_ns, .. } => {
                    (*history_ns, "a combination not seen before".to_owned())
                }
            };
            out.push(Signal::Fire(Finding {
                query: self.query(&group),
                summary: format!("{}: {what} for {group}", self.rule.name),
                group,
                value,
                threshold: n,
                window_ns,
                baseline: None,
            }));
        }
    }

    fn tick(&mut self, now: u64, _ctx: Ctx, out: &mut Vec<Signal>) {
        let (op, n) = self.rule.condition;
        let span = self.rule.timespan_ns;
        let resolve = self.rule.common.resolve_after_ns();
        let idle = match &self.rule.correlation {
            Correlation::NewTerms { history_ns, .. } => *history_ns,
            _ => span.max(resolve),
        };
        let gc = now >= self.next_gc;
        if gc {
            self.next_gc = now + span.min(60 * crate::NS_PER_S);
        }
        self.groups.retain(|key, s, seen| {
            let cond = match &mut s.measure {
                Measure::Count(c) => met(op, c.total(now), n),
                Measure::Distinct(d) => {
                    d.retain(|_, t| now.saturating_sub(*t) < span);
                    met(op, d.len() as f64, n)
                }
                Measure::Term => false,
            };
            if s.latch.firing && s.latch.update(cond, now, resolve) == Some(Edge::Clear) {
                out.push(Signal::Clear {
                    key: key.to_owned(),
                    value: 0.0,
                });
            }
            !gc || s.latch.firing || now.saturating_sub(seen) < idle
        });
    }

    fn restore(&mut self, group: &Group, since: u64, now: u64) -> bool {
        if !matches!(self.rule.correlation, Correlation::NewTerms { .. }) {
            return false;
        }
        let key = group.key();
        let g = group.clone();
        match self.groups.get_or_insert(
            &key,
            now,
            || State {
                group: g,
                measure: Measure::Term,
                latch: Latch::default(),
            },
            |s| s.latch.firing,
        ) {
            Some(s) => {
                s.latch = Latch {
                    firing: true,
                    last_true: since,
                    since,
                };
                true
            }
            None => false,
        }
    }

    fn groups(&self) -> usize {
        self.groups.len()
    }

    fn evicted(&self) -> u64 {
        self.groups.evicted
    }
}
