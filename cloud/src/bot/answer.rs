//! Answers to Claude's questions and plans (`forwarder::questions`): the
//! presses of their buttons, and the text message that follows ✎ other or
//! ✎ Revise.
//!
//! An answer is a signed `approval` envelope with its `answer` text: the
//! option's label (the buttons carry only its index), the labels of a
//! multi-select question joined with ", ", or the user's own words. A plan
//! is approved (`allow`), revised (`deny` + the feedback) or rejected
//! (`deny`). As with approvals, only the agent's owner may answer, only a
//! request the forwarder showed and not yet resolved, and the pressed
//! message loses its buttons at once ("⏳ …, telling the agent…") until the
//! forwarder shows the agent's verdict.
//!
//! After ✎ the user's next text message in that chat is the answer: the
//! request waits in Redis (`ra:answer:{chat}:{user}`) and is taken once
//! (`GETDEL`). A command (`/stop`) is still a command; an answer to a
//! request that is no longer waiting is not sent, and said.

use remoteagent_proto::events::{ApprovalPayload, CommandEvent, valid_request_id};
use remoteagent_proto::questions::MAX_ANSWER_CHARS;
use remoteagent_proto::{AgentId, SessionId};
use serde::{Deserialize, Serialize};

use super::Ctx;
use super::callback::{Lookup, NOT_YOURS, SESSION_ENDED, UNKNOWN_REQUEST, owned_session};
use super::update::CallbackQuery;
use crate::commands;
use crate::db::sessions;
use crate::error::{Error, Result};
use crate::forwarder::questions::{self, Asked, Choice};
use crate::forwarder::{self, ApprovalView};
use crate::state::AppState;
use crate::telegram::escape_html;

const MALFORMED: &str = "This button is malformed.";
/// How long a ✎ waits for the text: the longest approval timeout.
const AWAIT_SECS: u64 = 24 * 3600;

/// A ✎ waiting for the user's next text message.
#[derive(Debug, Serialize, Deserialize)]
struct Awaiting {
    session: String,
    request: String,
    /// A plan's revision (deny + feedback) rather than a question's answer.
    plan: bool,
    /// The agent's name, for the messages.
    name: String,
}

fn await_key(chat: i64, user: i64) -> String {
    format!("ra:answer:{chat}:{user}")
}

/// An open question or plan of a running session the user owns.
struct Open {
    session: SessionId,
    agent: AgentId,
    name: String,
    request: String,
    view: ApprovalView,
    ask: Asked,
}

/// The open request behind a button, or what to tell the user.
async fn open(
    state: &AppState,
    user: i64,
    session: &str,
    request: &str,
) -> Result<std::result::Result<Open, String>> {
    let (s, agent) = match owned_session(state, user, session).await? {
        Lookup::Owned(found) => *found,
        Lookup::NotYours => return Ok(Err(NOT_YOURS.into())),
        Lookup::Ended => return Ok(Err(SESSION_ENDED.into())),
    };
    if s.status != sessions::RUNNING || !agent.is_active() {
        return Ok(Err(format!("{}'s run has already finished.", agent.name)));
    }
    if !valid_request_id(request) {
        return Ok(Err(MALFORMED.into()));
    }
    let view = forwarder::approval_message(&mut state.redis.clone(), &s.id, request)
        .await
        .map_err(Error::internal)?;
    let Some(view) = view.filter(|v| v.resolved_html.is_none()) else {
        return Ok(Err(UNKNOWN_REQUEST.into()));
    };
    let Some(ask) = view.ask.clone() else {
        return Ok(Err(MALFORMED.into()));
    };
    Ok(Ok(Open {
        session: s.id,
        agent: agent.id,
        name: agent.name,
        request: request.to_string(),
        view,
        ask,
    }))
}

/// Whether `query` is a press of a question's or a plan's button.
pub fn is_answer(query: &CallbackQuery) -> bool {
    query
        .data
        .as_deref()
        .is_some_and(|d| d.starts_with(questions::PREFIX))
}

/// Handles the press and answers the query (Telegram shows a spinner
/// until it is).
pub async fn handle(state: &AppState, query: CallbackQuery) {
    let data = query.data.clone().unwrap_or_default();
    let rest = data.strip_prefix(questions::PREFIX).unwrap_or_default();
    let text = match press(state, &query, rest).await {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(user = query.from.id, data = %data, error = %e, "handling a question's button");
            "Something went wrong. Please try again.".to_string()
        }
    };
    if let Err(e) = state
        .telegram
        .answer_callback_query(&query.id, Some(&text))
        .await
    {
        tracing::warn!(user = query.from.id, error = %e, "answering a callback query");
    }
}

