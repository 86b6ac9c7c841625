//! Where a session's messages go in its chat: the agent's forum topic, if
//! it has one (`crate::topics`). A send that finds the topic deleted opens
//! it anew and is sent again there, or, should that fail, into the chat
//! itself: output is never lost to a deleted topic.

use std::sync::Arc;

use remoteagent_proto::AgentId;

use super::Ctx;
use super::store::SavedState;
use crate::telegram::{ChatRef, TelegramError};

pub(super) struct TopicTarget {
    chat: i64,
    /// 0: the chat itself.
    thread: i64,
    agent: AgentId,
    agent_name: String,
}

impl TopicTarget {
    pub fn of(saved: &SavedState) -> Self {
        TopicTarget {
            chat: saved.chat_id,
            thread: saved.more.thread,
            agent: saved.agent_id.clone(),
            agent_name: saved.agent_name.clone(),
        }
    }

    /// The topic now (0: none), to store with the session's progress.
    pub fn thread(&self) -> i64 {
        self.thread
    }

    /// Where a message for `chat` goes: the topic when it is the session's
    /// chat (approval requests for a group go to the owner's private chat,
    /// outside any topic).
    pub fn to(&self, chat: i64) -> ChatRef {
        ChatRef {
            chat,
            thread: (chat == self.chat && self.thread != 0).then_some(self.thread),
        }
    }

    /// When `result` of a send to `to` says its topic is gone: where to
    /// send it again (the topic opened anew, or the chat itself). `None`:
    /// the result stands.
    pub async fn repair_if_gone<T>(
        &mut self,
        ctx: &Arc<Ctx>,
        to: ChatRef,
        result: &Result<T, TelegramError>,
    ) -> Option<ChatRef> {
        let failed = to.thread?;
        match result {
            Err(e) if e.is_thread_gone() => {}
            // Closed (the agent was unpaired as the run ended): what is
            // left goes to the chat itself.
            Err(TelegramError::Api { description, .. }) if description.contains("TOPIC_CLOSED") => {
                self.thread = 0;
                return Some(self.to(to.chat));
            }
            _ => return None,
        }
        let reopened = match &ctx.options.notify_db {
            Some(db) => {
                crate::topics::recreate(
                    db,
                    ctx.outbox.telegram(),
                    to.chat,
                    &self.agent,
                    &self.agent_name,
                    failed,
                )
                .await
            }
            None => Ok(None),
        };
        self.thread = match reopened {
            Ok(Some(thread)) => thread,
            Ok(None) => 0,
            Err(e) => {
                tracing::warn!(chat = to.chat, agent = %self.agent, error = %e, "opening a deleted topic again; sending into the chat itself");
                0
            }
        };
        Some(self.to(to.chat))
    }
}
