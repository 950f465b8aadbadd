//! Writing reports out, kept apart from the analysis: [`text`] for people, [`json`] for
//! scripts. Both show a consequence grouped under its cause (one finding for every checkpoint
//! a changed frame explains), never one line per checkpoint.

pub mod json;
pub mod text;
