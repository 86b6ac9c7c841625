//! The one integration-test binary of this crate (pueue's pattern): every
//! former `tests/*.rs` file is a module here, so the test build links one
//! executable instead of one per file. The modules share this process:
//! whatever is process-wide (environment, current directory, the global
//! tracing subscriber, fixed ports or paths) is never changed by a test.

// First: its `both_backends!` is used by the modules below.
#[macro_use]
mod support;

mod acl_upgrade;
mod acl_watch;
mod agents_api;
mod attachments;
mod bot;
mod checkpoints;
mod cluster;
mod config;
mod forwarder;
mod forwarder_approvals;
mod forwarder_drafts;
mod forwarder_long;
mod forwarder_orphans;
mod forwarder_ping;
mod forwarder_resume;
mod forwarder_shown;
mod forwarder_support;
mod forwarder_topics;
mod get;
mod groups;
mod modes;
mod notify;
mod ops;
mod pairing;
mod poll;
mod questions;
mod queue;
mod redis_blocking;
mod sessions;
mod telegram_client;
mod telegram_outbox;
mod topics;
mod voice;
mod webhook;
