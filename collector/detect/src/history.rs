//! Alerts as the log tells them: folds `meshlog.alert` and `meshlog.alert.triage` records (in
//! log order) into one entry per alert id — when it fired and resolved, who acknowledged or
//! resolved it and when, with their notes — for `/api/v1/alerts`, `meshlog alerts` and the
//! evidence report (time to acknowledge).

use crate::alert::{self, TRIAGE_EVENT};
use crate::engine::{State, Transition};
use crate::record::{self, Record};
use std::collections::HashMap;

/// One triage step as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriageStep {
    /// `acknowledge` or `resolve`.
    pub action: String,
    /// Who.
    pub principal: String,
    /// Their note.
    pub note: String,
    /// When, unix ns.
    pub at_ns: u64,
}

/// One alert's life.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEntry {
    /// The firing transition as recorded (the first one for its id).
    pub firing: Transition,
    /// When it resolved, if it did.
    pub resolved_ns: Option<u64>,
    /// Triage steps, in log order.
    pub triage: Vec<TriageStep>,
}

impl AlertEntry {
    /// Firing now (not resolved by the detector).
    pub fn is_firing(&self) -> bool {
        self.resolved_ns.is_none()
    }

    /// The first acknowledgement (or triage resolution).
    pub fn acknowledged(&self) -> Option<&TriageStep> {
        self.triage.first()
    }

    /// Nanoseconds from firing to the first triage step.
    pub fn time_to_acknowledge_ns(&self) -> Option<u64> {
        self.acknowledged()
            .map(|t| t.at_ns.saturating_sub(self.firing.at_ns))
    }
}

/// Alerts folded from the log.
#[derive(Debug, Default)]
pub struct AlertHistory {
    order: Vec<String>,
    entries: HashMap<String, AlertEntry>,
    orphans: Vec<(String, TriageStep)>,
}

impl AlertHistory {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one record (others than alerts and triage are ignored).
    pub fn add(&mut self, r: &Record) {
        if let Some(l) = alert::parse_alert(r) {
            let t = l.transition;
            match t.state {
                State::Firing => {
                    if !self.entries.contains_key(&t.id) {
                        self.order.push(t.id.clone());
                        self.entries.insert(
                            t.id.clone(),
                            AlertEntry {
                                firing: t,
                                resolved_ns: None,
                                triage: Vec::new(),
                            },
                        );
                    }
                }
                State::Resolved => {
                    if let Some(e) = self.entries.get_mut(&t.id) {
                        e.resolved_ns.get_or_insert(t.at_ns);
                    }
                }
            }
            return;
        }
        if record::event(r) != Some(TRIAGE_EVENT) {
            return;
        }
        let (Some(id), Some(action)) = (
            record::str_of(r, alert::ID),
            record::str_of(r, alert::TRIAGE_ACTION),
        ) else {
            return;
        };
        let step = TriageStep {
            action: action.to_owned(),
            principal: record::str_of(r, alert::TRIAGE_PRINCIPAL)
                .unwrap_or("-")
                .to_owned(),
            note: record::str_of(r, alert::TRIAGE_NOTE)
                .unwrap_or_default()
                .to_owned(),
            at_ns: record::int_of(r, "time_unix_nano")
                .and_then(|t| u64::try_from(t).ok())
                .unwrap_or(0),
        };
        match self.entries.get_mut(id) {
            Some(e) => e.triage.push(step),
            None => self.orphans.push((id.to_owned(), step)),
        }
    }

    /// Every alert, in the order they fired.
    pub fn alerts(&self) -> Vec<&AlertEntry> {
        self.order
            .iter()
            .filter_map(|id| self.entries.get(id))
            .collect()
    }

    /// The alert `id`.
    pub fn get(&self, id: &str) -> Option<&AlertEntry> {
        self.entries.get(id)
    }

    /// Triage records naming an alert id the history never saw fire (outside the range read).
    pub fn orphan_triage(&self) -> &[(String, TriageStep)] {
        &self.orphans
    }
}
