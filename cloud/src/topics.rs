//! Forum topics: one per agent in a chat that has topics (a private chat
//! while the bot's forum topic mode is on, `getMe`'s `has_topics_enabled`;
//! a forum supergroup the owner opted in with `/allowgroup`).
//!
//! * A topic is created on an agent's first prompt in the chat
//!   ([`ensure`]), named after the agent, and recorded in `agent_topics`;
//!   a renamed agent renames its topic the next time it is used.
//! * Its runs (pages, approvals, files, the ping) are sent into it: the
//!   forwarder's state carries the thread, so a replica that takes a
//!   session over keeps sending there.
//! * A topic the user deleted is found out on the next send into it
//!   ("message thread not found"): [`recreate`] opens a new one (or takes
//!   the one another replica opened meanwhile), so output is never lost.
//! * Unpairing an agent tells its topics and closes them ([`close_all`]).
//!
//! Used by the bot (`bot::topics`) and the forwarder alike, so it depends
//! on neither.

use remoteagent_proto::AgentId;

use crate::db::{Db, topics};
use crate::telegram::{ChatRef, Outbox, Telegram, TelegramError, escape_html};

/// Telegram's limit on a topic's name, in characters.
pub const MAX_NAME_CHARS: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Telegram(#[from] TelegramError),
}

/// The name an agent's topic gets: the agent's, cut to Telegram's limit.
pub fn topic_name(agent_name: &str) -> String {
    let name: String = agent_name.trim().chars().take(MAX_NAME_CHARS).collect();
    if name.trim().is_empty() {
        "agent".to_string()
    } else {
        name
    }
}

/// An agent's topic in a chat, as [`ensure`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ensured {
    pub thread: i64,
    /// Opened just now (the agent's first use in this chat).
    pub created: bool,
}

/// `agent`'s topic in `chat`: the recorded one (renamed first when the
/// agent's name changed), or a new one. `None` where topics cannot exist
/// (console mode).
pub async fn ensure(
    db: &Db,
    telegram: &Telegram,
    chat: i64,
    agent: &AgentId,
    agent_name: &str,
) -> Result<Option<Ensured>, TopicError> {
    let name = topic_name(agent_name);
    if let Some(topic) = topics::get(db, chat, agent).await? {
        if topic.name != name {
            match telegram
                .rename_forum_topic(chat, topic.thread_id, &name)
                .await
            {
                Ok(()) => {
                    topics::rename(db, chat, agent, &name).await?;
                    tracing::info!(chat, agent = %agent, "topic renamed after its agent");
                }
                // Gone: the first send into it finds that out and opens a
                // new one under the new name.
                Err(e) if e.is_thread_gone() => {}
                Err(e) => {
                    tracing::warn!(chat, agent = %agent, error = %e, "renaming an agent's topic");
                }
            }
        }
        return Ok(Some(Ensured {
            thread: topic.thread_id,
            created: false,
        }));
    }
    let Some(thread) = telegram.create_forum_topic(chat, &name).await? else {
        return Ok(None);
    };
    topics::set(db, chat, agent, thread, &name).await?;
    tracing::info!(chat, agent = %agent, thread, "topic created for an agent");
    Ok(Some(Ensured {
        thread,
        created: true,
    }))
}

/// After a send into `failed` found the topic gone: the agent's topic now,
/// one another replica already opened in its place or a new one. `None`:
/// none can be had; the caller sends into the chat itself.
pub async fn recreate(
    db: &Db,
    telegram: &Telegram,
    chat: i64,
    agent: &AgentId,
    agent_name: &str,
    failed: i64,
) -> Result<Option<i64>, TopicError> {
    if let Some(topic) = topics::get(db, chat, agent).await?
        && topic.thread_id != failed
    {
        return Ok(Some(topic.thread_id));
    }
    let name = topic_name(agent_name);
    let Some(thread) = telegram.create_forum_topic(chat, &name).await? else {
        return Ok(None);
    };
    topics::set(db, chat, agent, thread, &name).await?;
    tracing::info!(chat, agent = %agent, thread, failed, "a deleted topic was opened again");
    Ok(Some(thread))
}

/// The agent was unpaired: each of its topics is told so and closed, and
/// forgotten. Failures are logged (the agent is unpaired regardless, and
/// the owner is told in their private chat).
pub async fn close_all(db: &Db, outbox: &Outbox, agent: &AgentId, agent_name: &str) {
    let topics = match topics::of_agent(db, agent).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(agent = %agent, error = %e, "listing an unpaired agent's topics");
            return;
        }
    };
    for topic in &topics {
        let to = ChatRef {
            chat: topic.chat_id,
            thread: Some(topic.thread_id),
        };
        let text = format!(
            "🔌 <b>{}</b> was unpaired: this topic is closed.",
            escape_html(agent_name)
        );
        // Told before it is closed: nothing can be sent into a closed topic.
        if let Err(e) = outbox.send_to(to, text, None).await
            && !e.is_thread_gone()
        {
            tracing::warn!(agent = %agent, chat = topic.chat_id, error = %e, "telling a topic its agent was unpaired");
        }
        match outbox
            .telegram()
            .close_forum_topic(topic.chat_id, topic.thread_id)
            .await
        {
            Ok(()) => tracing::info!(agent = %agent, chat = topic.chat_id, "topic closed"),
            Err(e) if e.is_thread_gone() => {}
            Err(e) => {
                tracing::warn!(agent = %agent, chat = topic.chat_id, error = %e, "closing an unpaired agent's topic");
            }
        }
    }
    if let Err(e) = topics::remove_agent(db, agent).await {
        tracing::warn!(agent = %agent, error = %e, "forgetting an unpaired agent's topics");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_telegrams_limit() {
        assert_eq!(topic_name(" hello "), "hello");
        assert_eq!(topic_name(&"é".repeat(200)).chars().count(), MAX_NAME_CHARS);
        assert_eq!(topic_name("  "), "agent");
    }
}
