//! Volume anomaly: a service's requests in the current interval (sampled records counted by
//! their adjusted count) reach `min_count`, `factor` times its baseline mean and `sigmas`
//! standard deviations above it (an EWMA of past intervals, not fed while firing), once the
//! service has `warmup_intervals` of history.

use super::{Ctx, Finding, Group, Query, Rule, Signal, one_key};
use crate::NS_PER_S;
use crate::config::Volume;
use crate::record::View;
use crate::window::{Baselined, Edge, Groups, HasBaseline, feed_counts, tick_baselined};

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
pub struct VolumeRule {
    cfg: Volume,
    interval_ns: u64,
    groups: Groups<State>,
}

impl VolumeRule {
    /// The rule with `cfg`.
    pub fn new(cfg: Volume) -> Self {
        VolumeRule {
            interval_ns: cfg.interval_s * NS_PER_S,
            groups: Groups::new(cfg.common.max_groups),
            cfg,
        }
    }
}

fn threshold(cfg: &Volume, s: &State) -> f64 {
    (s.w.baseline.mean * cfg.factor)
        .max(s.w.baseline.mean + cfg.sigmas * s.w.baseline.sd())
        .max(cfg.min_count as f64)
}

fn hot(cfg: &Volume, s: &State) -> bool {
    s.w.baseline.n >= cfg.warmup_intervals && s.count >= threshold(cfg, s)
}

fn roll(cfg: &Volume, interval_ns: u64, s: &mut State, now: u64) -> Option<Edge> {
    let was_hot = hot(cfg, s);
    let limits = (cfg.alpha, cfg.common.resolve_after_ns());
    let edge =
        s.w.close(now, interval_ns, was_hot, limits, feed_counts(s.count))?;
    s.count = 0.0;
    edge
}

impl Rule for VolumeRule {
    fn name(&self) -> &str {
        "volume"
    }

    fn observe(&mut self, v: &View<'_>, now: u64, ctx: Ctx, out: &mut Vec<Signal>) {
        if !v.request {
            return;
        }
        let Some(service) = v.service else {
            return;
        };
        let interval_ns = self.interval_ns;
        let Some(s) = self.groups.entry(
            &[("service", service)],
            now,
            || State {
                w: Baselined::starting(now, interval_ns, false),
                ..State::default()
            },
            |s| s.w.latch.firing,
        ) else {
            return;
        };
        if roll(&self.cfg, interval_ns, s, now) == Some(Edge::Clear) {
            out.push(Signal::Clear {
                key: one_key("service", service),
                value: 0.0,
            });
        }
        s.count += v.weight;
        if hot(&self.cfg, s)
            && !ctx.learning
            && s.w
                .latch
                .update(true, now, self.cfg.common.resolve_after_ns())
                == Some(Edge::Fire)
        {
            out.push(Signal::Fire(Finding {
                group: Group::one("service", service),
                value: s.count,
                threshold: threshold(&self.cfg, s),
                window_ns: interval_ns,
                baseline: Some(s.w.baseline.mean),
                summary: format!(
                    "{service}: {} requests in {}s (baseline {:.0})",
                    s.count, self.cfg.interval_s, s.w.baseline.mean
                ),
                query: Query {
                    service: Some(service.to_owned()),
                    ..Query::default()
                },
            }));
        }
    }

    fn tick(&mut self, now: u64, _ctx: Ctx, out: &mut Vec<Signal>) {
        let (cfg, interval_ns) = (&self.cfg, self.interval_ns);
        let limits = (
            interval_ns.saturating_mul(60 * 24),
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
