//! Approval rules from scoped answers: the phone answers a request
//! "this session" or "always here", and the daemon saves the rule it
//! derived for that request ([`derive`]) in its [`store`]. Later tool uses
//! a rule matches are allowed without asking, each logged in the session
//! log and counted.
//!
//! Runner-agnostic: a tool name and its JSON input, as Claude's hook and
//! Codex's approval requests both give them.

pub mod answer;
pub mod derive;
pub mod store;

use std::path::PathBuf;

use remoteagent_proto::AgentId;
use remoteagent_proto::rules::Scope;
use serde_json::Value;

pub use store::{Hit, RuleStore, StoreError};

/// One run's view of its agent's rules.
#[derive(Debug, Clone)]
pub struct SessionRules {
    pub store: RuleStore,
    pub agent: AgentId,
    /// Which conversation session rules belong to: the conversation the
    /// run continues, or `run:{sessionId}` until the runner reports one
    /// (then [`RuleStore::adopt`] moves them).
    pub conversation: String,
    pub project: PathBuf,
}

impl SessionRules {
    /// The key of a run's session rules: the conversation it continues,
    /// else one of its own.
    pub fn conversation_key(
        resume: &crate::runner::Resume<'_>,
        run: &remoteagent_proto::SessionId,
    ) -> String {
        match resume {
            crate::runner::Resume::Id(id) => conversation_key(id),
            _ => run_key(run),
        }
    }

    /// Does a saved rule allow this tool use without asking? The one place
    /// rules allow anything: the session calls it only where the policy
    /// would ask, and any guard that must win over rules (an always-ask
    /// list) belongs here.
    pub fn allows(&self, tool: &str, input: &Value) -> Option<Hit> {
        self.store
            .check(&self.agent, &self.conversation, &self.project, tool, input)
    }

    /// The rule a request for this tool use offers.
    pub fn offer(&self, tool: &str, input: &Value) -> Option<String> {
        derive::derive(tool, input, &self.project)
    }

    /// Saves the rule a request offered, as the phone's answer scoped it.
    pub fn save(&self, pattern: &str, scope: Scope) -> Result<u32, StoreError> {
        self.store
            .save(&self.agent, &self.conversation, pattern, scope)
    }
}

/// The key under which a run's session rules wait for its conversation id.
pub fn run_key(run: &remoteagent_proto::SessionId) -> String {
    format!("run:{run}")
}

/// The key of a conversation the runner reported.
pub fn conversation_key(id: &str) -> String {
    format!("conv:{id}")
}
