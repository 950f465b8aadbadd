//! Delivery loss: records lost between a VM and the store — a `meshlog.sequence` gap not filled
//! within `gap_grace_s`, or a delivery tally reporting dropped or refused records — and a
//! sidecar (service instance) that went silent for `silent_s` while its service's other
//! instances still sent records (within the last quarter of `silent_s`).

use super::{Ctx, Finding, Group, Query, Rule, Signal, key_of};
use crate::NS_PER_S;
use crate::config::DeliveryLoss;
use crate::record::{self, View};
use crate::window::{Edge, Groups, Latch};
use meshlog_core::schema;
use std::collections::HashMap;

/// The delivery tally's counts of records lost (each with its `.sequences` ranges).
const TALLIES: [&str; 2] = [
    "meshlog.delivery.dropped_overflow",
    "meshlog.delivery.failed",
];

/// Open gaps remembered per VM; more are counted as lost at once.
const MAX_GAPS: usize = 64;

#[derive(Default)]
struct Vm {
    service: String,
    vm: String,
    next: Option<u64>,
    gaps: Vec<(u64, u64, u64)>,
    lost: u64,
    pending: u64,
    latch: Latch,
}

#[derive(Default)]
struct Instance {
    service: String,
    instance: String,
    last_seen: u64,
    firing: bool,
}

/// The rule.
pub struct DeliveryLossRule {
    cfg: DeliveryLoss,
    vms: Groups<Vm>,
    instances: Groups<Instance>,
}

impl DeliveryLossRule {
    /// The rule with `cfg`.
    pub fn new(cfg: DeliveryLoss) -> Self {
        DeliveryLossRule {
            vms: Groups::new(cfg.common.max_groups),
            instances: Groups::new(cfg.common.max_groups),
            cfg,
        }
    }
}

fn loss_group(service: &str, vm: &str) -> Group {
    Group {
        labels: vec![
            ("cause".into(), "loss".into()),
            ("service".into(), service.into()),
            ("vm".into(), vm.into()),
        ],
    }
}

fn silent_group(service: &str, instance: &str) -> Group {
    Group {
        labels: vec![
            ("cause".into(), "silent".into()),
            ("service".into(), service.into()),
            ("instance".into(), instance.into()),
        ],
    }
}

/// Removes `[a, b]` from the open gaps.
fn fill(gaps: &mut Vec<(u64, u64, u64)>, a: u64, b: u64) {
    // Most late records fill no open gap (a repeat, or the gaps are already filled).
    if !gaps.iter().any(|&(s, e, _)| e >= a && s <= b) {
        return;
    }
    let mut out = Vec::with_capacity(gaps.len() + 1);
    for &(s, e, t) in gaps.iter() {
        if e < a || s > b {
            out.push((s, e, t));
            continue;
        }
        if s < a {
            out.push((s, a - 1, t));
        }
        if e > b {
            out.push((b + 1, e, t));
        }
    }
    *gaps = out;
}

/// `"3-9,15-15"` as ranges.
fn ranges(s: &str) -> impl Iterator<Item = (u64, u64)> + '_ {
    s.split(',').filter_map(|p| {
        let (a, b) = p.split_once('-')?;
        Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
    })
}

fn fire(gap_grace_s: u64, v: &Vm, why: String) -> Signal {
    {
        Signal::Fire(Finding {
            group: loss_group(&v.service, &v.vm),
            value: v.lost as f64,
            threshold: 1.0,
            window_ns: gap_grace_s * NS_PER_S,
            baseline: None,
            summary: why,
            query: Query {
                service: Some(v.service.clone()),
                wheres: vec![(record::VM_ID.into(), v.vm.clone())],
                ..Query::default()
            },
        })
    }
}

impl Rule for DeliveryLossRule {
    fn name(&self) -> &str {
        "delivery_loss"
    }

    fn keys(&self, keys: &mut crate::keys::Keys) {
        for k in TALLIES {
            keys.insert(k);
            keys.insert(&format!("{k}.sequences"));
        }
    }

