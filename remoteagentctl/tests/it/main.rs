//! The one integration-test binary of this crate (pueue's pattern): every
//! former `tests/*.rs` file is a module here, so the test build links one
//! executable instead of one per file. The modules share this process:
//! whatever is process-wide (environment, current directory, the global
//! tracing subscriber, fixed ports or paths) is never changed by a test.

mod approvals;
mod checkpoints;
mod common;
mod completion;
mod daemon_cli;
mod doctor;
mod hostile_input;
mod keyring;
mod logs;
mod man_pages;
mod pairing;
mod readme;
mod reload;
mod service;
mod service_control;
mod session_list;
mod sessions;
