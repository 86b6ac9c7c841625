//! `sessions`: one row per prompt sent to an agent.

use remoteagent_proto::{AgentId, SessionId};

use super::{Db, now};

pub const RUNNING: &str = "running";

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Session {
    #[sqlx(try_from = "String")]
    pub id: SessionId,
    #[sqlx(try_from = "String")]
    pub agent_id: AgentId,
    pub chat_id: i64,
    pub user_id: i64,
    pub prompt_preview: String,
    pub status: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub exit_code: Option<i64>,
}

const COLUMNS: &str =
    "id, agent_id, chat_id, user_id, prompt_preview, status, started_at, finished_at, exit_code";

/// The first 100 characters of a prompt, for listings.
pub fn preview(prompt: &str) -> String {
    let mut out: String = prompt.chars().take(100).collect();
    if prompt.chars().count() > 100 {
        out.push('…');
    }
    out
}

pub async fn insert(
    db: &Db,
    id: &SessionId,
    agent_id: &AgentId,
    chat_id: i64,
    user_id: i64,
    prompt: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sessions (id, agent_id, chat_id, user_id, prompt_preview, status, started_at) \
         VALUES ($1, $2, $3, $4, $5, 'running', $6)",
    )
    .bind(id.as_str().to_string())
    .bind(agent_id.as_str().to_string())
    .bind(chat_id)
    .bind(user_id)
    .bind(preview(prompt))
    .bind(now())
    .execute(&db.pool)
    .await?;
    Ok(())
}

pub async fn get(db: &Db, id: &SessionId) -> Result<Option<Session>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM sessions WHERE id = $1");
    sqlx::query_as::<_, Session>(sqlx::AssertSqlSafe(sql))
        .bind(id.as_str().to_string())
        .fetch_optional(&db.pool)
        .await
}

/// The agent's most recent running session, if any.
pub async fn running_for_agent(
    db: &Db,
    agent_id: &AgentId,
) -> Result<Option<Session>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM sessions WHERE agent_id = $1 AND status = 'running' ORDER BY started_at DESC LIMIT 1"
    );
    sqlx::query_as::<_, Session>(sqlx::AssertSqlSafe(sql))
        .bind(agent_id.as_str().to_string())
        .fetch_optional(&db.pool)
        .await
}

/// Records how a session ended (only the first report counts).
pub async fn finish(
    db: &Db,
    id: &SessionId,
    status: &str,
    exit_code: Option<i64>,
    duration_ms: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE sessions SET status = $1, exit_code = $2, duration_ms = $3, finished_at = $4 \
         WHERE id = $5 AND status = 'running'",
    )
    .bind(status.to_string())
    .bind(exit_code)
    .bind(duration_ms)
    .bind(now())
    .bind(id.as_str().to_string())
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Number of sessions per status, for `/metrics`.
pub async fn count_by_status(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT status, COUNT(*) AS n FROM sessions GROUP BY status ORDER BY status")
        .fetch_all(&db.pool)
        .await
}
