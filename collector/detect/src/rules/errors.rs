//! 5xx spike: a service's share of 5xx answers in the current interval is at least
//! `min_ratio`, at least `factor` times its own baseline (an EWMA of past intervals' ratios,
//! not fed while firing), over at least `min_volume` requests.

use super::{Ctx, Finding, Group, Query, Rule, Signal, one_key};
use crate::NS_PER_S;
use crate::config::ErrorSpike;
use crate::record::View;
use crate::window::{Baselined, Edge, Groups, HasBaseline, tick_baselined};

#[derive(Default)]
struct State {
    w: Baselined,
    total: f64,
    errors: f64,
}

impl HasBaseline for State {
    fn baselined(&mut self) -> &mut Baselined {
        &mut self.w
    }
}

/// The rule.
pub struct ErrorSpikeRule {
    cfg: ErrorSpike,
    interval_ns: u64,
    groups: Groups<State>,
}

impl ErrorSpikeRule {
    /// The rule with `cfg`.
    pub fn new(cfg: ErrorSpike) -> Self {
        ErrorSpikeRule {
            interval_ns: cfg.interval_s * NS_PER_S,
            groups: Groups::new(cfg.common.max_groups),
            cfg,
        }
    }
}

fn threshold(cfg: &ErrorSpike, s: &State) -> f64 {
    (s.w.baseline.mean * cfg.factor).max(cfg.min_ratio)
}

fn hot(cfg: &ErrorSpike, s: &State) -> bool {
    s.total >= cfg.min_volume as f64 && s.errors / s.total >= threshold(cfg, s)
}

/// Closes the interval when `now` is past it; true when it closed.
fn roll(cfg: &ErrorSpike, interval_ns: u64, s: &mut State, now: u64) -> Option<Edge> {
    let was_hot = hot(cfg, s);
    let limits = (cfg.alpha, cfg.common.resolve_after_ns());
    let (errors, total, min) = (s.errors, s.total, cfg.min_volume as f64);
    let edge =
        s.w.close(now, interval_ns, was_hot, limits, |b, alpha, _| {
            if total >= min {
                b.update(errors / total, alpha);
            }
        })?;
    s.total = 0.0;
    s.errors = 0.0;
    edge
}

impl Rule for ErrorSpikeRule {
    fn name(&self) -> &str {
        "error_spike"
    }

    fn observe(&mut self, v: &View<'_>, now: u64, _ctx: Ctx, out: &mut Vec<Signal>) {
        if !v.request {
            return;
        }
        let (Some(service), Some(status)) = (v.service, v.status) else {
            return;
        };
        let interval_ns = self.interval_ns;
        let Some(s) = self.groups.entry(
            &[("service", service)],
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
                key: one_key("service", service),
                value: 0.0,
            });
        }
        let w = v.weight;
        s.total += w;
        if (500..=599).contains(&status) {
            s.errors += w;
        }
        if hot(&self.cfg, s)
            && s.w
                .latch
                .update(true, now, self.cfg.common.resolve_after_ns())
                == Some(Edge::Fire)
        {
            let ratio = s.errors / s.total;
            out.push(Signal::Fire(Finding {
                group: Group::one("service", service),
                value: ratio,
                threshold: threshold(&self.cfg, s),
                window_ns: interval_ns,
                baseline: Some(s.w.baseline.mean),
                summary: format!(
                    "{service}: {:.0}% of {} requests answered 5xx (baseline {:.1}%)",
                    ratio * 100.0,
                    s.total,
                    s.w.baseline.mean * 100.0
                ),
                query: Query {
                    service: Some(service.to_owned()),
                    status: Some("5xx".into()),
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
