//! The outbox: one sender per bot between everything that talks to a chat
//! and the Bot API (modelled on the outbox of takopi, a Telegram bridge for coding agents).
//!
//! * Operations wait in a queue keyed by message: a newer edit of a message
//!   replaces the queued payload but keeps its place in line.
//! * Sends go before deletes, deletes before edits, oldest first within each.
//! * At most one request per chat is in flight, and a chat gets at most one
//!   request per `per_chat_interval` (~1 s for a private chat); all chats
//!   together at most one per `global_interval` (~30/s).
//! * A 429 pauses the whole bot for `retry_after` seconds (5 s if Telegram
//!   gives none), then the same operation is retried in its place.
//! * An edit whose text and buttons equal what the message already shows is
//!   not sent at all.
//! * A draft (`sendMessageDraft`) is not paced per chat: Telegram animates
//!   drafts and does not limit them like edits. It still waits its turn
//!   behind the chat's request in flight and the global interval, and is
//!   never retried nor held back: past a 429 (and while the bot is paused
//!   by one) it is answered `RetryAfter` at once, since the text it shows
//!   is persisted with `sendMessage` anyway.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use remoteagent_proto::backoff::Backoff;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{ChatRef, Document, InlineKeyboard, Telegram, TelegramError};

mod queue;

use queue::{Next, Queue};

/// Pacing of the outbox.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// Least time between two requests to one chat.
    pub per_chat_interval: Duration,
    /// Least time between two requests to any chat.
    pub global_interval: Duration,
    /// How often an edit or delete that failed on the network is retried.
    pub transport_retries: u32,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            per_chat_interval: Duration::from_secs(1),
            global_interval: Duration::from_millis(34),
            transport_retries: 3,
        }
    }
}

/// How many delivered message texts the outbox remembers to skip unchanged
/// edits; older entries are forgotten (an unchanged edit is then merely sent).
const KNOWN_CAPACITY: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Send = 0,
    Delete = 1,
    Edit = 2,
    /// `sendMessageDraft`; `Op::message` holds the draft id.
    Draft = 3,
}

enum Waiter {
    Sent(oneshot::Sender<Result<i64, TelegramError>>),
    Done(oneshot::Sender<Result<(), TelegramError>>),
}

impl Waiter {
    fn complete(self, result: &Result<i64, TelegramError>) {
        match self {
            Waiter::Sent(tx) => {
                let _ = tx.send(result.clone());
            }
            Waiter::Done(tx) => {
                let _ = tx.send(result.clone().map(|_| ()));
            }
        }
    }
}

struct Op {
    kind: Kind,
    chat: i64,
    /// The message an edit or delete applies to (0 for sends).
    message: i64,
    html: String,
    keyboard: Option<InlineKeyboard>,
    /// A send of a file (`html` unused): `sendDocument` instead of `sendMessage`.
    document: Option<Box<Document>>,
    /// A send that replies to this message of the chat.
    reply_to: Option<i64>,
    /// A send into this forum topic of the chat (pacing stays per chat).
    thread: Option<i64>,
    seq: u64,
    /// A send that is not queued twice: while one with the same text waits
    /// for the same chat (and topic), a second joins it.
    once: bool,
    /// Waits between network failures of an edit or delete, set at its
    /// first failure.
    retries: Option<Backoff>,
    waiters: Vec<Waiter>,
}

impl Op {
    fn key(&self) -> (i64, i64) {
        (self.chat, self.message)
    }

    fn complete(self, result: Result<i64, TelegramError>) {
        for w in self.waiters {
            w.complete(&result);
        }
    }
}

/// The pending delivery of an edit or delete.
pub struct Delivery(oneshot::Receiver<Result<(), TelegramError>>);

impl Delivery {
    /// Waits until the operation was delivered, skipped as unchanged,
    /// superseded by a delete, or failed.
    pub async fn wait(self) -> Result<(), TelegramError> {
        self.0.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// The result if the operation is settled by now, without waiting.
    pub fn try_result(&mut self) -> Option<Result<(), TelegramError>> {
        match self.0.try_recv() {
            Ok(result) => Some(result),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(stopped())),
        }
    }
}

