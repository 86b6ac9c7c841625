//! The forwarder's state in Redis, shared by all replicas.
//!
//! Per session (names and slots in [`super::keys`]): a hash of its progress
//! (agent, chat, current message and its text, last delivered stream id),
//! the owning replica's lock with a TTL the owner keeps refreshing (a
//! resumer takes over a session whose lock is gone), a tombstone once
//! finished, and its id in its shard's set of unfinished sessions.
//!
//! Every write goes through a Lua script that first checks the lock, so a
//! replica that lost a session can never overwrite its new owner's progress.
//! A script's keys all carry the session's shard tag: one slot, so the
//! scripts run on a Redis Cluster too.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use remoteagent_proto::checkpoints::ChangesPayload;
use remoteagent_proto::{AgentId, SessionId};
use serde::{Deserialize, Serialize};

use super::keys::{self, active_key_of, done_key, lock_key, state_key};

/// A session's state expires if nobody touches it for this long (a session
/// whose daemon never answers must not linger forever).
const STATE_TTL_SECS: u64 = 2 * 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SavedState {
    pub agent_id: AgentId,
    pub session_id: SessionId,
    pub chat_id: i64,
    pub agent_name: String,
    /// The message of the current page (0: not sent yet).
    pub message_id: i64,
    /// The current page's HTML and visible length.
    pub html: String,
    pub chars: usize,
    /// The last stream entry fully shown.
    pub last_id: String,
    /// Bytes of the next entry's chunk text already shown (a chunk that
    /// spanned a page turn).
    pub skip: usize,
    /// What was added after the first version; every field has a default so
    /// that state written by an older replica still loads.
    pub more: Progress,
}

/// The newer part of a session's progress (all fields optional in Redis).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Progress {
    /// Output pages finished so far (the current page is not counted).
    pub pages: u32,
    /// The page budget is spent: output is no longer shown live, and the
    /// whole stream is attached as a file when the session ends.
    pub overflow: bool,
    /// The `seq` the next chunk should carry; a larger one means chunks were
    /// lost (trimmed from the stream before they were read).
    pub next_seq: u64,
    /// Approval requests shown, oldest first (see [`MAX_APPROVALS`]).
    pub approvals: Vec<ApprovalMessage>,
    /// The output file of the finished session was sent: a replica that
    /// finishes the session again must not send it twice.
    pub file_sent: bool,
    /// Telegram refused some output (or could not be reached for it): live
    /// output ended there (with `overflow`), and the user was told.
    pub refused: bool,
    /// The owner's private chat, where approval requests go when the
    /// session runs in a group (0: the session's own chat).
    pub approval_chat: i64,
    /// The name of the file of a `file` event being sent right now (its
    /// entry already counts as shown): a replica that resumes with this set
    /// says the file may not have arrived instead of sending it twice.
    pub file_pending: String,
    /// The message that shows the status when it is not the current
    /// page's: the output file (0: none, or the page shows it). The ping
    /// replies to it.
    pub status_msg: i64,
    /// The ping of the finished session is done with (sent, or not
    /// wanted): a replica that finishes the session again must not send
    /// it twice, nor show the status again.
    pub pinged: bool,
    /// The forum topic of the session's chat its messages go to (0: the
    /// chat itself); see `crate::topics`.
    pub thread: i64,
    /// The run's mode as its `started` said (`plan`…; empty: none, or an
    /// older daemon), shown in the status line.
    pub mode: String,
    /// The current page is shown as a draft (`sendMessageDraft`) until it
    /// is persisted with `sendMessage` (`STREAM_MODE=draft`, private
    /// chats); turned off for good when Telegram refuses a draft.
    pub drafts: bool,
    /// In draft mode, the message with the Stop button sent when the
    /// session started (the pages come below it); deleted when the session
    /// ends (0: none).
    pub control: i64,
    /// What the run changed in its git project (its `changes` event, the
    /// files cut to those the card lists), shown as the diff card after
    /// the end (`crate::checkpoint_card`).
    pub changes: Option<ChangesPayload>,
    /// The diff card went out (or cannot): a replica that finishes the
    /// session again does not send it twice.
    pub card_sent: bool,
}

/// Approval messages remembered per session. Resolved ones are kept for a
/// while so that a late button press or a replayed event finds them; pending
/// ones are dropped only past this many (a runner asks one at a time).
pub(super) const MAX_APPROVALS: usize = 16;

