//! Events carried by Redis, all shaped `{"event": "<name>", "payload": {…}}`.
//!
//! * [`CommandEvent`]: cloud → daemon, inside a signed envelope on `agent:{id}`.
//! * [`OutputEvent`]: daemon → forwarder, one per entry of `output:{id}:{sid}`.
//! * [`PairEvent`]: cloud → pairing daemon on `pair:{pairingId}`.
//!
//! Every enum has an `Unknown` variant: a newer peer may send events this
//! build does not know, and the reader logs and skips them instead of failing.
//! Unknown fields inside known payloads are ignored for the same reason.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};

use crate::{AgentId, SessionId};

pub use crate::usd::Usd;

/// The outer shape of every event, read first so that an unknown `event`
/// name can be skipped whatever its payload looks like.
#[derive(Deserialize)]
struct RawEvent {
    event: String,
    #[serde(default)]
    payload: Option<serde_json::Value>,
}

fn payload<T: DeserializeOwned, E: serde::de::Error>(
    event: &str,
    payload: Option<serde_json::Value>,
) -> Result<T, E> {
    let value = payload.unwrap_or(serde_json::Value::Object(Default::default()));
    serde_json::from_value(value).map_err(|e| E::custom(format!("bad '{event}' payload: {e}")))
}

/// Implements `Deserialize` for an event enum: known names decode their
/// payload strictly (a malformed one is an error), any other name becomes
/// `Unknown`.
macro_rules! tolerant_deserialize {
    ($enum:ident { $($name:literal => $variant:ident),* $(,)? }) => {
        impl<'de> Deserialize<'de> for $enum {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = RawEvent::deserialize(d)?;
                match raw.event.as_str() {
                    $($name => Ok($enum::$variant(payload(&raw.event, raw.payload)?)),)*
                    "" => Err(D::Error::custom("empty event name")),
                    _ => Ok($enum::Unknown),
                }
            }
        }
    };
}

/// Commands to a daemon's agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", content = "payload", rename_all = "snake_case")]
pub enum CommandEvent {
    /// Run a prompt in a new session.
    Command(CommandPayload),
    /// Abort the running session.
    Abort(AbortPayload),
    /// The user's answer to an `approval_request`.
    Approval(ApprovalPayload),
    /// The agent was unpaired from the cloud side: forget it.
    Unpaired(UnpairedPayload),
    /// `/get PATH`: send a file of the project (answered on the output
    /// stream of the payload's session id).
    GetFile(crate::files::GetFilePayload),
    /// `/sessions`: list the agent's recent sessions (answered on the output
    /// stream of the payload's session id).
    ListSessions(crate::sessions::ListSessionsPayload),
    /// A diff card's button (Diff, Undo, Commit, Branch) on a run's
    /// checkpoint (answered on the output stream of the payload's session id).
    Checkpoint(crate::checkpoints::CheckpointPayload),
    /// `/rules`: list (and maybe revoke one of) the agent's approval rules
    /// (answered on the output stream of the payload's session id).
    ListRules(crate::rules::ListRulesPayload),
    /// `/clean`: remove the agent's finished worktrees (answered on the
    /// output stream of the payload's session id).
    CleanWorktrees(crate::worktrees::CleanWorktreesPayload),
    /// An event this build does not know; skipped by readers.
    #[serde(rename = "unknown")]
    Unknown,
}