/// The pending delivery of a new message.
pub struct Sending(oneshot::Receiver<Result<i64, TelegramError>>);

impl Sending {
    /// Waits until the message was delivered (its id) or failed.
    pub async fn wait(self) -> Result<i64, TelegramError> {
        self.0.await.unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> TelegramError {
    TelegramError::Transport("the outbox stopped".into())
}

/// A handle on a bot's outbox. Cheap to clone; the sender task starts with
/// the first operation and stops when every handle is gone and the queue is
/// empty.
#[derive(Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

struct Shared {
    telegram: Telegram,
    config: OutboxConfig,
    tx: OnceLock<mpsc::UnboundedSender<Op>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("config", &self.shared.config)
            .finish()
    }
}

impl Outbox {
    pub fn new(telegram: Telegram, config: OutboxConfig) -> Self {
        Outbox {
            shared: Arc::new(Shared {
                telegram,
                config,
                tx: OnceLock::new(),
            }),
        }
    }

    /// The client the outbox sends with.
    pub fn telegram(&self) -> &Telegram {
        &self.shared.telegram
    }

    fn submit(&self, op: Op) {
        let tx = self.shared.tx.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let sender = Sender::new(self.shared.telegram.clone(), self.shared.config.clone());
            tokio::spawn(sender.run(rx));
            tx
        });
        if let Err(mpsc::error::SendError(op)) = tx.send(op) {
            op.complete(Err(stopped()));
        }
    }

    fn op(
        kind: Kind,
        chat: i64,
        message: i64,
        html: String,
        keyboard: Option<InlineKeyboard>,
        waiter: Waiter,
    ) -> Op {
        Op {
            kind,
            chat,
            message,
            html,
            keyboard,
            document: None,
            reply_to: None,
            thread: None,
            seq: 0,
            once: false,
            retries: None,
            waiters: vec![waiter],
        }
    }

    /// Sends a new message and returns its id once delivered.
    pub async fn send(
        &self,
        chat: i64,
        html: String,
        keyboard: Option<InlineKeyboard>,
    ) -> Result<i64, TelegramError> {
        self.queue_send(chat, html, keyboard).wait().await
    }

    /// Queues a new message and returns at once: it goes out after the
    /// chat's messages queued before it, and before those queued after.
    /// Dropping the returned [`Sending`] does not cancel the send.
    pub fn queue_send(&self, chat: i64, html: String, keyboard: Option<InlineKeyboard>) -> Sending {
        self.queue_send_to(ChatRef::flat(chat), html, keyboard)
    }

    /// [`Outbox::queue_send`] into a forum topic when `to.thread` is set.
    pub fn queue_send_to(
        &self,
        to: ChatRef,
        html: String,
        keyboard: Option<InlineKeyboard>,
    ) -> Sending {
        self.queue_message(to, html, keyboard, false)
    }

    /// [`Outbox::queue_send_to`] of a text that says the same each time
    /// (the help that answers a stranger): while one such send of `html`
    /// waits for the chat, another joins it instead of queueing a copy,
    /// so that a flood of messages costs one queued reply per chat, not
    /// one per message. Both callers learn the one delivery's result.
    pub fn queue_send_once_to(&self, to: ChatRef, html: String) -> Sending {
        self.queue_message(to, html, None, true)
    }

    /// Queues a `sendMessage` (`once`: see [`Outbox::queue_send_once_to`]).
    fn queue_message(
        &self,
        to: ChatRef,
        html: String,
        keyboard: Option<InlineKeyboard>,
        once: bool,
    ) -> Sending {
        let (tx, rx) = oneshot::channel();
        let mut op = Self::op(Kind::Send, to.chat, 0, html, keyboard, Waiter::Sent(tx));
        op.thread = to.thread;
        op.once = once;
        self.submit(op);
        Sending(rx)
    }

    /// [`Outbox::send`] into a forum topic when `to.thread` is set.
    pub async fn send_to(
        &self,
        to: ChatRef,
        html: String,
        keyboard: Option<InlineKeyboard>,
    ) -> Result<i64, TelegramError> {
        self.queue_send_to(to, html, keyboard).wait().await
    }

    /// Sends a new message that replies to message `reply_to` of the chat
    /// (sent without the reply should that message be gone), paced and
    /// retried like any other; its id once delivered.
    pub async fn send_reply(
        &self,
        chat: i64,
        html: String,
        reply_to: i64,
    ) -> Result<i64, TelegramError> {
        self.send_reply_to(ChatRef::flat(chat), html, reply_to)
            .await
    }

    /// [`Outbox::send_reply`] in a forum topic when `to.thread` is set.
    pub async fn send_reply_to(
        &self,
        to: ChatRef,
        html: String,
        reply_to: i64,
    ) -> Result<i64, TelegramError> {
        let (tx, rx) = oneshot::channel();
        let mut op = Self::op(Kind::Send, to.chat, 0, html, None, Waiter::Sent(tx));
        op.reply_to = Some(reply_to);
        op.thread = to.thread;
        self.submit(op);
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Sends a document (in line with the chat's messages, paced like them)
    /// and returns its message id once delivered.
    pub async fn send_document(&self, chat: i64, document: Document) -> Result<i64, TelegramError> {
        self.send_document_to(ChatRef::flat(chat), document).await
    }

    /// [`Outbox::send_document`] into a forum topic when `to.thread` is set.
    pub async fn send_document_to(
        &self,
        to: ChatRef,
        document: Document,
    ) -> Result<i64, TelegramError> {
        let (tx, rx) = oneshot::channel();
        let mut op = Self::op(
            Kind::Send,
            to.chat,
            0,
            String::new(),
            None,
            Waiter::Sent(tx),
        );
        op.document = Some(Box::new(document));
        op.thread = to.thread;
        self.submit(op);
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Queues an edit of a message (`keyboard = None` removes the buttons).
    /// A queued edit of the same message is replaced by this one. Dropping
    /// the returned [`Delivery`] does not cancel the edit.
    pub fn edit(
        &self,
        chat: i64,
        message: i64,
        html: String,
        keyboard: Option<InlineKeyboard>,
    ) -> Delivery {
        let (tx, rx) = oneshot::channel();
        self.submit(Self::op(
            Kind::Edit,
            chat,
            message,
            html,
            keyboard,
            Waiter::Done(tx),
        ));
        Delivery(rx)
    }

    /// Shows `html` as draft `draft_id` of a private chat and waits for
    /// Telegram's answer (see the module's notes on drafts).
    pub async fn send_draft(
        &self,
        to: ChatRef,
        draft_id: i64,
        html: String,
    ) -> Result<(), TelegramError> {
        let (tx, rx) = oneshot::channel();
        let mut op = Self::op(Kind::Draft, to.chat, draft_id, html, None, Waiter::Done(tx));
        op.thread = to.thread;
        self.submit(op);
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Queues the deletion of a message; queued edits of it are dropped.
    pub fn delete(&self, chat: i64, message: i64) -> Delivery {
        let (tx, rx) = oneshot::channel();
        self.submit(Self::op(
            Kind::Delete,
            chat,
            message,
            String::new(),
            None,
            Waiter::Done(tx),
        ));
        Delivery(rx)
    }
}

/// The result of one request, back from its task.
struct Finished {
    op: Op,
    result: Result<i64, TelegramError>,
}

struct Sender {
    telegram: Telegram,
    config: OutboxConfig,
    queue: Queue,
    next_seq: u64,
    /// Earliest time of the next request to any chat.
    global_next: Instant,
    /// End of the pause of the last 429 (drafts are answered at once
    /// until then).
    paused_until: Instant,
    /// What each recently touched message shows, to skip unchanged edits.
    known: HashMap<(i64, i64), (String, Option<InlineKeyboard>)>,
    known_order: VecDeque<(i64, i64)>,
}

/// True if `op` is an edit to what its message already shows.
fn is_unchanged(known: &HashMap<(i64, i64), (String, Option<InlineKeyboard>)>, op: &Op) -> bool {
    op.kind == Kind::Edit
        && known
            .get(&op.key())
            .is_some_and(|(html, kb)| *html == op.html && *kb == op.keyboard)
}

impl Sender {
    fn new(telegram: Telegram, config: OutboxConfig) -> Self {
        Sender {
            telegram,
            config,
            queue: Queue::default(),
            next_seq: 0,
            global_next: Instant::now(),
            paused_until: Instant::now(),
            known: HashMap::new(),
            known_order: VecDeque::new(),
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Op>) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Finished>();
        let mut open = true;
        loop {
            let wake = self.dispatch_ready(&done_tx);
            if !open && self.queue.is_idle() {
                break;
            }
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                op = rx.recv(), if open => match op {
                    Some(op) => self.accept(op),
                    None => open = false,
                },
                Some(finished) = done_rx.recv() => self.finish(finished),
                () = sleep => {}
            }
        }
    }

    fn remember(&mut self, key: (i64, i64), html: String, keyboard: Option<InlineKeyboard>) {
        if self.known.insert(key, (html, keyboard)).is_none() {
            self.known_order.push_back(key);
            if self.known_order.len() > KNOWN_CAPACITY
                && let Some(old) = self.known_order.pop_front()
            {
                self.known.remove(&old);
            }
        }
    }

    fn forget(&mut self, key: (i64, i64)) {
        if self.known.remove(&key).is_some() {
            self.known_order.retain(|k| *k != key);
        }
    }

    /// Settles the queued edits of `chat` that would not change their
    /// message: they cost nothing. Only while no request of the chat is in
    /// flight, since that request may change what the message shows.
    fn settle_unchanged(&mut self, chat: i64, now: Instant) {
        if self.queue.is_busy(chat) {
            return;
        }
        let known = &self.known;
        for op in self
            .queue
            .remove_where(chat, now, |op| is_unchanged(known, op))
        {
            let key = op.key();
            tracing::debug!(chat = key.0, message = key.1, "unchanged edit skipped");
            op.complete(Ok(key.1));
        }
    }

    /// Queues a new operation, merging it with a queued edit of the same
    /// message.
    fn accept(&mut self, mut op: Op) {
        let now = Instant::now();
        let chat = op.chat;
        match op.kind {
            Kind::Edit => {
                if let Some(queued) = self.queue.edit_mut(op.key()) {
                    queued.html = op.html;
                    queued.keyboard = op.keyboard;
                    queued.waiters.append(&mut op.waiters);
                    self.settle_unchanged(chat, now);
                    return;
                }
            }
            Kind::Delete => {
                let message = op.message;
                let dropped = self
                    .queue
                    .remove_where(chat, now, |p| p.kind == Kind::Edit && p.message == message);
                for d in dropped {
                    d.complete(Ok(message));
                }
            }
            // Drafts are not held back by a 429's pause.
            Kind::Draft if self.paused_until > now => {
                let secs = (self.paused_until - now).as_secs_f64().ceil() as u64;
                op.complete(Err(TelegramError::RetryAfter(secs.max(1))));
                return;
            }
            Kind::Send if op.once => {
                let (html, thread) = (&op.html, op.thread);
                if let Some(queued) = self.queue.find_mut(chat, |p| {
                    p.once && p.kind == Kind::Send && p.thread == thread && p.html == *html
                }) {
                    queued.waiters.append(&mut op.waiters);
                    return;
                }
            }
            Kind::Send | Kind::Draft => {}
        }
        op.seq = self.next_seq;
        self.next_seq += 1;
        let edit = op.kind == Kind::Edit;
        self.queue.push(op, now);
        if edit {
            self.settle_unchanged(chat, now);
        }
    }

    /// Starts every operation that may go now; returns when to look again.
    fn dispatch_ready(&mut self, done_tx: &mpsc::UnboundedSender<Finished>) -> Option<Instant> {
        loop {
            let now = Instant::now();
            let op = match self.queue.take(now, self.global_next) {
                Next::Go(op) => op,
                Next::Wait(at) => return at,
            };
            self.queue.set_busy(op.chat, true, now);
            if op.kind != Kind::Draft {
                self.queue
                    .pace(op.chat, now + self.config.per_chat_interval, now);
            }
            self.global_next = now + self.config.global_interval;
            let telegram = self.telegram.clone();
            let done_tx = done_tx.clone();
            tokio::spawn(async move {
                let to = ChatRef {
                    chat: op.chat,
                    thread: op.thread,
                };
                let result = match op.kind {
                    Kind::Send => match &op.document {
                        Some(doc) => telegram.send_document_to(to, doc).await,
                        None => {
                            telegram
                                .send_message_to(to, &op.html, op.keyboard.as_ref(), op.reply_to)
                                .await
                        }
                    },
                    Kind::Edit => telegram
                        .edit_message_text(op.chat, op.message, &op.html, op.keyboard.as_ref())
                        .await
                        .map(|()| op.message),
                    Kind::Delete => telegram
                        .delete_message(op.chat, op.message)
                        .await
                        .map(|()| op.message),
                    Kind::Draft => telegram
                        .send_message_draft(
                            ChatRef {
                                chat: op.chat,
                                thread: op.thread,
                            },
                            op.message,
                            &op.html,
                        )
                        .await
                        .map(|()| op.message),
                };
                let _ = done_tx.send(Finished { op, result });
            });
        }
    }

    fn finish(&mut self, finished: Finished) {
        let chat = finished.op.chat;
        self.queue.set_busy(chat, false, Instant::now());
        self.settle(finished);
        self.settle_unchanged(chat, Instant::now());
    }

    /// What a request's result means for its operation.
    fn settle(&mut self, Finished { mut op, result }: Finished) {
        let now = Instant::now();
        match result {
            Ok(id) => {
                match op.kind {
                    // A document's caption is not text an edit could repeat.
                    Kind::Send if op.document.is_some() => {}
                    Kind::Send => {
                        self.remember((op.chat, id), op.html.clone(), op.keyboard.clone())
                    }
                    Kind::Edit => self.remember(op.key(), op.html.clone(), op.keyboard.clone()),
                    Kind::Delete => self.forget(op.key()),
                    Kind::Draft => {}
                }
                op.complete(Ok(id));
            }
            Err(TelegramError::RetryAfter(secs)) => {
                tracing::warn!(
                    chat = op.chat,
                    retry_after = secs,
                    "Telegram rate limit: pausing the outbox"
                );
                self.global_next = self.global_next.max(now + Duration::from_secs(secs));
                self.paused_until = self.paused_until.max(now + Duration::from_secs(secs));
                // Drafts are not retried nor held back by the pause: the
                // callers persist their text anyway.
                for draft in self.queue.remove_drafts(now) {
                    draft.complete(Err(TelegramError::RetryAfter(secs)));
                }
                if op.kind == Kind::Draft {
                    op.complete(Err(TelegramError::RetryAfter(secs)));
                    return;
                }
                self.requeue(op, now);
            }
            // Edits and deletes are idempotent, so a network failure is
            // retried; a send is not, since it may have arrived.
            Err(TelegramError::Transport(e)) if matches!(op.kind, Kind::Edit | Kind::Delete) => {
                let transport_retries = self.config.transport_retries;
                let retries = op.retries.get_or_insert_with(|| {
                    Backoff::new(Duration::from_secs(2), Duration::from_secs(16))
                        .attempts(transport_retries.saturating_add(1))
                        .without_jitter()
                });
                let Some(backoff) = retries.next_delay() else {
                    tracing::warn!(chat = op.chat, message = op.message, error = %e, "Telegram request failed");
                    op.complete(Err(TelegramError::Transport(e)));
                    return;
                };
                tracing::warn!(chat = op.chat, attempt = retries.failures(), error = %e, "Telegram unreachable: retrying");
                let next = self
                    .queue
                    .next_of(op.chat)
                    .unwrap_or(now)
                    .max(now + backoff);
                self.queue.pace(op.chat, next, now);
                self.requeue(op, now);
            }
            Err(e) => {
                tracing::warn!(chat = op.chat, message = op.message, error = %e, "Telegram request failed");
                op.complete(Err(e));
            }
        }
    }

    /// Puts an operation back in its old place; a newer edit of the same
    /// message that arrived meanwhile wins, keeping the older place.
    fn requeue(&mut self, mut op: Op, now: Instant) {
        if op.kind == Kind::Edit
            && let Some(newer) = self.queue.edit_mut(op.key())
        {
            newer.waiters.append(&mut op.waiters);
            self.queue.advance_edit(op.key(), op.seq, now);
            return;
        }
        self.queue.push(op, now);
    }
}
