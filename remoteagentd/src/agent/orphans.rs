//! Sessions an earlier daemon process started but never finished.
//!
//! A daemon killed mid-session (SIGKILL, a crash, power loss) never writes
//! the session's `done`: the cloud's forwarder would follow the stream for
//! days and the phone would show a Stop button that stops nothing. When an
//! agent starts, its recent session logs that have a start record but no
//! end record are such orphans. Each gets `done {error}` in its stream,
//! unless the stream is gone or already ended (by the cloud, which ends
//! the sessions of agents offline for long, or by a write whose local
//! record was lost), and then the end record in its local log, so that it
//! is finished exactly once however often the daemon restarts.
//!
//! The runner of such a session may still run: on Linux it dies with the
//! daemon (PDEATHSIG), but what it started lives on in its process group,
//! and elsewhere the runner itself does. Before the agent even connects,
//! [`end_leftover_runners`] ends the process group recorded in each
//! orphan's log, if it is certainly still that runner's (see
//! [`crate::runner::process`]), so no new session runs beside it.
//!
//! Only logs last written before this process's first sweep are looked at:
//! a session this process runs (say, of an agent restarted for a token
//! renewal while its old task still ends a session) is never taken for an
//! orphan.

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use redis::aio::ConnectionLike;
use redis::streams::StreamRangeReply;
use remoteagent_proto::backoff::Backoff;
use remoteagent_proto::events::{DonePayload, DoneStatus, OutputEvent};
use remoteagent_proto::{AgentId, SessionId, names, stream};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::redis_conn::SharedConn;
use crate::session_log::{self, LogEnd, SessionLog};
use crate::util::time::sleep_unless_cancelled;

/// How far back orphans are looked for: the forwarder's saved state lives
/// two days, after which nobody follows the stream any more.
pub(crate) const WINDOW: Duration = Duration::from_secs(2 * 24 * 3600);
/// Longest wait for one Redis call; the sweep never holds anything up.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per orphan while Redis fails (1 s, then 2 s apart); a session
/// still unfinished is tried again at the next start.
const RETRY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(2))
    .attempts(3)
    .without_jitter();

/// When the first sweep of this process ran. No session of this process
/// started earlier: every agent sweeps before it takes its first command.
static FIRST_SWEEP: OnceLock<SystemTime> = OnceLock::new();

/// The agent's orphaned sessions, found now (before the agent can start a
/// session of its own).
pub(super) fn find_now(agent: &AgentId, log_root: &Path) -> Vec<SessionId> {
    let before = *FIRST_SWEEP.get_or_init(SystemTime::now);
    find(log_root, agent, before, SystemTime::now())
}

/// Ends what is left of the orphans' runners (SIGTERM, SIGKILL after
/// `grace`), and waits for that.
pub(super) async fn end_leftover_runners(
    agent: &AgentId,
    log_root: &Path,
    orphans: &[SessionId],
    grace: Duration,
) {
    let mut records = Vec::new();
    for session in orphans {
        let path = session_log::session_log_path(log_root, agent, session);
        match session_log::runner_record(&path) {
            Ok(Some(record)) => records.push((session.clone(), record)),
            // The runner never started (or this log is older than records).
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(session = %session, error = %e, "cannot read the runner record of an unfinished session")
            }
        }
    }
    if !records.is_empty() {
        crate::runner::process::end_leftover_groups(&records, grace).await;
    }
}

/// Finishes the `orphans` ([`find_now`]) in the background;
/// `stop` (the agent stopping) ends the waits between attempts.
pub(super) fn sweep(
    orphans: Vec<SessionId>,
    agent: &AgentId,
    log_root: &Path,
    conn: SharedConn,
    stop: CancellationToken,
) {
    if orphans.is_empty() {
        return;
    }
    tracing::info!(
        count = orphans.len(),
        "finishing sessions an earlier daemon left unfinished"
    );
    let agent = agent.clone();
    let log_root = log_root.to_path_buf();
    tokio::spawn(
        async move {
            let message = format!(
                "the daemon stopped before this run finished (restarted at {})",
                crate::util::time::rfc3339_now()
            );
            let mut conn = conn;
            for session in orphans {
                let span = tracing::info_span!("orphan", session = %session);
                finish_with_retries(&mut conn, &log_root, &agent, &session, &message, &stop)
                    .instrument(span)
                    .await;
            }
        }
        .instrument(tracing::Span::current()),
    );
}

