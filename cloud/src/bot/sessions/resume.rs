//! The lists `/sessions` showed and the session a ▶ Resume press chose,
//! both in Redis, shared by the cloud's replicas:
//!
//! - `ra:sessions:{list}` ([`KEEP_SECS`]): a list as shown — who asked, for
//!   which agent, and each session's id, first prompt and time. Buttons
//!   carry `sres:{list}:{n}` (the ids stay out of the chat and fit the 64
//!   bytes of callback data).
//! - `ra:resume:{user}:{agentId}`: the choice, kept by
//!   `crate::resume_choice` for the next prompt to that agent.

use remoteagent_proto::AgentId;
use remoteagent_proto::sessions::SessionSummary;
use serde::{Deserialize, Serialize};

use super::super::update::CallbackQuery;
use crate::db::{agents, users};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::telegram::escape_html;

/// How long a shown list and a chosen session are kept.
const KEEP_SECS: u64 = 24 * 3600;
const NOT_YOURS: &str = "Only the account that paired this agent can do that.";
const EXPIRED: &str = "This list is too old; send /sessions again.";

/// A list as `/sessions` showed it.
#[derive(Debug, Serialize, Deserialize)]
struct Shown {
    user: i64,
    agent_id: AgentId,
    sessions: Vec<crate::resume_choice::Resume>,
}

fn list_key(list: &str) -> String {
    format!("ra:sessions:{list}")
}

pub(super) fn button_data(list: &str, n: usize) -> String {
    format!("sres:{list}:{n}")
}

/// List ids are 32 lowercase hex digits; button data is whatever a client
/// sends.
fn valid_list_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Keeps a list about to be shown; returns its id for the buttons.
pub(super) async fn keep_list(
    state: &AppState,
    user: i64,
    agent: &AgentId,
    sessions: &[SessionSummary],
) -> Result<String> {
    let shown = Shown {
        user,
        agent_id: agent.clone(),
        sessions: sessions
            .iter()
            .map(|s| crate::resume_choice::Resume {
                id: s.id.clone(),
                first_prompt: s.first_prompt.clone(),
                last_at_ms: s.last_at_ms,
            })
            .collect(),
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let json = serde_json::to_string(&shown).map_err(Error::internal)?;
    redis::cmd("SET")
        .arg(list_key(&id))
        .arg(json)
        .arg("EX")
        .arg(KEEP_SECS)
        .query_async::<()>(&mut state.redis.clone())
        .await?;
    Ok(id)
}

/// A ▶ Resume press (`sres:{list}:{n}`): owner only. The choice is kept
/// for the next prompt to that agent, and said in the chat.
pub async fn press(state: &AppState, query: &CallbackQuery, rest: &str) -> Result<String> {
    let user = query.from.id;
    let Some((list, n)) = rest.split_once(':') else {
        return Ok(EXPIRED.into());
    };
    let (Ok(n), true) = (n.parse::<usize>(), valid_list_id(list)) else {
        return Ok(EXPIRED.into());
    };
    let json: Option<String> = redis::cmd("GET")
        .arg(list_key(list))
        .query_async(&mut state.redis.clone())
        .await?;
    let Some(shown) = json.and_then(|j| serde_json::from_str::<Shown>(&j).ok()) else {
        return Ok(EXPIRED.into());
    };
    let Some(agent) = agents::get(&state.db, &shown.agent_id).await? else {
        return Ok("That agent was unpaired.".into());
    };
    if agent.owner != user || shown.user != user {
        return Ok(NOT_YOURS.into());
    }
    if !agent.is_active() {
        return Ok("That agent was unpaired.".into());
    }
    let Some(chosen) = shown.sessions.get(n) else {
        return Ok(EXPIRED.into());
    };
    crate::resume_choice::choose(state, user, &agent.id, chosen).await?;
    // A `/new` sent before is overruled by the choice made after it.
    users::set_next_new(&state.db, user, false).await?;
    tracing::info!(user, agent = %agent.id, "a session was chosen to continue");
    let chat = query.message.as_ref().map_or(user, |m| m.chat.id);
    let text = format!(
        "▶ Next prompt to <b>{}</b> continues the session from {}: “{}”",
        escape_html(&agent.name),
        super::when(chosen.last_at_ms, remoteagent_proto::now_ms()),
        escape_html(&chosen.first_prompt)
    );
    // Queued, not awaited: the user's lane is not held behind pacing.
    let sending = state.outbox.queue_send(chat, text, None);
    tokio::spawn(async move {
        if let Err(e) = sending.wait().await {
            tracing::warn!(chat, error = %e, "saying which session continues");
        }
    });
    Ok(format!(
        "Your next prompt to {} continues that session.",
        agent.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn button_data_fits_and_list_ids_are_checked() {
        let id = uuid::Uuid::new_v4().simple().to_string();
        assert!(valid_list_id(&id));
        assert!(button_data(&id, 9).len() <= 64);
        assert!(!valid_list_id("../x"));
        assert!(!valid_list_id(&id.to_uppercase()));
    }
}
