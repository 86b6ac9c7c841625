//! Tool approval from the phone (Claude Code).
//!
//! Claude Code is started with a `PreToolUse` hook (`--settings`, built by
//! [`hook::settings_json`], chosen by [`runner_mode`]) that runs `remoteagentd approval-hook` before every
//! tool use. The hook asks the daemon over the control socket
//! (`Request::Approval`); the control server hands the question to the
//! supervisor, the agent task and the running session, whose
//! [`session::SessionApprovals`] applies the project's [`policy`] and, when
//! the policy says "ask", writes `approval_request` to the output stream. The
//! phone's answer comes back as a signed `approval` envelope, verified by the
//! agent, and travels to the session on a second channel. The decision is
//! only ever made by the policy, a verified envelope, the user on the
//! computer (`remoteagentctl approve|deny` through the [`board`]) or the
//! timeout: nothing the hook (or the runner) sends can approve anything.
//!
//! ```text
//! claude ─sh─► remoteagentd approval-hook ─socket─► control ─► supervisor ─► agent ─asks──► session ─XADD approval_request─► phone
//! claude ◄─JSON── hook ◄─Response::ApprovalDecision── … ◄── oneshot ◄── session ◄─answers── agent ◄─signed `approval`── phone
//! ```

pub mod board;
pub mod danger;
pub mod hook;
pub mod matcher;
pub mod modes;
pub mod policy;
pub mod questions;
pub mod rules;
pub mod schema;
pub mod session;
pub mod shown;

use rand::Rng;
use remoteagent_proto::runner::{Preset, RunnerSpec};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::runner::{ApprovalMode, RunnerError, Sandbox};

pub use policy::{ApprovalPolicies, ProjectPolicy};

/// Tool approval as configured for the daemon (part of `AgentSettings`).
#[derive(Debug, Clone, Default)]
pub struct ApprovalSettings {
    pub policies: ApprovalPolicies,
    /// How Claude Code's hook reaches this daemon. `None` runs Claude
    /// without the hook, under its own permission rules: only where there is
    /// no daemon executable to run (the in-process tests).
    pub hook: Option<hook::HookTarget>,
    /// Every agent's waiting requests, for `remoteagentctl approvals`.
    pub board: board::Board,
    /// Every agent's rules saved from scoped answers.
    pub rules: rules::RuleStore,
}

/// How `runner` is told about tool approval in one session (rendered into
/// its command line by [`crate::runner::command_line`]):
/// - Claude Code asks before each tool use through its `PreToolUse` hook,
///   unless the daemon has no hook target (see [`ApprovalSettings::hook`]);
/// - Codex's app-server (`crate::runner::codex_app`) asks, through the
///   same session approvals as the hook, inside the sandbox chosen below;
/// - Codex cannot ask anyone from `codex exec`, so the project's policy
///   picks its sandbox instead: `ask` (the default) lets it write inside
///   the project folder only, without network; `deny` keeps it read-only;
///   `allow` lifts the sandbox, as the user asked for;
/// - the other runners are told nothing.
pub fn runner_mode(
    settings: &ApprovalSettings,
    runner: &RunnerSpec,
    agent: &remoteagent_proto::AgentId,
    session: &remoteagent_proto::SessionId,
    policy: policy::PolicyKind,
    timeout_secs: u64,
) -> Result<ApprovalMode, RunnerError> {
    match runner {
        RunnerSpec::Preset(Preset::Claude) => {
            let Some(target) = &settings.hook else {
                tracing::warn!(
                    "Claude Code runs without the approval hook: no daemon executable is known"
                );
                return Ok(ApprovalMode::RunnerDefault);
            };
            let settings =
                hook::settings_json(target, agent, session, timeout_secs).map_err(|reason| {
                    RunnerError::Spawn {
                        program: "claude".into(),
                        reason: format!("its tool-approval hook cannot be set up: {reason}"),
                    }
                })?;
            Ok(ApprovalMode::Hook { settings })
        }
        RunnerSpec::Preset(Preset::Codex | Preset::CodexExec) => {
            Ok(ApprovalMode::Sandbox(sandbox(policy)))
        }
        RunnerSpec::Preset(Preset::Aider | Preset::Gemini) | RunnerSpec::Command(_) => {
            Ok(ApprovalMode::RunnerDefault)
        }
    }
}

