//! The session a user chose with ▶ Resume (`bot/sessions`) for their next
//! prompt to an agent: `ra:resume:{user}:{agentId}` in Redis ([`KEEP_SECS`]),
//! shared by the replicas. `bot/prompt.rs` puts it in that prompt's
//! `command.resume` and removes it once the command is published; `/new`
//! removes it too. A module of its own beside `bot`, so that `bot::prompt`
//! and `bot::sessions` (which uses `prompt`'s offline answer) do not import
//! each other.

use remoteagent_proto::AgentId;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::state::AppState;

/// How long a choice waits for its prompt.
pub const KEEP_SECS: u64 = 24 * 3600;

/// A session chosen with ▶ Resume: what the next prompt continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The runner's conversation id.
    pub id: String,
    pub first_prompt: String,
    pub last_at_ms: u64,
}

fn resume_key(user: i64, agent: &AgentId) -> String {
    format!("ra:resume:{user}:{agent}")
}

/// Keeps `chosen` for the user's next prompt to `agent`.
pub async fn choose(state: &AppState, user: i64, agent: &AgentId, chosen: &Resume) -> Result<()> {
    let json = serde_json::to_string(chosen).map_err(Error::internal)?;
    redis::cmd("SET")
        .arg(resume_key(user, agent))
        .arg(json)
        .arg("EX")
        .arg(KEEP_SECS)
        .query_async::<()>(&mut state.redis.clone())
        .await?;
    Ok(())
}

/// The session the user's next prompt to `agent` continues, if one was
/// chosen.
pub async fn pending(state: &AppState, user: i64, agent: &AgentId) -> Result<Option<Resume>> {
    let json: Option<String> = redis::cmd("GET")
        .arg(resume_key(user, agent))
        .query_async(&mut state.redis.clone())
        .await?;
    Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
}

/// The chosen session went with a prompt: later prompts continue the
/// agent's last session as usual (which is now this one).
pub async fn taken(state: &AppState, user: i64, agent: &AgentId) -> Result<()> {
    clear(state, user, agent).await
}

/// `/new`: no chosen session any more.
pub async fn clear(state: &AppState, user: i64, agent: &AgentId) -> Result<()> {
    redis::cmd("DEL")
        .arg(resume_key(user, agent))
        .query_async::<i64>(&mut state.redis.clone())
        .await?;
    Ok(())
}
