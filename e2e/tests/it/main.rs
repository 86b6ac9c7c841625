//! The one integration-test binary of this crate (pueue's pattern): every
//! former `tests/*.rs` file is a module here, so the test build links one
//! executable instead of one per file. The modules share this process:
//! whatever is process-wide (environment, current directory, the global
//! tracing subscriber, fixed ports or paths) is never changed by a test.

mod attachments;
mod checkpoints;
mod cluster;
mod codex;
mod doctor;
mod drafts;
mod files_out;
mod flow;
mod modes;
mod questions;
mod queue;
mod recovery;
mod reliability;
mod rules;
mod security_cloud;
mod sessions;
mod setup;
mod tls;
mod topics;
mod voice;
mod worktrees;
