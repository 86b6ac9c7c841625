//! Small helpers with no knowledge of the daemon, used across its modules.
//! A leaf: nothing here imports another module of the crate, so any module
//! may use it without making an import circle.

pub mod names;
pub mod time;
