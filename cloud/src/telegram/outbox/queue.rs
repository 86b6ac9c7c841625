//! The outbox's queue: every waiting operation, indexed so that picking the
//! next one costs O(log n) however many chats are waiting.
//!
//! Operations wait per chat, ordered by (kind, seq): sends before deletes
//! before edits before drafts, oldest first within a kind. A chat that is
//! not busy (no request of it in flight) has its first operation that may go
//! now in `ready`; the outbox takes the smallest (kind, seq) over `ready`,
//! which is the smallest over every operation that may go. A chat whose
//! per-chat pause has not run out has only its drafts in `ready` (drafts are
//! not paced per chat) and sits in `waiting` until the pause ends.
//!
//! An earlier outbox kept one list and scanned it on every event: with
//! thousands of chats queued behind the global rate (a webhook burst from
//! many users) the scan was most of the cloud's CPU.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokio::time::Instant;

use super::{Kind, Op};

/// A chat's operations and pacing.
#[derive(Default)]
struct Chat {
    ops: BTreeMap<(Kind, u64), Op>,
    /// A request of this chat is in flight.
    busy: bool,
    /// Earliest time of the chat's next paced request.
    next: Option<Instant>,
    /// This chat's entries in the indexes, to remove them.
    in_ready: Option<(Kind, u64)>,
    in_waiting: Option<Instant>,
}

#[derive(Default)]
pub(super) struct Queue {
    chats: HashMap<i64, Chat>,
    /// Each idle chat's first operation that may go now.
    ready: BTreeSet<(Kind, u64, i64)>,
    /// Idle chats with paced operations, by the end of their pause.
    waiting: BTreeSet<(Instant, i64)>,
    /// Operations waiting (not in flight).
    len: usize,
    /// Chats with a request in flight.
    busy: usize,
}

/// What [`Queue::take`] found.
pub(super) enum Next {
    /// This operation may go now.
    Go(Op),
    /// Nothing may go before this time (`None`: nothing until a request
    /// in flight comes back or a new operation arrives).
    Wait(Option<Instant>),
}

impl Queue {
    /// No operation waiting and none in flight.
    pub(super) fn is_idle(&self) -> bool {
        self.len == 0 && self.busy == 0
    }

    pub(super) fn is_busy(&self, chat: i64) -> bool {
        self.chats.get(&chat).is_some_and(|c| c.busy)
    }

    /// Queues `op` in its place (its `seq`).
    pub(super) fn push(&mut self, op: Op, now: Instant) {
        let chat = op.chat;
        self.chats
            .entry(chat)
            .or_default()
            .ops
            .insert((op.kind, op.seq), op);
        self.len += 1;
        self.reindex(chat, now);
    }

    /// The queued edit of message `key`, if any (at most one is queued).
    pub(super) fn edit_mut(&mut self, key: (i64, i64)) -> Option<&mut Op> {
        self.chats
            .get_mut(&key.0)?
            .ops
            .range_mut((Kind::Edit, 0)..=(Kind::Edit, u64::MAX))
            .map(|(_, op)| op)
            .find(|op| op.message == key.1)
    }

    /// The first queued operation of `chat` that `pick` selects.
    pub(super) fn find_mut(
        &mut self,
        chat: i64,
        mut pick: impl FnMut(&Op) -> bool,
    ) -> Option<&mut Op> {
        self.chats
            .get_mut(&chat)?
            .ops
            .values_mut()
            .find(|op| pick(op))
    }

    /// Moves the queued edit of message `key` to place `seq` when that is
    /// earlier than its own.
    pub(super) fn advance_edit(&mut self, key: (i64, i64), seq: u64, now: Instant) {
        let Some(c) = self.chats.get_mut(&key.0) else {
            return;
        };
        let Some(old) = c
            .ops
            .range((Kind::Edit, 0)..=(Kind::Edit, u64::MAX))
            .find(|(_, op)| op.message == key.1)
            .map(|(k, _)| *k)
        else {
            return;
        };
        if old.1 <= seq {
            return;
        }
        if let Some(mut op) = c.ops.remove(&old) {
            op.seq = seq;
            c.ops.insert((Kind::Edit, seq), op);
        }
        self.reindex(key.0, now);
    }

    /// Takes out the queued operations of `chat` that `pick` selects.
    pub(super) fn remove_where(
        &mut self,
        chat: i64,
        now: Instant,
        mut pick: impl FnMut(&Op) -> bool,
    ) -> Vec<Op> {
        let Some(c) = self.chats.get_mut(&chat) else {
            return Vec::new();
        };
        let keys: Vec<(Kind, u64)> = c
            .ops
            .iter()
            .filter(|(_, op)| pick(op))
            .map(|(k, _)| *k)
            .collect();
        let taken: Vec<Op> = keys.iter().filter_map(|k| c.ops.remove(k)).collect();
        self.len -= taken.len();
        self.reindex(chat, now);
        taken
    }

