//! Streaming detection over meshlog's committed records (issue 18).
//!
//! [`Detector`] is the one entry point: feed it every committed record with
//! [`Detector::observe`] and call [`Detector::tick`] now and then; both take the current time
//! and return the alert [`Transition`]s (firing, resolved) to append to the log as
//! `meshlog.alert` records ([`alert`]) and to hand to the [`notify::Notifier`]. After a restart,
//! [`Detector::replay`] the recent window of the store (alerts included) and call
//! [`Detector::finish_replay`]: state is rebuilt without firing again what the log already holds.
//!
//! The engine modules ([`config`], [`engine`], [`rules`], [`window`], [`record`], [`alert`]) are
//! pure: no clock, no I/O, no runtime. Only [`notify`] talks to the network, on threads of its own.

pub mod alert;
mod bytes;
pub mod config;
pub mod engine;
pub mod flat;
pub mod history;
pub mod keys;
pub mod notify;
pub mod record;
pub mod retention;
pub mod rules;
pub mod scan;
pub mod window;

pub use alert::{ALERT_EVENT, TRIAGE_EVENT};
pub use config::{DetectConfig, parse};
pub use engine::{Detector, IntegrityEvent, RuleStats, State, Transition};
pub use flat::{Flat, ReadError};
pub use keys::Keys;
pub use record::Record;
pub use retention::{RetentionHold, RetentionPolicy};

/// Nanoseconds in a second.
pub const NS_PER_S: u64 = 1_000_000_000;
