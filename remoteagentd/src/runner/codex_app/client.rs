//! The daemon's end of one `codex app-server`: it writes our requests to
//! the server's stdin and reads its stdout, line by line.
//!
//! The conversation: `initialize`, `initialized`, `thread/start` (or
//! `thread/resume` with the session's thread id), then `turn/start` with
//! the prompt. Every notification is handed on to the session's pipe as
//! `{"type": method, "params": …}`, which [`super::render`] makes readable;
//! the server's approval requests go to the session's approvals
//! ([`crate::approval::ApprovalSenders::ask`]), the same path as Claude
//! Code's hook, and their decision is sent back. At `turn/completed` the
//! server's stdin is closed, so it exits; one that does not is ended with
//! its process group after [`EXIT_GRACE`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use remoteagent_proto::events::StreamKind;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use super::ToolAsker;
use super::protocol::{self as p, Incoming};
use crate::runner::PipeData;
use crate::runner::text::{MAX_LINE, valid_conversation_id};

/// How long the server may take to exit once its stdin is closed.
pub const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Our requests' ids.
const ID_INITIALIZE: u64 = 1;
const ID_THREAD: u64 = 2;
const ID_TURN: u64 = 3;

/// Kinds of the lines the client itself hands the renderer.
pub const FAILED: &str = "remoteagentd/failed";
pub const NOTE: &str = "remoteagentd/note";

/// What one run asks of the server.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The prompt as Codex gets it (hint and attached files included).
    pub prompt: String,
    /// The project folder.
    pub cwd: PathBuf,
    /// The thread to resume; `None` starts a new one.
    pub resume: Option<String>,
    /// Said when the user wanted to continue but no thread id is known.
    pub fresh_note: Option<String>,
    /// `SandboxMode`.
    pub sandbox: String,
    pub approval_policy: p::AskForApproval,
}

/// Lines to the server's stdin.
enum Write {
    Line(String),
    /// Close stdin: the server exits.
    Close,
}

/// The server's pipes, and where what it says goes.
pub struct Pipes {
    pub stdin: ChildStdin,
    pub stdout: ChildStdout,
    /// The session's pipe.
    pub out: mpsc::Sender<PipeData>,
}

/// Runs the conversation until the server's stdout ends; a failed turn or
/// conversation is reported in `failure` (the run's `done` says it).
pub async fn run(
    setup: Setup,
    pipes: Pipes,
    asks: ToolAsker,
    pgid: Pid,
    failure: Arc<OnceLock<String>>,
) {
    let Pipes { stdin, stdout, out } = pipes;
    let (writes, writes_rx) = mpsc::unbounded_channel();
    tokio::spawn(write_lines(stdin, writes_rx));
    let mut client = Client {
        setup,
        out,
        writes,
        asks,
        pgid,
        changes: HashMap::new(),
        thread: None,
        failure,
    };
    client.send(p::request(
        ID_INITIALIZE,
        p::INITIALIZE,
        &p::InitializeParams::daemon(),
    ));
    let mut lines = FramedRead::new(stdout, LinesCodec::new_with_max_length(MAX_LINE));
    while let Some(line) = lines.next().await {
        match line {
            Ok(line) => {
                if !client.on_line(&line).await {
                    break;
                }
            }
            Err(LinesCodecError::MaxLineLengthExceeded) => {
                tracing::warn!("codex app-server wrote a line too long to read; skipped");
            }
            Err(LinesCodecError::Io(e)) => {
                tracing::warn!(error = %e, "reading codex app-server's output failed");
                break;
            }
        }
    }
}

struct Client {
    setup: Setup,
    out: mpsc::Sender<PipeData>,
    writes: mpsc::UnboundedSender<Write>,
    asks: ToolAsker,
    pgid: Pid,
    /// The files of each `fileChange` item, by item id, for its approval.
    changes: HashMap<String, Vec<p::FileUpdate>>,
    thread: Option<String>,
    failure: Arc<OnceLock<String>>,
}

impl Client {
    fn send(&self, line: String) {
        let _ = self.writes.send(Write::Line(line));
    }

