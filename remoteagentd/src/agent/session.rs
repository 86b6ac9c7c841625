//! One session: spawn the runner, pump its output into the stream and the
//! local log, honour an abort, and finish with `done`.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use redis::aio::ConnectionManager;
use remoteagent_proto::events::{
    CommandPayload, DonePayload, DoneStatus, OutputEvent, StartedPayload, StreamKind,
};
use remoteagent_proto::runner::{Preset, RunnerSpec};
use remoteagent_proto::{AgentId, names, now_ms};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{AgentSettings, sleep_until_opt};
use crate::output::{OutputError, OutputWriter};
use crate::runner::claude::ClaudeStream;
use crate::runner::utf8::Utf8Stream;
use crate::runner::{Running, command_line};
use crate::session_log::SessionLog;

/// After the runner exits, how long its pipes may stay open (held by a
/// process it left behind) before the rest of its group is killed.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

pub struct SessionContext {
    pub conn: ConnectionManager,
    pub agent_id: AgentId,
    pub path: PathBuf,
    pub runner: RunnerSpec,
    pub settings: Arc<AgentSettings>,
    pub command: CommandPayload,
}

pub async fn run_session(
    ctx: SessionContext,
    abort: CancellationToken,
    give_up: CancellationToken,
) {
    let sid = ctx.command.session_id.clone();
    let key = names::output_stream(&ctx.agent_id, &sid);
    let mut out = OutputWriter::new(ctx.conn.clone(), key, give_up);
    let runner_name = ctx.runner.display_name();
    let mut log = SessionLog::create(
        &ctx.settings.log_root,
        &ctx.agent_id,
        &sid,
        &runner_name,
        &ctx.command.prompt,
    );
    let started = Instant::now();
    let done = match pump(&ctx, &runner_name, &mut out, &mut log, &abort, started).await {
        Ok(done) => done,
        Err(e) => {
            // Only reachable when Redis stayed down through a shutdown: the
            // stream cannot be finished, the local log still can.
            tracing::error!(error = %e, "session output could not be delivered");
            let done = DonePayload {
                status: DoneStatus::Aborted,
                exit_code: None,
                duration_ms: started.elapsed().as_millis() as u64,
                message: Some("output could not be delivered: Redis unreachable".into()),
                chunks: out.chunks(),
            };
            log.done(&done);
            return;
        }
    };
    log.done(&done);
    let status = done.status;
    if let Err(e) = out.finish(done).await {
        tracing::error!(error = %e, "could not publish the session's end");
    }
    tracing::info!(
        status = status.as_str(),
        flushes = out.flushes,
        "session finished"
    );
}

async fn pump(
    ctx: &SessionContext,
    runner_name: &str,
    out: &mut OutputWriter,
    log: &mut SessionLog,
    abort: &CancellationToken,
    started: Instant,
) -> Result<DonePayload, OutputError> {
    let elapsed = |started: Instant| started.elapsed().as_millis() as u64;
    out.event(OutputEvent::Started(StartedPayload {
        session_id: ctx.command.session_id.clone(),
        agent_id: ctx.agent_id.clone(),
        runner: runner_name.to_string(),
        started_at_ms: now_ms(),
    }))
    .await?;

    let spawned = command_line(&ctx.runner, &ctx.command.prompt, ctx.command.r#continue)
        .and_then(|(program, args)| Running::spawn(&program, &args, &ctx.path));
    let (mut running, mut pipes) = match spawned {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "runner did not start");
            return Ok(DonePayload {
                status: DoneStatus::Error,
                exit_code: None,
                duration_ms: elapsed(started),
                message: Some(e.to_string()),
                chunks: 0,
            });
        }
    };
    let pgid = Pid::from_raw(running.pid());
    tracing::info!(pid = running.pid(), runner = runner_name, "runner started");

    let mut stdout = Utf8Stream::new();
    let mut stderr = Utf8Stream::new();
    let mut claude =
        matches!(ctx.runner, RunnerSpec::Preset(Preset::Claude)).then(ClaudeStream::new);

    let mut aborted = false;
    let mut kill_at: Option<Instant> = None;
    let mut exit: Option<std::io::Result<ExitStatus>> = None;
    let mut drain_until: Option<Instant> = None;
    let mut pipes_open = true;

    while pipes_open || exit.is_none() {
        tokio::select! {
            data = pipes.recv(), if pipes_open => match data {
                Some(d) => {
                    let text = match d.stream {
                        StreamKind::Stdout => {
                            let t = stdout.push(&d.bytes);
                            match claude.as_mut() {
                                Some(c) => c.push(&t),
                                None => t,
                            }
                        }
                        StreamKind::Stderr => stderr.push(&d.bytes),
                    };
                    log.output(&text);
                    out.push_text(d.stream, &text).await?;
                }
                None => pipes_open = false,
            },
            status = running.wait(), if exit.is_none() => {
                exit = Some(status);
                drain_until = Some(Instant::now() + DRAIN_AFTER_EXIT);
            }
            _ = sleep_until_opt(drain_until), if pipes_open && drain_until.is_some() => {
                // The runner exited but something it started still holds
                // the pipes: end it with the session.
                let _ = killpg(pgid, Signal::SIGKILL);
                pipes_open = false;
            }
            _ = sleep_until_opt(out.deadline()) => out.flush().await?,
            _ = abort.cancelled(), if !aborted => {
                aborted = true;
                tracing::info!(grace = ?ctx.settings.abort_grace, "aborting the runner: SIGTERM to its group");
                let _ = killpg(pgid, Signal::SIGTERM);
                kill_at = Some(Instant::now() + ctx.settings.abort_grace);
            }
            _ = sleep_until_opt(kill_at) => {
                tracing::info!("runner outlived the grace period: SIGKILL to its group");
                let _ = killpg(pgid, Signal::SIGKILL);
                kill_at = None;
            }
        }
    }

    // Tails of the decoders (an incomplete character at end of file).
    let mut tail = stdout.finish();
    if let Some(c) = claude.as_mut() {
        tail = c.push(&tail) + &c.finish();
    }
    log.output(&tail);
    out.push_text(StreamKind::Stdout, &tail).await?;
    let err_tail = stderr.finish();
    log.output(&err_tail);
    out.push_text(StreamKind::Stderr, &err_tail).await?;

    let duration_ms = elapsed(started);
    let done = match exit {
        Some(Ok(status)) if aborted => DonePayload {
            status: DoneStatus::Aborted,
            exit_code: status.code(),
            duration_ms,
            message: Some("aborted".into()),
            chunks: 0,
        },
        Some(Ok(status)) if status.success() => DonePayload {
            status: DoneStatus::Ok,
            exit_code: Some(0),
            duration_ms,
            message: None,
            chunks: 0,
        },
        Some(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            let message = status.signal().map(|s| format!("killed by signal {s}"));
            DonePayload {
                status: DoneStatus::Failed,
                exit_code: status.code(),
                duration_ms,
                message,
                chunks: 0,
            }
        }
        Some(Err(e)) => DonePayload {
            status: DoneStatus::Error,
            exit_code: None,
            duration_ms,
            message: Some(format!("waiting for the runner failed: {e}")),
            chunks: 0,
        },
        None => DonePayload {
            status: DoneStatus::Error,
            exit_code: None,
            duration_ms,
            message: Some("the runner's end was not observed".into()),
            chunks: 0,
        },
    };
    drop(running);
    Ok(done)
}
