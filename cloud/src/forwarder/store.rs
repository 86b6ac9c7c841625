//! The forwarder's state in Redis, shared by all replicas.
//!
//! * `ra:fwd:{sessionId}`: hash of a session's progress (agent, chat, current
//!   message and its text, last delivered stream id).
//! * `ra:fwd:active`: set of unfinished session ids.
//! * `ra:fwd:lock:{sessionId}`: the owning replica's token, with a TTL the
//!   owner keeps refreshing; a resumer takes over a session whose lock is gone.
//!
//! Every write goes through a Lua script that first checks the lock, so a
//! replica that lost a session can never overwrite its new owner's progress.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use remoteagent_proto::{AgentId, SessionId};

/// Unfinished sessions.
pub(super) const ACTIVE_KEY: &str = "ra:fwd:active";

/// A session's state expires if nobody touches it for this long (a session
/// whose daemon never answers must not linger forever).
const STATE_TTL_SECS: u64 = 2 * 24 * 3600;

pub(super) fn state_key(session: &SessionId) -> String {
    format!("ra:fwd:{session}")
}

pub(super) fn lock_key(session: &SessionId) -> String {
    format!("ra:fwd:lock:{session}")
}

/// A session's progress as stored.
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
/// it) and, with fields, stores them. Returns 0 if the session is finished or
/// owned by someone else.
static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('exists', KEYS[2]) == 0 then return 0 end
local owner = redis.call('get', KEYS[1])
if owner == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2])
elseif owner then
  return 0
else
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
if #ARGV > 3 then redis.call('hset', KEYS[2], unpack(ARGV, 4)) end
redis.call('expire', KEYS[2], ARGV[3])
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

static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('del', KEYS[2])
redis.call('srem', KEYS[3], ARGV[2])
redis.call('del', KEYS[1])
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
        .key(ACTIVE_KEY)
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

/// Stores progress (or, with `state = None`, only refreshes the lock).
/// False means this replica no longer owns the session.
pub(super) async fn save<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    session: &SessionId,
    state: Option<&SavedState>,
    token: &str,
    ttl: Duration,
) -> redis::RedisResult<bool> {
    let mut inv = SAVE.prepare_invoke();
    inv.key(lock_key(session))
        .key(state_key(session))
        .arg(token)
        .arg(ms(ttl))
        .arg(STATE_TTL_SECS);
    if let Some(state) = state {
        for (k, v) in state.fields() {
            inv.arg(k).arg(v);
        }
    }
    let saved: i64 = inv.invoke_async(conn).await?;
    Ok(saved == 1)
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
        .key(ACTIVE_KEY)
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
        .key(ACTIVE_KEY)
        .arg(token)
        .arg(session.as_str())
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

/// Ids of the unfinished sessions.
pub(super) async fn active<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
) -> redis::RedisResult<Vec<String>> {
    redis::cmd("SMEMBERS")
        .arg(ACTIVE_KEY)
        .query_async(conn)
        .await
}