tolerant_deserialize!(CommandEvent {
    "command" => Command,
    "abort" => Abort,
    "approval" => Approval,
    "unpaired" => Unpaired,
    "get_file" => GetFile,
    "list_sessions" => ListSessions,
    "checkpoint" => Checkpoint,
    "list_rules" => ListRules,
    "clean_worktrees" => CleanWorktrees,
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandPayload {
    pub session_id: SessionId,
    pub prompt: String,
    /// Continue the agent's previous conversation (false after `/new`).
    #[serde(default)]
    pub r#continue: bool,
    /// Files sent from the phone with this prompt (photos, documents), in
    /// blob keys the agent may read. A daemon refuses the whole command if
    /// one of them is missing or its hash differs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::files::Attachment>,
    /// The mode chosen on the phone (`/mode`); the daemon may only run it
    /// stricter (`crate::modes`). Absent: the computer's policy decides.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::modes::lenient"
    )]
    pub mode: Option<crate::modes::Mode>,
    /// Continue this session (a conversation id from `/sessions`) instead
    /// of the agent's last one; wins over `continue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AbortPayload {
    pub session_id: SessionId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalPayload {
    pub session_id: SessionId,
    pub request_id: String,
    pub allow: bool,
    /// The user's answer to a question, or their feedback on a plan
    /// (`crate::questions`); older daemons ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    // Scoped answers (`crate::rules`).
    /// Once, this session or always here: whether the daemon saves the
    /// rule it offered with the request. Absent: once.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::rules::lenient_scope"
    )]
    pub scope: Option<crate::rules::Scope>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpairedPayload {}

/// Largest prompt the cloud accepts and the daemon runs, in bytes. Telegram
/// caps a message at 4096 characters; the margin allows for forwarded text
/// and the `/connect`-style APIs, while keeping a prompt far below argv limits.
pub const MAX_PROMPT_BYTES: usize = 32 * 1024;

/// One entry of an output stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", content = "payload", rename_all = "snake_case")]
pub enum OutputEvent {
    /// The runner was spawned.
    Started(StartedPayload),
    /// A piece of output. `seq` starts at 0 and increases by one per chunk of
    /// a session, so a reader can prove it saw everything.
    Chunk(ChunkPayload),
    /// The runner asks whether it may use a tool.
    ApprovalRequest(ApprovalRequestPayload),
    /// An approval request was answered (from the phone), or timed out, or
    /// ended with its session: the runner got this decision.
    ApprovalResolved(ApprovalResolvedPayload),
    /// A line for the user that is not runner output (e.g. "busy").
    Notice(NoticePayload),
    /// A file for the chat (`/get`, or the runner's outbox), in a blob key.
    File(crate::files::FilePayload),
    /// The agent's recent sessions (the answer to `list_sessions`).
    Sessions(crate::sessions::SessionsPayload),
    /// What the run changed in its git project (before `done`).
    Changes(crate::checkpoints::ChangesPayload),
    /// The answer to a `checkpoint` command.
    CheckpointResult(crate::checkpoints::CheckpointResult),
    /// The agent's approval rules (the answer to `list_rules`).
    Rules(crate::rules::RulesPayload),
    /// The session ended. Always the last event of a stream.
    Done(DonePayload),
    /// An event this build does not know; skipped by readers.
    #[serde(rename = "unknown")]
    Unknown,
}

