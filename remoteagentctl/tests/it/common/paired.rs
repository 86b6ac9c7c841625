//! A project paired through the CLI with a script runner, its daemon
//! running and the agent online, and the Redis side of its sessions: where
//! every test that sends the agent commands (sessions, hostile input)
//! starts.

use std::path::PathBuf;
use std::sync::Arc;

use remoteagent_proto::events::{CommandEvent, CommandPayload, DoneStatus, OutputEvent};
use remoteagent_proto::{AgentId, SessionId, envelope, names};
use remoteagent_testkit::{RedisServer, wait_for};

use super::{Daemon, FakeCloud, Home, PATIENCE, blocking, pair_project_with_ttl};

pub struct Paired {
    pub home: Arc<Home>,
    pub cloud: FakeCloud,
    pub redis: RedisServer,
    pub daemon: Daemon,
    pub agent: AgentId,
    /// The project folder; its runner is `sh run.sh PROMPT`.
    pub project: PathBuf,
}

impl Paired {
    /// Pairs project `web` as `name` with `script` as its `run.sh` and a
    /// token valid for `ttl_secs`, with `prepare` run on the home before
    /// the daemon starts; waits until the agent is online.
    pub async fn start(
        name: &str,
        script: &str,
        ttl_secs: u64,
        prepare: impl FnOnce(&Home),
    ) -> Paired {
        let redis = RedisServer::start().unwrap();
        let cloud = FakeCloud::start(redis.url()).await;
        let home = Arc::new(Home::with_file_store(&cloud.url));
        prepare(&home);
        let h = home.clone();
        let daemon = blocking(move || h.start_daemon()).await;
        let project = home.project("web");
        let run = project.join("run.sh");
        std::fs::write(&run, script).unwrap();
        let command = format!("/bin/sh {}", run.display());
        let (agent, _) = pair_project_with_ttl(
            &home,
            &cloud,
            &project,
            name,
            &["--command", &command],
            ttl_secs,
        )
        .await;
        let s = Paired {
            home,
            cloud,
            redis,
            daemon,
            agent,
            project,
        };
        s.wait_online().await;
        s
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        remoteagent_testkit::redis_conn(&self.redis.url()).await
    }

    pub async fn wait_online(&self) {
        self.home.wait_online(|| self.daemon.log_text()).await;
    }

    /// A command envelope for `session` signed by the cloud key, valid for
    /// `lifetime_secs`.
    pub fn sign(&self, session: &SessionId, prompt: &str, lifetime_secs: u64) -> String {
        envelope::sign(
            &self.cloud.state.key,
            &self.agent,
            CommandEvent::Command(CommandPayload {
                session_id: session.clone(),
                prompt: prompt.into(),
                r#continue: false,
                attachments: Vec::new(),
                mode: None,
                resume: None,
            }),
            lifetime_secs,
        )
        .unwrap()
    }

    /// Publishes `env` on the agent's channel; it must be listening.
    pub async fn publish(&self, env: &str) {
        let mut conn = self.conn().await;
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg(names::agent_channel(&self.agent))
            .arg(env)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(receivers, 1, "the agent is not subscribed");
    }

    /// Every event of a session's output stream so far.
    pub async fn events(&self, session: &SessionId) -> Vec<OutputEvent> {
        let mut conn = self.conn().await;
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(names::output_stream(&self.agent, session))
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        entries
            .ids
            .iter()
            .filter_map(|e| e.get::<String>(names::STREAM_FIELD))
            .map(|s| serde_json::from_str(&s).unwrap())
            .collect()
    }

    /// The session's events once its `done` is among them, and its status.
    pub async fn wait_done(&self, session: &SessionId) -> (Vec<OutputEvent>, DoneStatus) {
        let found = wait_for(PATIENCE, || async {
            let events = self.events(session).await;
            let status = events.iter().find_map(|e| match e {
                OutputEvent::Done(d) => Some(d.status),
                _ => None,
            })?;
            Some((events, status))
        })
        .await;
        found.unwrap_or_else(|| panic!("no done event:\n{}", self.daemon.log_text()))
    }

    /// The status of the session's `done`, once there.
    pub async fn wait_status(&self, session: &SessionId) -> DoneStatus {
        self.wait_done(session).await.1
    }
}
