//! Access at a rare hour: a principal (the end user when known, else the workload principal)
//! makes a request in an hour of the day that holds less than `rare_ratio` of its learned
//! requests (Elastic's `auth_rare_hour_for_a_user`), or outside `business_hours` when a
//! calendar is configured. Learned hours need `min_requests` over `min_history_s` first.

use super::{Ctx, Finding, Group, Query, Rule, Signal, one_key};
use crate::NS_PER_S;
use crate::config::RareHour;
use crate::record::View;
use crate::window::{Edge, Groups, Latch};

/// Requests per principal after which its histogram is halved (old habits fade).
const DECAY_AT: f64 = 100_000.0;

struct State {
    hours: [f64; 24],
    total: f64,
    first_seen: u64,
    latch: Latch,
}

/// The rule.
pub struct RareHourRule {
    cfg: RareHour,
    groups: Groups<State>,
}

impl RareHourRule {
    /// The rule with `cfg`.
    pub fn new(cfg: RareHour) -> Self {
        RareHourRule {
            groups: Groups::new(cfg.common.max_groups),
            cfg,
        }
    }

    fn hour(&self, now: u64) -> usize {
        let s = (now / NS_PER_S) as i64 + self.cfg.utc_offset_minutes * 60;
        (s.rem_euclid(86_400) / 3600) as usize
    }
}

impl Rule for RareHourRule {
    fn name(&self) -> &str {
        "rare_hour"
    }

    fn observe(&mut self, v: &View<'_>, now: u64, ctx: Ctx, out: &mut Vec<Signal>) {
        if !v.request {
            return;
        }
        let Some((label, p)) = v
            .enduser
            .map(|u| ("enduser", u))
            .or_else(|| v.principal.map(|p| ("principal", p)))
        else {
            return;
        };
        let h = self.hour(now);
        let cfg = &self.cfg;
        let Some(s) = self.groups.entry(
            &[(label, p)],
            now,
            || State {
                hours: [0.0; 24],
                total: 0.0,
                first_seen: now,
                latch: Latch::default(),
            },
            |s| s.latch.firing,
        ) else {
            return;
        };
        let in_hour = s.hours.get(h).copied().unwrap_or(0.0);
        let (rare, threshold, share) = match cfg.business_hours {
            Some((start, end)) => (!(start as usize..end as usize).contains(&h), 0.0, 0.0),
            None => {
                let learned = s.total >= cfg.min_requests as f64
                    && now.saturating_sub(s.first_seen) >= cfg.min_history_s * NS_PER_S;
                let share = if s.total > 0.0 {
                    in_hour / s.total
                } else {
                    0.0
                };
                (learned && share < cfg.rare_ratio, cfg.rare_ratio, share)
            }
        };
        if let Some(slot) = s.hours.get_mut(h) {
            *slot += 1.0;
        }
        s.total += 1.0;
        if s.total > DECAY_AT {
            s.hours.iter_mut().for_each(|x| *x /= 2.0);
            s.total /= 2.0;
        }
        if !rare || ctx.learning {
            return;
        }
        if s.latch.update(true, now, cfg.common.resolve_after_ns()) == Some(Edge::Fire) {
            out.push(Signal::Fire(Finding {
                group: Group::one(label, p),
                value: share,
                threshold,
                window_ns: 3600 * NS_PER_S,
                baseline: Some(share),
                summary: match cfg.business_hours {
                    Some((a, b)) => format!("{p} active at {h:02}h, outside {a:02}h-{b:02}h"),
                    None => format!(
                        "{p} active at {h:02}h, which held {:.2}% of its requests",
                        share * 100.0
                    ),
                },
                query: Query::for_caller(label, p),
            }));
        }
    }

    fn tick(&mut self, now: u64, _ctx: Ctx, out: &mut Vec<Signal>) {
        let resolve = self.cfg.common.resolve_after_ns();
        self.groups.retain(|key, s, _| {
            if s.latch.firing && s.latch.update(false, now, resolve) == Some(Edge::Clear) {
                out.push(Signal::Clear {
                    key: key.to_owned(),
                    value: 0.0,
                });
            }
            true
        });
    }

    fn restore(&mut self, group: &Group, since: u64, now: u64) -> bool {
        let Some((label, v)) = group.labels.first() else {
            return false;
        };
        let key = one_key(label, v);
        let fresh = || State {
            hours: [0.0; 24],
            total: 0.0,
            first_seen: now,
            latch: Latch::default(),
        };
        match self
            .groups
            .get_or_insert(&key, now, fresh, |s| s.latch.firing)
        {
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

    /// Each principal's learned hours: `[[key, [24 counts], total, first_seen_ns, last_seen_ns], …]`.
    fn snapshot(&self) -> Option<serde_json::Value> {
        let groups: Vec<serde_json::Value> = self
            .groups
            .entries()
            .map(|(k, s, seen)| {
                serde_json::json!([k, s.hours.to_vec(), s.total, s.first_seen, seen])
            })
            .collect();
        Some(serde_json::Value::Array(groups))
    }

    fn load_snapshot(&mut self, v: &serde_json::Value, _now: u64) {
        for e in v.as_array().into_iter().flatten() {
            let (Some(key), Some(hours), Some(total), Some(first_seen), Some(seen)) = (
                e[0].as_str(),
                e[1].as_array(),
                e[2].as_f64(),
                e[3].as_u64(),
                e[4].as_u64(),
            ) else {
                continue;
            };
            let mut h = [0.0; 24];
            for (slot, x) in h.iter_mut().zip(hours) {
                *slot = x.as_f64().unwrap_or(0.0);
            }
            let state = State {
                hours: h,
                total,
                first_seen,
                latch: Latch::default(),
            };
            self.groups.restore(key, state, seen);
        }
    }

    fn groups(&self) -> usize {
        self.groups.len()
    }

    fn evicted(&self) -> u64 {
        self.groups.evicted
    }
}
