//! The per-agent task. INTERFACE CONTRACT between the execution side and the
//! supervisor (filled in by the execution side; signatures are fixed).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use remoteagent_proto::keys::CloudPublicKey;
use remoteagent_proto::runner::RunnerSpec;
use remoteagent_proto::{AgentId, SessionId};
use tokio::sync::mpsc;

/// Everything needed to run one paired agent.
pub struct AgentSpec {
    pub id: AgentId,
    pub name: String,
    /// The project folder the runner is spawned in.
    pub path: PathBuf,
    pub runner: RunnerSpec,
    /// `redis://host:port` without credentials.
    pub redis_url: String,
    /// The agent's Redis ACL user (empty: no ACL, default user).
    pub redis_username: String,
    /// The agent JWT, also the Redis password. Never logged.
    pub jwt: String,
    /// The cloud key pinned at pairing; every envelope is verified with it.
    pub cloud_public_key: CloudPublicKey,
}

impl std::fmt::Debug for AgentSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSpec")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("path", &self.path)
            .field("runner", &self.runner)
            .field("redis_url", &self.redis_url)
            .field("redis_username", &self.redis_username)
            .field("jwt", &"hidden")
            .finish_non_exhaustive()
    }
}

/// Daemon-wide settings shared by all agents (from the config file).
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Root of the session logs: `{log_root}/{agentId}/{sessionId}.log`.
    pub log_root: PathBuf,
    /// Time between SIGTERM and SIGKILL when aborting a runner.
    pub abort_grace: Duration,
    /// Largest prompt accepted (bytes).
    pub max_prompt_bytes: usize,
}

/// What an agent task tells the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentNotice {
    /// A verified `unpaired` envelope arrived: the supervisor forgets the agent
    /// (metadata, keyring entry) and drops its handle.
    Unpaired(AgentId),
}

/// Handle to a running agent task, owned by the supervisor.
pub struct AgentHandle {
    _private: Arc<()>,
}

impl AgentHandle {
    /// Starts the agent's task: connect to Redis as the agent's ACL user,
    /// subscribe to `agent:{id}`, heartbeat `presence:{id}`, run sessions.
    /// Returns at once; connection problems are retried in the background.
    pub fn spawn(
        _spec: AgentSpec,
        _settings: Arc<AgentSettings>,
        _notices: mpsc::Sender<AgentNotice>,
    ) -> AgentHandle {
        todo!("execution side")
    }

    pub fn id(&self) -> &AgentId {
        todo!("execution side")
    }

    /// Subscribed to its channel right now.
    pub fn online(&self) -> bool {
        todo!("execution side")
    }

    pub fn running_session(&self) -> Option<SessionId> {
        todo!("execution side")
    }

    /// Aborts the running session (as `remoteagentctl stop` asks); `None`
    /// when nothing was running. Returns once `done {aborted}` is published.
    pub async fn abort_running(&self) -> Option<SessionId> {
        todo!("execution side")
    }

    /// Stops the task: abort the running session (its `done` is published),
    /// delete the presence key, close the connection.
    pub async fn shutdown(self) {
        todo!("execution side")
    }
}