/// An approval request's message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ApprovalMessage {
    /// The daemon's request id.
    pub rid: String,
    /// The message showing it (0: it could not be sent).
    pub msg: i64,
    /// Its HTML without a verdict.
    pub html: String,
    /// The HTML with the verdict, once resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<String>,
    /// A question or a plan: what its buttons need (`questions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask: Option<super::questions::Asked>,
    /// The rule the request offered (scoped answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl Progress {
    /// Remembers a new approval message, forgetting the oldest resolved ones
    /// (or, failing that, the oldest) beyond [`MAX_APPROVALS`].
    pub fn add_approval(&mut self, approval: ApprovalMessage) {
        self.approvals.push(approval);
        while self.approvals.len() > MAX_APPROVALS {
            let i = self
                .approvals
                .iter()
                .position(|a| a.resolved.is_some())
                .unwrap_or(0);
            let dropped = self.approvals.remove(i);
            if dropped.resolved.is_none() {
                tracing::warn!(request = %dropped.rid, "too many pending approval requests: forgetting the oldest");
            }
        }
    }

    pub fn approval_mut(&mut self, rid: &str) -> Option<&mut ApprovalMessage> {
        self.approvals.iter_mut().find(|a| a.rid == rid)
    }

    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("pages", self.pages.to_string()),
            ("overflow", u8::from(self.overflow).to_string()),
            ("next_seq", self.next_seq.to_string()),
            (
                "approvals",
                // Serializing plain strings and numbers cannot fail.
                serde_json::to_string(&self.approvals).unwrap_or_else(|_| "[]".into()),
            ),
            ("file_sent", u8::from(self.file_sent).to_string()),
            ("refused", u8::from(self.refused).to_string()),
            ("approval_chat", self.approval_chat.to_string()),
            ("file_pending", self.file_pending.clone()),
            ("status_msg", self.status_msg.to_string()),
            ("pinged", u8::from(self.pinged).to_string()),
            ("thread", self.thread.to_string()),
            ("mode", self.mode.clone()),
            ("drafts", u8::from(self.drafts).to_string()),
            ("control", self.control.to_string()),
            (
                "changes",
                self.changes
                    .as_ref()
                    .and_then(|c| serde_json::to_string(c).ok())
                    .unwrap_or_default(),
            ),
            ("card_sent", u8::from(self.card_sent).to_string()),
        ]
    }

    fn from_map(map: &HashMap<String, String>) -> Result<Self, String> {
        fn num<T: std::str::FromStr + Default>(
            map: &HashMap<String, String>,
            k: &str,
        ) -> Result<T, String> {
            match map.get(k) {
                None => Ok(T::default()),
                Some(v) => v.parse().map_err(|_| format!("bad number in '{k}'")),
            }
        }
        let approvals = match map.get("approvals") {
            None => Vec::new(),
            Some(v) => serde_json::from_str(v).map_err(|e| format!("bad 'approvals': {e}"))?,
        };
        let changes = match map.get("changes").filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => Some(serde_json::from_str(v).map_err(|e| format!("bad 'changes': {e}"))?),
        };
        Ok(Progress {
            pages: num(map, "pages")?,
            overflow: num::<u8>(map, "overflow")? != 0,
            next_seq: num(map, "next_seq")?,
            approvals,
            file_sent: num::<u8>(map, "file_sent")? != 0,
            refused: num::<u8>(map, "refused")? != 0,
            approval_chat: num(map, "approval_chat")?,
            file_pending: map.get("file_pending").cloned().unwrap_or_default(),
            status_msg: num(map, "status_msg")?,
            pinged: num::<u8>(map, "pinged")? != 0,
            thread: num(map, "thread")?,
            mode: map.get("mode").cloned().unwrap_or_default(),
            drafts: num::<u8>(map, "drafts")? != 0,
            control: num(map, "control")?,
            changes,
            card_sent: num::<u8>(map, "card_sent")? != 0,
        })
    }
}

impl SavedState {
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("agent", self.agent_id.to_string()),
            ("session", self.session_id.to_string()),
            ("chat", self.chat_id.to_string()),
            ("name", self.agent_name.clone()),
            ("msg", self.message_id.to_string()),
            ("html", self.html.clone()),
            ("chars", self.chars.to_string()),
            ("last_id", self.last_id.clone()),
            ("skip", self.skip.to_string()),
        ]
        .into_iter()
        .chain(self.more.fields())
        .collect()
    }

    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, String> {
        let get = |k: &str| map.get(k).ok_or_else(|| format!("missing field '{k}'"));
        let num = |k: &str| -> Result<i64, String> {
            get(k)?.parse().map_err(|_| format!("bad number in '{k}'"))
        };
        Ok(SavedState {
            agent_id: AgentId::parse(get("agent")?.as_str()).map_err(|e| e.to_string())?,
            session_id: SessionId::parse(get("session")?.as_str()).map_err(|e| e.to_string())?,
            chat_id: num("chat")?,
            agent_name: get("name")?.clone(),
            message_id: num("msg")?,
            html: get("html")?.clone(),
            chars: usize::try_from(num("chars")?).map_err(|_| "bad 'chars'".to_string())?,
            last_id: get("last_id")?.clone(),
            skip: usize::try_from(num("skip")?).map_err(|_| "bad 'skip'".to_string())?,
            more: Progress::from_map(map)?,
        })
    }
}

