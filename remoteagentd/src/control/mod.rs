//! The control socket: `remoteagentctl` ⇄ `remoteagentd`, NDJSON as defined
//! in `remoteagent_proto::control`.
//!
//! * [`server`]: binding (stale-socket detection, permissions), accepting,
//!   the per-connection loop (peer uid check, Hello first) on the shared
//!   NDJSON codec of `remoteagent_control::codec` (line cap included).
//! * one file per request: [`pair`], [`list`], [`status`], [`stop`],
//!   [`logs`], [`unpair`], [`approval`] (Claude Code's approval hook),
//!   [`doctor`] (the daemon's half of `remoteagentctl doctor`), [`reload`],
//!   [`approvals`] (listing and answering approval requests from the computer),
//!   [`sessions`] (an agent's recent sessions and how to resume each).

pub mod approval;
pub mod approvals;
pub mod checkpoint;
pub mod doctor;
pub mod list;
pub mod logs;
pub mod pair;
pub mod reload;
pub mod rules;
pub mod server;
pub mod sessions;
pub mod status;
pub mod stop;
pub mod unpair;
pub mod worktrees;

pub use crate::request_error::ControlError;
pub use server::{BindError, ControlServer};

use remoteagent_proto::control::Reply;
use tokio::sync::mpsc;

/// Where a handler sends its streamed replies; the connection's writer task
/// drains it. Sending fails only when the client is gone.
pub type ReplySink = mpsc::Sender<Reply>;
