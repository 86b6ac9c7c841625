//! One session: save the files that came with the prompt (`crate::inbox`),
//! spawn the runner, pump its output into the stream and the local log,
//! honour an abort, and finish with `done`.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use remoteagent_proto::events::{
    CommandPayload, DonePayload, DoneStatus, NoticePayload, OutputEvent, StartedPayload, StoppedBy,
    StreamKind,
};
use remoteagent_proto::runner::RunnerSpec;
use remoteagent_proto::{AgentId, names, now_ms};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::spec::AgentSettings;
use crate::approval::session::SessionApprovals;
use crate::output::{OutputError, OutputWriter};
use crate::redis_conn::SharedConn;
use crate::runner::format::OutputFormat;
use crate::runner::process::RunnerRecord;
use crate::runner::utf8::Utf8Stream;
use crate::runner::{Attached, Invocation, Running, command_line};
use crate::session_log::{self, SessionLog};
use crate::util::time::sleep_until_opt;

/// After the runner exits, how long its pipes may stay open (held by a
/// process it left behind) before the rest of its group is killed.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

pub struct SessionContext {
    pub conn: SharedConn,
    pub agent_id: AgentId,
    /// The agent's name, as the user types it in `remoteagentctl`.
    pub agent_name: String,
    pub path: PathBuf,
    pub runner: RunnerSpec,
    pub settings: Arc<AgentSettings>,
    pub command: CommandPayload,
    /// The agent's last conversation id, resumed when the command asks to
    /// continue.
    pub conversation: Option<String>,
    /// Where the files of the outbox go (`crate::files::outbox`).
    pub blobs: crate::files::BlobStore,
    /// This computer's name, for notices about files that stay on it.
    pub hostname: String,
    /// The run's mode after the clamp (`crate::approval::modes`); `None`
    /// for runners that take no modes.
    pub mode: Option<remoteagent_proto::modes::Mode>,
    /// Why the phone's mode was not taken, said after `started`.
    pub mode_notice: Option<String>,
    /// Where a runner the daemon talks to (Codex's app-server) puts its
    /// approval requests: the same session approvals as the hook's.
    pub asks: crate::approval::ApprovalSenders,
    /// The branch of the git worktree this run works in (`path` is the
    /// worktree's folder) because the agent was busy; `None` in the
    /// project folder. Said after `started` (`crate::worktrees`).
    pub worktree_branch: Option<String>,
}

/// How a session is told to stop, remembering who asked first (the
/// phone, the computer, a shutdown), so that its `done` can say so.
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    token: CancellationToken,
    by: Arc<OnceLock<StoppedBy>>,
}

impl StopSignal {
    /// Asks the session to stop; the first caller's `by` is kept.
    pub fn stop(&self, by: StoppedBy) {
        let _ = self.by.set(by);
        self.token.cancel();
    }

    /// Resolves once a stop was asked for.
    pub async fn requested(&self) {
        self.token.cancelled().await
    }

    /// Who asked first, once someone did.
    pub fn by(&self) -> Option<StoppedBy> {
        self.by.get().copied()
    }
}

/// What a finished session tells its agent.
#[derive(Debug, Default)]
pub struct SessionOutcome {
    /// The conversation id the runner reported, if any.
    pub conversation: Option<String>,
}

