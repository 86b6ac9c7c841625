//! `/status`: the current agent, whether it is online, the running prompt,
//! and the plan.

use super::{Ctx, NO_AGENTS};
use crate::commands;
use crate::db::{self, agents, sessions, users};
use crate::error::Result;
use crate::plans;
use crate::telegram::escape_html;

pub async fn run(ctx: &Ctx<'_>) -> Result<()> {
    let Some(user) = users::get(&ctx.state.db, ctx.user).await? else {
        ctx.reply(NO_AGENTS).await;
        return Ok(());
    };
    let mut lines = Vec::new();
    // In an agent's topic, that agent is the current one.
    let current = match (super::topics::topic_agent(ctx).await?, &user.current_agent) {
        (Some(agent), _) => Some(agent),
        (None, Some(id)) => agents::get(&ctx.state.db, id)
            .await?
            .filter(|a| a.is_active() && a.owner == ctx.user),
        (None, None) => None,
    };
    match current {
        Some(agent) => {
            let online = commands::is_online(&ctx.state.redis, &agent.id).await?;
            lines.push(format!(
                "Current agent: <b>{}</b> on {} — {}",
                escape_html(&agent.name),
                escape_html(&agent.hostname),
                if online { "🟢 online" } else { "⚪ offline" }
            ));
            match sessions::running_for_agent(&ctx.state.db, &agent.id).await? {
                Some(s) => lines.push(format!(
                    "Running: <i>{}</i>",
                    escape_html(&s.prompt_preview)
                )),
                None => lines.push("Nothing running.".into()),
            }
            if user.next_new {
                lines.push("The next prompt starts a new session.".into());
            }
        }
        None => lines.push("No agent selected (/agents).".into()),
    }
    lines.push(format!(
        "Plan: {}",
        plans::describe(&user, ctx.state.config.free_plan_agents, db::now())
    ));
    ctx.reply(lines.join("\n")).await;
    Ok(())
}