tolerant_deserialize!(OutputEvent {
    "started" => Started,
    "chunk" => Chunk,
    "approval_request" => ApprovalRequest,
    "approval_resolved" => ApprovalResolved,
    "notice" => Notice,
    "file" => File,
    "sessions" => Sessions,
    "changes" => Changes,
    "checkpoint_result" => CheckpointResult,
    "rules" => Rules,
    "done" => Done,
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartedPayload {
    pub session_id: SessionId,
    pub agent_id: AgentId,
    /// Display name of the runner ("claude", "command", …).
    pub runner: String,
    pub started_at_ms: u64,
    /// The mode the run is in, after the daemon's clamp; absent for runners
    /// that take no modes (and from older daemons).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::modes::lenient"
    )]
    pub mode: Option<crate::modes::Mode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkPayload {
    pub seq: u64,
    pub stream: StreamKind,
    /// UTF-8 text; the daemon never splits a multi-byte character across chunks.
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRequestPayload {
    /// Chosen by the daemon, unique within the session; see
    /// [`valid_request_id`] (it travels in Telegram callback data, which is
    /// capped at 64 bytes together with the session id).
    pub request_id: String,
    /// The runner's tool name ("Bash", "Edit", …).
    pub tool: String,
    /// What the tool is about to do, for a human: the command, the file …
    pub summary: String,
    /// Seconds after which the daemon denies an unanswered request (0: unknown).
    #[serde(default)]
    pub timeout_secs: u64,
    /// A question or a plan rather than a tool use (`crate::questions`);
    /// absent for plain approvals, ignored by older readers.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::questions::lenient_kind"
    )]
    pub kind: Option<crate::questions::AskKind>,

    // What is approved, shown in full (absent from older daemons).
    /// Why this use always asks (`rm -rf` outside the project, a force
    /// push …), in words; the message is marked ⚠️.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub danger: Option<String>,
    /// An edit's change as a unified diff (at most [`MAX_DIFF_BYTES`]; a
    /// longer one is cut and says so in its last line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// A command's working folder, relative to the project (`.` is the
    /// project folder), absolute when outside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    // Scoped answers (`crate::rules`).
    /// The rule the daemon saves when the answer's scope is "this session"
    /// or "always here" (`Bash(cargo test *)`); absent when no narrow rule
    /// is safe to offer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// Largest `diff` of an `approval_request`.
pub const MAX_DIFF_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalResolvedPayload {
    pub request_id: String,
    /// What the runner was told.
    pub allow: bool,
    /// Why, for the user: "approved", "denied", "no answer in 300 s",
    /// "the session ended" …
    #[serde(default)]
    pub reason: String,
}

/// Longest approval request id.
pub const MAX_REQUEST_ID_LEN: usize = 16;

/// A request id is 1..=16 ASCII letters, digits, `-` or `_`: short enough for
/// `approve:{sessionId}:{requestId}` to fit Telegram's 64-byte callback data,
/// and free of the `:` that separates the parts.
pub fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NoticePayload {
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoneStatus {
    /// The runner exited 0.
    Ok,
    /// The runner exited non-zero or was killed by a signal it was not sent.
    Failed,
    /// Aborted by the user (or by the daemon shutting down).
    Aborted,
    /// The runner could not be started at all.
    Error,
    /// Not run: the agent was busy, or the command was invalid.
    Rejected,
}

impl DoneStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DoneStatus::Ok => "ok",
            DoneStatus::Failed => "failed",
            DoneStatus::Aborted => "aborted",
            DoneStatus::Error => "error",
            DoneStatus::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DonePayload {
    pub status: DoneStatus,
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    /// Human-readable reason for `error`/`rejected`/`aborted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Number of chunks the session produced (`seq` of the last chunk + 1).
    #[serde(default)]
    pub chunks: u64,
    /// Bytes of output kept out of the stream because the session passed
    /// its byte budget in Redis: they are only in the daemon's local log
    /// (`remoteagentctl logs`). Their chunks took no `seq`, so they are not
    /// counted in `chunks` and are not "lost".
    #[serde(default, skip_serializing_if = "is_zero")]
    pub withheld_bytes: u64,
    /// Who stopped an `aborted` session. Absent when nobody knows (an older
    /// daemon, the cloud closing a stream itself); a value this build does
    /// not know reads as absent too.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub stopped_by: Option<StoppedBy>,
    /// Turns of the conversation in this run, when the runner reported
    /// them (Claude Code's `num_turns`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub turns: Option<u64>,
    /// What the run cost, when the runner reported it (Claude Code's
    /// `total_cost_usd`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub cost_usd: Option<Usd>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// An optional field read leniently: a value that does not fit reads as
/// absent instead of failing the whole event (a `done` that cannot be read
/// would leave its session unfinished).
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(value.and_then(|v| serde_json::from_value(v).ok()))
}

/// Where the stop of an aborted session came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoppedBy {
    /// The cloud's `abort` (the Stop button, `/stop`).
    Phone,
    /// `remoteagentctl stop` (or `unpair`) on the computer.
    Computer,
    /// The daemon shut down (or restarted the agent).
    Shutdown,
}

impl StoppedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            StoppedBy::Phone => "phone",
            StoppedBy::Computer => "computer",
            StoppedBy::Shutdown => "shutdown",
        }
    }
}

/// Outcome of a pairing, published on `pair:{pairingId}`.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", content = "payload", rename_all = "snake_case")]
pub enum PairEvent {
    Paired(PairedPayload),
    PairFailed(PairFailedPayload),
    /// An event this build does not know; skipped by readers.
    #[serde(rename = "unknown")]
    Unknown,
}

