//! The bot's side of forum topics (`crate::topics`): which agent a topic
//! is, and the topic a prompt's run goes to.

use super::Ctx;
use super::update::Message;
use crate::db::{agents, topics as topic_rows};
use crate::error::Result;
use crate::state::AppState;
use crate::telegram::escape_html;

/// Whether the chat of `message` has one topic per agent: a private chat
/// while the bot's topic mode is on, or a forum supergroup (which runs
/// nothing unless its owner opted it in, see `group`).
pub fn chat_has_topics(state: &AppState, message: &Message) -> bool {
    if message.chat.is_private() {
        state.topics_in_private
    } else {
        message.chat.is_forum
    }
}

/// The agent whose topic the update came from, when it is the sender's
/// and active: messages there go to it with no `/use`.
pub async fn topic_agent(ctx: &Ctx<'_>) -> Result<Option<agents::Agent>> {
    let Some(thread) = ctx.thread else {
        return Ok(None);
    };
    let Some(id) = topic_rows::agent_at(&ctx.state.db, ctx.chat, thread).await? else {
        return Ok(None);
    };
    Ok(agents::get(&ctx.state.db, &id)
        .await?
        .filter(|a| a.owner == ctx.user && a.is_active()))
}

/// The topic a run of `agent` started from `ctx` goes to: its topic in
/// this chat, opened on first use (the user is told where it is). `None`
/// in a chat without topics, or when Telegram refused the topic (then the
/// user is told, and the run shows in the chat itself).
pub async fn thread_for_run(ctx: &Ctx<'_>, agent: &agents::Agent) -> Option<i64> {
    if !ctx.forum {
        return None;
    }
    let ensured = crate::topics::ensure(
        &ctx.state.db,
        ctx.state.outbox.telegram(),
        ctx.chat,
        &agent.id,
        &agent.name,
    )
    .await;
    match ensured {
        Ok(Some(topic)) => {
            if topic.created && ctx.thread != Some(topic.thread) {
                ctx.reply(format!(
                    "🧵 <b>{name}</b> has its own topic now, named after it: its runs show \
there, and what you write there goes to {name} with no /use.",
                    name = escape_html(&agent.name)
                ))
                .await;
            }
            Some(topic.thread)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(chat = ctx.chat, agent = %agent.id, error = %e, "opening an agent's topic");
            ctx.reply(format!(
                "⚠️ I could not open a topic for <b>{}</b> here, so its run shows in this chat. \
(In a group, I need the right to manage topics.)",
                escape_html(&agent.name)
            ))
            .await;
            None
        }
    }
}
