//! `remoteagentd`: the RemoteAgent daemon.
//!
//! The binary (`src/main.rs`) is thin; everything lives here so tests can run
//! the daemon in-process in a temporary home.
//!
//! Execution side (one task per paired agent):
//! * [`agent`]: the per-agent task — Redis connection, signed-envelope
//!   verification, presence heartbeat, one session at a time.
//! * [`runner`]: spawning the AI CLI and streaming its output.
//! * [`output`]: batching output into `XADD`s on `output:{agent}:{session}`.
//! * [`session_log`]: the local copy of every session's output.
//!
//! Shell side: config, paths, state, secrets, pairing, the control socket and
//! the supervisor that ties them together.

pub mod agent;
pub mod output;
pub mod runner;
pub mod session_log;
