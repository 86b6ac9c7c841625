//! The control-socket protocol between `remoteagentctl` and `remoteagentd`.
//!
//! Newline-delimited JSON over a Unix socket. The client sends
//! [`ClientMessage`]s (`{"id": 1, "request": {"type": "list"}}`); the daemon
//! answers each with one or more [`Reply`]s carrying the same id. The last
//! reply for an id has `"end": true` or carries an `error`; replies before it
//! stream progress (pairing, `logs --follow`).
//!
//! The first request on a connection must be [`Request::Hello`] with
//! [`PROTOCOL_VERSION`]; a mismatch is answered with a
//! [`ErrorCode::ProtocolMismatch`] error naming both versions.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::runner::RunnerSpec;
use crate::{AgentId, SessionId};

pub const PROTOCOL_VERSION: u32 = 1;

/// A line longer than this is refused (and the connection closed) rather
/// than buffered without bound.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMessage {
    pub id: u64,
    pub request: Request,
}

/// One request. A variant with fields carries one struct, so handlers take
/// the request whole; the JSON is the same as with inline fields
/// (`{"type": "logs", "agent": …}`), since the tag is internal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    Hello(HelloRequest),
    /// Pair a project folder. Streams [`Response::PairCode`], then ends with
    /// [`Response::Paired`] or an error. Closing the connection cancels.
    Pair(PairRequest),
    List,
    Status,
    /// Abort the agent's running session.
    Stop(AgentRequest),
    /// Session logs. Without `follow` ends after the last `lines` lines; with
    /// it keeps streaming new lines (of later sessions too) until the client
    /// disconnects, or, for one `session`, until that session's end record.
    /// With `list`, one [`Response::LogSessions`] instead.
    Logs(LogsRequest),
    Unpair(AgentRequest),
    /// A runner asks whether it may use a tool (sent by `remoteagentd
    /// approval-hook`, which Claude Code runs before each tool use).
    /// Answered with one [`Response::ApprovalDecision`] once the project's
    /// policy, the user's phone or the timeout decided; that can take
    /// minutes. Closing the connection withdraws the question.
    Approval(ApprovalRequest),
    /// `remoteagentctl doctor`: the checks only the daemon can make (its
    /// config file, its secret store, each agent's Redis login and runner).
    /// Answered with one [`Response::Doctor`].
    Doctor,
    /// Read the config file again (what SIGHUP does). Answered with
    /// [`Response::Reloaded`], or a [`ErrorCode::ConfigInvalid`] error when
    /// the file is broken (the daemon keeps its previous config).
    Reload,
    /// `remoteagentctl approvals`: the approval requests of all agents
    /// waiting for an answer. Answered with [`Response::Approvals`].
    Approvals,
    /// `remoteagentctl approve|deny`: answer a waiting approval request from
    /// the computer. The first answer wins, from the computer or the phone:
    /// answered with [`Response::ApprovalAnswered`] when this one did, a
    /// [`ErrorCode::Conflict`] error naming the answer that won when the
    /// request was already answered, [`ErrorCode::NotFound`] for an unknown
    /// id and [`ErrorCode::Ambiguous`] for a prefix of several.
    ApprovalAnswer(ApprovalAnswerRequest),
    /// `remoteagentctl sessions NAME`: the agent's recent sessions
    /// (conversations with the AI). Answered with [`Response::Sessions`].
    Sessions(AgentRequest),
    /// `remoteagentctl rules NAME [--revoke N]`: the agent's approval
    /// rules (`crate::rules`), after revoking one. Answered with
    /// [`Response::Rules`].
    Rules(RulesRequest),
    /// `remoteagentctl diff|undo|commit NAME`: an action on a run's
    /// checkpoint, the same as the diff card's buttons. Answered with
    /// [`Response::Checkpoint`].
    Checkpoint(CheckpointRequest),
    /// `remoteagentctl worktrees NAME [--clean]`: the agent's worktrees of
    /// parallel runs. Answered with [`Response::Worktrees`].
    Worktrees(crate::worktrees::WorktreesRequest),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesRequest {
    pub agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke: Option<u32>,
}

/// The answer to [`Request::Rules`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRules {
    pub agent_name: String,
    #[serde(flatten)]
    pub rules: crate::rules::RulesPayload,
    /// Tool uses the agent's rules allowed since the daemon started.
    #[serde(default)]
    pub auto_allowed: u64,
}

