//! The JSON report (`meshlog verify --json`): the report structs as serialised (see
//! [`super::super::report`] for every field). A checkpoint mismatch explained by a frame-level
//! finding is one finding with `checkpoints` (first and last), `sizes`, `count` and `cause`
//! (the explaining finding's index in `findings`, kind and place).

use super::super::report::{DataDirReport, Report};
use serde::Serialize;
use std::io::{self, Write};

/// Writes `value` as pretty JSON and a newline.
fn write_pretty(out: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}

impl Report {
    /// The JSON report.
    pub fn write_json(&self, out: &mut impl Write) -> io::Result<()> {
        write_pretty(out, self)
    }
}

impl DataDirReport {
    /// The JSON report: `{intact, stores: [...]}` and the rest.
    pub fn write_json(&self, out: &mut impl Write) -> io::Result<()> {
        write_pretty(out, self)
    }
}
