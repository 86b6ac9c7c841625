//! The control-socket client layer: everything both ends of the control
//! protocol (`remoteagent_proto::control`) share besides the message types,
//! written once (the way `pueue_lib::network` does it).
//!
//! - [`codec`]: the NDJSON framing (a capped `LinesCodec`) and the `hello`
//!   request;
//! - [`socket`]: the default socket path and the socket-owner check;
//! - [`dirs`]: the base directories (XDG) every program places files in;
//! - [`Client`]: the async client `remoteagentctl` (and the daemon's
//!   "already running" probe) use;
//! - [`BlockingClient`]: the blocking client of `remoteagentd approval-hook`.
//!
//! `remoteagent-proto` stays free of I/O; this crate is where the I/O is.

pub mod blocking;
pub mod client;
pub mod codec;
pub mod dirs;
pub mod socket;

pub use blocking::{BlockingClient, BlockingError};
pub use client::{Client, ClientError};
