//! Inline button presses. Every query is answered (Telegram shows a
//! spinner until it is), and every action checks that the presser owns the
//! agent: callback data comes from the client and can be forged.
//!
//! | data | action |
//! |---|---|
//! | `stop:{sessionId}` | abort that session |
//! | `use:{agentId}` | make that agent current |
//! | `approve:{sessionId}:{requestId}`, `deny:…` | answer an approval request |
//! | `approve:{sessionId}:{requestId}:{s\|a}` | approve and save the request's rule for this session / always (`forwarder::scoped`) |
//! | `mode:{agentId}:{mode}` | set that agent's mode (`mode.rs`) |
//! | `rrev:{agentId}:{ruleId}` | 🗑 Revoke an approval rule (`rules.rs`; owner only) |
//! | `sres:{list}:{n}` | ▶ Resume: the next prompt continues that session (`sessions/`; owner only) |
//! | `voice:run:{id}`, `voice:edit:…`, `voice:cancel:…` | a voice note's transcript (`voice.rs`; only its sender) |
//! | `queue:run:{id}`, `queue:cancel:{id}` | a queued prompt: ▶ Run now — stop current, ✖ Cancel (`dequeue.rs`) |
//! | `ck:{letter}:{run}`, `ck:n:{run}:{file}` | a diff card's buttons: Diff, Next file, Undo, Commit, Branch… (`checkpoints/`, `crate::checkpoint_card`; owner only) |
//! | `ans:{sessionId}:{requestId}:{choice}` | a question's option or a plan's answer (routed to `answer.rs` by `bot::handle`) |
//!
//! An answered approval request loses its buttons at once (so it cannot be
//! answered twice) and shows "⏳ approved, telling the agent…" until the
//! forwarder replaces that with the agent's verdict.

use remoteagent_proto::events::{ApprovalPayload, CommandEvent, valid_request_id};
use remoteagent_proto::rules::Scope;
use remoteagent_proto::{AgentId, SessionId};

use super::Ctx;
use super::update::CallbackQuery;
use crate::commands;
use crate::db::{agents, sessions, users};
use crate::error::{Error, Result};
use crate::forwarder::{self, ApprovalView};
use crate::state::AppState;
use crate::telegram::escape_html;
use crate::telegram::outbox::Delivery;

pub(super) use super::owner::NOT_YOURS;
/// The session behind a button is gone (or never existed): said to anyone,
/// owner or not, since a session id gives nothing away.
pub const SESSION_ENDED: &str = "This run has ended.";
/// An approval button whose request the forwarder never showed or whose
/// answer is already recorded.
pub const UNKNOWN_REQUEST: &str = "That request is unknown or was already answered.";

/// What a button's session id leads to.
pub(super) enum Lookup {
    Owned(Box<(sessions::Session, agents::Agent)>),
    NotYours,
    Ended,
}

pub async fn handle(state: &AppState, query: CallbackQuery) {
    let data = query.data.clone().unwrap_or_default();
    let answer = match dispatch(state, &query, &data).await {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(user = query.from.id, data = %data, error = %e, "handling a button");
            "Something went wrong. Please try again.".to_string()
        }
    };
    if let Err(e) = state
        .telegram
        .answer_callback_query(&query.id, Some(&answer))
        .await
    {
        tracing::warn!(user = query.from.id, error = %e, "answering a callback query");
    }
}