static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if not redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('del', KEYS[2])
redis.call('hset', KEYS[2], unpack(ARGV, 5))
redis.call('expire', KEYS[2], ARGV[3])
redis.call('sadd', KEYS[3], ARGV[4])
return 1
",
    )
});

/// Refreshes the lock (taking it again if it expired while nobody else took
/// it) and, with fields, stores them. Returns 0 if the session is finished
/// (its tombstone exists) or owned by someone else; 2 if the state is gone
/// while nobody else holds the session (Redis lost its data): the caller
/// stores its whole state again, with 1 as the answer.
static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('exists', KEYS[3]) == 1 then return 0 end
local owner = redis.call('get', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
if redis.call('exists', KEYS[2]) == 0 and #ARGV <= 4 then return 2 end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
if #ARGV > 4 then redis.call('hset', KEYS[2], unpack(ARGV, 5)) end
redis.call('expire', KEYS[2], ARGV[3])
redis.call('sadd', KEYS[4], ARGV[4])
return 1
",
    )
});

static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('exists', KEYS[2]) == 0 then
  redis.call('srem', KEYS[3], ARGV[3])
  return false
end
if not redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('hgetall', KEYS[2])
",
    )
});

/// Forgets a finished session and leaves its tombstone, so that a replica
/// that lost the session meanwhile cannot bring it back with a save.
static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local owner = redis.call('get', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('del', KEYS[2])
redis.call('srem', KEYS[3], ARGV[2])
redis.call('del', KEYS[1])
redis.call('set', KEYS[4], '1', 'EX', ARGV[3])
return 1
",
    )
});

static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
",
    )
});

fn ms(d: Duration) -> u64 {
    d.as_millis().max(1) as u64
}

/// Registers a new session under this replica's lock. False if the session
/// is already locked (started twice).
pub(super) async fn create<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    state: &SavedState,
    token: &str,
    ttl: Duration,
) -> redis::RedisResult<bool> {
    let mut inv = CREATE.prepare_invoke();
    inv.key(lock_key(&state.session_id))
        .key(state_key(&state.session_id))
        .key(active_key_of(&state.session_id))
        .arg(token)
        .arg(ms(ttl))
        .arg(STATE_TTL_SECS)
        .arg(state.session_id.as_str());
    for (k, v) in state.fields() {
        inv.arg(k).arg(v);
    }
    let created: i64 = inv.invoke_async(conn).await?;
    Ok(created == 1)
}

/// What a save found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Saved {
    Yes,
    /// This replica no longer owns the session (or it is finished).
    Lost,
    /// The state was gone (Redis lost its data) and only the lock was to be
    /// refreshed: save the whole state.
    Missing,
}

/// Stores progress (or, with `state = None`, only refreshes the lock). A
/// state that vanished while this replica owned the session (Redis lost its
/// data) is stored again: a missing key is not a takeover.
pub(super) async fn save<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    session: &SessionId,
    state: Option<&SavedState>,
    token: &str,
    ttl: Duration,
) -> redis::RedisResult<Saved> {
    let mut inv = SAVE.prepare_invoke();
    inv.key(lock_key(session))
        .key(state_key(session))
        .key(done_key(session))
        .key(active_key_of(session))
        .arg(token)
        .arg(ms(ttl))
        .arg(STATE_TTL_SECS)
        .arg(session.as_str());
    if let Some(state) = state {
        for (k, v) in state.fields() {
            inv.arg(k).arg(v);
        }
    }
    let saved: i64 = inv.invoke_async(conn).await?;
    Ok(match saved {
        1 => Saved::Yes,
        2 => Saved::Missing,
        _ => Saved::Lost,
    })
}

/// Takes over an unlocked session; its stored state if this replica got it.
pub(super) async fn claim<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    session: &SessionId,
    token: &str,
    ttl: Duration,
) -> redis::RedisResult<Option<HashMap<String, String>>> {
    CLAIM
        .key(lock_key(session))
        .key(state_key(session))
        .key(active_key_of(session))
        .arg(token)
        .arg(ms(ttl))
        .arg(session.as_str())
        .invoke_async(conn)
        .await
}

