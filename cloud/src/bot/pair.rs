//! `/pair CODE`: confirm a pairing code shown by `remoteagentctl pair`.

use super::Ctx;
use crate::error::Result;
use crate::pairing;
use crate::telegram::escape_html;

pub async fn run(ctx: &Ctx<'_>, args: &str) -> Result<()> {
    if args.trim().is_empty() {
        ctx.reply("Send the code shown by <code>remoteagentctl pair</code>, like <code>/pair XK9-4TZ</code>.")
            .await;
        return Ok(());
    }
    match pairing::confirm(ctx.state, ctx.user, args).await {
        Ok(paired) => {
            ctx.reply(format!(
                "✅ Paired <b>{}</b> on {}.\nIt is now your current agent: send a message to give it a prompt.",
                escape_html(&paired.name),
                escape_html(&paired.hostname)
            ))
            .await;
        }
        Err(e) => {
            if let pairing::ConfirmError::Internal(detail) = &e {
                tracing::error!(user = ctx.user, error = %detail, "pairing failed");
            }
            ctx.reply(escape_html(&e.user_message())).await;
        }
    }
    Ok(())
}