pub async fn run_session(
    ctx: SessionContext,
    mut approvals: SessionApprovals,
    abort: StopSignal,
    give_up: CancellationToken,
) -> SessionOutcome {
    let sid = ctx.command.session_id.clone();
    // Before anything of the session exists: files that fail their check
    // refuse the whole command, as the other refusals do.
    let attached = if ctx.command.attachments.is_empty() {
        None
    } else {
        // The files come over a connection of their own (see
        // `BlobStore::connection`), never the agent's shared link.
        let total: u64 = ctx.command.attachments.iter().map(|a| a.size).sum();
        let received = match ctx.blobs.connection(total).await {
            Ok(mut conn) => {
                crate::inbox::receive(
                    &mut conn,
                    &ctx.settings.inbox,
                    &ctx.agent_id,
                    &sid,
                    &ctx.command.attachments,
                )
                .await
            }
            Err(e) => Err(format!(
                "the files sent with the prompt could not be fetched (Redis: {e}); nothing ran"
            )),
        };
        match received {
            Ok(attached) => Some(attached),
            Err(refusal) => {
                super::admission::refuse(ctx.conn.clone(), &ctx.agent_id, &sid, refusal).await;
                return SessionOutcome::default();
            }
        }
    };
    let key = names::output_stream(&ctx.agent_id, &sid);
    let mut out = OutputWriter::new(ctx.conn.clone(), key, give_up.clone());
    let log_file = session_log::session_log_path(&ctx.settings.log_root, &ctx.agent_id, &sid);
    out.set_budget(
        ctx.settings.stream_budget,
        format!(
            "remoteagentctl logs {} --run {sid} (the file {})",
            ctx.agent_name,
            home_relative(&log_file, std::env::var_os("HOME").as_deref())
        ),
    );
    let runner_name = ctx.runner.display_name();
    // `logs -f` followers learn of this session and of each write.
    let mut log = SessionLog::create_announced(
        &ctx.settings.log_root,
        &ctx.agent_id,
        &sid,
        &runner_name,
        &ctx.command.prompt,
        Some(&ctx.settings.log_events),
    );
    log.limit(ctx.settings.log_limits.max_log_bytes);
    let mut format = OutputFormat::for_runner(&ctx.runner, &ctx.path);
    let started_at_ms = now_ms();
    // The working tree before the runner touches it (never stops the run).
    let mut checkpoint = crate::checkpoint::run::RunCheckpoint::before(
        ctx.path.clone(),
        ctx.agent_id.clone(),
        sid.clone(),
    )
    .await;
    checkpoint.worktree_branch = ctx.worktree_branch.clone();
    let pumped = pump(
        &ctx,
        attached.as_ref(),
        &mut out,
        &mut log,
        &mut format,
        &mut approvals,
        &abort,
    )
    .await;
    let outcome = SessionOutcome {
        conversation: format.conversation().map(str::to_string),
    };
    if let Some(conversation) = &outcome.conversation {
        // "This session" rules saved before the runner named its
        // conversation follow it to the next run that continues it.
        use crate::approval::rules::{conversation_key, run_key};
        ctx.settings.approval.rules.adopt(
            &ctx.agent_id,
            &run_key(&sid),
            &conversation_key(conversation),
        );
    }
    // Before the `done`: whoever sees the run end (`/sessions` right after
    // it) finds its session listed.
    remember_session(&ctx, &format, started_at_ms).await;
    let mut done = match pumped {
        Ok(done) => done,
        Err(e) => {
            // Only reachable when Redis stayed down through a shutdown: the
            // stream cannot be finished, the local log still can.
            // The local log gets a note but not its end record: the next
            // daemon start finds it unfinished and ends the stream then
            // (`agent/orphans.rs`).
            tracing::error!(error = %e, "session output could not be delivered");
            log.note("output could not be delivered: Redis unreachable; the stream is ended at the next start");
            return outcome;
        }
    };
    // Files the runner left for the chat go before the `done`.
    let outbox = crate::files::outbox::deliver(
        &ctx.path,
        &ctx.blobs,
        &ctx.hostname,
        &mut out,
        &mut log,
        &give_up,
    )
    .await;
    if let Err(e) = outbox {
        // As above: Redis stayed down through a shutdown.
        tracing::error!(error = %e, "the outbox could not be delivered");
        log.note("output could not be delivered: Redis unreachable; the stream is ended at the next start");
        return outcome;
    }
    // What the run changed, just before the `done` (the diff card).
    if let Err(e) = checkpoint_end(checkpoint, &mut out, &mut log).await {
        tracing::error!(error = %e, "the run's changes could not be delivered");
        log.note("output could not be delivered: Redis unreachable; the stream is ended at the next start");
        return outcome;
    }
    // What the runner said about its run (Claude Code: turns and cost).
    let stats = format.stats();
    done.turns = stats.turns;
    done.cost_usd = stats.cost_usd;
    // The stream's `done` first, the log's end record after: a daemon killed
    // between the two leaves a log that the next start sees as unfinished,
    // so the stream still gets its end (never the other way round).
    let status = done.status;
    match out.finish(done.clone()).await {
        Ok(()) => log.done(&done),
        Err(e) => {
            tracing::error!(error = %e, "could not publish the session's end");
            log.note(
                "the session's end could not be published; the stream is ended at the next start",
            );
        }
    }
    tracing::info!(
        status = status.as_str(),
        flushes = out.flushes,
        "session finished"
    );
    outcome
}

/// The run's `after` checkpoint: its notices and `changes` on the stream,
/// and a line in the log.
async fn checkpoint_end(
    checkpoint: crate::checkpoint::run::RunCheckpoint,
    out: &mut OutputWriter,
    log: &mut SessionLog,
) -> Result<(), OutputError> {
    let end = checkpoint.after().await;
    for text in end.notices {
        log.note(&text);
        out.event(OutputEvent::Notice(NoticePayload { text }))
            .await?;
    }
    if let Some(changes) = end.changes {
        log.note(&format!(
            "changed {} (+{} -{})",
            remoteagent_proto::text::plural::count(changes.files_total, "file", "files"),
            changes.added,
            changes.removed
        ));
        out.event(OutputEvent::Changes(changes)).await?;
    }
    Ok(())
}

