//! Support for the execution tests: a private Redis, an agent spawned
//! in-process with a script runner, a test cloud key that signs envelopes,
//! and readers of the output stream.

#![allow(dead_code)]

pub mod daemon;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use remoteagent_proto::envelope;
use remoteagent_proto::events::{
    AbortPayload, CommandEvent, CommandPayload, DonePayload, OutputEvent,
};
use remoteagent_proto::keys::CloudSigningKey;
use remoteagent_proto::runner::RunnerSpec;
use remoteagent_proto::{AgentId, SessionId, names};
use remoteagent_testkit::{RedisServer, wait_for};
use remoteagentd::agent::{AgentHandle, AgentNotice, AgentSettings, AgentSpec};
use remoteagentd::seen_envelopes::SeenEnvelopes;
use tokio::sync::mpsc;

pub const WAIT: Duration = Duration::from_secs(30);

pub fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

pub struct Setup {
    pub redis: RedisServer,
    pub key: CloudSigningKey,
    pub agent: AgentId,
    pub project: tempfile::TempDir,
    pub logs: tempfile::TempDir,
    pub admin: redis::aio::MultiplexedConnection,
    pub notices: mpsc::Receiver<AgentNotice>,
    pub notices_tx: mpsc::Sender<AgentNotice>,
    pub settings: Arc<AgentSettings>,
}

impl Setup {
    pub async fn new() -> Setup {
        let redis = RedisServer::start().unwrap();
        let admin = redis::Client::open(redis.url())
            .unwrap()
            .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
            .await
            .unwrap();
        let (notices_tx, notices) = mpsc::channel(8);
        let logs = tempfile::tempdir().unwrap();
        Setup {
            key: CloudSigningKey::generate(),
            agent: AgentId::generate(),
            project: tempfile::tempdir().unwrap(),
            settings: agent_settings(logs.path()),
            logs,
            redis,
            admin,
            notices,
            notices_tx,
        }
    }

    pub fn spec(&self, runner: Vec<String>) -> AgentSpec {
        AgentSpec {
            id: self.agent.clone(),
            name: "proj".into(),
            path: self.project.path().to_path_buf(),
            runner: RunnerSpec::Command(runner),
            redis_url: self.redis.url(),
            redis_username: String::new(),
            jwt: "not-used-without-acl".to_string().into(),
            cloud_public_key: self.key.public_key(),
            conversation: None,
        }
    }

    /// Spawns the agent and waits until it is subscribed.
    pub async fn spawn(&self, spec: AgentSpec) -> AgentHandle {
        let handle = AgentHandle::spawn(spec, self.settings.clone(), self.notices_tx.clone());
        let online = wait_for(WAIT, || {
            let ok = handle.online();
            async move { ok.then_some(()) }
        })
        .await;
        assert!(online.is_some(), "agent never came online");
        handle
    }

    pub fn sign(&self, event: CommandEvent) -> String {
        envelope::sign(&self.key, &self.agent, event, 30).unwrap()
    }

    pub fn command(&self, session: &SessionId, prompt: &str) -> CommandEvent {
        CommandEvent::Command(CommandPayload {
            session_id: session.clone(),
            prompt: prompt.into(),
            r#continue: false,
            attachments: Vec::new(),
            mode: None,
            resume: None,
        })
    }

    pub fn abort(&self, session: &SessionId) -> CommandEvent {
        CommandEvent::Abort(AbortPayload {
            session_id: session.clone(),
        })
    }

    /// PUBLISHes a raw message on the agent's channel; returns receivers.
    pub async fn publish_raw(&self, message: &str) -> i64 {
        let mut admin = self.admin.clone();
        admin
            .publish(names::agent_channel(&self.agent), message)
            .await
            .unwrap()
    }

    pub async fn send(&self, event: CommandEvent) {
        let token = self.sign(event);
        assert_eq!(
            self.publish_raw(&token).await,
            1,
            "the agent is not subscribed"
        );
    }

    pub fn stream_key(&self, session: &SessionId) -> String {
        names::output_stream(&self.agent, session)
    }

    /// Every event of the session's stream so far.
    pub async fn events(&self, session: &SessionId) -> Vec<OutputEvent> {
        read_events(&self.admin, &self.stream_key(session)).await
    }

    /// Waits for the session's `done`; returns all its events.
    pub async fn wait_done(&self, session: &SessionId) -> Vec<OutputEvent> {
        let found = wait_for(WAIT, || async {
            let events = self.events(session).await;
            matches!(events.last(), Some(OutputEvent::Done(_))).then_some(events)
        })
        .await;
        match found {
            Some(e) => e,
            None => panic!(
                "session {session} never finished; events: {:?}",
                self.events(session).await
            ),
        }
    }

    pub fn log_path(&self, session: &SessionId) -> PathBuf {
        remoteagentd::session_log::session_log_path(self.logs.path(), &self.agent, session)
    }
}

/// The settings of an in-process agent whose logs (and inbox, envelope
/// record, …) live under `logs`.
pub fn agent_settings(logs: &Path) -> Arc<AgentSettings> {
    Arc::new(AgentSettings {
        log_root: logs.to_path_buf(),
        abort_grace: Duration::from_millis(500),
        max_prompt_bytes: 4096,
        // In-process agents have no daemon executable for Claude's
        // approval hook; tests/approval.rs runs the real daemon.
        approval: Default::default(),
        seen: Arc::new(SeenEnvelopes::new(logs.join("envelopes"))),
        stream_budget: remoteagentd::output::DEFAULT_STREAM_BUDGET,
        log_limits: Default::default(),
        log_events: Default::default(),
        outbox_hint: true,
        inbox: remoteagentd::inbox::InboxSettings {
            root: logs.join("inbox"),
            limits: Default::default(),
        },
        conversations: remoteagentd::conversations::History::new(logs.join("conversations")),
        worktrees: remoteagentd::worktrees::WorktreeSettings {
            root: logs.join("worktrees"),
            ..Default::default()
        },
    })
}

pub async fn read_events(conn: &redis::aio::MultiplexedConnection, key: &str) -> Vec<OutputEvent> {
    let mut conn = conn.clone();
    let entries: redis::streams::StreamRangeReply = conn.xrange_all(key).await.unwrap_or_default();
    entries
        .ids
        .iter()
        .map(|e| {
            let json: String = e.get(names::STREAM_FIELD).expect("event field");
            serde_json::from_str(&json).expect("valid event")
        })
        .collect()
}

pub fn done_of(events: &[OutputEvent]) -> DonePayload {
    match events.last() {
        Some(OutputEvent::Done(d)) => d.clone(),
        other => panic!("last event is not done: {other:?}"),
    }
}

/// The chunks' text concatenated, after checking `seq` runs 0, 1, 2, …
pub fn chunk_text(events: &[OutputEvent]) -> String {
    let mut text = String::new();
    let mut next = 0;
    for e in events {
        if let OutputEvent::Chunk(c) = e {
            assert_eq!(c.seq, next, "chunk sequence broken");
            next += 1;
            text.push_str(&c.text);
        }
    }
    text
}