    /// Takes out every queued draft, of every chat.
    pub(super) fn remove_drafts(&mut self, now: Instant) -> Vec<Op> {
        let chats: Vec<i64> = self
            .chats
            .iter()
            .filter(|(_, c)| c.ops.keys().next_back().is_some_and(|k| k.0 == Kind::Draft))
            .map(|(id, _)| *id)
            .collect();
        chats
            .into_iter()
            .flat_map(|chat| self.remove_where(chat, now, |op| op.kind == Kind::Draft))
            .collect()
    }

    /// Marks a request of `chat` in flight or back.
    pub(super) fn set_busy(&mut self, chat: i64, busy: bool, now: Instant) {
        let c = self.chats.entry(chat).or_default();
        if c.busy != busy {
            c.busy = busy;
            if busy {
                self.busy += 1;
            } else {
                self.busy -= 1;
            }
        }
        self.reindex(chat, now);
    }

    /// The earliest time of `chat`'s next paced request, if set.
    pub(super) fn next_of(&self, chat: i64) -> Option<Instant> {
        self.chats.get(&chat).and_then(|c| c.next)
    }

    /// Holds `chat`'s paced requests until `at`.
    pub(super) fn pace(&mut self, chat: i64, at: Instant, now: Instant) {
        self.chats.entry(chat).or_default().next = Some(at);
        self.reindex(chat, now);
    }

    /// The operation that goes next, taken out of the queue: the smallest
    /// (kind, seq) of those that may go at `now`, when the global pause
    /// (`global_next`) allows any.
    pub(super) fn take(&mut self, now: Instant, global_next: Instant) -> Next {
        // Chats whose pause ran out join `ready`.
        while let Some(&(at, chat)) = self.waiting.first() {
            if at > now {
                break;
            }
            self.reindex(chat, now);
        }
        let Some(&(kind, seq, chat)) = self.ready.first() else {
            return Next::Wait(self.waiting.first().map(|(at, _)| (*at).max(global_next)));
        };
        if global_next > now {
            return Next::Wait(Some(global_next));
        }
        let op = self
            .chats
            .get_mut(&chat)
            .and_then(|c| c.ops.remove(&(kind, seq)));
        match op {
            Some(op) => {
                self.len -= 1;
                self.reindex(chat, now);
                Next::Go(op)
            }
            // The index names only queued operations: unreachable, but a
            // stale entry must not stall the queue.
            None => {
                self.ready.remove(&(kind, seq, chat));
                Next::Wait(Some(now))
            }
        }
    }