/// The sandbox a runner that cannot ask gets under `policy`.
fn sandbox(policy: policy::PolicyKind) -> Sandbox {
    match policy {
        policy::PolicyKind::Ask => Sandbox::WorkspaceWrite,
        policy::PolicyKind::Deny => Sandbox::ReadOnly,
        policy::PolicyKind::Allow => Sandbox::FullAccess,
    }
}

/// What the runner is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allow: bool,
    /// Why, in words the runner passes on to the model.
    pub reason: String,
    /// The tool's input to run with instead (a question's answers).
    pub updated_input: Option<Value>,
}

impl Decision {
    pub fn allow(reason: impl Into<String>) -> Self {
        Decision {
            allow: true,
            reason: reason.into(),
            updated_input: None,
        }
    }

    pub fn deny(reason: impl Into<String>) -> Self {
        Decision {
            allow: false,
            reason: reason.into(),
            updated_input: None,
        }
    }
}

/// A runner's question, on its way from the control socket to the session.
pub struct ApprovalAsk {
    pub tool: String,
    /// Never logged in full: it may hold secrets typed by the model.
    pub input: Value,
    /// The runner's working folder, when it said (absolute).
    pub cwd: Option<String>,
    pub reply: oneshot::Sender<Decision>,
}

impl std::fmt::Debug for ApprovalAsk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalAsk")
            .field("tool", &self.tool)
            .field("input", &"hidden")
            .finish_non_exhaustive()
    }
}

/// An answer: the phone's, from a verified envelope, or the computer's,
/// from `remoteagentctl approve|deny`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalAnswer {
    pub request_id: String,
    pub allow: bool,
    pub origin: Origin,
    /// The user's words (only the computer's answers carry any).
    pub reason: Option<String>,
    /// The answer to a question, or the feedback on a plan
    /// ([`questions`]).
    pub answer: Option<String>,
    /// Once, this session or always here ([`rules`]); `None` is once.
    pub scope: Option<remoteagent_proto::rules::Scope>,
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Phone,
    Computer,
}

impl ApprovalAnswer {
    /// What the runner is told, and the reason `approval_resolved` carries
    /// (shown on the phone's approval message: who answered).
    pub fn texts(&self) -> (Decision, String) {
        let reason = self
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        let because = reason.map(|r| format!(": {r}")).unwrap_or_default();
        match (self.origin, self.allow) {
            (Origin::Phone, true) => (
                Decision::allow("approved by the user on their phone"),
                "approved from the phone".into(),
            ),
            (Origin::Phone, false) => (
                Decision::deny("denied by the user on their phone; do not retry it"),
                "denied from the phone".into(),
            ),
            (Origin::Computer, true) => (
                Decision::allow(format!("approved by the user on their computer{because}")),
                format!("approved from your computer{because}"),
            ),
            (Origin::Computer, false) => (
                Decision::deny(format!(
                    "denied by the user on their computer{because}; do not retry it"
                )),
                format!("denied from your computer{because}"),
            ),
        }
    }
}

/// Questions queued for a session beyond those it has taken in; more are
/// denied at once rather than queued without bound.
const ASK_QUEUE: usize = 8;
/// Answers queued for a session.
const ANSWER_QUEUE: usize = 16;

/// The agent's ends of a running session's approval channels.
#[derive(Debug, Clone)]
pub struct ApprovalSenders {
    asks: mpsc::Sender<ApprovalAsk>,
    answers: mpsc::Sender<ApprovalAnswer>,
}

impl ApprovalSenders {
    /// The asker a runner the daemon talks to (Codex's app-server) puts
    /// its tool uses to: each goes through the session's approvals like a
    /// hook request; a session that ended denies.
    pub fn tool_asker(&self) -> crate::runner::codex_app::ToolAsker {
        let senders = self.clone();
        std::sync::Arc::new(move |tool, input, cwd| {
            let (reply, answer) = oneshot::channel();
            senders.ask(ApprovalAsk {
                tool,
                input,
                cwd,
                reply,
            });
            Box::pin(async move { answer.await.map(|d| d.allow).unwrap_or(false) })
        })
    }
}

/// The session's ends.
#[derive(Debug)]
pub struct ApprovalInbox {
    asks: mpsc::Receiver<ApprovalAsk>,
    answers: mpsc::Receiver<ApprovalAnswer>,
}

pub fn channels() -> (ApprovalSenders, ApprovalInbox) {
    let (asks, asks_rx) = mpsc::channel(ASK_QUEUE);
    let (answers, answers_rx) = mpsc::channel(ANSWER_QUEUE);
    (
        ApprovalSenders { asks, answers },
        ApprovalInbox {
            asks: asks_rx,
            answers: answers_rx,
        },
    )
}