/// Forgets a finished session (if this replica still owns it).
pub(super) async fn finish<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    session: &SessionId,
    token: &str,
) -> redis::RedisResult<bool> {
    let done: i64 = FINISH
        .key(lock_key(session))
        .key(state_key(session))
        .key(active_key_of(session))
        .key(done_key(session))
        .arg(token)
        .arg(session.as_str())
        .arg(remoteagent_proto::names::OUTPUT_STREAM_TTL_SECS)
        .invoke_async(conn)
        .await?;
    Ok(done == 1)
}

/// Gives the session up so that another replica can take it at once.
pub(super) async fn release<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    session: &SessionId,
    token: &str,
) -> redis::RedisResult<()> {
    let _: i64 = RELEASE
        .key(lock_key(session))
        .arg(token)
        .invoke_async(conn)
        .await?;
    Ok(())
}

/// The chat of the approval messages and the messages of an unfinished
/// session (for the
/// bot's button handler); `None` if the session is not being forwarded.
pub(super) async fn approvals<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    session: &SessionId,
) -> redis::RedisResult<Option<(i64, Vec<ApprovalMessage>)>> {
    let (chat, approval_chat, approvals): (Option<i64>, Option<i64>, Option<String>) =
        redis::cmd("HMGET")
            .arg(state_key(session))
            .arg("chat")
            .arg("approval_chat")
            .arg("approvals")
            .query_async(conn)
            .await?;
    let Some(chat) = chat else {
        return Ok(None);
    };
    // Approval requests of a session in a group go to the owner's private
    // chat.
    let chat = approval_chat.filter(|c| *c != 0).unwrap_or(chat);
    let approvals = match approvals {
        None => Vec::new(),
        Some(json) => serde_json::from_str(&json).map_err(|e| {
            redis::RedisError::from((
                redis::ErrorKind::Parse,
                "unreadable approval state",
                e.to_string(),
            ))
        })?,
    };
    Ok(Some((chat, approvals)))
}

/// Ids of the unfinished sessions, shard by shard (one `SMEMBERS` per
/// shard: each shard's set lives in its own slot).
pub(super) async fn active<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
) -> redis::RedisResult<Vec<String>> {
    let mut all = Vec::new();
    for shard in 0..keys::SHARDS {
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::active_key(shard))
            .query_async(conn)
            .await?;
        all.extend(ids);
    }
    Ok(all)
}

/// Moves the sessions a release before the shards left unfinished (in
/// `ra:fwd:active`, standalone Redis only) into their shards, keys and
/// all, so an upgrade loses no running session. Returns how many moved.
/// Run by every forwarder at start; two replicas doing it at once move
/// each session once (`SREM` decides who does).
pub(super) async fn migrate_legacy<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
) -> redis::RedisResult<usize> {
    let ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys::LEGACY_ACTIVE_KEY)
        .query_async(conn)
        .await?;
    let mut moved = 0;
    for id in ids {
        let removed: i64 = redis::cmd("SREM")
            .arg(keys::LEGACY_ACTIVE_KEY)
            .arg(&id)
            .query_async(conn)
            .await?;
        let Ok(session) = SessionId::parse(id) else {
            continue;
        };
        if removed == 0 {
            continue;
        }
        for (old, new) in [
            (keys::legacy::state_key(&session), state_key(&session)),
            (keys::legacy::lock_key(&session), lock_key(&session)),
            (keys::legacy::done_key(&session), done_key(&session)),
        ] {
            // A key that is not there (no lock: nobody owns it now) is fine.
            let _: redis::RedisResult<()> = redis::cmd("RENAME")
                .arg(&old)
                .arg(&new)
                .query_async(conn)
                .await;
        }
        let _: i64 = redis::cmd("SADD")
            .arg(active_key_of(&session))
            .arg(session.as_str())
            .query_async(conn)
            .await?;
        moved += 1;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use remoteagent_proto::checkpoints::{ChangedFile, FileStatus};

    #[test]
    fn the_changes_and_the_card_survive_a_takeover() {
        let mut more = Progress::default();
        let map: HashMap<String, String> = more
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(Progress::from_map(&map).unwrap(), more);
        more.changes = Some(ChangesPayload {
            files: vec![ChangedFile {
                path: "<b>.rs".into(),
                status: FileStatus::Added,
                added: 3,
                removed: 0,
                binary: false,
            }],
            files_total: 4,
            added: 9,
            removed: 1,
            worktree_branch: Some("ra/x/1".into()),
        });
        more.card_sent = true;
        let map: HashMap<String, String> = more
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(Progress::from_map(&map).unwrap(), more);
        // State written by an older replica has neither.
        let old: HashMap<String, String> = map
            .into_iter()
            .filter(|(k, _)| k != "changes" && k != "card_sent")
            .collect();
        let loaded = Progress::from_map(&old).unwrap();
        assert_eq!((loaded.changes, loaded.card_sent), (None, false));
    }
}