    /// Hands the renderer one event; false when the session stopped reading.
    async fn emit(&self, kind: &str, params: Value) -> bool {
        let mut line = json!({"type": kind, "params": params}).to_string();
        line.push('\n');
        self.out
            .send(PipeData {
                stream: StreamKind::Stdout,
                bytes: line.into_bytes(),
            })
            .await
            .is_ok()
    }

    /// Ends the conversation: stdin closed, the group ended if the server
    /// stays.
    fn close(&self) {
        let _ = self.writes.send(Write::Close);
        let pgid = self.pgid;
        tokio::spawn(async move {
            tokio::time::sleep(EXIT_GRACE).await;
            // ESRCH when it already exited: the normal case.
            let _ = killpg(pgid, Signal::SIGTERM);
        });
    }

    /// Says why the run cannot go on and ends it.
    async fn fail(&self, message: String) -> bool {
        tracing::warn!(%message, "codex app-server conversation failed");
        let _ = self.failure.set(message.clone());
        let alive = self.emit(FAILED, json!({ "message": message })).await;
        self.close();
        alive
    }

    /// One line of the server's; false once nobody reads the output.
    async fn on_line(&mut self, line: &str) -> bool {
        if line.trim().is_empty() {
            return true;
        }
        match Incoming::parse(line) {
            Some(Incoming::Response { id, result }) => self.on_response(&id, result).await,
            Some(Incoming::Request { id, method, params }) => {
                self.on_request(id, &method, params);
                true
            }
            Some(Incoming::Notification { method, params }) => {
                if method == p::ITEM_STARTED
                    && let Some((id, changes)) = params.get("item").and_then(p::file_changes)
                {
                    self.changes.insert(id, changes);
                }
                if method == p::TURN_COMPLETED
                    && let Some(why) = turn_failure(&params)
                {
                    let _ = self.failure.set(why);
                }
                let alive = self.emit(&method, params).await;
                if method == p::TURN_COMPLETED {
                    self.close();
                }
                alive
            }
            // Not ours to read: shown as it came.
            None => {
                let mut text = line.to_string();
                text.push('\n');
                self.out
                    .send(PipeData {
                        stream: StreamKind::Stdout,
                        bytes: text.into_bytes(),
                    })
                    .await
                    .is_ok()
            }
        }
    }

    async fn on_response(&mut self, id: &Value, result: Result<Value, p::RpcError>) -> bool {
        let id = id.as_u64();
        let result = match result {
            Ok(result) => result,
            // The thread is gone (deleted, another CODEX_HOME): the prompt
            // still runs, in a new thread, and the user is told.
            Err(error) if id == Some(ID_THREAD) && self.setup.resume.is_some() => {
                tracing::info!(error = %error.message, "codex could not resume the thread; starting a new one");
                self.setup.resume = None;
                self.setup.fresh_note = Some(format!(
                    "(the earlier Codex session could not be continued: {}; this starts a new one)",
                    error.message
                ));
                return self.start_thread().await;
            }
            Err(error) => {
                let what = match id {
                    Some(ID_INITIALIZE) => "Codex did not start its session",
                    Some(ID_THREAD) => "Codex could not start a session",
                    _ => "Codex refused the prompt",
                };
                return self.fail(format!("{what}: {}", error.message)).await;
            }
        };
        match id {
            Some(ID_INITIALIZE) => {
                self.send(p::notification(p::INITIALIZED));
                self.start_thread().await
            }
            Some(ID_THREAD) => {
                let thread = serde_json::from_value::<p::ThreadResult>(result)
                    .ok()
                    .map(|r| r.thread.id)
                    .filter(|id| valid_conversation_id(id));
                let Some(thread) = thread else {
                    return self
                        .fail("Codex answered without a usable session id".into())
                        .await;
                };
                let alive = self
                    .emit(p::THREAD_STARTED, json!({"thread": {"id": thread}}))
                    .await;
                self.send(p::request(
                    ID_TURN,
                    p::TURN_START,
                    &p::TurnStartParams {
                        thread_id: thread.clone(),
                        input: vec![p::UserInput::Text {
                            text: self.setup.prompt.clone(),
                        }],
                    },
                ));
                self.thread = Some(thread);
                alive
            }
            _ => true,
        }
    }

