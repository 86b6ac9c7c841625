//! What an agent task is given and what it tells back: the plain data the
//! supervisor, the actor and its sessions share. A leaf of `agent/`, so the
//! session and the link can use these types without importing the actor.

use secrecy::SecretString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use remoteagent_proto::AgentId;
use remoteagent_proto::keys::CloudPublicKey;
use remoteagent_proto::runner::RunnerSpec;

use crate::approval;
use crate::seen_envelopes::SeenEnvelopes;

/// Everything needed to run one paired agent. `Debug` shows no secret: the
/// JWT is a `SecretString`.
#[derive(Debug)]
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
    pub jwt: SecretString,
    /// The cloud key pinned at pairing; every envelope is verified with it.
    pub cloud_public_key: CloudPublicKey,
    /// The last conversation id the runner reported (Claude's session id,
    /// Codex's thread id); a command that continues resumes it.
    pub conversation: Option<String>,
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
    /// Tool approval: the policies, and how Claude's hook reaches us.
    pub approval: approval::ApprovalSettings,
    /// The envelopes already acted on, per agent, kept on disk.
    pub seen: Arc<SeenEnvelopes>,
    /// Bytes of output per session written to its stream (`[output]`).
    pub stream_budget: u64,
    /// What the local session logs may hold (`[logs]`).
    pub log_limits: crate::session_log::LogLimits,
    /// Every session log's start, writes and close, for `logs -f`.
    pub log_events: crate::session_log::LogEvents,
    /// Tell preset runners about `.remoteagent/outbox/` (`[outbox] hint`).
    pub outbox_hint: bool,
    /// Where files sent with a prompt are saved, and how many a prompt may
    /// bring (`[attachments]`).
    pub inbox: crate::inbox::InboxSettings,
    /// Each agent's recent sessions (conversations), kept after each run.
    pub conversations: crate::conversations::History,
    /// Which projects run a prompt that comes while busy in a git
    /// worktree, and where those live (`[[project]] worktrees`).
    pub worktrees: crate::worktrees::WorktreeSettings,
}

/// What an agent task tells the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentNotice {
    /// A verified `unpaired` envelope arrived: the supervisor forgets the agent
    /// (metadata, keyring entry) and drops its handle.
    Unpaired(AgentId),
    /// A session reported a conversation id other than the stored one: the
    /// supervisor records it in the agent's metadata, so that the next
    /// prompt resumes it even after a restart.
    Conversation {
        agent: AgentId,
        conversation: String,
    },
}