/// A press of `ans:{rest}`; the text the button's spinner shows.
async fn press(state: &AppState, query: &CallbackQuery, rest: &str) -> Result<String> {
    let user = query.from.id;
    let (chat, private) = query
        .message
        .as_ref()
        .map_or((user, true), |m| (m.chat.id, m.chat.is_private()));
    let Some((session, request, choice)) = questions::parse_data(rest) else {
        return Ok(MALFORMED.into());
    };
    let o = match open(state, user, session, request).await? {
        Ok(o) => o,
        Err(text) => return Ok(text),
    };
    let ctx = Ctx {
        state,
        chat,
        user,
        private,
        thread: None,
        forum: private && state.topics_in_private,
    };
    match (&o.ask, choice) {
        (Asked::Question { labels, multi }, Choice::Pick(n)) if !multi => match labels.get(n) {
            Some(label) => {
                let what = format!("answer \"{label}\"");
                send(state, &o, true, Some(label.clone()), &what, chat, user).await
            }
            None => Ok(MALFORMED.into()),
        },
        (
            Asked::Question {
                labels,
                multi: true,
            },
            Choice::Toggle(mask),
        ) => {
            toggle(state, &o, labels, mask);
            let now = questions::picked(labels, mask);
            Ok(if now.is_empty() {
                "Nothing selected.".into()
            } else {
                format!("Selected: {now}")
            })
        }
        (
            Asked::Question {
                labels,
                multi: true,
            },
            Choice::Done(mask),
        ) => {
            let answer = questions::picked(labels, mask);
            if answer.is_empty() {
                return Ok("Pick at least one option first, or ✎ other.".into());
            }
            let what = format!("answer \"{answer}\"");
            send(state, &o, true, Some(answer), &what, chat, user).await
        }
        (Asked::Question { .. }, Choice::Other) => {
            wait_for_text(&ctx, &o, false).await?;
            ctx.reply(format!(
                "✎ Send your answer to <b>{}</b>'s question as your next message.",
                escape_html(&o.name)
            ))
            .await;
            Ok("Send your answer as a message.".into())
        }
        (Asked::Plan, Choice::PlanApprove) => {
            send(state, &o, true, None, "plan approved", chat, user).await
        }
        (Asked::Plan, Choice::PlanReject) => {
            send(state, &o, false, None, "plan rejected", chat, user).await
        }
        (Asked::Plan, Choice::PlanRevise) => {
            wait_for_text(&ctx, &o, true).await?;
            ctx.reply(format!(
                "✎ Send what <b>{}</b> should change in the plan as your next message.",
                escape_html(&o.name)
            ))
            .await;
            Ok("Send your changes as a message.".into())
        }
        _ => Ok(MALFORMED.into()),
    }
}

async fn wait_for_text(ctx: &Ctx<'_>, o: &Open, plan: bool) -> Result<()> {
    let awaiting = Awaiting {
        session: o.session.to_string(),
        request: o.request.clone(),
        plan,
        name: o.name.clone(),
    };
    store_awaiting(ctx.state, ctx.chat, ctx.user, &awaiting).await
}

async fn store_awaiting(state: &AppState, chat: i64, user: i64, a: &Awaiting) -> Result<()> {
    let json = serde_json::to_string(a).map_err(Error::internal)?;
    redis::cmd("SET")
        .arg(await_key(chat, user))
        .arg(json)
        .arg("EX")
        .arg(AWAIT_SECS)
        .query_async::<()>(&mut state.redis.clone())
        .await?;
    Ok(())
}