async fn dispatch(state: &AppState, query: &CallbackQuery, data: &str) -> Result<String> {
    let user = query.from.id;
    if let Some(session) = data.strip_prefix("stop:") {
        return stop(state, user, session).await;
    }
    if let Some(agent) = data.strip_prefix("use:") {
        let (chat, private) = query
            .message
            .as_ref()
            .map_or((user, true), |m| (m.chat.id, m.chat.is_private()));
        return use_agent(state, user, chat, private, agent).await;
    }
    if let Some(rest) = data.strip_prefix("approve:") {
        return approval(state, user, rest, true).await;
    }
    if let Some(rest) = data.strip_prefix("deny:") {
        return approval(state, user, rest, false).await;
    }
    if let Some(rest) = data.strip_prefix("mode:") {
        let place = query
            .message
            .as_ref()
            .map_or((user, true), |m| (m.chat.id, m.chat.is_private()));
        return super::mode::press(state, user, place, rest).await;
    }
    if let Some(rest) = data.strip_prefix("rrev:") {
        return super::rules::press(state, query, rest).await;
    }
    if let Some(rest) = data.strip_prefix("sres:") {
        return super::sessions::press(state, query, rest).await;
    }
    if let Some(rest) = data.strip_prefix("voice:") {
        return super::voice::press(state, query, rest).await;
    }
    if let Some(rest) = data.strip_prefix("queue:") {
        return super::dequeue::press(state, query, rest).await;
    }
    if let Some(rest) = data.strip_prefix(crate::checkpoint_card::PREFIX) {
        return super::checkpoints::press(state, query, rest).await;
    }
    Ok("This button is no longer supported.".into())
}

/// The session and its agent, if both exist and `user` owns the agent.
pub(super) async fn owned_session(state: &AppState, user: i64, session: &str) -> Result<Lookup> {
    // Button data is whatever a client sends: an id that cannot be one
    // names no session.
    let Ok(session) = SessionId::parse(session) else {
        return Ok(Lookup::Ended);
    };
    let Some(s) = sessions::get(&state.db, &session).await? else {
        return Ok(Lookup::Ended);
    };
    let Some(agent) = agents::get(&state.db, &s.agent_id).await? else {
        return Ok(Lookup::Ended);
    };
    if agent.owner != user {
        return Ok(Lookup::NotYours);
    }
    Ok(Lookup::Owned(Box::new((s, agent))))
}

async fn stop(state: &AppState, user: i64, session: &str) -> Result<String> {
    let (s, agent) = match owned_session(state, user, session).await? {
        Lookup::Owned(found) => *found,
        Lookup::NotYours => return Ok(NOT_YOURS.into()),
        Lookup::Ended => return Ok(SESSION_ENDED.into()),
    };
    if s.status != sessions::RUNNING {
        return Ok("That prompt has already finished.".into());
    }
    if !agent.is_active() {
        return Ok("That agent was unpaired.".into());
    }
    Ok(if super::stop::abort(state, &agent, &s.id).await? {
        "Stopping…".into()
    } else {
        format!("{} is offline.", agent.name)
    })
}

async fn use_agent(
    state: &AppState,
    user: i64,
    chat: i64,
    private: bool,
    agent: &str,
) -> Result<String> {
    let Ok(agent) = AgentId::parse(agent) else {
        return Ok("That agent no longer exists.".into());
    };
    let Some(agent) = agents::get(&state.db, &agent).await? else {
        return Ok("That agent no longer exists.".into());
    };
    if agent.owner != user {
        return Ok(NOT_YOURS.into());
    }
    if !agent.is_active() {
        return Ok("That agent was unpaired.".into());
    }
    users::set_current_agent(&state.db, user, Some(&agent.id)).await?;
    let ctx = Ctx {
        state,
        chat,
        user,
        private,
        thread: None,
        forum: private && state.topics_in_private,
    };
    ctx.reply(format!(
        "Now talking to <b>{}</b>.",
        escape_html(&agent.name)
    ))
    .await;
    Ok(format!("Now using {}", agent.name))
}