async fn pump(
    ctx: &SessionContext,
    attached: Option<&Attached>,
    out: &mut OutputWriter,
    log: &mut SessionLog,
    format: &mut OutputFormat,
    approvals: &mut SessionApprovals,
    abort: &StopSignal,
) -> Result<DonePayload, OutputError> {
    let started = Instant::now();
    let elapsed = |started: Instant| started.elapsed().as_millis() as u64;
    out.event(OutputEvent::Started(StartedPayload {
        session_id: ctx.command.session_id.clone(),
        agent_id: ctx.agent_id.clone(),
        runner: ctx.runner.display_name(),
        started_at_ms: now_ms(),
        mode: ctx.mode,
    }))
    .await?;
    if let Some(text) = &ctx.mode_notice {
        out.event(OutputEvent::Notice(NoticePayload { text: text.clone() }))
            .await?;
    }
    if let Some(branch) = &ctx.worktree_branch {
        let text = crate::worktrees::running_notice(&ctx.agent_name, branch);
        out.event(OutputEvent::Notice(NoticePayload { text }))
            .await?;
    }
    prune_logs_in_background(ctx);

    let spawned = crate::approval::runner_mode(
        &ctx.settings.approval,
        &ctx.runner,
        &ctx.agent_id,
        &ctx.command.session_id,
        approvals.policy_kind(),
        approvals.timeout_secs(),
    )
    .map(|approval| crate::approval::modes::with_mode(approval, &ctx.runner, ctx.mode))
    .and_then(|approval| {
        let invocation = Invocation {
            prompt: &ctx.command.prompt,
            resume: crate::conversations::resume_for(&ctx.command, ctx.conversation.as_deref()),
            approval,
            hint: ctx
                .settings
                .outbox_hint
                .then_some(crate::files::outbox::HINT),
            attached,
        };
        tracing::debug!(resume = ?invocation.resume, "runner invocation");
        let (program, args) = command_line(&ctx.runner, &invocation)?;
        let sid = &ctx.command.session_id;
        match crate::runner::codex_app::Setup::for_run(&ctx.runner, &invocation, &ctx.path) {
            Some(setup) => crate::runner::codex_app::start(
                &program,
                &args,
                &ctx.path,
                sid,
                setup,
                ctx.asks.tool_asker(),
            ),
            None => Running::spawn(&program, &args, &ctx.path, sid),
        }
    });
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
                withheld_bytes: 0,
                stopped_by: None,
                turns: None,
                cost_usd: None,
            });
        }
    };
    let pgid = Pid::from_raw(running.pid());
    tracing::info!(pid = running.pid(), runner = %ctx.runner.display_name(), "runner started");
    // Read at once, while the runner is certainly alive and the pid its own.
    log.runner_started(&RunnerRecord::of(running.pid()));
    // After the runner record, which must stay the log's second line.
    for file in attached.iter().flat_map(|a| &a.files) {
        log.note(&format!("attached: {}", file.path.display()));
    }
    if let Some(text) = &ctx.mode_notice {
        log.note(text);
    }
    if let Some(branch) = &ctx.worktree_branch {
        log.note(&format!(
            "running in a git worktree on the branch {branch}: {}",
            ctx.path.display()
        ));
    }

    let mut stdout = Utf8Stream::new();
    let mut stderr = Utf8Stream::new();

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
                        StreamKind::Stdout => format.stdout(&stdout.push(&d.bytes)),
                        StreamKind::Stderr => format.stderr(&stderr.push(&d.bytes)),
                    };
                    log.output(&text);
                    relay_log_alert(log, out).await?;
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
            step = approvals.next() => approvals.handle(step, out, log).await?,
            _ = abort.requested(), if !aborted => {
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

    // Tails of the decoders (an incomplete character at end of file) and
    // of the renderer (a last line without a newline).
    let tail = format.stdout(&stdout.finish()) + &format.finish_stdout();
    log.output(&tail);
    relay_log_alert(log, out).await?;
    out.push_text(StreamKind::Stdout, &tail).await?;
    let err_tail = format.stderr(&stderr.finish());
    format.finish_stderr();
    log.output(&err_tail);
    relay_log_alert(log, out).await?;
    out.push_text(StreamKind::Stderr, &err_tail).await?;
    // Requests still waiting for the phone are denied, each with its
    // `approval_resolved`, before the `done`.
    approvals.end(out, log).await?;
    relay_log_alert(log, out).await?;

    let duration_ms = elapsed(started);
    let done = match exit {
        Some(Ok(status)) if aborted => DonePayload {
            status: DoneStatus::Aborted,
            exit_code: status.code(),
            duration_ms,
            message: Some("aborted".into()),
            chunks: 0,
            withheld_bytes: 0,
            stopped_by: abort.by(),
            turns: None,
            cost_usd: None,
        },
        Some(Ok(status)) if status.success() => DonePayload {
            status: DoneStatus::Ok,
            exit_code: Some(0),
            duration_ms,
            message: None,
            chunks: 0,
            withheld_bytes: 0,
            stopped_by: None,
            turns: None,
            cost_usd: None,
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
                withheld_bytes: 0,
                stopped_by: None,
                turns: None,
                cost_usd: None,
            }
        }
        Some(Err(e)) => DonePayload {
            status: DoneStatus::Error,
            exit_code: None,
            duration_ms,
            message: Some(format!("waiting for the runner failed: {e}")),
            chunks: 0,
            withheld_bytes: 0,
            stopped_by: None,
            turns: None,
            cost_usd: None,
        },
        None => DonePayload {
            status: DoneStatus::Error,
            exit_code: None,
            duration_ms,
            message: Some("the runner's end was not observed".into()),
            chunks: 0,
            withheld_bytes: 0,
            stopped_by: None,
            turns: None,
            cost_usd: None,
        },
    };
    let done = running.with_reported_failure(done);
    drop(running);
    Ok(done)
}

