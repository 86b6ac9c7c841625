//! How the daemon and the cloud reach Redis: one standalone server (the
//! default) or a Redis Cluster, behind one connection type.
//!
//! * [`target`] — what `REDIS_URL` names: one `redis://` URL, or several
//!   (a cluster's seed nodes), or one marked `cluster=true`.
//! * [`conn`] — [`Conn`], a `ConnectionLike` that is a multiplexed
//!   connection, a reconnecting manager, or a cluster connection; code that
//!   sends commands does not care which.
//! * [`pubsub`] — commands go to an agent over pub/sub: classic
//!   `PUBLISH`/`SUBSCRIBE` on a standalone server, sharded
//!   `SPUBLISH`/`SSUBSCRIBE` on a cluster (only the node owning the
//!   channel's slot carries the message).
//! * [`nodes`] — a command on every node (ACL users: Redis Cluster does not
//!   replicate `ACL SETUSER`, so the cloud sets them on each node itself).

pub mod conn;
pub mod nodes;
pub mod pubsub;
pub mod slot;
pub mod target;

pub use conn::{Conn, Options};
pub use target::{Target, TargetError};
