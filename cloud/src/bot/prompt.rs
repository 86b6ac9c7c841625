//! Plain text: a prompt for the user's current agent.
//!
//! Order matters: the session row and the forwarder's record of the session
//! (its task reads the output stream from the beginning) come before the
//! command is published, so no output can be missed. The placeholder is
//! sent by the forwarder's task meanwhile: the command does not wait for a
//! round trip to Telegram (nor for the outbox's pacing).

use remoteagent_proto::events::{CommandEvent, CommandPayload, DoneStatus, MAX_PROMPT_BYTES};
use remoteagent_proto::{AgentId, SessionId};

use super::{Ctx, attachments, queue};
use crate::commands;
use crate::db::{agents, sessions, users};
use crate::error::{Error, Result};
use crate::forwarder::SessionStart;
use crate::metrics::Metrics;
use crate::telegram::escape_html;

/// Whether `text` can be a prompt; if not, the user has been told why
/// (or it was blank).
async fn acceptable(ctx: &Ctx<'_>, text: &str) -> bool {
    if text.trim().is_empty() {
        return false;
    }
    if text.len() > MAX_PROMPT_BYTES {
        ctx.reply(format!(
            "That prompt is too long ({} KiB); the limit is {} KiB. Please shorten it.",
            text.len().div_ceil(1024),
            MAX_PROMPT_BYTES / 1024
        ))
        .await;
        return false;
    }
    true
}

/// The sender's user row; `None` for a stranger (no user row: nothing was
/// ever paired from this account), who has been told how to pair.
///
/// Strangers are remembered briefly, so that a flood of their text costs
/// no database query per message, and the help is queued once per chat
/// however many messages come before it goes out.
pub async fn known_user(ctx: &Ctx<'_>) -> Result<Option<users::User>> {
    let state = ctx.state;
    if state.unknown_users.contains(ctx.user) {
        ctx.reply_once(super::NO_AGENTS).await;
        return Ok(None);
    }
    let Some(user) = users::get(&state.db, ctx.user).await? else {
        state.unknown_users.insert(ctx.user);
        ctx.reply_once(super::NO_AGENTS).await;
        return Ok(None);
    };
    Ok(Some(user))
}

/// A prompt in the user's private chat, for their current agent.
pub async fn run(ctx: &Ctx<'_>, text: &str) -> Result<()> {
    match known_user(ctx).await? {
        Some(user) => run_as(ctx, &user, text).await,
        None => Ok(()),
    }
}

/// [`run`] for a sender known to be `user`.
pub async fn run_as(ctx: &Ctx<'_>, user: &users::User, text: &str) -> Result<()> {
    let state = ctx.state;
    if !acceptable(ctx, text).await {
        return Ok(());
    }
    // In an agent's topic, the prompt is that agent's.
    if let Some(agent) = super::topics::topic_agent(ctx).await? {
        return publish(ctx, user, agent, text, Origin::Typed).await;
    }
    // The user's current agent, read directly in the usual case (it is
    // theirs and active); anything else goes the long way, which explains
    // the problem to the user.
    let current = match user.current_agent.as_ref() {
        Some(id) => agents::get(&state.db, id)
            .await?
            .filter(|a| a.owner == ctx.user && a.is_active()),
        None => None,
    };
    let agent = match current {
        Some(a) => a,
        None => match ctx.owned_current_agent().await? {
            Some(a) => a,
            None => return Ok(()),
        },
    };
    publish(ctx, user, agent, text, Origin::Typed).await
}

/// Where a prompt comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Typed now: it may have to wait in the queue, and takes the files
    /// waiting in its chat.
    Typed,
    /// Taken from the queue (by `bot::dequeue`, holding the agent's start
    /// key): it runs; it carries no files (the queue refuses those).
    Queued,
}

/// A queued prompt whose turn came, for `agent` (active and online).
pub async fn run_queued(ctx: &Ctx<'_>, agent: agents::Agent, text: &str) -> Result<()> {
    let Some(user) = users::get(&ctx.state.db, ctx.user).await? else {
        return Err(Error::internal("a queued prompt's sender has no user row"));
    };
    publish(ctx, &user, agent, text, Origin::Queued).await
}

/// A prompt for `agent` (already checked to be the user's and active), from
/// a group the owner opted in for it, or a voice note's transcript.
pub async fn run_for_agent(ctx: &Ctx<'_>, agent: agents::Agent, text: &str) -> Result<()> {
    if !acceptable(ctx, text).await {
        return Ok(());
    }
    let Some(user) = users::get(&ctx.state.db, ctx.user).await? else {
        return Err(Error::internal("an agent's owner has no user row"));
    };
    publish(ctx, &user, agent, text, Origin::Typed).await
}

