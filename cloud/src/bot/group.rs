//! Messages in group chats (groups, supergroups, channels).
//!
//! Prompts are accepted in private chats. In a group, whatever its members
//! write may reach the bot (with privacy mode off, every message does), and
//! the output is posted to everyone there; so a group runs nothing unless
//! the owner opted it in for one of their agents (`/allowgroup` sent in the
//! group, stored in `group_chats`; or `ALLOW_GROUP_PROMPTS` for every
//! group). Even then:
//!
//! * the bot reads only messages addressed to it: ones that mention
//!   `@bot`, reply to one of its messages, or are one of its commands;
//! * only the owner's messages become prompts, for the agent they opted in;
//! * approval requests go to the owner's private chat (see
//!   `SessionStart::approval_chat_id`), and buttons stay owner-only.
//!
//! An addressed message the group is not opted in for gets the opt-in hint,
//! at most once per group and day (claimed in Redis), so the bot never
//! floods a group.

use super::Ctx;
use super::update::{Command, Message};
use crate::db::{agents, groups};
use crate::error::Result;
use crate::telegram::escape_html;

/// Said when `/allowgroup` or `/disallowgroup` arrives in a private chat.
pub const ONLY_IN_GROUPS: &str = "Send /allowgroup in the group where you want to use your current agent \
(/disallowgroup there stops it). Here, any message is already a prompt.";

/// Redis keys claiming a group notice: `ra:groupnotice:{what}:{chat}`.
const NOTICE_KEY_PREFIX: &str = "ra:groupnotice";

/// How long the opt-in hint stays quiet in a group after it was given.
const HINT_QUIET_SECS: u64 = 24 * 3600;

/// The opt-in hint.
fn hint(bot: &str) -> String {
    format!(
        "I only take prompts in private chats. To use me in this group, the agent's owner \
sends /allowgroup here (for their current agent). After that I answer the owner's messages \
that mention {bot} or reply to mine; approval requests go to the owner's private chat."
    )
}

/// Handles a text message in a group.
pub async fn handle(
    ctx: &Ctx<'_>,
    message: &Message,
    text: &str,
    command: Option<Command<'_>>,
) -> Result<()> {
    let state = ctx.state;
    let me = state.bot_username.as_deref();
    if let Some(cmd) = command {
        return match cmd.name.as_str() {
            "allowgroup" => allow(ctx, cmd.args).await,
            "disallowgroup" => disallow(ctx).await,
            "start" | "help" => {
                ctx.reply(hint(&at(me))).await;
                Ok(())
            }
            "pair" | "agents" | "use" | "new" | "stop" | "status" | "unpair" | "get" => {
                ctx.reply(format!(
                    "Please send /{} to me in a private chat.",
                    cmd.name
                ))
                .await;
                Ok(())
            }
            // Another bot's command, most likely: not ours to answer.
            _ => Ok(()),
        };
    }
    // In a forum, the owner's messages in their agent's topic are its
    // prompts, mentioned or not.
    if let Some(agent) = super::topics::topic_agent(ctx).await? {
        let prompt = match me {
            Some(me) => strip_mentions(text, me),
            None => text.to_string(),
        };
        tracing::info!(chat = ctx.chat, user = ctx.user, agent = %agent.id, "prompt from an agent's topic");
        return super::prompt::run_for_agent(ctx, agent, prompt.trim()).await;
    }
    let mentioned = me.is_some_and(|me| mentions(text, me));
    if !replies_to_me(message, me) && !mentioned {
        return Ok(());
    }
    let Some(agent) = opted_in_agent(ctx).await? else {
        hint_once(ctx, &hint(&at(me))).await;
        return Ok(());
    };
    let prompt = match me {
        Some(me) => strip_mentions(text, me),
        None => text.to_string(),
    };
    tracing::info!(chat = ctx.chat, user = ctx.user, agent = %agent.id, "prompt from an opted-in group");
    super::prompt::run_for_agent(ctx, agent, prompt.trim()).await
}

/// Whether `message` replies to one of the bot's (`me`) messages. In a
/// forum topic, Telegram makes every message a "reply" to the message
/// that created the topic: that one does not count.
fn replies_to_me(message: &Message, me: Option<&str>) -> bool {
    message
        .reply_to_message
        .as_ref()
        .filter(|r| message.topic() != Some(r.message_id))
        .and_then(|r| r.from.as_ref())
        .is_some_and(|from| {
            from.is_bot
                && me.is_some_and(|me| {
                    from.username
                        .as_deref()
                        .is_some_and(|u| u.eq_ignore_ascii_case(me))
                })
        })
}

/// A photo or document in a group, read by the rules of a text: addressed
/// to the bot (a mention in its caption, a reply to the bot, or an item of
/// an album whose earlier items were), from an owner who opted the group
/// in. Returns the agent and the caption without its mentions; `None` when
/// the bot leaves it alone (having given its opt-in hint, when due).
pub async fn media_target(
    ctx: &Ctx<'_>,
    message: &Message,
) -> Result<Option<(agents::Agent, Option<String>)>> {
    let me = ctx.state.bot_username.as_deref();
    let caption = message.caption.as_deref().unwrap_or("");
    let addressed = replies_to_me(message, me)
        || me.is_some_and(|me| mentions(caption, me))
        || super::attachments::continues_album(ctx, message).await?;
    if !addressed {
        return Ok(None);
    }
    let Some(agent) = opted_in_agent(ctx).await? else {
        hint_once(ctx, &hint(&at(me))).await;
        return Ok(None);
    };
    let caption = match me {
        Some(me) => strip_mentions(caption, me),
        None => caption.to_string(),
    };
    let caption = Some(caption.trim().to_string()).filter(|c| !c.is_empty());
    tracing::info!(chat = ctx.chat, user = ctx.user, agent = %agent.id, "file from an opted-in group");
    Ok(Some((agent, caption)))
}

