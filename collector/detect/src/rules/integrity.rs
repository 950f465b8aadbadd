//! Integrity: no signed checkpoint for longer than `checkpoint_max_age_s` (until one is
//! signed); a failed verify run (until one passes); retention deleting outside its policy (for
//! `resolve_after_s`). Checkpoints and verify runs are [`IntegrityEvent`]s the collector feeds
//! in; deletions are the `meshlog.retention.deletion` records on the committed-record stream,
//! judged against the [`RetentionPolicy`] the collector sets ([`crate::retention`]).

use super::{Ctx, Finding, Group, Query, Rule, Signal};
use crate::NS_PER_S;
use crate::config::Integrity;
use crate::engine::IntegrityEvent;
use crate::record::View;
use crate::retention::RetentionPolicy;
use meshlog_format::receipt::DELETION_EVENT;

/// The rule.
pub struct IntegrityRule {
    cfg: Integrity,
    last_checkpoint: Option<u64>,
    checkpoint_firing: bool,
    verify_firing: bool,
    retention_since: Option<u64>,
    /// Deletions are judged only once the collector has said what the policy is.
    policy: Option<RetentionPolicy>,
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
            policy: None,
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

impl IntegrityRule {
    /// A deletion outside policy: fires (once while it stands), and holds the alert for
    /// `resolve_after_s` from the latest one.
    fn retention(&mut self, detail: String, now: u64, out: &mut Vec<Signal>) {
        if self.retention_since.is_none() {
            let mut f = finding(
                "retention",
                1.0,
                1.0,
                0,
                format!("retention deleted outside its policy: {detail}"),
            );
            f.query
                .wheres
                .push(("event_name".into(), DELETION_EVENT.into()));
            out.push(Signal::Fire(f));
        }
        self.retention_since = Some(now);
    }
}

impl Rule for IntegrityRule {
    fn name(&self) -> &str {
        "integrity"
    }

    fn keys(&self, keys: &mut crate::keys::Keys) {
        for k in crate::retention::KEYS {
            keys.insert(k);
        }
    }

    fn observe(&mut self, v: &View<'_>, now: u64, _ctx: Ctx, out: &mut Vec<Signal>) {
        // Checkpoints are not records: their clock starts at the first tick (after a replay,
        // the tick at its end), never at an old replayed record. Deletions are records.
        if v.event != Some(DELETION_EVENT) {
            return;
        }
        if let Some(why) = self.policy.as_ref().and_then(|p| p.outside(v.r)) {
            self.retention(why, now, out);
        }
    }

    fn retention_policy(&mut self, policy: &RetentionPolicy) {
        self.policy = Some(policy.clone());
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
                self.retention(detail.clone(), now, out);
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
