//! What the checkpoint buttons keep in Redis, shared by the cloud's
//! replicas:
//!
//! - `ra:ckpt:run:{answer}` ([`UNDO_KEEP_SECS`]): who asked an undo, of
//!   which agent. The undo is checkpointed under its answer's id, so its
//!   own card's buttons name that id, which has no session row: this is
//!   how their presses are checked for the owner.
//! - `ra:ckpt:msg:{run}` ([`PROPOSAL_KEEP_SECS`]): the commit message the
//!   daemon proposed for a run, for [✅ Commit] / [🌿 Branch] under it.
//! - `ra:ckpt:edit:{chat}:{user}` ([`EDIT_WAIT_SECS`]): after ✎ Edit
//!   message, the run whose commit the user's next text is the message
//!   of; taken once (`GETDEL`) before a text becomes a prompt.

use remoteagent_proto::{AgentId, SessionId};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::state::AppState;

/// As long as the daemon keeps checkpoints (30 days).
const UNDO_KEEP_SECS: u64 = 30 * 24 * 3600;
const PROPOSAL_KEEP_SECS: u64 = 24 * 3600;
const EDIT_WAIT_SECS: u64 = 3600;

/// An undo's answer: its asker and agent.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct UndoOwner {
    pub user: i64,
    pub agent_id: AgentId,
}

/// A ✎ Edit message waiting for the user's text.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct EditWait {
    pub run: String,
    /// On a new branch rather than the current one.
    pub branch: bool,
}

async fn set(state: &AppState, key: String, value: String, secs: u64) -> Result<()> {
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("EX")
        .arg(secs)
        .query_async::<()>(&mut state.redis.clone())
        .await?;
    Ok(())
}

async fn get(state: &AppState, key: String) -> Result<Option<String>> {
    Ok(redis::cmd("GET")
        .arg(key)
        .query_async(&mut state.redis.clone())
        .await?)
}

pub(super) async fn keep_undo_owner(
    state: &AppState,
    answer: &SessionId,
    owner: &UndoOwner,
) -> Result<()> {
    let json = serde_json::to_string(owner).map_err(Error::internal)?;
    set(state, format!("ra:ckpt:run:{answer}"), json, UNDO_KEEP_SECS).await
}

pub(super) async fn undo_owner(state: &AppState, run: &SessionId) -> Result<Option<UndoOwner>> {
    let json = get(state, format!("ra:ckpt:run:{run}")).await?;
    Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
}

pub(super) async fn keep_proposal(state: &AppState, run: &SessionId, message: &str) -> Result<()> {
    set(
        state,
        format!("ra:ckpt:msg:{run}"),
        message.to_string(),
        PROPOSAL_KEEP_SECS,
    )
    .await
}

pub(super) async fn proposal(state: &AppState, run: &SessionId) -> Result<Option<String>> {
    get(state, format!("ra:ckpt:msg:{run}")).await
}

fn edit_key(chat: i64, user: i64) -> String {
    format!("ra:ckpt:edit:{chat}:{user}")
}

pub(super) async fn wait_for_edit(
    state: &AppState,
    chat: i64,
    user: i64,
    wait: &EditWait,
) -> Result<()> {
    let json = serde_json::to_string(wait).map_err(Error::internal)?;
    set(state, edit_key(chat, user), json, EDIT_WAIT_SECS).await
}

/// The ✎ waiting in this chat, taken (once).
pub(super) async fn take_edit(state: &AppState, chat: i64, user: i64) -> Result<Option<EditWait>> {
    let json: Option<String> = redis::cmd("GETDEL")
        .arg(edit_key(chat, user))
        .query_async(&mut state.redis.clone())
        .await?;
    Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
}