async fn publish(
    ctx: &Ctx<'_>,
    user: &users::User,
    agent: agents::Agent,
    text: &str,
    origin: Origin,
) -> Result<()> {
    let state = ctx.state;
    let agent_id = agent.id.clone();
    if !commands::is_online(&state.redis, &agent_id).await? {
        Metrics::inc(&state.metrics.offline_answers);
        ctx.reply(offline_text(&agent)).await;
        return Ok(());
    }
    // A busy agent's prompt waits in the queue (`queue`); the guard keeps
    // another replica from starting a run until this one is recorded.
    // An agent that takes parallel runs (worktrees, said in its presence)
    // gets the prompt at once: its daemon runs it beside the busy one.
    let parallel = commands::takes_parallel_runs(&state.redis, &agent_id).await;
    let _start = match origin {
        Origin::Typed if parallel => None,
        Origin::Typed => match queue::gate(ctx, &agent, text).await? {
            queue::Gate::Run(guard) => Some(guard),
            queue::Gate::Held => return Ok(()),
        },
        Origin::Queued => None,
    };
    // The agent's `/mode`, read before anything of the session exists.
    let mode = crate::db::modes::get(&state.db, &agent_id).await?;
    // Files sent before the prompt in this chat go with it (`attachments`);
    // `None`: one was lost, the user has been told and nothing runs.
    let taken = match origin {
        Origin::Typed => attachments::take_for_prompt(ctx, &agent).await?,
        Origin::Queued => Some(attachments::Taken::default()),
    };
    let Some(taken) = taken else {
        return Ok(());
    };
    let text = taken.prompt(text);
    let text = text.as_str();
    let fresh = user.next_new;
    let thread = super::topics::thread_for_run(ctx, &agent).await;
    let session_id = SessionId::generate();
    let start = SessionStart {
        agent_id: agent_id.clone(),
        session_id: session_id.clone(),
        chat_id: ctx.chat,
        agent_name: agent.name.clone(),
        // Outside a private chat, approval requests go to the owner alone:
        // a group must not see (let alone answer) what the agent asks.
        approval_chat_id: (!ctx.private).then_some(ctx.user),
        thread,
    };
    // Both must be in place before the command is published; they do not
    // depend on each other, so they go at the same time.
    let (inserted, forwarding) = tokio::join!(
        sessions::insert(&state.db, &session_id, &agent.id, ctx.chat, ctx.user, text,),
        state.forwarder.begin(start),
    );
    match (inserted, forwarding) {
        (Ok(()), Ok(())) => {}
        (Ok(()), Err(e)) => {
            sessions::finish(
                &state.db,
                &session_id,
                DoneStatus::Error.as_str(),
                None,
                None,
            )
            .await?;
            return Err(Error::internal(format!("starting the forwarder: {e}")));
        }
        (Err(e), forwarding) => {
            if forwarding.is_ok() {
                // The forwarder waits on a stream nothing will write to:
                // end it, so that the user sees the session failed.
                close(
                    ctx,
                    &agent_id,
                    &session_id,
                    DoneStatus::Error,
                    "could not record the run",
                )
                .await;
            }
            return Err(e.into());
        }
    }
    // A session chosen with ▶ Resume (`/sessions`) goes with this prompt.
    let resume = crate::resume_choice::pending(state, ctx.user, &agent_id).await?;
    let command = CommandEvent::Command(CommandPayload {
        session_id: session_id.clone(),
        prompt: text.to_string(),
        r#continue: !fresh,
        attachments: taken.files.clone(),
        mode,
        resume: resume.as_ref().map(|r| r.id.clone()),
    });
    let receivers = match commands::publish(&state.redis, &state.key, &agent_id, command).await {
        Ok(n) => n,
        Err(e) => {
            close(
                ctx,
                &agent_id,
                &session_id,
                DoneStatus::Error,
                "could not reach the agent",
            )
            .await;
            return Err(Error::internal(e));
        }
    };
    if receivers == 0 {
        // The presence key outlived the daemon's subscription (it died a
        // moment ago): end the session the forwarder is waiting on.
        Metrics::inc(&state.metrics.offline_answers);
        close(
            ctx,
            &agent_id,
            &session_id,
            DoneStatus::Rejected,
            "agent is offline",
        )
        .await;
        ctx.reply(offline_text(&agent)).await;
        return Ok(());
    }
    Metrics::inc(&state.metrics.prompts_published);
    if taken.found {
        attachments::sent(ctx).await?;
    }
    if fresh {
        users::set_next_new(&state.db, ctx.user, false).await?;
    }
    if resume.is_some() {
        crate::resume_choice::taken(state, ctx.user, &agent_id).await?;
    }
    agents::touch(&state.db, &agent.id).await?;
    tracing::info!(agent = %agent_id, session = %session_id, chat = ctx.chat, fresh, "prompt published");
    Ok(())
}

async fn close(ctx: &Ctx<'_>, agent: &AgentId, session: &SessionId, status: DoneStatus, why: &str) {
    if let Err(e) = commands::close_stream(&ctx.state.redis, agent, session, status, why).await {
        tracing::warn!(agent = %agent, session = %session, error = %e, "closing a session's stream");
    }
}

/// "⚪ NAME is offline…", the answer to anything for an offline agent.
pub(super) fn offline_text(agent: &agents::Agent) -> String {
    format!(
        "⚪ <b>{}</b> is offline. Is remoteagentd running on {}?",
        escape_html(&agent.name),
        escape_html(&agent.hostname)
    )
}