    async fn start_thread(&mut self) -> bool {
        let cwd = self.setup.cwd.display().to_string();
        let sandbox = self.setup.sandbox.clone();
        let policy = self.setup.approval_policy;
        match self.setup.resume.clone() {
            Some(thread_id) => self.send(p::request(
                ID_THREAD,
                p::THREAD_RESUME,
                &p::ThreadResumeParams {
                    thread_id,
                    cwd,
                    approval_policy: policy,
                    sandbox,
                },
            )),
            None => {
                if let Some(text) = self.setup.fresh_note.clone()
                    && !self.emit(NOTE, json!({ "text": text })).await
                {
                    return false;
                }
                self.send(p::request(
                    ID_THREAD,
                    p::THREAD_START,
                    &p::ThreadStartParams {
                        cwd,
                        approval_policy: policy,
                        sandbox,
                    },
                ))
            }
        }
        true
    }

    /// Approvals go to the session, each answered when decided; requests
    /// the daemon cannot answer get a JSON-RPC error, so the server does
    /// not wait for nothing.
    fn on_request(&mut self, id: Value, method: &str, params: Value) {
        let asks: Vec<(String, Value)> = match method {
            p::COMMAND_APPROVAL => match serde_json::from_value::<p::CommandApprovalParams>(params)
            {
                Ok(req) => vec![command_ask(&req, &self.setup.cwd)],
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable command approval from codex: declined");
                    Vec::new()
                }
            },
            p::FILE_CHANGE_APPROVAL => {
                match serde_json::from_value::<p::FileChangeApprovalParams>(params) {
                    Ok(req) => {
                        let changes = self.changes.get(&req.item_id).cloned().unwrap_or_default();
                        file_asks(&req, &changes, &self.setup.cwd)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "unreadable file change approval from codex: declined");
                        Vec::new()
                    }
                }
            }
            other => {
                tracing::info!(method = %other, "codex asked something the daemon does not answer");
                let mut line = json!({
                    "jsonrpc": "2.0",
                    "id": id,
                    "error": {"code": -32601, "message": format!("remoteagentd does not answer {other}")},
                })
                .to_string();
                line.push('\n');
                self.send(line);
                return;
            }
        };
        let asker = self.asks.clone();
        let writes = self.writes.clone();
        tokio::spawn(async move {
            let decision = decide(&asker, asks).await;
            let answer = p::ApprovalResponse {
                decision: if decision {
                    p::ApprovalDecision::Accept
                } else {
                    p::ApprovalDecision::Decline
                },
            };
            let _ = writes.send(Write::Line(p::response(&id, &answer)));
        });
    }
}

/// Why a completed turn failed, if it did.
fn turn_failure(params: &Value) -> Option<String> {
    match params.pointer("/turn/status").and_then(Value::as_str)? {
        "failed" => Some(
            params
                .pointer("/turn/error/message")
                .and_then(Value::as_str)
                .map(|m| format!("Codex's turn failed: {}", m.trim()))
                .unwrap_or_else(|| "Codex's turn failed".into()),
        ),
        "interrupted" => Some("Codex's turn was interrupted".into()),
        _ => None,
    }
}

/// Asks each tool use in turn; true only when every one is allowed. An
/// empty list (a request that could not be read) is declined.
async fn decide(asker: &ToolAsker, asks: Vec<(String, Value)>) -> bool {
    if asks.is_empty() {
        return false;
    }
    for (tool, input) in asks {
        // A command's folder travels as Claude's hook sends it, so the
        // danger checks and the request show it the same way.
        let cwd = input.get("cwd").and_then(Value::as_str).map(str::to_string);
        if !asker(tool, input, cwd).await {
            return false;
        }
    }
    true
}