/// The user's text after ✎, if a ✎ is waiting for it: sent as the answer
/// (true), or `false` when nothing waits and the text is a prompt.
pub async fn take_text(ctx: &Ctx<'_>, text: &str) -> Result<bool> {
    let state = ctx.state;
    let json: Option<String> = redis::cmd("GETDEL")
        .arg(await_key(ctx.chat, ctx.user))
        .query_async(&mut state.redis.clone())
        .await?;
    let Some(awaiting) = json.and_then(|j| serde_json::from_str::<Awaiting>(&j).ok()) else {
        return Ok(false);
    };
    let name = escape_html(&awaiting.name);
    let o = match open(state, ctx.user, &awaiting.session, &awaiting.request).await? {
        Ok(o) => o,
        Err(_) => {
            ctx.reply(format!(
                "✎ That was not sent to <b>{name}</b>: its question is no longer waiting (answered, timed out, or the run ended). Send it again if you meant it as a prompt."
            ))
            .await;
            return Ok(true);
        }
    };
    let text = text.trim();
    let chars = text.chars().count();
    if chars > MAX_ANSWER_CHARS {
        // Kept waiting: the user can send a shorter one.
        store_awaiting(state, ctx.chat, ctx.user, &awaiting).await?;
        ctx.reply(format!(
            "✎ That answer for <b>{name}</b> is too long ({chars} characters; at most {MAX_ANSWER_CHARS}). Send a shorter one."
        ))
        .await;
        return Ok(true);
    }
    let (allow, what) = if awaiting.plan {
        (false, format!("revision \"{text}\""))
    } else {
        (true, format!("answer \"{text}\""))
    };
    let said = send(
        state,
        &o,
        allow,
        Some(text.to_string()),
        &what,
        ctx.chat,
        ctx.user,
    )
    .await?;
    if said.ends_with("is offline.") {
        store_awaiting(state, ctx.chat, ctx.user, &awaiting).await?;
        ctx.reply(format!(
            "✎ <b>{name}</b> is offline: your answer was not sent. Send it again once it is back."
        ))
        .await;
    } else {
        ctx.reply(format!("✎ Sent to <b>{name}</b>.")).await;
    }
    Ok(true)
}

/// Publishes the answer and shows it as pending on the question's message.
async fn send(
    state: &AppState,
    o: &Open,
    allow: bool,
    answer: Option<String>,
    what: &str,
    chat: i64,
    user: i64,
) -> Result<String> {
    let command = CommandEvent::Approval(ApprovalPayload {
        session_id: o.session.clone(),
        request_id: o.request.clone(),
        allow,
        answer,
        scope: None,
    });
    let receivers = commands::publish(&state.redis, &state.key, &o.agent, command)
        .await
        .map_err(Error::internal)?;
    if receivers == 0 {
        // The buttons stay: the user can answer again once the agent is back.
        return Ok(format!("{} is offline.", o.name));
    }
    tracing::info!(agent = %o.agent, session = %o.session, request = %o.request, allow, "answer to a question or plan published");
    forget_awaiting(state, chat, user, &o.request).await;
    let delivery = state.outbox.edit(
        o.view.chat_id,
        o.view.message_id,
        questions::pending_html(&o.view.html, what),
        None,
    );
    spawn_restore(state, o, delivery);
    Ok("Sent.".into())
}

/// A ✎ of this request waiting for text is dropped once a button answered
/// it, so the user's next message is a prompt again.
async fn forget_awaiting(state: &AppState, chat: i64, user: i64, request: &str) {
    let key = await_key(chat, user);
    let mut conn = state.redis.clone();
    let json: redis::RedisResult<Option<String>> =
        redis::cmd("GET").arg(&key).query_async(&mut conn).await;
    let waiting = match json {
        Ok(json) => json.and_then(|j| serde_json::from_str::<Awaiting>(&j).ok()),
        Err(e) => {
            tracing::warn!(error = %e, "reading a waiting ✎");
            None
        }
    };
    if waiting.is_some_and(|a| a.request == request)
        && let Err(e) = redis::cmd("DEL")
            .arg(&key)
            .query_async::<()>(&mut conn)
            .await
    {
        tracing::warn!(error = %e, "dropping a waiting ✎");
    }
}

/// A multi-select question's buttons with the new selection (the message
/// text stays).
fn toggle(state: &AppState, o: &Open, labels: &[String], mask: u8) {
    let Some(keyboard) = questions::question_keyboard(&o.session, &o.request, labels, true, mask)
    else {
        return;
    };
    let delivery = state.outbox.edit(
        o.view.chat_id,
        o.view.message_id,
        o.view.html.clone(),
        Some(keyboard),
    );
    spawn_restore(state, o, delivery);
}

/// Should the verdict have been shown before this edit, it is put back.
fn spawn_restore(state: &AppState, o: &Open, delivery: crate::telegram::outbox::Delivery) {
    let state = state.clone();
    let session = o.session.clone();
    let request = o.request.clone();
    let view = o.view.clone();
    tokio::spawn(async move {
        super::callback::restore_verdict(&state, &session, &request, &view, delivery).await;
    });
}
