//! Integrity: no signed checkpoint for longer than `checkpoint_max_age_s`; a failed verify run
//! (until one passes); retention deleting outside its policy (for `resolve_after_s`). Fed by
//! the collector with [`IntegrityEvent`]s, not by records.

use super::{Ctx, Finding, Group, Query, Rule, Signal};
use crate::NS_PER_S;
use crate::config::Integrity;
use crate::engine::IntegrityEvent;
use crate::record::View;

/// The rule.
pub struct IntegrityRule {
    cfg: Integrity,
    last_checkpoint: Option<u64>,
    checkpoint_firing: bool,
    verify_firing: bool,
    retention_since: Option<u64>,
}

impl IntegrityRule {
    /// The rule with `cfg`.
    pub fn new(cfg: Integrity) -> Self {
        IntegrityRule {
            cfg,
            last_checkpoint: None,
            checkpoint_firing: false,
            verify_firing: false,
            retention_since: None,
        }
    }
}

fn group(check: &str) -> Group {
    Group::one("check", check)
}

fn finding(check: &str, value: f64, threshold: f64, window_ns: u64, summary: String) -> Finding {
    Finding {
        group: group(check),
        value,
        threshold,
        window_ns,
        baseline: None,
        summary,
        query: Query {
            service: Some("meshlog-collector".into()),
            ..Query::default()
        },
    }
}

impl Rule for IntegrityRule {
    fn name(&self) -> &str {
        "integrity"
    }

    fn observe(&mut self, _v: &View<'_>, _now: u64, _ctx: Ctx, _out: &mut Vec<Signal>) {
        // Checkpoints are not records: the clock starts at the first tick (after a replay,
        // the tick at its end), never at an old replayed record.
    }

    fn tick(&mut self, now: u64, _ctx: Ctx, out: &mut Vec<Signal>) {
        let last = *self.last_checkpoint.get_or_insert(now);
        let max = self.cfg.checkpoint_max_age_s * NS_PER_S;
        let age = now.saturating_sub(last);
        if !self.checkpoint_firing && age > max {
            self.checkpoint_firing = true;
            out.push(Signal::Fire(finding(
                "checkpoint",
                (age / NS_PER_S) as f64,
                self.cfg.checkpoint_max_age_s as f64,
                max,
                format!(
                    "no signed checkpoint for {}s (expected within {}s)",
                    age / NS_PER_S,
                    self.cfg.checkpoint_max_age_s
                ),
            )));
        }
        if let Some(since) = self.retention_since
            && now.saturating_sub(since) >= self.cfg.common.resolve_after_ns()
        {
            self.retention_since = None;
            out.push(Signal::Clear {
                key: group("retention").key(),
                value: 0.0,
            });
        }
    }

    fn integrity(&mut self, ev: &IntegrityEvent, now: u64, out: &mut Vec<Signal>) {
        match ev {
            IntegrityEvent::Checkpoint => {
                self.last_checkpoint = Some(now);
                if std::mem::take(&mut self.checkpoint_firing) {
                    out.push(Signal::Clear {
                        key: group("checkpoint").key(),
                        value: 0.0,
                    });
                }
            }
            IntegrityEvent::VerifyPassed => {
                if std::mem::take(&mut self.verify_firing) {
                    out.push(Signal::Clear {
                        key: group("verify").key(),
                        value: 0.0,
                    });
                }
            }
            IntegrityEvent::VerifyFailed { detail } => {
                if !self.verify_firing {
                    self.verify_firing = true;
                    out.push(Signal::Fire(finding(
                        "verify",
                        1.0,
                        1.0,
                        0,
                        format!("verify failed: {detail}"),
                    )));
                }
            }
            IntegrityEvent::RetentionOutsidePolicy { detail } => {
                if self.retention_since.is_none() {
                    out.push(Signal::Fire(finding(
                        "retention",
                        1.0,
                        1.0,
                        0,
                        format!("retention deleted outside its policy: {detail}"),
                    )));
                }
                self.retention_since = Some(now);
            }
        }
    }

    fn restore(&mut self, group: &Group, since: u64, _now: u64) -> bool {
        match group.get("check") {
            Some("checkpoint") => self.checkpoint_firing = true,
            Some("verify") => self.verify_firing = true,
            Some("retention") => self.retention_since = Some(since),
            _ => return false,
        }
        true
    }

    fn groups(&self) -> usize {
        3
    }

    fn evicted(&self) -> u64 {
        0
    }
}