/// A command approval as the hook's `Bash` tool use.
pub fn command_ask(req: &p::CommandApprovalParams, project: &Path) -> (String, Value) {
    let command = req.command.as_deref().unwrap_or("");
    let command = super::super::codex::unwrap_shell(command);
    let cwd = req
        .cwd
        .clone()
        .unwrap_or_else(|| project.display().to_string());
    ("Bash".into(), json!({"command": command, "cwd": cwd}))
}

/// A file change approval as the hook's `Write` (a new file) or `Edit`
/// (a change, a deletion, a move: both paths) tool uses, one per file, with
/// absolute paths and the unified diff.
pub fn file_asks(
    req: &p::FileChangeApprovalParams,
    changes: &[p::FileUpdate],
    project: &Path,
) -> Vec<(String, Value)> {
    let abs = |path: &str| project.join(path).display().to_string();
    let mut asks = Vec::new();
    for change in changes {
        let tool = if change.kind.kind == "add" {
            "Write"
        } else {
            "Edit"
        };
        asks.push((
            tool.to_string(),
            json!({"file_path": abs(&change.path), "diff": change.diff}),
        ));
        if let Some(to) = change.move_path() {
            asks.push((
                "Write".into(),
                json!({"file_path": abs(&to), "diff": change.diff}),
            ));
        }
    }
    // Writes under a whole folder for the rest of the session: asked as
    // such, never granted silently.
    if let Some(root) = &req.grant_root {
        asks.push((
            "Write".into(),
            json!({"file_path": abs(&format!("{}/**", root.trim_end_matches('/')))}),
        ));
    }
    asks
}

async fn write_lines(mut stdin: ChildStdin, mut writes: mpsc::UnboundedReceiver<Write>) {
    while let Some(write) = writes.recv().await {
        match write {
            Write::Line(line) => {
                let written = async {
                    stdin.write_all(line.as_bytes()).await?;
                    stdin.flush().await
                }
                .await;
                if let Err(e) = written {
                    tracing::info!(error = %e, "codex app-server's stdin is closed");
                    return;
                }
            }
            Write::Close => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_approval_is_a_bash_tool_use() {
        let req: p::CommandApprovalParams = serde_json::from_value(json!({
            "itemId": "i1", "threadId": "t", "turnId": "u", "startedAtMs": 1,
            "command": "bash -lc 'cargo test -p x'", "cwd": "/p/sub", "future": true
        }))
        .unwrap();
        assert_eq!(
            command_ask(&req, Path::new("/p")),
            (
                "Bash".to_string(),
                json!({"command": "cargo test -p x", "cwd": "/p/sub"})
            )
        );
        let bare: p::CommandApprovalParams =
            serde_json::from_value(json!({"itemId": "i1", "command": null})).unwrap();
        assert_eq!(command_ask(&bare, Path::new("/p")).1["cwd"], "/p");
    }

    #[test]
    fn file_changes_are_edits_and_writes_with_absolute_paths() {
        let req: p::FileChangeApprovalParams =
            serde_json::from_value(json!({"itemId": "f1", "grantRoot": null})).unwrap();
        let changes: Vec<p::FileUpdate> = serde_json::from_value(json!([
            {"path": "src/main.rs", "kind": {"type": "update", "move_path": null}, "diff": "@@"},
            {"path": "/p/new.txt", "kind": {"type": "add"}, "diff": "+x"},
            {"path": "old.rs", "kind": {"type": "update", "move_path": "new.rs"}, "diff": ""},
        ]))
        .unwrap();
        let asks = file_asks(&req, &changes, Path::new("/p"));
        let shown: Vec<(&str, &str)> = asks
            .iter()
            .map(|(t, i)| (t.as_str(), i["file_path"].as_str().unwrap()))
            .collect();
        assert_eq!(
            shown,
            [
                ("Edit", "/p/src/main.rs"),
                ("Write", "/p/new.txt"),
                ("Edit", "/p/old.rs"),
                ("Write", "/p/new.rs")
            ]
        );
        assert_eq!(asks[0].1["diff"], "@@");
    }
}
