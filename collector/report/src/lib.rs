//! meshlog-report: the SOC 2 evidence report (`meshlog report`) and its offline check
//! (`meshlog verify-report`).
//!
//! - [`settings`]: the settings in force, filled by the `meshlog` binary from its configuration;
//! - [`gather`]: a period's evidence from a data directory, through meshlog-query (records and
//!   the completeness statement), meshlog-detect (alerts and their triage), meshlog-format
//!   (deletion receipts, checkpoints) and meshlog-audit (`meshlog verify`);
//! - [`model`]: the report's content, which is also its JSON format;
//! - [`html`]: the self-contained HTML rendering (inline SVG charts, print CSS);
//! - [`sign`]: the signature with the collector's signing key;
//! - [`verify`]: checking a signed report with the public key alone (read this one first if
//!   you are the auditor).
//!
//! Reading only: the report never writes into the data directory. Appending the report's
//! `meshlog.report` record to the log is the binary's job (through the store or a running
//! collector), see docs/report.md.

pub mod gather;
pub mod html;
pub mod model;
pub mod settings;
pub mod sign;
pub mod verify;

pub use gather::{GatherError, Request, gather};
pub use model::Report;
pub use settings::Settings;
pub use verify::{Format, Statement, VerifyError, verify_report};

/// The event name of the record that logs an issued report.
pub const REPORT_EVENT: &str = "meshlog.report";
