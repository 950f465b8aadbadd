//! New caller: a (caller principal → service) edge not seen within `history_s` (Elastic's
//! new_terms on two fields). Edges are learned silently while the detector learns; an alert
//! resolves `resolve_after_s` after it fired.

use super::{Ctx, Finding, Group, Query, Rule, Signal, key_of};
use crate::NS_PER_S;
use crate::config::NewCaller;
use crate::record::View;
use crate::window::{Edge, Groups, Latch};

/// The rule.
pub struct NewCallerRule {
    cfg: NewCaller,
    history_ns: u64,
    edges: Groups<Latch>,
    next_gc: u64,
}

impl NewCallerRule {
    /// The rule with `cfg`.
    pub fn new(cfg: NewCaller) -> Self {
        NewCallerRule {
            history_ns: cfg.history_s * NS_PER_S,
            edges: Groups::new(cfg.common.max_groups),
            next_gc: 0,
            cfg,
        }
    }
}

fn edge_key(principal: &str, service: &str) -> String {
    key_of(&[("principal", principal), ("service", service)])
}

impl Rule for NewCallerRule {
    fn name(&self) -> &str {
        "new_caller"
    }

    fn observe(&mut self, v: &View<'_>, now: u64, ctx: Ctx, out: &mut Vec<Signal>) {
        if !v.request {
            return;
        }
        let (Some(principal), Some(service)) = (v.principal, v.service) else {
            return;
        };
        if !self.cfg.services.is_empty() && !self.cfg.services.iter().any(|s| s == service) {
            return;
        }
        let pairs = [("principal", principal), ("service", service)];
        if self.edges.touch_pairs(&pairs, now).is_some() {
            return;
        }
        let Some(latch) = self.edges.entry(&pairs, now, Latch::default, |l| l.firing) else {
            return;
        };
        if ctx.learning {
            return;
        }
        latch.update(true, now, 0);
        out.push(Signal::Fire(Finding {
            group: Group {
                labels: vec![
                    ("principal".into(), principal.into()),
                    ("service".into(), service.into()),
                ],
            },
            value: 1.0,
            threshold: 1.0,
            window_ns: self.history_ns,
            baseline: None,
            summary: format!(
                "{principal} called {service} for the first time in {}s",
                self.cfg.history_s
            ),
            query: Query {
                service: Some(service.into()),
                principal: Some(principal.into()),
                ..Query::default()
            },
        }));
    }

    fn tick(&mut self, now: u64, _ctx: Ctx, out: &mut Vec<Signal>) {
        let resolve = self.cfg.common.resolve_after_ns();
        let gc = now >= self.next_gc;
        if gc {
            self.next_gc = now + 60 * NS_PER_S;
        }
        let history = self.history_ns;
        self.edges.retain(|key, l, seen| {
            if l.firing && l.update(false, now, resolve) == Some(Edge::Clear) {
                out.push(Signal::Clear {
                    key: key.to_owned(),
                    value: 1.0,
                });
            }
            !gc || l.firing || now.saturating_sub(seen) < history
        });
    }

    fn restore(&mut self, group: &Group, since: u64, now: u64) -> bool {
        let (Some(p), Some(s)) = (group.get("principal"), group.get("service")) else {
            return false;
        };
        let key = edge_key(p, s);
        match self
            .edges
            .get_or_insert(&key, now, Latch::default, |l| l.firing)
        {
            Some(l) => {
                *l = Latch {
                    firing: true,
                    last_true: since,
                    since,
                };
                true
            }
            None => false,
        }
    }

    /// The known edges with when each was last seen: `[[key, last_seen_ns], …]`.
    fn snapshot(&self) -> Option<serde_json::Value> {
        let edges: Vec<serde_json::Value> = self
            .edges
            .entries()
            .map(|(k, _, seen)| serde_json::json!([k, seen]))
            .collect();
        Some(serde_json::Value::Array(edges))
    }

    fn load_snapshot(&mut self, v: &serde_json::Value, now: u64) {
        for e in v.as_array().into_iter().flatten() {
            let (Some(key), Some(seen)) = (e[0].as_str(), e[1].as_u64()) else {
                continue;
            };
            if now.saturating_sub(seen) < self.history_ns {
                self.edges.restore(key, Latch::default(), seen);
            }
        }
    }

    fn groups(&self) -> usize {
        self.edges.len()
    }

    fn evicted(&self) -> u64 {
        self.edges.evicted
    }
}
