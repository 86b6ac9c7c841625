//! `remoteagent-proto`: the one place that defines what crosses a process
//! boundary in RemoteAgent.
//!
//! * [`ids`] and [`names`]: agent/session/pairing ids and the Redis channel
//!   and key names built from them.
//! * [`events`]: the JSON events on Redis (`{"event": …, "payload": …}`).
//! * [`envelope`] and [`keys`]: the Ed25519-signed command envelopes the cloud
//!   publishes on `agent:{agentId}` and the daemon verifies.
//! * [`token`]: the agent JWT (the daemon's credential towards the cloud and
//!   its Redis password).
//! * [`api`]: the cloud's HTTP request and response bodies.
//! * [`control`]: the daemon's control-socket protocol (remoteagentctl ⇄ remoteagentd).
//! * [`stream`]: an output stream's entry (encode/parse) and the commands
//!   that end a stream with `done`, as data each side turns into a pipeline.
//! * [`runner`]: which AI CLI a project runs.
//! * [`modes`]: `plan` < `ask` < `edits` < `auto`, the modes `/mode` sets.
//! * [`backoff`]: the one retry policy (how long until the next attempt,
//!   and whether there is one), shared by the daemon and the cloud.
//! * [`files`]: files between phone and project (attachments, `/get`, the
//!   outbox): their description, blob keys, safe names and limits.
//! * [`sessions`]: the conversations an agent's runner had (`/sessions`,
//!   `remoteagentctl sessions`, resuming one).
//! * [`text`]: cleaning remote text (names, prompts) before it is stored or
//!   shown.
//! * [`questions`]: Claude Code's questions and plans shown as buttons
//!   (the optional parts of approval requests and answers).
//! * [`checkpoints`]: what a run changed in a git project (the diff card)
//!   and the Diff/Undo/Commit/Branch asked of it.
//! * [`elapsed`]: the one way a span of time is written for people
//!   (`1m 5s`, `1m 5s ago`).
//!
//! No I/O happens here; signing, verifying and text cleaning are pure
//! computations so every side shares one implementation.

pub mod api;
pub mod backoff;
pub mod checkpoints;
pub mod control;
pub mod elapsed;
pub mod envelope;
pub mod events;
pub mod files;
pub mod ids;
pub mod keys;
pub mod modes;
pub mod names;
pub mod questions;
pub mod rfc3339;
pub mod rules;
pub mod runner;
pub mod sessions;
pub mod stream;
pub mod text;
pub mod token;
pub mod url;
pub mod usd;
pub mod worktrees;

pub use ids::{AgentId, IdError, PairingId, SessionId};

/// Milliseconds since the Unix epoch, the time unit of every wire type.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch (JWT `iat`/`exp`).
pub fn now_secs() -> u64 {
    now_ms() / 1000
}