tolerant_deserialize!(PairEvent {
    "paired" => Paired,
    "pair_failed" => PairFailed,
});

impl std::fmt::Debug for PairEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PairEvent::Paired(p) => f.debug_tuple("Paired").field(p).finish(),
            PairEvent::PairFailed(p) => f.debug_tuple("PairFailed").field(p).finish(),
            PairEvent::Unknown => f.write_str("Unknown"),
        }
    }
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairedPayload {
    /// The agent's JWT: its credential towards the cloud and its Redis password.
    pub jwt: String,
    pub agent_id: AgentId,
    pub name: String,
    pub redis_username: String,
    /// base64url (no padding) of the cloud's raw 32-byte Ed25519 public key.
    pub cloud_public_key: String,
}

/// The JWT is a secret: never print it.
impl std::fmt::Debug for PairedPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairedPayload")
            .field("jwt", &"hidden")
            .field("agent_id", &self.agent_id)
            .field("name", &self.name)
            .field("redis_username", &self.redis_username)
            .field("cloud_public_key", &self.cloud_public_key)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairFailedPayload {
    /// Machine-readable: `expired`, `refused`, `plan_limit`, …
    pub reason: String,
    #[serde(default)]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid() -> SessionId {
        SessionId::parse("s1").unwrap()
    }

    #[test]
    fn command_round_trip_and_shape() {
        let ev = CommandEvent::Command(CommandPayload {
            session_id: sid(),
            prompt: "fix the tests".into(),
            r#continue: true,
            attachments: Vec::new(),
            mode: None,
            resume: None,
        });
        let json = serde_json::to_value(&ev).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"event": "command", "payload": {"sessionId": "s1", "prompt": "fix the tests", "continue": true}})
        );
        let back: CommandEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn unknown_events_and_fields_are_tolerated() {
        let ev: CommandEvent =
            serde_json::from_str(r#"{"event":"teleport","payload":{"to":"mars"}}"#).unwrap();
        assert_eq!(ev, CommandEvent::Unknown);
        let ev: OutputEvent = serde_json::from_str(r#"{"event":"sparkle"}"#).unwrap();
        assert_eq!(ev, OutputEvent::Unknown);
        let ev: OutputEvent = serde_json::from_str(
            r#"{"event":"chunk","payload":{"seq":3,"stream":"stdout","text":"hi","colour":"red"}}"#,
        )
        .unwrap();
        assert_eq!(
            ev,
            OutputEvent::Chunk(ChunkPayload {
                seq: 3,
                stream: StreamKind::Stdout,
                text: "hi".into()
            })
        );
    }

    #[test]
    fn malformed_is_an_error_not_a_panic() {
        assert!(serde_json::from_str::<CommandEvent>("{").is_err());
        assert!(serde_json::from_str::<CommandEvent>(r#"{"event":"command"}"#).is_err());
        assert!(
            serde_json::from_str::<CommandEvent>(
                r#"{"event":"command","payload":{"sessionId":"../x","prompt":"p"}}"#
            )
            .is_err()
        );
    }

    #[test]
    fn output_events_round_trip() {
        let events = vec![
            OutputEvent::Started(StartedPayload {
                session_id: sid(),
                agent_id: AgentId::parse("a1").unwrap(),
                runner: "claude".into(),
                started_at_ms: 5,
                mode: Some(crate::modes::Mode::Plan),
            }),
            OutputEvent::Chunk(ChunkPayload {
                seq: 0,
                stream: StreamKind::Stderr,
                text: "é".into(),
            }),
            OutputEvent::ApprovalRequest(ApprovalRequestPayload {
                request_id: "r".into(),
                tool: "Bash".into(),
                summary: "rm -rf target".into(),
                timeout_secs: 300,
                kind: None,
                danger: Some("force-pushes with git".into()),
                diff: Some("--- a/x\n+++ b/x\n".into()),
                cwd: Some("src".into()),
                rule: None,
            }),
            OutputEvent::ApprovalRequest(ApprovalRequestPayload {
                request_id: "q".into(),
                tool: "ExitPlanMode".into(),
                summary: "plan".into(),
                timeout_secs: 300,
                kind: Some(crate::questions::AskKind::Plan(crate::questions::PlanAsk {
                    plan: "1. read".into(),
                    cut_chars: 0,
                })),
                ..Default::default()
            }),
            OutputEvent::ApprovalResolved(ApprovalResolvedPayload {
                request_id: "r".into(),
                allow: false,
                reason: "no answer in 300 s".into(),
            }),
            OutputEvent::Notice(NoticePayload {
                text: "busy".into(),
            }),
            OutputEvent::Done(DonePayload {
                status: DoneStatus::Aborted,
                exit_code: None,
                duration_ms: 12,
                message: Some("aborted by user".into()),
                chunks: 1,
                withheld_bytes: 0,
                stopped_by: None,
                turns: None,
                cost_usd: None,
            }),
        ];
        for ev in events {
            let s = serde_json::to_string(&ev).unwrap();
            assert_eq!(serde_json::from_str::<OutputEvent>(&s).unwrap(), ev, "{s}");
        }
    }

    #[test]
    fn done_says_who_stopped_it_and_what_the_run_cost_leniently() {
        let done: DonePayload = serde_json::from_str(
            r#"{"status":"aborted","exitCode":null,"durationMs":5,"stoppedBy":"phone","turns":9,"costUsd":0.08734}"#,
        )
        .unwrap();
        assert_eq!(done.stopped_by, Some(StoppedBy::Phone));
        assert_eq!(done.turns, Some(9));
        assert_eq!(done.cost_usd, Usd::from_dollars(0.08734));
        let back = serde_json::to_value(&done).unwrap();
        assert_eq!(back["stoppedBy"], "phone");
        assert_eq!(back["costUsd"], 0.08734);
        // Absent, unknown or malformed: read as absent, the event still
        // reads (a `done` that cannot be read would never end its session).
        for extra in [
            "",
            r#","stoppedBy":"martians""#,
            r#","stoppedBy":7,"turns":"many","costUsd":-3"#,
            r#","costUsd":"free","turns":-1"#,
        ] {
            let json = format!(r#"{{"status":"aborted","exitCode":null,"durationMs":5{extra}}}"#);
            let done: DonePayload = serde_json::from_str(&json).unwrap();
            assert_eq!(
                (done.stopped_by, done.turns, done.cost_usd),
                (None, None, None),
                "{json}"
            );
            let shape = serde_json::to_value(&done).unwrap();
            assert!(shape.get("stoppedBy").is_none() && shape.get("costUsd").is_none());
        }
        assert_eq!(Usd::from_dollars(f64::NAN), None);
        assert_eq!(Usd::from_dollars(0.0).map(Usd::dollars), Some(0.0));
    }

    #[test]
    fn request_ids_fit_callback_data() {
        assert!(valid_request_id("r1"));
        assert!(valid_request_id("a-b_C9"));
        assert!(!valid_request_id(""));
        assert!(!valid_request_id("a:b"));
        assert!(!valid_request_id(&"x".repeat(MAX_REQUEST_ID_LEN + 1)));
        // Session ids are generated by the cloud: 32 hex digits.
        let longest = format!(
            "approve:{}:{}",
            SessionId::generate(),
            "r".repeat(MAX_REQUEST_ID_LEN)
        );
        assert!(longest.len() <= 64, "{}", longest.len());
    }

    #[test]
    fn paired_debug_hides_the_jwt() {
        let ev = PairEvent::Paired(PairedPayload {
            jwt: "secret.jwt.value".into(),
            agent_id: AgentId::parse("a1").unwrap(),
            name: "proj".into(),
            redis_username: "u".into(),
            cloud_public_key: "k".into(),
        });
        let dbg = format!("{ev:?}");
        assert!(!dbg.contains("secret.jwt.value"), "{dbg}");
        let s = serde_json::to_string(&ev).unwrap();
        assert_eq!(serde_json::from_str::<PairEvent>(&s).unwrap(), ev);
    }
}
