//! The one integration-test binary of this crate (pueue's pattern): every
//! former `tests/*.rs` file is a module here, so the test build links one
//! executable instead of one per file. The modules share this process:
//! whatever is process-wide (environment, current directory, umask, fixed
//! ports or paths) is never changed by a test. The one global tracing
//! subscriber is `replay_record`'s, which reads only its own agent's lines.

mod approval;
mod attachments;
mod checkpoints;
mod cluster;
mod execution_reconnect;
mod execution_redis;
mod execution_session;
mod execution_support;
mod orphaned_sessions;
mod output_budget;
mod replay_record;
mod runner_lifetime;
mod runners;
mod shell_daemon;
mod shell_secrets;
mod worktrees;