/// The agent the sender opted this group in for, if it is still theirs and
/// active; with `ALLOW_GROUP_PROMPTS`, their current agent.
async fn opted_in_agent(ctx: &Ctx<'_>) -> Result<Option<agents::Agent>> {
    let db = &ctx.state.db;
    let id = match groups::agent_for(db, ctx.chat, ctx.user).await? {
        Some(id) => Some(id),
        None if ctx.state.config.allow_group_prompts => crate::db::users::get(db, ctx.user)
            .await?
            .and_then(|u| u.current_agent),
        None => None,
    };
    let Some(id) = id else {
        return Ok(None);
    };
    Ok(agents::get(db, &id)
        .await?
        .filter(|a| a.owner == ctx.user && a.is_active()))
}

/// `/allowgroup [NAME]`: prompts from the sender in this group go to the
/// named agent, or to their current one.
async fn allow(ctx: &Ctx<'_>, name: &str) -> Result<()> {
    let name = name.trim();
    let agent = if name.is_empty() {
        match ctx.owned_current_agent().await? {
            Some(a) => a,
            None => return Ok(()),
        }
    } else {
        match agents::find_active_by_name(&ctx.state.db, ctx.user, name).await? {
            Some(a) => a,
            None => {
                ctx.reply(format!(
                    "You have no agent named <b>{}</b>.",
                    escape_html(name)
                ))
                .await;
                return Ok(());
            }
        }
    };
    groups::allow(&ctx.state.db, ctx.chat, ctx.user, &agent.id).await?;
    tracing::info!(chat = ctx.chat, user = ctx.user, agent = %agent.id, "group opted in");
    ctx.reply(format!(
        "✅ This group is opted in for <b>{}</b>. Your messages here that mention {} or reply \
to mine become its prompts, and everyone here sees the output. Approval requests go to our \
private chat. /disallowgroup stops this.",
        escape_html(&agent.name),
        escape_html(&at(ctx.state.bot_username.as_deref()))
    ))
    .await;
    Ok(())
}

async fn disallow(ctx: &Ctx<'_>) -> Result<()> {
    if groups::disallow(&ctx.state.db, ctx.chat, ctx.user).await? {
        tracing::info!(chat = ctx.chat, user = ctx.user, "group opted out");
        ctx.reply("This group no longer sends your prompts to an agent.")
            .await;
    } else {
        ctx.reply("This group was not opted in for any of your agents.")
            .await;
    }
    Ok(())
}

/// Replies `text` unless this group got a hint in the last day.
async fn hint_once(ctx: &Ctx<'_>, text: &str) {
    if claim_quiet_slot(ctx, "hint").await {
        ctx.reply(text).await;
    }
}

/// The apology for an internal error, at most once per group and day.
pub async fn apologize_once(ctx: &Ctx<'_>) {
    if claim_quiet_slot(ctx, "error").await {
        ctx.reply("Something went wrong on our side. Please try again in a moment.")
            .await;
    }
}

/// Claims the right to say `what` in this group (once per day, shared by
/// the replicas). With Redis unreachable the bot stays quiet: a group
/// must never be flooded, and the failure is logged.
async fn claim_quiet_slot(ctx: &Ctx<'_>, what: &str) -> bool {
    let key = format!("{}:{what}:{}", NOTICE_KEY_PREFIX, ctx.chat);
    let claimed: redis::RedisResult<Option<String>> = redis::cmd("SET")
        .arg(&key)
        .arg(1)
        .arg("NX")
        .arg("EX")
        .arg(HINT_QUIET_SECS)
        .query_async(&mut ctx.state.redis.clone())
        .await;
    match claimed {
        Ok(done) => done.is_some(),
        Err(e) => {
            tracing::warn!(chat = ctx.chat, error = %e, "claiming a group notice; staying quiet");
            false
        }
    }
}

/// `@bot`, or a neutral phrase when the bot's name is unknown.
fn at(bot: Option<&str>) -> String {
    bot.map_or_else(|| "me".to_string(), |b| format!("@{b}"))
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Byte ranges of the whole-word `@bot` mentions in `text`.
fn mention_ranges(text: &str, bot: &str) -> Vec<(usize, usize)> {
    // ASCII lower-casing keeps byte offsets, and usernames are ASCII.
    let lower = text.to_ascii_lowercase();
    let needle = format!("@{}", bot.to_ascii_lowercase());
    let bytes = lower.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find(&needle) {
        let start = from + i;
        let end = start + needle.len();
        let before_ok = start == 0 || !is_name_char(bytes[start - 1]);
        let after_ok = end == bytes.len() || !is_name_char(bytes[end]);
        if before_ok && after_ok {
            out.push((start, end));
        }
        from = end;
    }
    out
}

/// Whether `text` mentions `@bot`.
pub fn mentions(text: &str, bot: &str) -> bool {
    !mention_ranges(text, bot).is_empty()
}

/// `text` without its `@bot` mentions.
pub fn strip_mentions(text: &str, bot: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, end) in mention_ranges(text, bot) {
        out.push_str(&text[last..start]);
        last = end;
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_whole_words() {
        assert!(mentions("@my_bot run the tests", "my_bot"));
        assert!(mentions("hey @My_Bot, go", "my_bot"));
        assert!(!mentions("@my_bot2 run", "my_bot"));
        assert!(!mentions("mail@my_bot.example", "other"));
        assert!(!mentions("no mention", "my_bot"));
        assert_eq!(strip_mentions("@my_bot run ✓ @MY_BOT", "my_bot"), " run ✓ ");
        assert_eq!(strip_mentions("x@my_bot2", "my_bot"), "x@my_bot2");
    }
}