impl ApprovalSenders {
    /// Hands a question to the session without waiting (the agent task must
    /// stay responsive); when it cannot take it, the question is denied here.
    pub fn ask(&self, ask: ApprovalAsk) {
        match self.asks.try_send(ask) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(ask)) => {
                tracing::warn!(tool = %ask.tool, "approval request denied: too many are waiting");
                let _ = ask
                    .reply
                    .send(Decision::deny("too many approval requests are waiting"));
            }
            Err(mpsc::error::TrySendError::Closed(ask)) => {
                let _ = ask.reply.send(Decision::deny(session::SESSION_ENDED));
            }
        }
    }

    /// Hands an answer to the session; false when it could not take it.
    pub fn answer(&self, answer: ApprovalAnswer) -> bool {
        self.answers.try_send(answer).is_ok()
    }

    /// Where the computer's answers to this session go (see [`board`]).
    pub fn answers(&self) -> mpsc::Sender<ApprovalAnswer> {
        self.answers.clone()
    }
}

/// Length of generated request ids (within `events::MAX_REQUEST_ID_LEN`).
const REQUEST_ID_LEN: usize = 10;

/// A fresh random request id: 10 ASCII letters and digits.
pub fn new_request_id() -> String {
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(REQUEST_ID_LEN)
        .map(char::from)
        .collect()
}

/// Longest summary of a tool use shown on the phone, in characters.
pub const MAX_SUMMARY_CHARS: usize = 400;
/// Longest one-line summary (notices, log lines).
const SHORT_SUMMARY_CHARS: usize = 120;

/// What a tool use is about to do, for a human: the command, the file, the
/// pattern or the URL; else the input as compact JSON. Up to
/// [`MAX_SUMMARY_CHARS`]; multi-line commands keep their lines, since
/// hiding the second line of `ls\nrm -rf ~` would mislead the person
/// approving it.
pub fn summary(tool: &str, input: &Value) -> String {
    let text = match policy::main_arg(tool, input) {
        Some(("pattern", arg)) => match input.get("path").and_then(Value::as_str) {
            Some(path) => format!("{} in {path}", arg.trim()),
            None => arg.trim().to_string(),
        },
        Some((_, arg)) => arg.trim().to_string(),
        None => match input {
            Value::Null => String::new(),
            Value::Object(m) if m.is_empty() => String::new(),
            other => {
                let keys = ["query", "prompt", "description", "skill"];
                keys.iter()
                    .find_map(|k| other.get(*k).and_then(Value::as_str))
                    .map(str::to_string)
                    .unwrap_or_else(|| other.to_string())
            }
        },
    };
    let text = if text.is_empty() {
        tool.to_string()
    } else {
        text
    };
    truncate_chars(&text, MAX_SUMMARY_CHARS)
}

/// `Bash cargo test`: the tool and the first line of its summary, short.
pub fn short_summary(tool: &str, summary: &str) -> String {
    let first = summary.lines().next().unwrap_or("");
    let more = summary.lines().nth(1).is_some();
    let mut line = truncate_chars(first, SHORT_SUMMARY_CHARS);
    if more && !line.ends_with('…') {
        line.push_str(" …");
    }
    if line == tool || line.is_empty() {
        tool.to_string()
    } else {
        format!("{tool} {line}")
    }
}

fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use remoteagent_proto::events::valid_request_id;
    use serde_json::json;

    #[test]
    fn codex_sandbox_follows_the_policy() {
        use policy::PolicyKind;
        let settings = ApprovalSettings::default();
        let agent = remoteagent_proto::AgentId::parse("a").unwrap();
        let session = remoteagent_proto::SessionId::parse("s").unwrap();
        let mode = |runner: &RunnerSpec, policy| {
            runner_mode(&settings, runner, &agent, &session, policy, 300).unwrap()
        };
        let codex = RunnerSpec::Preset(Preset::Codex);
        assert_eq!(
            mode(&codex, PolicyKind::Ask),
            ApprovalMode::Sandbox(Sandbox::WorkspaceWrite)
        );
        assert_eq!(
            mode(&codex, PolicyKind::Deny),
            ApprovalMode::Sandbox(Sandbox::ReadOnly)
        );
        assert_eq!(
            mode(&codex, PolicyKind::Allow),
            ApprovalMode::Sandbox(Sandbox::FullAccess)
        );
        // Without a hook target (in-process tests), Claude keeps its own rules.
        let claude = RunnerSpec::Preset(Preset::Claude);
        assert_eq!(mode(&claude, PolicyKind::Deny), ApprovalMode::RunnerDefault);
        let custom = RunnerSpec::Command(vec!["./r.sh".into()]);
        assert_eq!(mode(&custom, PolicyKind::Deny), ApprovalMode::RunnerDefault);
    }

    #[test]
    fn claude_gets_the_hook_when_the_daemon_is_known() {
        let settings = ApprovalSettings {
            policies: ApprovalPolicies::default(),
            hook: Some(hook::HookTarget {
                program: "/usr/bin/remoteagentd".into(),
                socket: "/run/ra.sock".into(),
            }),
            board: board::Board::default(),
            rules: rules::RuleStore::default(),
        };
        let agent = remoteagent_proto::AgentId::parse("a").unwrap();
        let session = remoteagent_proto::SessionId::parse("s").unwrap();
        let claude = RunnerSpec::Preset(Preset::Claude);
        let mode = runner_mode(
            &settings,
            &claude,
            &agent,
            &session,
            policy::PolicyKind::Ask,
            300,
        )
        .unwrap();
        let expected =
            hook::settings_json(settings.hook.as_ref().unwrap(), &agent, &session, 300).unwrap();
        assert_eq!(mode, ApprovalMode::Hook { settings: expected });
    }

    #[test]
    fn answers_say_who_answered() {
        let answer = |origin, allow, reason: Option<&str>| {
            ApprovalAnswer {
                request_id: "r".into(),
                allow,
                origin,
                reason: reason.map(str::to_string),
                answer: None,
                scope: None,
            }
            .texts()
        };
        assert_eq!(
            answer(Origin::Phone, true, None),
            (
                Decision::allow("approved by the user on their phone"),
                "approved from the phone".to_string()
            )
        );
        assert_eq!(
            answer(Origin::Phone, false, None).1,
            "denied from the phone"
        );
        assert_eq!(
            answer(Origin::Computer, true, Some("  ")),
            (
                Decision::allow("approved by the user on their computer"),
                "approved from your computer".to_string()
            )
        );
        assert_eq!(
            answer(Origin::Computer, false, Some("use make check")),
            (
                Decision::deny(
                    "denied by the user on their computer: use make check; do not retry it"
                ),
                "denied from your computer: use make check".to_string()
            )
        );
    }

    #[test]
    fn request_ids_are_valid_and_differ() {
        let ids: Vec<String> = (0..200).map(|_| new_request_id()).collect();
        for id in &ids {
            assert!(valid_request_id(id), "{id}");
            assert_eq!(id.len(), REQUEST_ID_LEN);
        }
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
    }

    #[test]
    fn summaries_name_what_the_tool_does() {
        assert_eq!(
            summary(
                "Bash",
                &json!({"command": "cargo test", "description": "run tests"})
            ),
            "cargo test"
        );
        assert_eq!(
            summary(
                "Edit",
                &json!({"file_path": "/p/src/main.rs", "old_string": "secret"})
            ),
            "/p/src/main.rs"
        );
        assert_eq!(summary("Grep", &json!({"pattern": "TODO"})), "TODO");
        assert_eq!(
            summary("Grep", &json!({"pattern": "TODO", "path": "src"})),
            "TODO in src"
        );
        assert_eq!(
            summary(
                "WebFetch",
                &json!({"url": "https://x.example", "prompt": "p"})
            ),
            "https://x.example"
        );
        assert_eq!(summary("WebSearch", &json!({"query": "tokio"})), "tokio");
        assert_eq!(summary("Mystery", &json!({"n": 1})), r#"{"n":1}"#);
        assert_eq!(summary("ExitPlanMode", &json!({})), "ExitPlanMode");
        let long = summary("Bash", &json!({ "command": "x".repeat(1000) }));
        assert_eq!(long.chars().count(), MAX_SUMMARY_CHARS);
        assert!(long.ends_with('…'));
        // Every line of a command is shown.
        assert_eq!(
            summary("Bash", &json!({"command": "ls\nrm -rf ~"})),
            "ls\nrm -rf ~"
        );
        assert_eq!(short_summary("Bash", "ls\nrm -rf ~"), "Bash ls …");
        assert_eq!(short_summary("Bash", "rm -rf x"), "Bash rm -rf x");
        assert_eq!(
            short_summary("ExitPlanMode", "ExitPlanMode"),
            "ExitPlanMode"
        );
    }
}