/// Adds this run to its session in the agent's list of sessions
/// (`crate::conversations`), on a blocking thread; a run that reported no
/// conversation adds nothing. A failure is logged: the run itself is done.
async fn remember_session(ctx: &SessionContext, format: &OutputFormat, started_at_ms: u64) {
    let Some(conversation) = format.conversation().map(str::to_string) else {
        return;
    };
    let history = ctx.settings.conversations.clone();
    let agent = ctx.agent_id.clone();
    let runner = ctx.runner.display_name();
    let prompt = ctx.command.prompt.clone();
    let stats = format.stats();
    let recorded = tokio::task::spawn_blocking(move || {
        history.record(
            &agent,
            crate::conversations::Run {
                conversation: &conversation,
                runner: &runner,
                prompt: &prompt,
                started_at_ms,
                stats,
            },
        )
    })
    .await;
    match recorded {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not keep the run in the list of sessions"),
        Err(e) => tracing::warn!(error = %e, "could not keep the run in the list of sessions"),
    }
}

/// Tells the user, in the stream, when the local log stopped keeping
/// output (its cap, a write error): it must never stop silently.
async fn relay_log_alert(log: &mut SessionLog, out: &mut OutputWriter) -> Result<(), OutputError> {
    match log.take_alert() {
        Some(text) => out.event(OutputEvent::Notice(NoticePayload { text })).await,
        None => Ok(()),
    }
}

/// Deletes old session logs ([`session_log::prune`]) and the inboxes of
/// the sessions whose log is gone ([`crate::inbox::prune`]) on a blocking
/// thread,
/// so that the session's start does not wait for the disk.
fn prune_logs_in_background(ctx: &SessionContext) {
    let root = ctx.settings.log_root.clone();
    let agent = ctx.agent_id.clone();
    let current = ctx.command.session_id.clone();
    let limits = ctx.settings.log_limits;
    let inbox_root = ctx.settings.inbox.root.clone();
    tokio::task::spawn_blocking(move || {
        session_log::prune(&root, &agent, &current, &limits);
        // An inbox goes with its session's log.
        crate::inbox::prune(&inbox_root, &root, &agent, &current);
    });
}

/// `path` with the `home` folder written `~`: the notice naming it is
/// shown in the chat, which need not learn the user's login name.
fn home_relative(path: &std::path::Path, home: Option<&std::ffi::OsStr>) -> String {
    let rest = home
        .filter(|h| !h.is_empty())
        .and_then(|h| path.strip_prefix(h).ok());
    match rest {
        Some(rest) => format!("~/{}", rest.display()),
        None => path.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::path::Path;

    #[test]
    fn the_log_file_is_named_from_the_home_folder() {
        let file = Path::new("/home/ann/.local/state/remoteagent/logs/a/s.log");
        assert_eq!(
            home_relative(file, Some(OsStr::new("/home/ann"))),
            "~/.local/state/remoteagent/logs/a/s.log"
        );
        assert_eq!(
            home_relative(file, Some(OsStr::new("/home/an"))),
            file.display().to_string()
        );
        assert_eq!(home_relative(file, None), file.display().to_string());
        assert_eq!(
            home_relative(file, Some(OsStr::new(""))),
            file.display().to_string()
        );
    }
}
