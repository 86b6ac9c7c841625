//! `/mode`: how freely the current agent's runner may act, per agent.
//! `/mode` shows the mode chosen and offers a button per mode
//! (`mode:{agentId}:{mode}`); `/mode plan` sets it at once. The choice is
//! stored in the database (`db::modes`) and sent with every prompt; the
//! computer's policy has the last word: its daemon runs a looser mode than
//! its policy allows only where its config says `allow_remote_loosen =
//! true`, and the run then says which mode it runs in.

use remoteagent_proto::AgentId;
use remoteagent_proto::modes::{Mode, PresenceModes};

use super::Ctx;
use crate::db::{agents, modes};
use crate::error::Result;
use crate::state::AppState;
use crate::telegram::{InlineButton, InlineKeyboard, escape_html};

/// Said under every answer: where the last word is.
const POLICY_NOTE: &str = "Its computer may run it stricter: a mode looser than the \
computer's approval policy is only taken where its config says \
<code>allow_remote_loosen = true</code>.";

/// The callback data of the button that sets `mode` for `agent`.
pub fn button_data(agent: &AgentId, mode: Mode) -> String {
    format!("mode:{agent}:{mode}")
}

pub async fn run(ctx: &Ctx<'_>, args: &str) -> Result<()> {
    let Some(agent) = ctx.owned_current_agent().await? else {
        return Ok(());
    };
    let name = escape_html(&agent.name);
    let note = no_effect_note(ctx.state, &agent.id, &name).await;
    let args = args.trim();
    if args.is_empty() {
        let current = modes::get(&ctx.state.db, &agent.id).await?;
        ctx.reply_with(
            show(&name, current) + &note,
            Some(keyboard(&agent.id, current)),
        )
        .await;
        return Ok(());
    }
    match args.parse::<Mode>() {
        Ok(mode) => {
            modes::set(&ctx.state.db, &agent.id, mode).await?;
            ctx.reply(set_text(&name, mode) + &note).await;
        }
        Err(e) => {
            ctx.reply(format!(
                "<b>{name}</b>: {}. Send <code>/mode</code> to see them.",
                escape_html(&e.to_string())
            ))
            .await;
        }
    }
    Ok(())
}

/// Said once under `/mode`'s answer when the agent's daemon reports (in
/// its presence value) a runner that takes no modes: a custom command,
/// Aider or Gemini. Unknown (offline, an older daemon): nothing.
async fn no_effect_note(state: &AppState, agent: &AgentId, name: &str) -> String {
    let mut conn = state.redis.clone();
    let value: Option<String> = match redis::cmd("GET")
        .arg(remoteagent_proto::names::presence_key(agent))
        .query_async(&mut conn)
        .await
    {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(agent = %agent, error = %e, "reading the agent's presence for /mode");
            None
        }
    };
    match value.map(|v| PresenceModes::of(&v).modes) {
        Some(Some(false)) => format!(
            "\n\n⚠️ <b>{name}</b> runs a custom command (or Aider or Gemini): modes have \
             no effect on it; only Claude Code and Codex take them."
        ),
        _ => String::new(),
    }
}

/// `/mode`'s answer: the chosen mode (or none) and what each does.
fn show(name: &str, current: Option<Mode>) -> String {
    let mut text = match current {
        Some(mode) => format!("⚙️ <b>{name}</b> is in <b>{mode}</b> mode."),
        None => format!(
            "⚙️ No mode chosen for <b>{name}</b>: it runs as its computer's approval policy says."
        ),
    };
    text.push_str("\n\n");
    for mode in Mode::ALL {
        text.push_str(&format!("<b>{mode}</b> — {}\n", mode.description()));
    }
    text.push('\n');
    text.push_str(POLICY_NOTE);
    text
}

fn set_text(name: &str, mode: Mode) -> String {
    format!(
        "⚙️ <b>{name}</b> runs in <b>{mode}</b> mode from the next prompt on ({}).\n\n{POLICY_NOTE}",
        mode.description()
    )
}

fn keyboard(agent: &AgentId, current: Option<Mode>) -> InlineKeyboard {
    let row = Mode::ALL
        .into_iter()
        .map(|mode| InlineButton {
            text: if current == Some(mode) {
                format!("✓ {mode}")
            } else {
                mode.to_string()
            },
            callback_data: button_data(agent, mode),
        })
        .collect();
    InlineKeyboard {
        inline_keyboard: vec![row],
    }
}

/// A mode button: `rest` is `{agentId}:{mode}`. Only the agent's owner may
/// press it (callback data can be forged). Returns the callback's answer.
pub async fn press(
    state: &AppState,
    user: i64,
    (chat, private): (i64, bool),
    rest: &str,
) -> Result<String> {
    let parsed = rest
        .rsplit_once(':')
        .and_then(|(agent, mode)| Some((AgentId::parse(agent).ok()?, mode.parse::<Mode>().ok()?)));
    let Some((agent, mode)) = parsed else {
        return Ok("This button is malformed.".into());
    };
    let Some(agent) = agents::get(&state.db, &agent).await? else {
        return Ok("That agent no longer exists.".into());
    };
    if agent.owner != user {
        return Ok(super::owner::NOT_YOURS.into());
    }
    if !agent.is_active() {
        return Ok(format!("{} was unpaired.", agent.name));
    }
    modes::set(&state.db, &agent.id, mode).await?;
    let ctx = Ctx {
        state,
        chat,
        user,
        private,
        thread: None,
        forum: private && state.topics_in_private,
    };
    let name = escape_html(&agent.name);
    let note = no_effect_note(state, &agent.id, &name).await;
    ctx.reply(set_text(&name, mode) + &note).await;
    Ok(format!("{}: {mode} mode", agent.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_fit_telegrams_64_bytes() {
        let agent = AgentId::generate();
        for mode in Mode::ALL {
            assert!(button_data(&agent, mode).len() <= 64);
        }
        let k = keyboard(&agent, Some(Mode::Edits));
        let texts: Vec<&str> = k.inline_keyboard[0]
            .iter()
            .map(|b| b.text.as_str())
            .collect();
        assert_eq!(texts, ["plan", "ask", "✓ edits", "auto"]);
    }
}
