//! Codex through `codex app-server` (the `codex` preset): unlike `codex
//! exec`, it asks before running a command or changing files, and those
//! questions take the same path as Claude Code's hook — the project's
//! policy, its rules, the phone's buttons (see [`crate::approval`]).
//!
//! - [`protocol`]: the JSON-RPC messages, checked against the schema of a
//!   real Codex (`tests/fixtures/codex-app/`);
//! - [`client`]: the conversation with one server (start or resume the
//!   thread, the turn, the approvals, the end);
//! - [`render`]: its notifications as readable text.
//!
//! Codex is always started with `approvalPolicy: untrusted` (it asks before
//! every command it does not know to be read-only) and the sandbox of the
//! run's mode, so the daemon's policy decides what runs.

pub mod client;
pub mod protocol;
pub mod render;

use std::path::Path;

use remoteagent_proto::SessionId;
use remoteagent_proto::runner::{Preset, RunnerSpec};
use tokio::sync::mpsc;

use super::invocation::{ApprovalMode, Invocation, Resume, Sandbox};
use super::{PipeData, RunnerError, Running};
pub use client::Setup;

/// Said when the user continues but no earlier Codex session is known.
const NO_THREAD_YET: &str =
    "(no earlier Codex session of this project is known; this starts a new one)";

impl Setup {
    /// What a run of `runner` asks of the app-server; `None` for the other
    /// runners.
    pub fn for_run(
        runner: &RunnerSpec,
        invocation: &Invocation<'_>,
        project: &Path,
    ) -> Option<Setup> {
        if *runner != RunnerSpec::Preset(Preset::Codex) {
            return None;
        }
        let (resume, fresh_note) = match invocation.resume {
            Resume::Fresh => (None, None),
            Resume::Latest => (None, Some(NO_THREAD_YET.to_string())),
            Resume::Id(id) => (Some(id.to_string()), None),
        };
        let sandbox = match invocation.approval {
            ApprovalMode::Sandbox(sandbox) => sandbox,
            _ => Sandbox::WorkspaceWrite,
        };
        Some(Setup {
            prompt: super::invocation::runner_prompt(runner, invocation),
            cwd: project.to_path_buf(),
            resume,
            fresh_note,
            sandbox: sandbox.codex_name().to_string(),
            approval_policy: protocol::AskForApproval::Untrusted,
        })
    }
}

/// Who decides a tool use Codex asks about: given the tool, its input and
/// its folder, resolves to whether it is allowed. The session's approvals
/// (`crate::approval::ApprovalSenders::tool_asker`) — the same policy,
/// rules and phone buttons as Claude's hook. A function rather than the
/// approval types, so the runner does not depend on `approval`.
pub type ToolAsker = std::sync::Arc<
    dyn Fn(
            String,
            serde_json::Value,
            Option<String>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>
        + Send
        + Sync,
>;

/// Starts `program args` (`codex app-server`) in `cwd` and the conversation
/// with it; the rendered-to-be events arrive on the receiver like any
/// runner's output.
pub fn start(
    program: &str,
    args: &[String],
    cwd: &Path,
    session: &SessionId,
    setup: Setup,
    asks: ToolAsker,
) -> Result<(Running, mpsc::Receiver<PipeData>), RunnerError> {
    let (running, rx, talk) = Running::spawn_talking(program, args, cwd, session)?;
    let pgid = nix::unistd::Pid::from_raw(running.pid());
    tokio::spawn(client::run(
        setup,
        client::Pipes {
            stdin: talk.stdin,
            stdout: talk.stdout,
            out: talk.out,
        },
        asks,
        pgid,
        running.failure_cell(),
    ));
    Ok((running, rx))
}
