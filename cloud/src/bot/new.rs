//! `/new`: the next prompt starts a new conversation (`continue = false`).

use super::Ctx;
use crate::db::users;
use crate::error::Result;

pub async fn run(ctx: &Ctx<'_>) -> Result<()> {
    if ctx.owned_current_agent().await?.is_none() {
        return Ok(());
    }
    users::set_next_new(&ctx.state.db, ctx.user, true).await?;
    ctx.reply("🆕 Your next prompt starts a new conversation.")
        .await;
    Ok(())
}