/// An action on the checkpoint of one of an agent's runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRequest {
    pub agent: String,
    /// The run; absent: the agent's last run with a checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionId>,
    pub action: crate::checkpoints::CheckpointAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalAnswerRequest {
    /// The request id, or an unambiguous prefix of it.
    pub request: String,
    pub allow: bool,
    /// Why, passed on to the runner and shown on the phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The answer to a question (`remoteagentctl approve ID --answer TEXT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

/// One approval request waiting for an answer (`remoteagentctl approvals`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingApproval {
    pub agent_id: AgentId,
    pub agent_name: String,
    pub session_id: SessionId,
    pub request_id: String,
    pub tool: String,
    /// What the tool use does (the command, the file, …); remote text.
    pub summary: String,
    /// How long it has been waiting, in seconds.
    pub waiting_secs: u64,
    /// Seconds left before the timeout denies it.
    pub left_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloRequest {
    pub protocol: u32,
    pub client_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairRequest {
    pub path: PathBuf,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub runner: Option<RunnerSpec>,
}

/// A request about one agent (`stop`, `unpair`), named by id or name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRequest {
    pub agent: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsRequest {
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub session: Option<String>,
    #[serde(default = "default_lines")]
    pub lines: usize,
    #[serde(default)]
    pub follow: bool,
    /// Only lines (with `list`: sessions) logged at or after this time (ms
    /// since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// List the sessions that have a log instead of showing lines.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub list: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    pub agent: AgentId,
    pub session: SessionId,
    /// The runner's tool name ("Bash", "Edit", …).
    pub tool: String,
    /// The tool's arguments as the runner gave them. May hold secrets
    /// typed by the model: never logged in full.
    #[serde(default)]
    pub input: serde_json::Value,
    /// The runner's working folder when it asked (Claude Code's hook input
    /// has it): where a command runs, shown with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
}

fn default_lines() -> usize {
    50
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub id: u64,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Response>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// The last reply for this id.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub end: bool,
}

impl Reply {
    /// A final successful reply.
    pub fn done(id: u64, data: Response) -> Self {
        Self {
            id,
            ok: true,
            data: Some(data),
            error: None,
            end: true,
        }
    }

    /// A progress reply; more follow.
    pub fn more(id: u64, data: Response) -> Self {
        Self {
            id,
            ok: true,
            data: Some(data),
            error: None,
            end: false,
        }
    }

    /// A bare end marker after streamed replies.
    pub fn end(id: u64) -> Self {
        Self {
            id,
            ok: true,
            data: None,
            error: None,
            end: true,
        }
    }

    pub fn error(id: u64, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            id,
            ok: false,
            data: None,
            error: Some(ErrorInfo {
                code,
                message: message.into(),
            }),
            end: true,
        }
    }

    /// True when no more replies follow for this id.
    pub fn is_last(&self) -> bool {
        self.end || self.error.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The line was not valid JSON or not a known request.
    BadRequest,
    ProtocolMismatch,
    /// No agent (or session) matches.
    NotFound,
    /// A name/prefix matches more than one agent.
    Ambiguous,
    /// The agent has nothing running (stop) or is already paired (pair).
    Conflict,
    /// The pairing code expired before it was entered.
    PairExpired,
    /// The cloud refused the pairing (plan limit, revoked, …).
    PairRefused,
    /// The cloud or its Redis could not be reached.
    CloudUnreachable,
    /// No OS keyring; see the message for the opt-in file store.
    KeyringUnavailable,
    /// The daemon is shutting down.
    ShuttingDown,
    /// The config file could not be read or is invalid (reload).
    ConfigInvalid,
    Internal,
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    Hello {
        protocol: u32,
        daemon_version: String,
    },
    PairCode {
        code: String,
        connect_url: String,
        expires_at_ms: u64,
        #[serde(default)]
        bot_username: Option<String>,
        /// Problems the user should fix before the first prompt (e.g. the
        /// runner is not on the daemon's PATH); pairing goes on regardless.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    Paired {
        agent: AgentInfo,
    },
    Agents {
        agents: Vec<AgentInfo>,
    },
    Status(DaemonStatus),
    Stopped {
        agent_id: AgentId,
        session_id: SessionId,
        /// The agent's name, for messages people read.
        #[serde(default)]
        agent_name: String,
        /// When the stopped session started, when the daemon knows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        started_at_ms: Option<u64>,
    },
    /// One line of a session log. Lines of a session follow its
    /// [`Response::LogSession`].
    LogLine {
        agent_id: AgentId,
        session_id: SessionId,
        line: String,
        /// When the line was written (ms since the epoch); absent in logs
        /// written before lines were timed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time_ms: Option<u64>,
    },
    /// Sent before a session's lines in a `logs` answer (and when a followed
    /// agent starts a new session): which session the lines below are of.
    LogSession(LogSessionInfo),
    /// The answer to `logs --list`, oldest session first.
    LogSessions {
        sessions: Vec<LogSessionInfo>,
    },
    Unpaired {
        agent_id: AgentId,
        name: String,
        /// False when the cloud could not be told (offline); the local side
        /// is forgotten either way.
        cloud_revoked: bool,
    },
    /// The answer to [`Request::Doctor`].
    Doctor {
        checks: Vec<Check>,
    },
    /// The answer to [`Request::Reload`]: the keys that changed and now
    /// apply, and those that take effect only after a restart.
    Reloaded {
        changed: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        restart_needed: Vec<String>,
    },
    /// The answer to [`Request::Approvals`], oldest request first.
    Approvals {
        requests: Vec<PendingApproval>,
    },
    /// The answer to [`Request::ApprovalAnswer`]: this answer won.
    ApprovalAnswered {
        request_id: String,
        agent_name: String,
        /// `Bash cargo test`: the tool and the start of its summary.
        label: String,
        allow: bool,
        /// What the phone's message shows ("approved from your computer").
        reason: String,
    },
    /// The answer to [`Request::Sessions`].
    Sessions(crate::sessions::AgentSessions),
    /// The answer to [`Request::Rules`].
    Rules(AgentRules),
    /// The answer to [`Request::Checkpoint`].
    Checkpoint {
        agent_name: String,
        /// The run the action was on.
        run: SessionId,
        result: crate::checkpoints::CheckpointResult,
        /// The whole diff, for a diff (never cut).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        diff: Option<String>,
        /// The id an undo was checkpointed under (undo it with that id).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recorded_as: Option<SessionId>,
    },
    /// The answer to [`Request::Worktrees`].
    Worktrees(crate::worktrees::AgentWorktrees),
    /// The answer to [`Request::Approval`].
    ApprovalDecision {
        allow: bool,
        /// Why, in words the runner shows the model (and the user).
        reason: String,
        /// The tool's input as it should run: an `AskUserQuestion` with the
        /// user's `answers` (`crate::questions`). Older hooks ignore it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        updated_input: Option<serde_json::Value>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub id: AgentId,
    pub name: String,
    pub path: PathBuf,
    pub runner: RunnerSpec,
    /// Subscribed to its Redis channel right now.
    pub online: bool,
    #[serde(default)]
    pub running_session: Option<SessionId>,
    pub paired_at_ms: u64,
    pub cloud_url: String,
    /// Why the agent is not running (e.g. its token is missing from the
    /// keyring); `None` when it is fine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// A session that has a local log, as its log's start and end records
/// tell it (the prompt and runner are remote text: clean them to show).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSessionInfo {
    pub agent_id: AgentId,
    pub agent_name: String,
    pub session_id: SessionId,
    /// From the start record; absent when the log has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    /// The start of the prompt, as the log recorded it.
    #[serde(default)]
    pub prompt: String,
    #[serde(default)]
    pub runner: String,
    /// The agent runs this session now.
    #[serde(default)]
    pub running: bool,
    /// The end record's status (`ok`, `failed`, `aborted`, `error`,
    /// `rejected`); absent while running or when the end was never recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// When the log was last written to (ms since the epoch).
    #[serde(default)]
    pub last_write_ms: u64,
}

/// One line of `remoteagentctl doctor`: what was checked, how it went, and
/// for a problem the command or edit that fixes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// What was checked, e.g. "config file" or "redis login of hello".
    pub name: String,
    pub status: CheckStatus,
    /// What was found, in words.
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    /// Works, but something the user may want to change.
    Warn,
    /// Broken: `doctor` exits non-zero.
    Fail,
}

impl Check {
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: CheckStatus::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn warn(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            status: CheckStatus::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            status: CheckStatus::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub version: String,
    pub pid: u32,
    pub uptime_secs: u64,
    /// Every agent's Redis connection is up (true with no agents when the
    /// configured Redis answers).
    pub redis_connected: bool,
    pub agents: usize,
    pub agents_online: usize,
    pub sessions_running: usize,
    pub socket: PathBuf,
    /// The cloud the daemon pairs with now (the config in force).
    #[serde(default)]
    pub cloud_url: String,
    /// The last reload of the config file failed and the daemon runs on
    /// its previous config: "config reload failed at 07:12 UTC: …".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_problem: Option<String>,
    /// Config keys changed since the start that need a restart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_needed: Vec<String>,
    /// Tool uses approval rules allowed without asking since the start
    /// (`crate::rules`); older daemons send none.
    #[serde(default)]
    pub auto_allowed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_shapes() {
        let m = ClientMessage {
            id: 7,
            request: Request::Stop(AgentRequest {
                agent: "web".into(),
            }),
        };
        let s = serde_json::to_string(&m).unwrap();
        assert_eq!(s, r#"{"id":7,"request":{"type":"stop","agent":"web"}}"#);
        assert_eq!(serde_json::from_str::<ClientMessage>(&s).unwrap(), m);
        let logs: ClientMessage =
            serde_json::from_str(r#"{"id":1,"request":{"type":"logs","extra":1}}"#).unwrap();
        assert_eq!(
            logs.request,
            Request::Logs(LogsRequest {
                agent: None,
                session: None,
                lines: 50,
                follow: false,
                since_ms: None,
                list: false,
            })
        );
    }

    /// Today's JSON of every request (written by hand, as the clients of
    /// the previous release send it) decodes and encodes back byte for byte.
    #[test]
    fn the_wire_format_is_unchanged() {
        for line in [
            r#"{"id":1,"request":{"type":"hello","protocol":1,"client_version":"0.1.0"}}"#,
            r#"{"id":2,"request":{"type":"pair","path":"/p","name":"web","runner":null}}"#,
            r#"{"id":3,"request":{"type":"list"}}"#,
            r#"{"id":4,"request":{"type":"status"}}"#,
            r#"{"id":5,"request":{"type":"stop","agent":"web"}}"#,
            r#"{"id":6,"request":{"type":"logs","agent":"web","session":null,"lines":20,"follow":true}}"#,
            r#"{"id":7,"request":{"type":"unpair","agent":"web"}}"#,
            r#"{"id":8,"request":{"type":"approval","agent":"a1","session":"s1","tool":"Bash","input":{"command":"ls"}}}"#,
        ] {
            let m: ClientMessage = serde_json::from_str(line).unwrap();
            assert_eq!(serde_json::to_string(&m).unwrap(), line);
        }
        // Defaults still apply to missing fields.
        let m: ClientMessage =
            serde_json::from_str(r#"{"id":2,"request":{"type":"pair","path":"/p"}}"#).unwrap();
        assert_eq!(
            m.request,
            Request::Pair(PairRequest {
                path: "/p".into(),
                name: None,
                runner: None
            })
        );
    }

    #[test]
    fn approval_round_trip() {
        let m = ClientMessage {
            id: 2,
            request: Request::Approval(ApprovalRequest {
                agent: AgentId::parse("a1").unwrap(),
                session: SessionId::parse("s1").unwrap(),
                tool: "Bash".into(),
                input: serde_json::json!({"command": "cargo test"}),
                cwd: Some("/p".into()),
            }),
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"id":2,"request":{"type":"approval","agent":"a1","session":"s1","tool":"Bash","input":{"command":"cargo test"},"cwd":"/p"}})
        );
        assert_eq!(serde_json::from_value::<ClientMessage>(v).unwrap(), m);
        // Ids end up in lookups and logs: a bad one is refused on the way in.
        assert!(
            serde_json::from_str::<ClientMessage>(
                r#"{"id":2,"request":{"type":"approval","agent":"a1","session":"../x","tool":"Bash"}}"#
            )
            .is_err()
        );
        let r = Reply::done(
            2,
            Response::ApprovalDecision {
                allow: false,
                reason: "no answer in 300 s".into(),
                updated_input: None,
            },
        );
        let s = serde_json::to_string(&r).unwrap();
        assert!(s.contains(r#""type":"approval_decision""#), "{s}");
        assert_eq!(serde_json::from_str::<Reply>(&s).unwrap(), r);
    }

    #[test]
    fn reply_shapes() {
        let r = Reply::error(3, ErrorCode::NotFound, "no agent named 'x'");
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"id":3,"ok":false,"error":{"code":"not_found","message":"no agent named 'x'"},"end":true})
        );
        assert!(r.is_last());
        let more = Reply::more(
            1,
            Response::PairCode {
                code: "XK9-4TZ".into(),
                connect_url: "u".into(),
                expires_at_ms: 9,
                bot_username: None,
                warnings: vec![],
            },
        );
        assert!(!more.is_last());
        let s = serde_json::to_string(&more).unwrap();
        assert_eq!(serde_json::from_str::<Reply>(&s).unwrap(), more);
        let unknown: ErrorInfo =
            serde_json::from_str(r#"{"code":"from_the_future","message":"m"}"#).unwrap();
        assert_eq!(unknown.code, ErrorCode::Unknown);
    }
}
