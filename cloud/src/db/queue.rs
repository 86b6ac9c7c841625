//! `prompt_queue`: prompts waiting for a busy agent, in `position` order
//! per agent (the smallest runs next). A prompt leaves the queue by one
//! `DELETE … RETURNING`, so of two replicas (or a run's end and the
//! housekeeping pass) only one can take it.

use remoteagent_proto::AgentId;
use sqlx::Row;

use super::{Db, Flag, now, parse_id};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct QueuedPrompt {
    pub id: String,
    #[sqlx(try_from = "String")]
    pub agent_id: AgentId,
    pub chat_id: i64,
    pub user_id: i64,
    /// Asked in the user's private chat (else in a group).
    #[sqlx(try_from = "Flag")]
    pub private_chat: bool,
    pub prompt: String,
    pub position: i64,
    /// The bot's "queued" message, once delivered.
    pub message_id: Option<i64>,
    pub created_at: i64,
}

const COLUMNS: &str =
    "id, agent_id, chat_id, user_id, private_chat, prompt, position, message_id, created_at";

/// A new queue entry's id: 16 hex digits (it goes into button data).
pub fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// What [`push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued at this place (1: runs next).
    At(usize),
    /// The agent's queue already holds `max` prompts; nothing was written.
    Full,
}

/// Queues `prompt` last for `agent`, unless its queue holds `max` already.
#[allow(clippy::too_many_arguments)]
pub async fn push(
    db: &Db,
    id: &str,
    agent: &AgentId,
    chat_id: i64,
    user_id: i64,
    private_chat: bool,
    prompt: &str,
    max: usize,
) -> Result<Pushed, sqlx::Error> {
    // The count and the insert are two statements: one user's prompts are
    // handled one at a time (their lane), and only the owner can queue
    // for an agent, so nothing slips in between.
    if count(db, agent).await? >= max {
        return Ok(Pushed::Full);
    }
    sqlx::query(
        "INSERT INTO prompt_queue (id, agent_id, chat_id, user_id, private_chat, prompt, position, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, \
         (SELECT COALESCE(MAX(position), 0) + 1 FROM prompt_queue WHERE agent_id = $7), $8)",
    )
    .bind(id.to_string())
    .bind(agent.as_str().to_string())
    .bind(chat_id)
    .bind(user_id)
    .bind(i64::from(private_chat))
    .bind(prompt.to_string())
    .bind(agent.as_str().to_string())
    .bind(now())
    .execute(&db.pool)
    .await?;
    Ok(Pushed::At(place(db, id).await?.unwrap_or(1)))
}

/// Where `id` stands in its agent's queue (1: next), if it is queued.
pub async fn place(db: &Db, id: &str) -> Result<Option<usize>, sqlx::Error> {
    let Some(entry) = get(db, id).await? else {
        return Ok(None);
    };
    let ahead: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) AS n FROM prompt_queue WHERE agent_id = $1 AND position < $2",
    )
    .bind(entry.agent_id.as_str().to_string())
    .bind(entry.position)
    .fetch_one(&db.pool)
    .await?;
    Ok(Some(ahead as usize + 1))
}

pub async fn get(db: &Db, id: &str) -> Result<Option<QueuedPrompt>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM prompt_queue WHERE id = $1");
    sqlx::query_as::<_, QueuedPrompt>(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(&db.pool)
        .await
}

/// The agent's queue, next first.
pub async fn list(db: &Db, agent: &AgentId) -> Result<Vec<QueuedPrompt>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM prompt_queue WHERE agent_id = $1 ORDER BY position, created_at, id"
    );
    sqlx::query_as::<_, QueuedPrompt>(sqlx::AssertSqlSafe(sql))
        .bind(agent.as_str().to_string())
        .fetch_all(&db.pool)
        .await
}

pub async fn count(db: &Db, agent: &AgentId) -> Result<usize, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) AS n FROM prompt_queue WHERE agent_id = $1")
        .bind(agent.as_str().to_string())
        .fetch_one(&db.pool)
        .await?;
    Ok(n as usize)
}

/// Records the message that says `id` is queued.
pub async fn set_message(db: &Db, id: &str, message_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE prompt_queue SET message_id = $1 WHERE id = $2")
        .bind(message_id)
        .bind(id.to_string())
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Takes the agent's next prompt out of the queue: whoever gets it runs
/// it, nobody else can.
pub async fn claim_next(db: &Db, agent: &AgentId) -> Result<Option<QueuedPrompt>, sqlx::Error> {
    let sql = format!(
        "DELETE FROM prompt_queue WHERE id = (SELECT id FROM prompt_queue WHERE agent_id = $1 \
         ORDER BY position, created_at, id LIMIT 1) RETURNING {COLUMNS}"
    );
    sqlx::query_as::<_, QueuedPrompt>(sqlx::AssertSqlSafe(sql))
        .bind(agent.as_str().to_string())
        .fetch_optional(&db.pool)
        .await
}

/// Takes `id` out of the queue (cancelled); `None` if it was not queued
/// (it ran, or was cancelled already).
pub async fn remove(db: &Db, id: &str) -> Result<Option<QueuedPrompt>, sqlx::Error> {
    let sql = format!("DELETE FROM prompt_queue WHERE id = $1 RETURNING {COLUMNS}");
    sqlx::query_as::<_, QueuedPrompt>(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(&db.pool)
        .await
}

/// Puts `id` ahead of the rest of its agent's queue; false if it is not
/// queued any more.
pub async fn move_to_front(db: &Db, id: &str, agent: &AgentId) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE prompt_queue SET position = \
         (SELECT MIN(position) FROM prompt_queue WHERE agent_id = $1) - 1 \
         WHERE id = $2 AND agent_id = $3",
    )
    .bind(agent.as_str().to_string())
    .bind(id.to_string())
    .bind(agent.as_str().to_string())
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Agents with prompts waiting (for the housekeeping pass).
pub async fn waiting_agents(db: &Db) -> Result<Vec<AgentId>, sqlx::Error> {
    let rows = sqlx::query("SELECT DISTINCT agent_id FROM prompt_queue")
        .fetch_all(&db.pool)
        .await?;
    rows.into_iter()
        .map(|r| parse_id(r.try_get::<String, _>("agent_id")?))
        .collect()
}
