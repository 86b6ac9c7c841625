//! Removing terminal escape sequences from runner output.
//!
//! The stripper lives in `proto::text::ansi` because the CLI needs the same
//! cleaning for what it prints (`remoteagentctl logs`); this module keeps the
//! runner's import path.

pub use remoteagent_proto::text::ansi::{AnsiStrip, strip};
