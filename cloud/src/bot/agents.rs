//! `/agents` (with `use:{agentId}` buttons) and `/use NAME`.

use super::{Ctx, NO_AGENTS};
use crate::commands;
use crate::db::{agents, users};
use crate::error::Result;
use crate::telegram::{InlineButton, InlineKeyboard, escape_html};

pub async fn list(ctx: &Ctx<'_>) -> Result<()> {
    let owned = agents::list_active(&ctx.state.db, ctx.user).await?;
    if owned.is_empty() {
        ctx.reply(NO_AGENTS).await;
        return Ok(());
    }
    let current = users::get(&ctx.state.db, ctx.user)
        .await?
        .and_then(|u| u.current_agent);
    let mut lines = vec!["<b>Your agents</b>".to_string()];
    let mut keyboard = InlineKeyboard::default();
    for agent in &owned {
        let online = commands::is_online(&ctx.state.redis, &agent.id).await?;
        let is_current = current.as_ref() == Some(&agent.id);
        lines.push(format!(
            "{} <b>{}</b> on {}{}",
            if online { "🟢" } else { "⚪" },
            escape_html(&agent.name),
            escape_html(&agent.hostname),
            if is_current { " ← current" } else { "" }
        ));
        keyboard.inline_keyboard.push(vec![InlineButton {
            text: format!("Use {}", agent.name),
            callback_data: format!("use:{}", agent.id),
        }]);
    }
    ctx.reply_with(lines.join("\n"), Some(keyboard)).await;
    Ok(())
}

pub async fn use_by_name(ctx: &Ctx<'_>, name: &str) -> Result<()> {
    let name = name.trim();
    if name.is_empty() {
        ctx.reply("Usage: /use NAME (see /agents).").await;
        return Ok(());
    }
    match agents::find_active_by_name(&ctx.state.db, ctx.user, name).await? {
        Some(agent) => {
            users::set_current_agent(&ctx.state.db, ctx.user, Some(&agent.id)).await?;
            ctx.reply(format!(
                "Now talking to <b>{}</b>.",
                escape_html(&agent.name)
            ))
            .await;
        }
        None => ctx.reply(no_agent_named(name)).await,
    }
    Ok(())
}

/// "You have no agent named …", with the name as typed cut to the length
/// an agent name can have: echoed whole, a name of 4,000 characters would
/// make a reply longer than Telegram's 4,096 and the user would get nothing.
pub fn no_agent_named(name: &str) -> String {
    const SHOWN: usize = 40;
    let mut shown: String = name.chars().take(SHOWN).collect();
    if name.chars().count() > SHOWN {
        shown.push('…');
    }
    format!(
        "You have no agent named <b>{}</b>. /agents lists them.",
        escape_html(&shown)
    )
}
