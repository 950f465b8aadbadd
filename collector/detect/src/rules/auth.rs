//! Authentication-failure burst: at least `threshold` 401/403 answers to one caller (the end
//! user when known, else the workload principal, else the client address) within `window_s`.
//! Sigma `event_count` over the failures, grouped by caller.

use super::{Ctx, Finding, Group, Query, Rule, Signal};
use crate::NS_PER_S;
use crate::config::AuthFailureBurst;
use crate::record::View;
use crate::window::{Edge, Groups, Latch, RollingCount};

struct State {
    count: RollingCount,
    latch: Latch,
}

/// The rule.
pub struct AuthBurst {
    cfg: AuthFailureBurst,
    window_ns: u64,
    groups: Groups<State>,
    status_param: String,
}

impl AuthBurst {
    /// The rule with `cfg`.
    pub fn new(cfg: AuthFailureBurst) -> Self {
        let status_param = cfg
            .statuses
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        AuthBurst {
            window_ns: cfg.window_s * NS_PER_S,
            groups: Groups::new(cfg.common.max_groups),
            status_param,
            cfg,
        }
    }
}

impl Rule for AuthBurst {
    fn name(&self) -> &str {
        "auth_failure_burst"
    }

    fn observe(&mut self, v: &View<'_>, now: u64, _ctx: Ctx, out: &mut Vec<Signal>) {
        if !v.request {
            return;
        }
        let Some(status) = v.status else {
            return;
        };
        if !self.cfg.statuses.contains(&status) {
            return;
        }
        let Some((label, who)) = v.caller() else {
            return;
        };
        let window_ns = self.window_ns;
        let Some(g) = self.groups.entry(
            &[(label, who)],
            now,
            || State {
                count: RollingCount::new(window_ns),
                latch: Latch::default(),
            },
            |s| s.latch.firing,
        ) else {
            return;
        };
        g.count.add(now, 1.0);
        let n = g.count.total(now);
        let threshold = self.cfg.threshold as f64;
        if g.latch
            .update(n >= threshold, now, self.cfg.common.resolve_after_ns())
            == Some(Edge::Fire)
        {
            let mut query = Query::for_caller(label, who);
            query.status = Some(self.status_param.clone());
            out.push(Signal::Fire(Finding {
                group: Group::one(label, who),
                value: n,
                threshold,
                window_ns,
                baseline: None,
                summary: format!(
                    "{n} authentication failures ({}) for {label} {who} in {}s",
                    self.status_param, self.cfg.window_s
                ),
                query,
            }));
        }
    }

    fn tick(&mut self, now: u64, _ctx: Ctx, out: &mut Vec<Signal>) {
        let threshold = self.cfg.threshold as f64;
        let resolve = self.cfg.common.resolve_after_ns();
        let idle = self.window_ns.max(resolve);
        self.groups.retain(|key, g, seen| {
            let n = g.count.total(now);
            if g.latch.update(n >= threshold, now, resolve) == Some(Edge::Clear) {
                out.push(Signal::Clear {
                    key: key.to_owned(),
                    value: n,
                });
            }
            g.latch.firing || now.saturating_sub(seen) < idle
        });
    }

    fn groups(&self) -> usize {
        self.groups.len()
    }

    fn evicted(&self) -> u64 {
        self.groups.evicted
    }
}
