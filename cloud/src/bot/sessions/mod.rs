//! `/sessions`: the current agent's recent sessions (conversations with the
//! AI), from the daemon's list, with a ▶ Resume button under each; pressing
//! one makes the next prompt to that agent continue that session.
//!
//! The bot publishes a signed `list_sessions` command with a fresh request
//! id and returns (the user's lane is not held while the daemon answers); a
//! task of its own ([`waiter`]) reads that id's output stream on a
//! connection it owns until `done`, as `/get` does, and shows the list. A
//! daemon that does not answer within `GET_ANSWER_SECS` is reported in
//! words. The list shown and the choice made are kept in Redis
//! ([`resume`]).

pub mod clean;
mod resume;
mod waiter;

use remoteagent_proto::SessionId;
use remoteagent_proto::events::CommandEvent;
use remoteagent_proto::sessions::{ListSessionsPayload, SessionSummary};

use super::Ctx;
use crate::commands;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::telegram::{InlineButton, InlineKeyboard, escape_html};

pub use resume::press;

/// Sessions shown at most (the daemon keeps 20).
const SHOWN: usize = 10;

/// `/sessions` in a private chat.
pub async fn run(ctx: &Ctx<'_>) -> Result<()> {
    let Some(agent) = ctx.owned_current_agent().await? else {
        return Ok(());
    };
    let state = ctx.state;
    if !commands::is_online(&state.redis, &agent.id).await? {
        Metrics::inc(&state.metrics.offline_answers);
        ctx.reply(super::prompt::offline_text(&agent)).await;
        return Ok(());
    }
    let request = SessionId::generate();
    let command = CommandEvent::ListSessions(ListSessionsPayload {
        session_id: request.clone(),
    });
    let receivers = commands::publish(&state.redis, &state.key, &agent.id, command)
        .await
        .map_err(Error::internal)?;
    if receivers == 0 {
        Metrics::inc(&state.metrics.offline_answers);
        ctx.reply(super::prompt::offline_text(&agent)).await;
        return Ok(());
    }
    tracing::info!(agent = %agent.id, request = %request, chat = ctx.chat, "/sessions published");
    let waiter = waiter::Waiter {
        state: state.clone(),
        chat: ctx.chat,
        user: ctx.user,
        agent,
        request,
        wanted: waiter::Wanted::Sessions,
        said_something: false,
    };
    tokio::spawn(waiter.run());
    Ok(())
}

/// Follows a `/rules` answer (`bot::rules`) as a `/sessions` one is.
pub(super) fn follow_rules(
    state: crate::state::AppState,
    chat: i64,
    user: i64,
    agent: crate::db::agents::Agent,
    request: SessionId,
    view: waiter::RulesView,
) {
    let waiter = waiter::Waiter {
        state,
        chat,
        user,
        agent,
        request,
        wanted: waiter::Wanted::Rules(view),
        said_something: false,
    };
    tokio::spawn(waiter.run());
}

/// The list as the chat shows it: the agent's name, and per session when
/// it was last used, its first prompt, runs, turns and cost (no ids).
fn list_text(agent_name: &str, sessions: &[SessionSummary], now_ms: u64) -> String {
    let name = escape_html(agent_name);
    if sessions.is_empty() {
        return format!("🗂 <b>{name}</b> has no sessions yet: one begins with its first run.");
    }
    let mut text = format!("🗂 Sessions of <b>{name}</b>, newest first:");
    for (n, s) in sessions.iter().take(SHOWN).enumerate() {
        text.push_str(&format!(
            "\n\n<b>{}.</b> {} · {}\n“{}”",
            n + 1,
            when(s.last_at_ms, now_ms),
            figures(s),
            escape_html(&remoteagent_proto::sessions::first_prompt(&s.first_prompt))
        ));
    }
    text.push_str("\n\n▶ Resume makes your next prompt continue that session.");
    text
}

/// `5m 3s ago`, the way the bot writes a past time.
fn when(at_ms: u64, now_ms: u64) -> String {
    remoteagent_proto::elapsed::ago(now_ms.saturating_sub(at_ms))
}

/// `2 runs · 9 turns · $0.09`: what is known of a session.
fn figures(s: &SessionSummary) -> String {
    let mut parts = vec![match s.runs {
        1 => "1 run".to_string(),
        n => format!("{n} runs"),
    }];
    if let Some(turns) = s.turns {
        parts.push(match turns {
            1 => "1 turn".to_string(),
            n => format!("{n} turns"),
        });
    }
    if let Some(cost) = s.cost_usd {
        parts.push(format!("${:.2}", cost.dollars()));
    }
    parts.join(" · ")
}

/// One ▶ Resume button per session shown; `list` is the key of the list
/// kept in Redis.
fn keyboard(list: &str, count: usize) -> InlineKeyboard {
    let buttons: Vec<InlineButton> = (0..count.min(SHOWN))
        .map(|n| InlineButton {
            text: format!("▶ Resume {}", n + 1),
            callback_data: resume::button_data(list, n),
        })
        .collect();
    InlineKeyboard {
        inline_keyboard: buttons.chunks(2).map(<[_]>::to_vec).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use remoteagent_proto::events::Usd;

    #[test]
    fn the_list_names_the_agent_and_shows_no_ids() {
        let session = |id: &str, runs, turns, cost| SessionSummary {
            id: id.into(),
            runner: "claude".into(),
            first_prompt: "fix <b>the</b> tests".into(),
            first_at_ms: 0,
            last_at_ms: 60_000,
            runs,
            turns,
            cost_usd: cost,
        };
        let text = list_text(
            "hello",
            &[
                session("0f1e2d3c-4b5a", 2, Some(9), Usd::from_dollars(0.09)),
                session("a9b8c7d6", 1, None, None),
            ],
            125_000,
        );
        assert!(text.starts_with("🗂 Sessions of <b>hello</b>"), "{text}");
        assert!(
            text.contains("1m 5s ago · 2 runs · 9 turns · $0.09"),
            "{text}"
        );
        assert!(text.contains("· 1 run\n"), "{text}");
        assert!(
            text.contains("“fix &lt;b&gt;the&lt;/b&gt; tests”"),
            "{text}"
        );
        assert!(
            !text.contains("0f1e2d3c") && !text.contains("a9b8c7d6"),
            "{text}"
        );
        assert!(!text.contains("(s)"), "{text}");
        assert_eq!(
            list_text("hello", &[], 0),
            "🗂 <b>hello</b> has no sessions yet: one begins with its first run."
        );
        let k = keyboard("abc", 3);
        assert_eq!(k.inline_keyboard.len(), 2);
        assert_eq!(k.inline_keyboard[0][0].text, "▶ Resume 1");
    }
}
