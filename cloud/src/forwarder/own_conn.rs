//! A Redis connection one task owns alone, the only kind a blocking read
//! (`XREAD … BLOCK`) may use.
//!
//! Redis answers a connection's commands in order: while an `XREAD BLOCK`
//! waits on a connection, every command sent after it on that connection
//! waits too, up to the whole block. A redis-rs `MultiplexedConnection` (or
//! `ConnectionManager`, or a cluster connection's socket to a node) is one
//! socket however often it is cloned, so a
//! blocking read on a shared one holds up everyone else's lock refreshes,
//! presence checks and saves (`tests/it/redis_blocking.rs` measures it).
//! [`OwnConn`] is therefore not `Clone` and is only made by connecting anew:
//! whoever holds it runs its commands one after the other, and a pending
//! read delays nobody else.

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use remoteagent_rediskit::Conn;

/// A connection of its own (see the module doc); not `Clone` on purpose.
pub(super) struct OwnConn(Conn);

impl OwnConn {
    /// Wraps a connection that was just made and given to nobody else.
    pub(super) fn new(fresh: Conn) -> Self {
        OwnConn(fresh)
    }
}

impl ConnectionLike for OwnConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.0.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.0.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}
