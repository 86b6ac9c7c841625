//! Signing and publishing commands to a daemon on `agent:{agentId}`, and
//! closing a session's stream when no daemon will.

use remoteagent_proto::envelope;
use remoteagent_proto::events::{CommandEvent, DonePayload, DoneStatus};
use remoteagent_proto::keys::CloudSigningKey;
use remoteagent_proto::{AgentId, SessionId, names, stream};
use remoteagent_rediskit::Conn;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("signing the command: {0}")]
    Sign(#[from] envelope::EnvelopeError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("encoding an event: {0}")]
    Json(#[from] serde_json::Error),
}

/// How long a command envelope stays valid: long enough for a daemon that
/// is reconnecting, short enough that a captured envelope is soon useless.
pub const ENVELOPE_TTL_SECS: u64 = 60;

/// Signs `command` for `agent` and publishes it; returns the number of
/// subscribers that received it (0 = the agent is offline). On a Redis
/// Cluster this is a sharded `SPUBLISH`, which counts the same way: the
/// daemon's `SSUBSCRIBE` sits on the primary owning the channel's slot (a
/// 0 is checked there, `rediskit::pubsub::publish`).
pub async fn publish(
    conn: &Conn,
    key: &CloudSigningKey,
    agent: &AgentId,
    command: CommandEvent,
) -> Result<usize, PublishError> {
    let token = envelope::sign(key, agent, command, ENVELOPE_TTL_SECS)?;
    let mut conn = conn.clone();
    let receivers = remoteagent_rediskit::pubsub::publish(
        &mut conn,
        &names::agent_channel(agent),
        token.as_bytes(),
    )
    .await?;
    Ok(usize::try_from(receivers).unwrap_or(0))
}

/// Appends a `done` to a session's stream on the daemon's behalf (used when
/// the command reached nobody), so the forwarder closes the placeholder.
pub async fn close_stream(
    conn: &Conn,
    agent: &AgentId,
    session: &SessionId,
    status: DoneStatus,
    message: &str,
) -> Result<(), PublishError> {
    let done = DonePayload {
        status,
        exit_code: None,
        duration_ms: 0,
        message: Some(message.to_string()),
        chunks: 0,
        withheld_bytes: 0,
        stopped_by: None,
        turns: None,
        cost_usd: None,
    };
    let stream = names::output_stream(agent, session);
    let mut conn = conn.clone();
    done_pipeline(&stream, &done)?
        .query_async::<()>(&mut conn)
        .await?;
    Ok(())
}

/// The pipeline that appends `done` to a stream (capped like the daemon's
/// writes, and expiring with it; the shape is [`stream::done_commands`]).
/// Building it does no I/O.
pub fn done_pipeline(key: &str, done: &DonePayload) -> Result<redis::Pipeline, serde_json::Error> {
    let mut pipe = redis::pipe();
    for cmd in stream::done_commands(key, done)? {
        pipe.cmd(&cmd[0]).arg(&cmd[1..]).ignore();
    }
    Ok(pipe)
}

/// Whether the agent's presence key exists (its daemon heartbeats).
/// Whether the agent's daemon says (in its presence value) that it runs a
/// prompt that comes while busy in a git worktree, beside the busy run.
/// Unknown (unreadable, an older daemon): false, and the prompt queues.
pub async fn takes_parallel_runs(conn: &Conn, agent: &AgentId) -> bool {
    let mut conn = conn.clone();
    match redis::cmd("GET")
        .arg(names::presence_key(agent))
        .query_async::<Option<String>>(&mut conn)
        .await
    {
        Ok(value) => {
            value.is_some_and(|v| remoteagent_proto::worktrees::PresenceWorktrees::of(&v).worktrees)
        }
        Err(e) => {
            tracing::warn!(agent = %agent, error = %e, "reading the agent's presence for parallel runs");
            false
        }
    }
}

pub async fn is_online(conn: &Conn, agent: &AgentId) -> redis::RedisResult<bool> {
    let mut conn = conn.clone();
    redis::cmd("EXISTS")
        .arg(names::presence_key(agent))
        .query_async::<i64>(&mut conn)
        .await
        .map(|n| n > 0)
}
