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
//! * [`redis_conn`]: an agent's Redis connection, replaceable when it is stuck.
//! * [`session_log`]: the local copy of every session's output.
//! * [`approval`]: tool approval from the phone (Claude Code's hook, the
//!   per-project policy, the requests in the session).
//! * [`files`]: files for the chat: `/get PATH` and the runner's
//!   `.remoteagent/outbox/`, through blob keys.
//! * [`inbox`]: files sent from the phone with a prompt, checked and saved
//!   outside the project before the runner starts.
//!
//! Shell side: config, paths, state, secrets, pairing, the control socket and
//! the supervisor that ties them together.
//! * [`paths`]: where everything lives (XDG).
//! * [`config`]: the optional `config.toml`.
//! * [`state`]: paired agents' metadata files (never the JWT).
//! * [`secrets`]: agent JWTs in the OS keyring (or the opt-in file store).
//! * [`pairing`]: the pairing flow with the cloud; [`runner_check`]: is the
//!   runner's program where the daemon will look for it.
//! * [`supervisor`]: owns the agents and their handles.
//! * [`token_refresh`]: renews agent JWTs before they expire.
//! * [`control`]: the control socket and one handler per request.
//! * [`reload`]: the config file read again (SIGHUP, `remoteagentctl reload`).
//! * [`man`]: the man page's FILES and ENVIRONMENT.
//! * [`daemon`]: `run` and shutdown; [`logging`]: stderr or journald.
//! * [`util`]: leaf helpers (waiting on optional deadlines, cleaned names);
//!   [`request_error`]: the error a control request ends with.

pub mod agent;
pub mod approval;
pub mod checkpoint;
pub mod files;
pub mod inbox;
pub mod output;
pub mod redis_conn;
pub mod request_error;
pub mod runner;
pub mod session_log;

pub mod config;
pub mod control;
pub mod conversations;
pub mod daemon;
pub mod logging;
pub mod man;
pub mod pairing;
pub mod paths;
pub mod reload;
pub mod runner_check;
pub mod secrets;
pub mod seen_envelopes;
pub mod state;
pub mod supervisor;
pub mod token_refresh;
pub mod util;
pub mod worktrees;
