//! The nodes that must hold the ACL users, and an ACL command on each.
//!
//! A standalone server is one node (`rediskit::nodes::STANDALONE`). Redis
//! Cluster does not replicate `ACL SETUSER`: every primary and every
//! replica needs each user, and a node that restarts without an ACL file,
//! or joins new, has none. Which nodes there are is asked of the cluster
//! each time (`CLUSTER NODES`, in `rediskit::nodes`), and each node is
//! reached over a connection of its own: redis-rs's cluster view leaves out
//! a replica with no data yet and learns of new nodes only when its slot
//! map is refreshed.

use redis::{Cmd, RedisResult, Value};
use remoteagent_rediskit::Conn;
use remoteagent_rediskit::nodes::{self, NodeAddr};

/// Each node's answer, named by its address (`host:port`, or
/// `STANDALONE`).
pub(super) type Answers = Vec<(NodeAddr, RedisResult<Value>)>;

/// The way to every node: the shared connection (a cluster connection,
/// which keeps one direct connection per node, or the standalone
/// server's).
pub(super) struct Nodes {
    conn: Conn,
}

impl Nodes {
    pub(super) fn new(conn: Conn) -> Nodes {
        Nodes { conn }
    }

    pub(super) fn is_cluster(&self) -> bool {
        self.conn.is_cluster()
    }

    /// The nodes that must hold the users: the standalone server, or every
    /// primary and replica the cluster lists, but those flagged failed or
    /// suspected (tried again at the next check, once back or forgotten).
    pub(super) async fn list(&self) -> RedisResult<Vec<NodeAddr>> {
        nodes::list(&mut self.conn.clone()).await
    }

    /// `cmd` on every node of [`Nodes::list`], all at once. A node's
    /// failure is that node's answer; `Err` only when the nodes could not
    /// be listed.
    pub(super) async fn on_every_node(&self, cmd: &Cmd) -> RedisResult<Answers> {
        nodes::each_node(&mut self.conn.clone(), cmd).await
    }

    /// `cmd` on the node `addr` (within 5 s on a cluster).
    pub(super) async fn on_node(&self, addr: &str, cmd: &Cmd) -> RedisResult<Value> {
        nodes::on_node(&mut self.conn.clone(), addr, cmd).await
    }
}
