//! The part of Codex's app-server protocol the daemon speaks: JSON-RPC 2.0
//! over the server's stdin and stdout, one JSON object a line. Checked
//! against the schema the real server prints (`codex app-server
//! generate-json-schema`), kept in `tests/fixtures/codex-app/` with its
//! Codex version.
//!
//! Read leniently: the server's messages carry no `"jsonrpc"` member,
//! unknown fields are ignored and optional ones may be missing or `null`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

// The client's requests and notification.
pub const INITIALIZE: &str = "initialize";
pub const INITIALIZED: &str = "initialized";
pub const THREAD_START: &str = "thread/start";
pub const THREAD_RESUME: &str = "thread/resume";
pub const TURN_START: &str = "turn/start";

// The server's requests the daemon answers.
pub const COMMAND_APPROVAL: &str = "item/commandExecution/requestApproval";
pub const FILE_CHANGE_APPROVAL: &str = "item/fileChange/requestApproval";

// The server's notifications the daemon reads.
pub const THREAD_STARTED: &str = "thread/started";
pub const TURN_COMPLETED: &str = "turn/completed";
pub const ITEM_STARTED: &str = "item/started";
pub const ITEM_COMPLETED: &str = "item/completed";
pub const COMMAND_OUTPUT_DELTA: &str = "item/commandExecution/outputDelta";
pub const ERROR: &str = "error";

/// One line from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// The answer to one of our requests.
    Response {
        id: Value,
        result: Result<Value, RpcError>,
    },
    /// The server asks us (an approval).
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct RpcError {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: String,
}

impl Incoming {
    /// Reads one line; `None` for a line that is no JSON-RPC message.
    pub fn parse(line: &str) -> Option<Incoming> {
        let value: Value = serde_json::from_str(line.trim()).ok()?;
        let obj = value.as_object()?;
        let method = obj.get("method").and_then(Value::as_str);
        let params = obj.get("params").cloned().unwrap_or(Value::Null);
        match (obj.get("id"), method) {
            (Some(id), Some(method)) => Some(Incoming::Request {
                id: id.clone(),
                method: method.to_string(),
                params,
            }),
            (None, Some(method)) => Some(Incoming::Notification {
                method: method.to_string(),
                params,
            }),
            (Some(id), None) => {
                let result = match obj.get("error") {
                    Some(error) => Err(serde_json::from_value(error.clone()).unwrap_or(RpcError {
                        code: 0,
                        message: error.to_string(),
                    })),
                    None => Ok(obj.get("result").cloned().unwrap_or(Value::Null)),
                };
                Some(Incoming::Response {
                    id: id.clone(),
                    result,
                })
            }
            (None, None) => None,
        }
    }
}

/// A request of ours, as one line.
pub fn request(id: u64, method: &str, params: &impl Serialize) -> String {
    line(&serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
}

/// A notification of ours, as one line.
pub fn notification(method: &str) -> String {
    line(&serde_json::json!({"jsonrpc": "2.0", "method": method}))
}

/// Our answer to the server's request `id`, as one line.
pub fn response(id: &Value, result: &impl Serialize) -> String {
    line(&serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

fn line(value: &Value) -> String {
    let mut s = value.to_string();
    s.push('\n');
    s
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    pub client_info: ClientInfo,
}

impl InitializeParams {
    pub fn daemon() -> Self {
        InitializeParams {
            client_info: ClientInfo {
                name: "remoteagentd".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
        }
    }
}

/// `AskForApproval`: when Codex asks before a tool use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AskForApproval {
    /// Before every command except the few Codex trusts as read-only.
    Untrusted,
    OnRequest,
    Never,
}

/// `thread/start`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadStartParams {
    pub cwd: String,
    pub approval_policy: AskForApproval,
    /// `SandboxMode`: `read-only`, `workspace-write`, `danger-full-access`.
    pub sandbox: String,
}

/// `thread/resume`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadResumeParams {
    pub thread_id: String,
    pub cwd: String,
    pub approval_policy: AskForApproval,
    pub sandbox: String,
}

/// `thread/start`'s and `thread/resume`'s result, as far as we read it.
#[derive(Debug, Clone, Deserialize)]
pub struct ThreadResult {
    pub thread: ThreadRef,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ThreadRef {
    pub id: String,
}

/// `UserInput`: only text is sent.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum UserInput {
    Text { text: String },
}

/// `turn/start`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnStartParams {
    pub thread_id: String,
    pub input: Vec<UserInput>,
}

/// `item/commandExecution/requestApproval`'s params.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandApprovalParams {
    #[serde(default)]
    pub item_id: String,
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `item/fileChange/requestApproval`'s params: the files are those of the
/// `fileChange` item `item_id`, announced by `item/started` before.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileChangeApprovalParams {
    #[serde(default)]
    pub item_id: String,
    #[serde(default)]
    pub reason: Option<String>,
    /// Codex asks to write under this folder for the rest of the session.
    #[serde(default)]
    pub grant_root: Option<String>,
}

/// The two answers the daemon gives (`CommandExecutionApprovalDecision`,
/// `FileChangeApprovalDecision`); "for the session" is the daemon's rules'
/// business, not Codex's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ApprovalDecision {
    Accept,
    Decline,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApprovalResponse {
    pub decision: ApprovalDecision,
}

/// One file of a `fileChange` item (`FileUpdateChange`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct FileUpdate {
    pub path: String,
    #[serde(default)]
    pub kind: ChangeKind,
    #[serde(default)]
    pub diff: String,
}

impl FileUpdate {
    /// Where an update moves the file to, if it does.
    pub fn move_path(&self) -> Option<String> {
        self.kind.move_path.clone().filter(|p| !p.is_empty())
    }
}

/// `PatchChangeKind`: `add`, `delete`, `update` (with `move_path`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ChangeKind {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub move_path: Option<String>,
}

/// The files of `item` when it is a `fileChange` item.
pub fn file_changes(item: &Value) -> Option<(String, Vec<FileUpdate>)> {
    if item.get("type").and_then(Value::as_str) != Some("fileChange") {
        return None;
    }
    let id = item.get("id").and_then(Value::as_str)?.to_string();
    let changes = serde_json::from_value(item.get("changes")?.clone()).ok()?;
    Some((id, changes))
}

#[cfg(test)]
mod tests;