    fn observe(&mut self, view: &View<'_>, now: u64, _ctx: Ctx, out: &mut Vec<Signal>) {
        let r = view.r;
        let service = view.service.unwrap_or("-");
        if let Some(inst) = view.instance.or(view.vm) {
            let pairs = [
                ("cause", "silent"),
                ("service", service),
                ("instance", inst),
            ];
            if let Some(i) = self.instances.entry(
                &pairs,
                now,
                || Instance {
                    service: service.to_owned(),
                    instance: inst.to_owned(),
                    ..Instance::default()
                },
                |i| i.firing,
            ) {
                i.last_seen = now;
                if i.firing {
                    i.firing = false;
                    out.push(Signal::Clear {
                        key: key_of(&pairs),
                        value: 0.0,
                    });
                }
            }
        }
        let Some(vm) = view.vm else {
            return;
        };
        let Some(seq) = view.sequence else {
            return;
        };
        let Some(v) = self.vms.entry(
            &[("cause", "loss"), ("service", service), ("vm", vm)],
            now,
            || Vm {
                service: service.to_owned(),
                vm: vm.to_owned(),
                ..Vm::default()
            },
            |v| v.latch.firing,
        ) else {
            return;
        };
        match v.next {
            None => v.next = Some(seq + 1),
            Some(n) if seq == n => v.next = Some(seq + 1),
            Some(n) if seq > n => {
                v.gaps.push((n, seq - 1, now));
                v.next = Some(seq + 1);
                if v.gaps.len() > MAX_GAPS {
                    let (a, b, _) = v.gaps.remove(0);
                    v.pending += b - a + 1;
                }
            }
            Some(_) => fill(&mut v.gaps, seq, seq),
        }
        let mut dropped = 0;
        if view.event == Some(schema::DELIVERY_TALLY_EVENT_NAME) {
            for k in TALLIES {
                dropped += r.int(k).unwrap_or(0).max(0) as u64;
                if let Some(s) = r.str(&format!("{k}.sequences")) {
                    for (a, b) in ranges(s) {
                        fill(&mut v.gaps, a, b);
                    }
                }
            }
        }
        let lost = dropped + std::mem::take(&mut v.pending);
        if lost > 0 {
            v.lost += lost;
            let resolve = self.cfg.common.resolve_after_ns();
            if v.latch.update(true, now, resolve) == Some(Edge::Fire) {
                let why = format!(
                    "{} reported {dropped} records dropped on the way (VM {})",
                    v.service, v.vm
                );
                let s = fire(self.cfg.gap_grace_s, v, why);
                out.push(s);
            }
        }
    }

    fn tick(&mut self, now: u64, _ctx: Ctx, out: &mut Vec<Signal>) {
        let grace = self.cfg.gap_grace_s * NS_PER_S;
        let resolve = self.cfg.common.resolve_after_ns();
        let forget = self.cfg.forget_s * NS_PER_S;
        let mut fires = Vec::new();
        self.vms.retain(|key, v, seen| {
            let mut lost = 0;
            v.gaps.retain(|&(a, b, t)| {
                let expired = now.saturating_sub(t) >= grace;
                if expired {
                    lost += b - a + 1;
                }
                !expired
            });
            lost += std::mem::take(&mut v.pending);
            if lost > 0 {
                v.lost += lost;
                if v.latch.update(true, now, resolve) == Some(Edge::Fire) {
                    fires.push((v.service.clone(), v.vm.clone(), v.lost));
                }
            } else if v.latch.update(false, now, resolve) == Some(Edge::Clear) {
                out.push(Signal::Clear {
                    key: key.to_owned(),
                    value: v.lost as f64,
                });
            }
            v.latch.firing || !v.gaps.is_empty() || now.saturating_sub(seen) < forget
        });
        for (service, vm, lost) in fires {
            let v = Vm {
                service,
                vm,
                lost,
                ..Vm::default()
            };
            let why = format!(
                "{lost} records of {} never arrived: meshlog.sequence gap older than {}s (VM {})",
                v.service, self.cfg.gap_grace_s, v.vm
            );
            out.push(fire(self.cfg.gap_grace_s, &v, why));
        }

        // Silence: the newest record per service, then each instance against it.
        let mut newest: HashMap<String, u64> = HashMap::new();
        self.instances.retain(|_, i, _| {
            let n = newest.entry(i.service.clone()).or_default();
            *n = (*n).max(i.last_seen);
            true
        });
        let silent = self.cfg.silent_s * NS_PER_S;
        let silent_s = self.cfg.silent_s;
        self.instances.retain(|key, i, _| {
            let quiet = now.saturating_sub(i.last_seen);
            let others = newest.get(&i.service).copied().unwrap_or(0);
            if quiet >= forget {
                if i.firing {
                    out.push(Signal::Clear {
                        key: key.to_owned(),
                        value: 0.0,
                    });
                }
                return false;
            }
            // The service must be busy right now elsewhere (within a quarter of `silent_s`):
            // in a collector outage every sidecar goes quiet together, none alone.
            if !i.firing && quiet >= silent && now.saturating_sub(others) < silent / 4 {
                i.firing = true;
                out.push(Signal::Fire(Finding {
                    group: silent_group(&i.service, &i.instance),
                    value: (quiet / NS_PER_S) as f64,
                    threshold: silent_s as f64,
                    window_ns: silent,
                    baseline: None,
                    summary: format!(
                        "{} instance {} sent nothing for {}s while other instances did",
                        i.service,
                        i.instance,
                        quiet / NS_PER_S
                    ),
                    query: Query {
                        service: Some(i.service.clone()),
                        wheres: vec![(record::INSTANCE.into(), i.instance.clone())],
                        ..Query::default()
                    },
                }));
            }
            true
        });
    }

    fn groups(&self) -> usize {
        self.vms.len() + self.instances.len()
    }

    fn evicted(&self) -> u64 {
        self.vms.evicted + self.instances.evicted
    }
}
