//! `/new`: the next prompt starts a new session (`continue = false`), and
//! a session chosen with ▶ Resume is forgotten.

use super::Ctx;
use crate::db::users;
use crate::error::Result;

pub async fn run(ctx: &Ctx<'_>) -> Result<()> {
    let Some(agent) = ctx.owned_current_agent().await? else {
        return Ok(());
    };
    users::set_next_new(&ctx.state.db, ctx.user, true).await?;
    crate::resume_choice::clear(ctx.state, ctx.user, &agent.id).await?;
    ctx.reply(format!(
        "🆕 Your next prompt to <b>{}</b> starts a new session.",
        crate::telegram::escape_html(&agent.name)
    ))
    .await;
    Ok(())
}
