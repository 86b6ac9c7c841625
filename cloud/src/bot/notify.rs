//! `/notify`: whether the end of a run is also sent as a new message.
//! Telegram notifies on new messages, never on edits, so without it a user
//! who put the phone away does not learn that the run ended; some prefer
//! the quiet. `/notify` shows the choice, `/notify on|off` changes it.

use super::Ctx;
use crate::db::notify;
use crate::error::Result;

const ON: &str = "🔔 I will send a message when a run ends, so that your phone notifies you.";
const OFF: &str =
    "🔕 I will no longer send a message when a run ends; the output message is still updated.";
const USAGE: &str = "Send <code>/notify on</code> or <code>/notify off</code>; <code>/notify</code> shows what is set.";
/// Said while the cloud sends no such message to anyone.
const CLOUD_OFF: &str = "\n\n(This server sends no message at the end of a run for anyone: it runs with FINAL_NOTIFY=false.)";

pub async fn run(ctx: &Ctx<'_>, args: &str) -> Result<()> {
    let db = &ctx.state.db;
    let cloud_on = ctx.state.config.final_notify;
    let mut text = match args.trim().to_ascii_lowercase().as_str() {
        "" => {
            if notify::wants_final(db, ctx.user).await? {
                "🔔 When a run ends, I send a message, so that your phone notifies you. \
                 <code>/notify off</code> stops that."
                    .to_string()
            } else {
                "🔕 When a run ends, only the output message is updated (no notification). \
                 <code>/notify on</code> sends a message again."
                    .to_string()
            }
        }
        "on" => {
            notify::set_final(db, ctx.user, true).await?;
            ON.to_string()
        }
        "off" => {
            notify::set_final(db, ctx.user, false).await?;
            OFF.to_string()
        }
        _ => USAGE.to_string(),
    };
    if !cloud_on && !text.starts_with("🔕") {
        text.push_str(CLOUD_OFF);
    }
    ctx.reply(text).await;
    Ok(())
}