/// The agent's sessions whose log was last written in the [`WINDOW`] before
/// `now`, and before `before`, and has no end record; oldest first.
pub(crate) fn find(
    log_root: &Path,
    agent: &AgentId,
    before: SystemTime,
    now: SystemTime,
) -> Vec<SessionId> {
    let sessions = match session_log::list_sessions(log_root, agent) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the session logs to look for unfinished sessions");
            return Vec::new();
        }
    };
    let oldest = now.checked_sub(WINDOW).unwrap_or(SystemTime::UNIX_EPOCH);
    sessions
        .into_iter()
        .filter(|(_, modified)| *modified >= oldest && *modified < before)
        .filter(|(session, _)| {
            let path = session_log::session_log_path(log_root, agent, session);
            match session_log::log_end(&path) {
                Ok(LogEnd::Unfinished) => true,
                Ok(LogEnd::Finished | LogEnd::Unknown) => false,
                Err(e) => {
                    tracing::warn!(session = %session, error = %e, "cannot read a session log");
                    false
                }
            }
        })
        .map(|(session, _)| session)
        .collect()
}

/// How an orphan's stream was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Finished {
    /// Our `done` was added.
    Ended(DonePayload),
    /// The stream had its `done` already; this one is recorded locally.
    AlreadyEnded(DonePayload),
    /// No such stream (expired, or never written): only the log is ended.
    NoStream(DonePayload),
}

impl Finished {
    fn done(&self) -> &DonePayload {
        match self {
            Finished::Ended(d) | Finished::AlreadyEnded(d) | Finished::NoStream(d) => d,
        }
    }
}

/// Ends one orphan, retrying with [`RETRY`] while Redis fails; never
/// waits after the last attempt, nor once `stop` fired.
async fn finish_with_retries(
    conn: &mut SharedConn,
    log_root: &Path,
    agent: &AgentId,
    session: &SessionId,
    message: &str,
    stop: &CancellationToken,
) {
    let mut backoff = RETRY;
    loop {
        let e = match finish(conn, log_root, agent, session, message).await {
            Ok(finished) => {
                tracing::info!(outcome = ?finished, "unfinished session ended");
                return;
            }
            Err(e) => e,
        };
        let Some(delay) = backoff.next_delay() else {
            tracing::warn!(error = %e, "could not end an unfinished session; trying again at the next start");
            return;
        };
        tracing::warn!(error = %e, attempt = backoff.failures(), "ending an unfinished session; retrying");
        if !sleep_unless_cancelled(delay, stop).await {
            tracing::info!("the agent is stopping; the unfinished run is ended at the next start");
            return;
        }
    }
}

/// Ends one orphan: its stream (see [`end_stream`]), then its local log.
pub(crate) async fn finish<C: ConnectionLike + Send>(
    conn: &mut C,
    log_root: &Path,
    agent: &AgentId,
    session: &SessionId,
    message: &str,
) -> redis::RedisResult<Finished> {
    let finished = end_stream(conn, &names::output_stream(agent, session), message).await?;
    match SessionLog::reopen(log_root, agent, session) {
        Ok(mut log) => log.done(finished.done()),
        Err(e) => tracing::warn!(error = %e, "cannot record the end in the session log"),
    }
    Ok(finished)
}

/// Adds `done {error, message}` to the stream `key` unless it is gone or
/// ended already. `XADD *` puts the entry after whatever the dead daemon
/// wrote last (its ids were its own, close to the current time).
pub(crate) async fn end_stream<C: ConnectionLike + Send>(
    conn: &mut C,
    key: &str,
    message: &str,
) -> redis::RedisResult<Finished> {
    let mut done = DonePayload {
        status: DoneStatus::Error,
        exit_code: None,
        duration_ms: 0,
        message: Some(message.to_string()),
        chunks: 0,
        withheld_bytes: 0,
        stopped_by: None,
        turns: None,
        cost_usd: None,
    };
    let mut last = redis::cmd("XREVRANGE");
    last.arg(key).arg("+").arg("-").arg("COUNT").arg(1);
    match timed(last.query_async::<StreamRangeReply>(conn)).await {
        Ok(reply) => {
            let Some(entry) = reply.ids.first() else {
                return Ok(Finished::NoStream(done));
            };
            // An entry that holds no event tells nothing: a `done` is due.
            let event = stream::parse(entry.get::<String>(stream::FIELD).as_deref()).ok();
            match event {
                Some(OutputEvent::Done(theirs)) => return Ok(Finished::AlreadyEnded(theirs)),
                // The forwarder compares `chunks` with what it read to
                // report lost output; the last chunk tells how many the
                // dead daemon wrote.
                Some(OutputEvent::Chunk(c)) => done.chunks = c.seq + 1,
                _ => {}
            }
        }
        // An ACL user created before agents could read their streams:
        // fall back to EXISTS. A log without its end record means the
        // daemon died before writing `done`, so the stream has none.
        Err(e) if e.code() == Some("NOPERM") => {
            tracing::info!(
                "this agent's Redis user may not read its streams yet; checking that the stream exists"
            );
            let mut exists = redis::cmd("EXISTS");
            exists.arg(key);
            if timed(exists.query_async::<i64>(conn)).await? == 0 {
                return Ok(Finished::NoStream(done));
            }
        }
        Err(e) => return Err(e),
    }
    let commands = stream::done_commands(key, &done).map_err(|e| {
        redis::RedisError::from((
            redis::ErrorKind::Client,
            "encoding the done event",
            e.to_string(),
        ))
    })?;
    let mut pipe = redis::pipe();
    for cmd in commands {
        pipe.cmd(&cmd[0]).arg(&cmd[1..]).ignore();
    }
    timed(pipe.query_async::<()>(conn)).await?;
    Ok(Finished::Ended(done))
}

