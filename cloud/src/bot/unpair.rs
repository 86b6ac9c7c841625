//! `/unpair NAME`: revoke one of the user's agents.

use super::Ctx;
use crate::db::agents;
use crate::error::Result;
use crate::unpair;

pub async fn run(ctx: &Ctx<'_>, name: &str) -> Result<()> {
    let name = name.trim();
    if name.is_empty() {
        ctx.reply("Usage: /unpair NAME (see /agents).").await;
        return Ok(());
    }
    let Some(agent) = agents::find_active_by_name(&ctx.state.db, ctx.user, name).await? else {
        ctx.reply(super::agents::no_agent_named(name)).await;
        return Ok(());
    };
    // `unpair` tells the owner (this user) itself.
    unpair::unpair(ctx.state, &agent).await?;
    Ok(())
}