    /// Puts `chat`'s entries in the indexes in line with its state at
    /// `now`, and forgets a chat with nothing left to remember.
    fn reindex(&mut self, chat: i64, now: Instant) {
        let Some(c) = self.chats.get_mut(&chat) else {
            return;
        };
        if let Some((kind, seq)) = c.in_ready.take() {
            self.ready.remove(&(kind, seq, chat));
        }
        if let Some(at) = c.in_waiting.take() {
            self.waiting.remove(&(at, chat));
        }
        let paced_out = c.next.is_none_or(|at| at <= now);
        if paced_out {
            c.next = None;
        }
        if !c.busy {
            let first = if paced_out {
                c.ops.keys().next().copied()
            } else {
                c.ops
                    .range((Kind::Draft, 0)..=(Kind::Draft, u64::MAX))
                    .next()
                    .map(|(k, _)| *k)
            };
            if let Some(k) = first {
                self.ready.insert((k.0, k.1, chat));
                c.in_ready = Some(k);
            }
            if let (false, Some(at)) = (paced_out, c.next)
                && c.ops.keys().next().is_some_and(|k| k.0 != Kind::Draft)
            {
                self.waiting.insert((at, chat));
                c.in_waiting = Some(at);
            }
        }
        if c.ops.is_empty() && !c.busy && c.next.is_none() {
            self.chats.remove(&chat);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn op(kind: Kind, chat: i64, message: i64, seq: u64) -> Op {
        Op {
            kind,
            chat,
            message,
            html: String::new(),
            keyboard: None,
            document: None,
            reply_to: None,
            thread: None,
            seq,
            once: false,
            retries: None,
            waiters: Vec::new(),
        }
    }

    fn go(q: &mut Queue, now: Instant) -> Option<(Kind, i64, u64)> {
        match q.take(now, now) {
            Next::Go(op) => Some((op.kind, op.chat, op.seq)),
            Next::Wait(_) => None,
        }
    }

    #[test]
    fn sends_before_deletes_before_edits_before_drafts_oldest_first_across_chats() {
        let now = Instant::now();
        let mut q = Queue::default();
        q.push(op(Kind::Draft, 1, 9, 0), now);
        q.push(op(Kind::Edit, 2, 5, 1), now);
        q.push(op(Kind::Send, 3, 0, 2), now);
        q.push(op(Kind::Delete, 1, 4, 3), now);
        q.push(op(Kind::Send, 2, 0, 4), now);
        let mut order = Vec::new();
        while let Some(taken) = go(&mut q, now) {
            // Back at once, unpaced: only the order is looked at here.
            q.set_busy(taken.1, false, now);
            order.push((taken.0, taken.2));
        }
        assert_eq!(
            order,
            [
                (Kind::Send, 2),
                (Kind::Send, 4),
                (Kind::Delete, 3),
                (Kind::Edit, 1),
                (Kind::Draft, 0)
            ]
        );
        assert!(q.is_idle());
        assert!(q.chats.is_empty(), "idle chats are forgotten");
    }

    #[test]
    fn a_busy_chat_waits_and_a_paced_chat_sends_only_drafts_until_its_time() {
        let now = Instant::now();
        let mut q = Queue::default();
        q.push(op(Kind::Send, 1, 0, 0), now);
        q.push(op(Kind::Send, 1, 0, 1), now);
        q.push(op(Kind::Draft, 1, 7, 2), now);
        assert_eq!(go(&mut q, now), Some((Kind::Send, 1, 0)));
        q.set_busy(1, true, now);
        let later = now + Duration::from_secs(1);
        q.pace(1, later, now);
        assert_eq!(go(&mut q, now), None, "the chat has a request in flight");
        q.set_busy(1, false, now);
        assert_eq!(
            go(&mut q, now),
            Some((Kind::Draft, 1, 2)),
            "drafts are not paced"
        );
        q.set_busy(1, false, now);
        match q.take(now, now) {
            Next::Wait(Some(at)) => assert_eq!(at, later),
            other => panic!(
                "expected a wait until the chat's pause ends, got {}",
                matches!(other, Next::Go(_))
            ),
        }
        assert_eq!(go(&mut q, later), Some((Kind::Send, 1, 1)));
    }

    #[test]
    fn the_global_pause_holds_everything() {
        let now = Instant::now();
        let mut q = Queue::default();
        q.push(op(Kind::Send, 1, 0, 0), now);
        let global = now + Duration::from_millis(34);
        assert!(matches!(q.take(now, global), Next::Wait(Some(at)) if at == global));
        assert!(matches!(q.take(global, global), Next::Go(_)));
    }

    #[test]
    fn an_edit_moved_to_an_older_place_goes_first() {
        let now = Instant::now();
        let mut q = Queue::default();
        q.push(op(Kind::Edit, 1, 5, 10), now);
        q.push(op(Kind::Edit, 2, 6, 11), now);
        q.advance_edit((2, 6), 3, now);
        assert_eq!(go(&mut q, now), Some((Kind::Edit, 2, 3)));
        assert!(q.edit_mut((1, 5)).is_some());
        assert!(q.edit_mut((1, 6)).is_none());
    }

    /// Thousands of chats, each paced after its request: every operation
    /// goes exactly once, in order, and nothing is left behind.
    #[test]
    fn many_chats_each_paced_all_go_once_in_order() {
        let start = Instant::now();
        let mut q = Queue::default();
        let chats = 5_000;
        for seq in 0..(2 * chats as u64) {
            let chat = (seq % chats as u64) as i64;
            q.push(op(Kind::Send, chat, 0, seq), start);
        }
        q.push(op(Kind::Draft, 0, 1, 99_999), start);
        let mut now = start;
        let mut seen = Vec::new();
        loop {
            match q.take(now, now) {
                Next::Go(op) => {
                    q.set_busy(op.chat, true, now);
                    if op.kind != Kind::Draft {
                        q.pace(op.chat, now + Duration::from_secs(1), now);
                    }
                    q.set_busy(op.chat, false, now);
                    seen.push(op.seq);
                }
                Next::Wait(Some(at)) => now = at,
                Next::Wait(None) => break,
            }
        }
        let sends: Vec<u64> = seen.iter().copied().filter(|s| *s != 99_999).collect();
        assert_eq!(sends, (0..2 * chats as u64).collect::<Vec<_>>());
        // Chat 0's draft waits behind every chat's first send (sends go
        // first) but not behind chat 0's pause: it goes before chat 0's
        // second send (seq `chats`).
        let draft_at = seen.iter().position(|s| *s == 99_999);
        let second_send = seen.iter().position(|s| *s == chats as u64);
        assert!(
            draft_at.is_some() && draft_at < second_send,
            "the draft went at {draft_at:?}, chat 0's second send at {second_send:?}"
        );
        assert!(q.is_idle());
        // Chats still paced are remembered until their pause ends.
        q.take(now + Duration::from_secs(2), now);
        assert!(q.waiting.is_empty() && q.ready.is_empty());
    }
}
