//! `remoteagentctl diff|undo|commit NAME [--session ID]`: what the diff
//! card's buttons do, from the computer, on the agent's last run with a
//! checkpoint or the one named. The daemon does the work (the same code
//! as the phone's); this prints its answer.

use remoteagent_proto::SessionId;
use remoteagent_proto::checkpoints::{CheckpointAction, CheckpointResult};
use remoteagent_proto::control::{CheckpointRequest, Request, Response};

use super::{print_json, print_line, shown};
use crate::client::Client;
use crate::error::CliError;

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// Agent name or id prefix.
    pub agent: String,
    /// The run (default: the agent's last run with a checkpoint).
    #[arg(long)]
    pub session: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct UndoArgs {
    /// Agent name or id prefix.
    pub agent: String,
    /// The run (default: the agent's last run with a checkpoint).
    #[arg(long)]
    pub session: Option<String>,
    /// Restore the run's files even those changed again since the run.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct CommitArgs {
    /// Agent name or id prefix.
    pub agent: String,
    /// The run (default: the agent's last run with a checkpoint).
    #[arg(long)]
    pub session: Option<String>,
    /// The commit message (default: proposed from the prompt and the
    /// run's summary).
    #[arg(short, long)]
    pub message: Option<String>,
    /// Commit on a new branch ra/NAME/RUN instead of the current one, and
    /// put the run's files back as they were before it.
    #[arg(long)]
    pub branch: bool,
}

fn run_id(session: Option<String>) -> Result<Option<SessionId>, CliError> {
    session
        .map(|s| SessionId::parse(s).map_err(|e| CliError::new(2, format!("--session: {e}"))))
        .transpose()
}

async fn call(
    client: &mut Client,
    agent: String,
    session: Option<SessionId>,
    action: CheckpointAction,
) -> Result<
    (
        String,
        SessionId,
        CheckpointResult,
        Option<String>,
        Option<SessionId>,
    ),
    CliError,
> {
    match client
        .call(Request::Checkpoint(CheckpointRequest {
            agent,
            session,
            action,
        }))
        .await?
    {
        Response::Checkpoint {
            agent_name,
            run,
            result,
            diff,
            recorded_as,
        } => Ok((agent_name, run, result, diff, recorded_as)),
        other => Err(CliError::error(format!("unexpected answer: {other:?}"))),
    }
}

pub async fn diff(client: &mut Client, args: DiffArgs, json: bool) -> Result<(), CliError> {
    let session = run_id(args.session)?;
    let (_, run, result, diff, _) = call(
        client,
        args.agent,
        session,
        CheckpointAction::Diff { file: None },
    )
    .await?;
    if json {
        return print_json(&serde_json::json!({ "run": run, "result": result, "diff": diff }));
    }
    failed(&result)?;
    // The diff is the project's text: each line cleaned for the terminal.
    for line in diff.unwrap_or_default().lines() {
        print_line(&shown(line))?;
    }
    Ok(())
}

pub async fn undo(client: &mut Client, args: UndoArgs, json: bool) -> Result<(), CliError> {
    let session = run_id(args.session)?;
    let (name, run, result, _, recorded_as) = call(
        client,
        args.agent.clone(),
        session,
        CheckpointAction::Undo { force: args.force },
    )
    .await?;
    if json {
        return print_json(
            &serde_json::json!({ "run": run, "result": result, "recordedAs": recorded_as }),
        );
    }
    failed(&result)?;
    match result {
        CheckpointResult::Undone { restored } => {
            print_line(&format!(
                "Restored {} as they were before the run of {}:",
                remoteagent_proto::text::plural::count(restored.len() as u64, "file", "files"),
                shown(&name)
            ))?;
            for p in &restored {
                print_line(&format!("  {}", shown(p)))?;
            }
            if let Some(id) = recorded_as {
                print_line(&format!(
                    "To put them back: remoteagentctl undo {} --session {id}",
                    shown(&args.agent)
                ))?;
            }
            Ok(())
        }
        CheckpointResult::UndoRefused { changed_since } => Err(CliError::error(format!(
            "nothing was restored: these files changed again since the run: {} (--force restores them anyway)",
            changed_since
                .iter()
                .map(|p| shown(p))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        other => Err(CliError::error(format!("unexpected answer: {other:?}"))),
    }
}

pub async fn commit(client: &mut Client, args: CommitArgs, json: bool) -> Result<(), CliError> {
    let session = run_id(args.session)?;
    let (session, message) = match args.message {
        Some(m) => (session, m),
        None => {
            let (_, run, result, _, _) = call(
                client,
                args.agent.clone(),
                session,
                CheckpointAction::ProposeCommit,
            )
            .await?;
            failed(&result)?;
            match result {
                CheckpointResult::CommitProposal { message } => (Some(run), message),
                other => return Err(CliError::error(format!("unexpected answer: {other:?}"))),
            }
        }
    };
    let action = if args.branch {
        CheckpointAction::Branch { message }
    } else {
        CheckpointAction::Commit { message }
    };
    let (_, run, result, _, _) = call(client, args.agent, session, action).await?;
    if json {
        return print_json(&serde_json::json!({ "run": run, "result": result }));
    }
    failed(&result)?;
    match result {
        CheckpointResult::Committed {
            commit,
            branch,
            files,
        } => print_line(&format!(
            "Committed {} as {} on {} (not pushed).",
            remoteagent_proto::text::plural::count(files, "file", "files"),
            shown(&commit),
            shown(&branch)
        )),
        other => Err(CliError::error(format!("unexpected answer: {other:?}"))),
    }
}

fn failed(result: &CheckpointResult) -> Result<(), CliError> {
    match result {
        CheckpointResult::Failed { message } => Err(CliError::error(shown(message))),
        _ => Ok(()),
    }
}
