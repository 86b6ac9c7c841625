//! The chats where Telegram refused a draft (`sendMessageDraft`): a group
//! that slipped through, a client or account the method is not open to.
//! A session that starts in one of them streams with edits from the
//! start, so the refusal is not met again on every session (within a
//! session, `Progress::drafts` turned off keeps it from every chunk). Kept
//! in memory per replica: after a restart a chat is tried once more.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// Chats remembered at most; the oldest are forgotten first.
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub(super) struct DraftChats {
    inner: Mutex<(HashSet<i64>, VecDeque<i64>)>,
}

impl DraftChats {
    /// Telegram refused a draft in `chat`.
    pub fn refused(&self, chat: i64) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (set, order) = &mut *guard;
        if set.insert(chat) {
            order.push_back(chat);
            if order.len() > CAPACITY
                && let Some(old) = order.pop_front()
            {
                set.remove(&old);
            }
        }
    }

    /// Whether a draft was refused in `chat`.
    pub fn is_refused(&self, chat: i64) -> bool {
        let guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.contains(&chat)
    }
}