/// `call`, failing after [`CALL_TIMEOUT`].
async fn timed<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> redis::RedisResult<T> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "Redis did not answer in time",
            )))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::IntoConnectionInfo;
    use remoteagent_proto::events::{ChunkPayload, StreamKind};
    use remoteagent_testkit::RedisServer;

    const HOUR: Duration = Duration::from_secs(3600);

    fn set_modified(path: &Path, when: SystemTime) {
        std::fs::File::options()
            .append(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    fn ok_done() -> DonePayload {
        DonePayload {
            status: DoneStatus::Ok,
            exit_code: Some(0),
            duration_ms: 1,
            message: None,
            chunks: 0,
            withheld_bytes: 0,
            stopped_by: None,
            turns: None,
            cost_usd: None,
        }
    }

    #[test]
    fn only_recent_unfinished_logs_of_earlier_processes_are_orphans() {
        let root = tempfile::tempdir().unwrap();
        let agent = AgentId::generate();
        let now = SystemTime::now();
        let path = |s: &SessionId| session_log::session_log_path(root.path(), &agent, s);
        let new_log = |age: Duration| {
            let s = SessionId::generate();
            drop(SessionLog::create(root.path(), &agent, &s, "sh", "p"));
            set_modified(&path(&s), now - age);
            s
        };
        let orphan = new_log(HOUR);
        let finished = new_log(HOUR);
        SessionLog::reopen(root.path(), &agent, &finished)
            .unwrap()
            .done(&ok_done());
        set_modified(&path(&finished), now - HOUR);
        let _too_old = new_log(WINDOW + HOUR);
        // Written after the sweep began: a session of this process.
        let ours = SessionId::generate();
        drop(SessionLog::create(root.path(), &agent, &ours, "sh", "p"));
        set_modified(&path(&ours), now + Duration::from_secs(1));

        assert_eq!(find(root.path(), &agent, now, now), vec![orphan]);
        // An agent without logs has no orphans.
        assert!(find(root.path(), &AgentId::generate(), now, now).is_empty());
    }

    /// A connection as the agent's ACL user with `rules`.
    async fn agent_conn(
        server: &RedisServer,
        agent: &AgentId,
        rules: Vec<String>,
    ) -> redis::aio::MultiplexedConnection {
        let mut admin = redis::Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let user = names::agent_redis_user(agent);
        let mut setuser = redis::cmd("ACL");
        setuser.arg("SETUSER").arg(&user).arg("reset");
        for rule in rules {
            setuser.arg(rule);
        }
        setuser.arg(">secret");
        setuser.query_async::<()>(&mut admin).await.unwrap();
        let info = server.url().as_str().into_connection_info().unwrap();
        let settings = info
            .redis_settings()
            .clone()
            .set_username(&user)
            .set_password("secret");
        redis::Client::open(info.set_redis_settings(settings))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    async fn events(server: &RedisServer, key: &str) -> Vec<OutputEvent> {
        let mut admin = redis::Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .query_async(&mut admin)
            .await
            .unwrap();
        reply
            .ids
            .iter()
            .map(|e| serde_json::from_str(&e.get::<String>(names::STREAM_FIELD).unwrap()).unwrap())
            .collect()
    }

    async fn write(conn: &mut impl ConnectionLike, key: &str, event: &OutputEvent) {
        redis::cmd("XADD")
            .arg(key)
            .arg("*")
            .arg(names::STREAM_FIELD)
            .arg(serde_json::to_string(event).unwrap())
            .query_async::<String>(conn)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_orphan_is_ended_once_as_the_agents_acl_user() {
        let server = RedisServer::start().unwrap();
        let root = tempfile::tempdir().unwrap();
        let agent = AgentId::generate();
        let mut conn = agent_conn(&server, &agent, names::agent_acl_rules(&agent)).await;
        let log_text = |s: &SessionId| {
            std::fs::read_to_string(session_log::session_log_path(root.path(), &agent, s)).unwrap()
        };

        // A stream that stopped after a chunk gets our done, once.
        let session = SessionId::generate();
        drop(SessionLog::create(root.path(), &agent, &session, "sh", "p"));
        let key = names::output_stream(&agent, &session);
        let chunk = OutputEvent::Chunk(ChunkPayload {
            seq: 4,
            stream: StreamKind::Stdout,
            text: "half".into(),
        });
        write(&mut conn, &key, &chunk).await;
        let first = finish(&mut conn, root.path(), &agent, &session, "gone")
            .await
            .unwrap();
        let Finished::Ended(done) = &first else {
            panic!("{first:?}")
        };
        assert_eq!(done.status, DoneStatus::Error);
        assert_eq!(done.message.as_deref(), Some("gone"));
        assert_eq!(done.chunks, 5);
        assert_eq!(
            events(&server, &key).await,
            vec![chunk.clone(), OutputEvent::Done(done.clone())]
        );
        assert!(log_text(&session).ends_with("\n# done error exit - in 0 ms: gone\n"));
        let path = session_log::session_log_path(root.path(), &agent, &session);
        assert_eq!(session_log::log_end(&path).unwrap(), LogEnd::Finished);
        let again = finish(&mut conn, root.path(), &agent, &session, "gone")
            .await
            .unwrap();
        assert_eq!(again, Finished::AlreadyEnded(done.clone()));
        assert_eq!(events(&server, &key).await.len(), 2);

        // A stream that ended (the cloud ended it): recorded locally only.
        let ended = SessionId::generate();
        drop(SessionLog::create(root.path(), &agent, &ended, "sh", "p"));
        let ended_key = names::output_stream(&agent, &ended);
        write(&mut conn, &ended_key, &OutputEvent::Done(ok_done())).await;
        assert_eq!(
            finish(&mut conn, root.path(), &agent, &ended, "gone")
                .await
                .unwrap(),
            Finished::AlreadyEnded(ok_done())
        );
        assert!(log_text(&ended).ends_with("\n# done ok exit 0 in 1 ms\n"));
        assert_eq!(events(&server, &ended_key).await.len(), 1);

        // No stream: nothing is created in Redis.
        let lost = SessionId::generate();
        drop(SessionLog::create(root.path(), &agent, &lost, "sh", "p"));
        let outcome = finish(&mut conn, root.path(), &agent, &lost, "gone")
            .await
            .unwrap();
        assert!(matches!(outcome, Finished::NoStream(_)), "{outcome:?}");
        assert!(
            events(&server, &names::output_stream(&agent, &lost))
                .await
                .is_empty()
        );
        assert!(log_text(&lost).ends_with(": gone\n"));
    }

    #[tokio::test]
    async fn a_user_from_before_xrevrange_was_granted_still_ends_orphans() {
        let server = RedisServer::start().unwrap();
        let agent = AgentId::generate();
        let rules = names::agent_acl_rules(&agent)
            .into_iter()
            .filter(|r| r != "+xrevrange")
            .collect();
        let mut conn = agent_conn(&server, &agent, rules).await;
        let key = names::output_stream(&agent, &SessionId::generate());
        let missing = end_stream(&mut conn, &key, "gone").await.unwrap();
        assert!(matches!(missing, Finished::NoStream(_)), "{missing:?}");
        write(&mut conn, &key, &OutputEvent::Done(ok_done())).await;
        let _ = end_stream(&mut conn, &key, "gone").await.unwrap();
        // Without reading, a second done cannot be avoided here; the local
        // log's end record is what keeps it from happening twice.
        assert_eq!(events(&server, &key).await.len(), 2);
        // Another agent's stream stays out of reach.
        let other = names::output_stream(&AgentId::generate(), &SessionId::generate());
        assert!(end_stream(&mut conn, &other, "gone").await.is_err());
    }
}