/// How long a press waits for the forwarder to record the request it
/// shows: the message reaches the phone a moment before the forwarder
/// saves it, and a quick press (or a loaded cloud) falls in between.
const SHOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// The approval message the forwarder recorded for `request`, waiting up
/// to [`SHOWN_GRACE`] for it to be recorded.
async fn shown_approval(
    state: &AppState,
    session: &remoteagent_proto::SessionId,
    request: &str,
) -> Result<Option<forwarder::ApprovalView>> {
    let deadline = tokio::time::Instant::now() + SHOWN_GRACE;
    loop {
        let shown = forwarder::approval_message(&mut state.redis.clone(), session, request)
            .await
            .map_err(Error::internal)?;
        if shown.is_some() || tokio::time::Instant::now() >= deadline {
            return Ok(shown);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn approval(state: &AppState, user: i64, rest: &str, allow: bool) -> Result<String> {
    let Some((session, request)) = rest.split_once(':') else {
        return Ok("This button is malformed.".into());
    };
    let (request, scope) = forwarder::scoped::split_scope(request);
    let (s, agent) = match owned_session(state, user, session).await? {
        Lookup::Owned(found) => *found,
        Lookup::NotYours => return Ok(NOT_YOURS.into()),
        Lookup::Ended => return Ok(SESSION_ENDED.into()),
    };
    if s.status != sessions::RUNNING || !agent.is_active() {
        return Ok("That prompt has already finished.".into());
    }
    if !valid_request_id(request) {
        return Ok("This button is malformed.".into());
    }
    let agent_id = agent.id.clone();
    let session_id = s.id.clone();
    // Read before publishing, so that the edit below follows the publish
    // at once (see `show_pending`). A request the forwarder never showed
    // has no button anyone could have pressed: forged or long gone, it is
    // not passed on, and nobody is told "Approved." for nothing.
    let shown = shown_approval(state, &session_id, request).await?;
    let Some(shown) = shown else {
        tracing::info!(agent = %agent_id, session = %session_id, request, "approval answer for an unknown request");
        return Ok(UNKNOWN_REQUEST.into());
    };
    if shown.resolved_html.is_some() {
        return Ok(UNKNOWN_REQUEST.into());
    }
    let command = CommandEvent::Approval(ApprovalPayload {
        session_id: session_id.clone(),
        request_id: request.to_string(),
        allow,
        answer: None,
        scope,
    });
    let receivers = commands::publish(&state.redis, &state.key, &agent_id, command)
        .await
        .map_err(Error::internal)?;
    if receivers == 0 {
        // The buttons stay: the user can press again once the agent is back.
        return Ok(format!("{} is offline.", agent.name));
    }
    tracing::info!(agent = %agent_id, session = %session_id, request, allow, ?scope, "approval answer published");
    let saved = match (scope, &shown.rule) {
        (Some(scope @ (Scope::Session | Scope::Always)), Some(rule)) if allow => {
            Some(forwarder::scoped::saved_text(rule, &agent.name, scope))
        }
        _ => None,
    };
    show_pending(state, &session_id, request, shown, allow);
    Ok(saved.unwrap_or_else(|| if allow { "Approved." } else { "Denied." }.into()))
}

/// Shows "⏳ approved, telling the agent…" without the buttons.
///
/// The agent's verdict arrives as an edit of the same message by the
/// forwarder. Queued right after the publish, this edit precedes that one in
/// this replica's outbox (which keeps a message's edits in order); should a
/// forwarder on another replica have been faster, the verdict it stored
/// before its edit is put back once this edit is delivered.
fn show_pending(
    state: &AppState,
    session: &SessionId,
    request: &str,
    view: ApprovalView,
    allow: bool,
) {
    let delivery = state.outbox.edit(
        view.chat_id,
        view.message_id,
        view.pending_html(allow),
        None,
    );
    let state = state.clone();
    let session = session.clone();
    let request = request.to_string();
    tokio::spawn(async move {
        restore_verdict(&state, &session, &request, &view, delivery).await;
    });
}

pub(super) async fn restore_verdict(
    state: &AppState,
    session: &SessionId,
    request: &str,
    view: &ApprovalView,
    delivery: Delivery,
) {
    if let Err(e) = delivery.wait().await {
        tracing::warn!(session = %session, request, error = %e, "showing a pressed approval button");
        return;
    }
    match forwarder::approval_message(&mut state.redis.clone(), session, request).await {
        Ok(Some(ApprovalView {
            resolved_html: Some(html),
            ..
        })) => {
            // Unchanged (the verdict came after this edit) is skipped.
            if let Err(e) = state
                .outbox
                .edit(view.chat_id, view.message_id, html, None)
                .wait()
                .await
            {
                tracing::warn!(session = %session, request, error = %e, "restoring an approval's verdict");
            }
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(session = %session, request, error = %e, "re-reading an approval message");
        }
    }
}
