//! Secrets appearing: the secrets redacted from one client's (or route's) records in the
//! current interval (the sum of its `meshlog.redacted.<kind>` counts for the secret kinds) reach
//! `min_count` and `factor` times the group's baseline plus `sigmas` times its Poisson noise
//! (the baseline an EWMA of its past intervals, zero for a client that never sent one): a
//! client that starts sending tokens in URLs.

use super::{Ctx, Finding, Group, Query, Rule, Signal, one_key};
use crate::NS_PER_S;
use crate::config::{Secrets, SecretsGroup};
use crate::record::View;
use crate::window::{
    Baselined, Edge, Groups, HasBaseline, MAX_QUIET_INTERVALS, feed_counts, tick_baselined,
};
use meshlog_core::schema::MESHLOG_REDACTED_PREFIX;

#[derive(Default)]
struct State {
    w: Baselined,
    count: f64,
}

impl HasBaseline for State {
    fn baselined(&mut self) -> &mut Baselined {
        &mut self.w
    }
}

/// The rule.
pub struct SecretsRule {
    cfg: Secrets,
    kinds: Vec<String>,
    interval_ns: u64,
    groups: Groups<State>,
}

impl SecretsRule {
    /// The rule with `cfg`.
    pub fn new(cfg: Secrets) -> Self {
        SecretsRule {
            kinds: cfg.kinds.clone(),
            interval_ns: cfg.interval_s * NS_PER_S,
            groups: Groups::new(cfg.common.max_groups),
            cfg,
        }
    }
}

/// `factor` times the baseline plus `sigmas` times its Poisson noise (√baseline): a client
/// that sends a couple of tokens a minute varies by a few from minute to minute.
fn threshold(cfg: &Secrets, s: &State) -> f64 {
    let m = s.w.baseline.mean.max(0.0);
    (m * cfg.factor + cfg.sigmas * m.sqrt()).max(cfg.min_count as f64)
}

fn roll(cfg: &Secrets, interval_ns: u64, s: &mut State, now: u64) -> Option<Edge> {
    let was_hot = s.count >= threshold(cfg, s);
    let limits = (cfg.alpha, cfg.common.resolve_after_ns());
    let edge =
        s.w.close(now, interval_ns, was_hot, limits, feed_counts(s.count))?;
    s.count = 0.0;
    edge
}

impl Rule for SecretsRule {
    fn name(&self) -> &str {
        "secrets"
    }

    fn keys(&self, keys: &mut crate::keys::Keys) {
        keys.insert_prefix(MESHLOG_REDACTED_PREFIX);
        if self.cfg.group_by == SecretsGroup::Route {
            View::route_keys(keys);
        }
    }

    fn observe(&mut self, v: &View<'_>, now: u64, ctx: Ctx, out: &mut Vec<Signal>) {
        if !v.request {
            return;
        }
        // One pass over the record's keys beats a lookup per secret kind.
        let n: i64 =
            v.r.by_prefix()
                .filter(|(k, _)| {
                    k.strip_prefix(MESHLOG_REDACTED_PREFIX)
                        .is_some_and(|kind| self.kinds.iter().any(|s| s == kind))
                })
                .filter_map(|(_, v)| v.json_i64())
                .sum();
        if n <= 0 {
            return;
        }
        let (label, who) = match self.cfg.group_by {
            SecretsGroup::Client => {
                match v
                    .principal
                    .map(|p| ("principal", p))
                    .or_else(|| v.client.map(|c| ("client", c)))
                {
                    Some(c) => c,
                    None => return,
                }
            }
            SecretsGroup::Route => match v.route {
                Some(p) => ("route", p),
                None => return,
            },
        };
        let interval_ns = self.interval_ns;
        let Some(s) = self.groups.entry(
            &[(label, who)],
            now,
            || State {
                w: Baselined::starting(now, interval_ns, true),
                ..State::default()
            },
            |s| s.w.latch.firing,
        ) else {
            return;
        };
        if roll(&self.cfg, interval_ns, s, now) == Some(Edge::Clear) {
            out.push(Signal::Clear {
                key: one_key(label, who),
                value: 0.0,
            });
        }
        s.count += n as f64;
        let t = threshold(&self.cfg, s);
        if s.count >= t
            && !ctx.learning
            && s.w
                .latch
                .update(true, now, self.cfg.common.resolve_after_ns())
                == Some(Edge::Fire)
        {
            let mut query = match label {
                "route" => Query {
                    wheres: vec![(meshlog_core::schema::HTTP_ROUTE.into(), who.into())],
                    ..Query::default()
                },
                _ => Query::for_caller(label, who),
            };
            if let Some(svc) = v.service {
                query.service = Some(svc.to_owned());
            }
            out.push(Signal::Fire(Finding {
                group: Group::one(label, who),
                value: s.count,
                threshold: t,
                window_ns: interval_ns,
                baseline: Some(s.w.baseline.mean),
                summary: format!(
                    "{} secrets redacted from {label} {who} in {}s (baseline {:.1})",
                    s.count, self.cfg.interval_s, s.w.baseline.mean
                ),
                query,
            }));
        }
    }

    fn tick(&mut self, now: u64, _ctx: Ctx, out: &mut Vec<Signal>) {
        let (cfg, interval_ns) = (&self.cfg, self.interval_ns);
        let limits = (
            interval_ns.saturating_mul(MAX_QUIET_INTERVALS),
            cfg.common.resolve_after_ns(),
        );
        tick_baselined(&mut self.groups, now, limits, out, |s| {
            roll(cfg, interval_ns, s, now)
        });
    }

    fn groups(&self) -> usize {
        self.groups.len()
    }

    fn evicted(&self) -> u64 {
        self.groups.evicted
    }
}
