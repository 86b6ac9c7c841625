//! The Telegram bot: one module per command, plus plain-text prompts and
//! button presses. Every handler answers the user; internal failures are
//! logged and answered with a short apology, never with details.

pub mod agents;
pub mod answer;
pub mod attachments;
pub mod callback;
pub mod checkpoints;
pub mod dequeue;
pub mod get;
pub mod group;
pub mod media;
pub mod mode;
pub mod new;
pub mod notify;
mod owner;
pub mod pair;
pub mod prompt;
pub mod queue;
pub mod rules;
pub mod sessions;
pub mod start;
pub mod status;
pub mod stop;
pub mod topics;
pub mod unpair;
pub mod update;
pub mod voice;

use crate::db::{agents as agent_rows, users};
use crate::error::Result;
use crate::state::AppState;
use crate::telegram::InlineKeyboard;
use update::{Message, Update, parse_command};

/// Who is talking, and where.
pub struct Ctx<'a> {
    pub state: &'a AppState,
    pub chat: i64,
    pub user: i64,
    /// A one-to-one chat with the bot; false in groups (see [`group`]).
    pub private: bool,
    /// The forum topic the update came from; replies go there too.
    pub thread: Option<i64>,
    /// The chat has topics: each agent's runs go to its own (see
    /// [`topics`]).
    pub forum: bool,
}

impl Ctx<'_> {
    pub async fn reply(&self, html: impl Into<String>) {
        self.reply_with(html, None).await;
    }

    /// [`Ctx::reply`] of a text that says the same each time (the help for
    /// a stranger): not queued again while the same text still waits for
    /// this chat ([`crate::telegram::Outbox::queue_send_once_to`]).
    pub async fn reply_once(&self, html: &str) {
        let to = crate::telegram::ChatRef {
            chat: self.chat,
            thread: self.thread,
        };
        let sending = self.state.outbox.queue_send_once_to(to, html.to_string());
        log_failure(self.chat, sending);
    }

    /// Queues a reply and returns without waiting for its delivery. The
    /// outbox keeps a chat's messages in the order they were queued, so
    /// nothing is gained by waiting, and waiting would hold the user's next
    /// update (its lane, see [`crate::lanes`]) behind Telegram's pacing: a
    /// prompt typed right after `/use` would reach the agent a second late,
    /// and every user's updates would stall through a 429's pause. A
    /// failure is still logged (and the outbox logs it too).
    pub async fn reply_with(&self, html: impl Into<String>, keyboard: Option<InlineKeyboard>) {
        let to = crate::telegram::ChatRef {
            chat: self.chat,
            thread: self.thread,
        };
        let sending = self.state.outbox.queue_send_to(to, html.into(), keyboard);
        log_failure(self.chat, sending);
    }

    /// The user's current agent, checked to be theirs and active. When there
    /// is none, the user has been told what to do and `None` is returned.
    pub async fn owned_current_agent(&self) -> Result<Option<agent_rows::Agent>> {
        // In an agent's topic, that agent is the current one.
        if let Some(agent) = topics::topic_agent(self).await? {
            return Ok(Some(agent));
        }
        let user = users::get(&self.state.db, self.user).await?;
        let agent = match user.as_ref().and_then(|u| u.current_agent.clone()) {
            Some(id) => agent_rows::get(&self.state.db, &id).await?,
            None => None,
        };
        match agent {
            Some(a) if a.owner == self.user && a.is_active() => Ok(Some(a)),
            Some(a) if a.owner != self.user => {
                self.reply("Sorry, only the Telegram account that paired an agent can command it.")
                    .await;
                Ok(None)
            }
            _ => {
                let owned = agent_rows::count_active(&self.state.db, self.user).await?;
                if owned == 0 {
                    self.reply(NO_AGENTS).await;
                } else {
                    self.reply("No agent selected. Pick one with /agents or /use NAME.")
                        .await;
                }
                Ok(None)
            }
        }
    }
}

/// The guidance for someone with no agents.
pub const NO_AGENTS: &str = "You have no paired agents yet.\n\n\
On your computer, run <code>remoteagentctl pair ./your-project</code>, then send me \
<code>/pair CODE</code> with the code it prints.";

/// Queues `update` behind the earlier updates of its user (see
/// [`crate::lanes`]) and returns at once; an update without a user is
/// handled at once.
pub fn dispatch(state: &AppState, update: Update) {
    let lane = lane_of(&update);
    let job = handle_logged(state.clone(), update);
    match lane {
        Some(user) => state.lanes.run(user, job),
        None => {
            tokio::spawn(job);
        }
    }
}

/// Whose lane an update belongs to: the user who sent it or pressed the
/// button. `None` for updates without a user.
fn lane_of(update: &Update) -> Option<i64> {
    if let Some(q) = &update.callback_query {
        return Some(q.from.id);
    }
    update.message.as_ref()?.from.as_ref().map(|u| u.id)
}

async fn handle_logged(state: AppState, update: Update) {
    let update_id = update.update_id;
    handle(state, update).await;
    tracing::debug!(update = update_id, "update processed");
}

/// Handles one update (already deduplicated by the webhook).
pub async fn handle(state: AppState, update: Update) {
    if let Some(query) = update.callback_query {
        if answer::is_answer(&query) {
            answer::handle(&state, query).await;
        } else {
            callback::handle(&state, query).await;
        }
    } else if let Some(message) = update.message {
        handle_message(&state, message).await;
    }
}

async fn handle_message(state: &AppState, message: Message) {
    let Some(from) = message.from.as_ref() else {
        return;
    };
    if from.is_bot {
        return;
    }
    let private = message.chat.is_private();
    let ctx = Ctx {
        state,
        chat: message.chat.id,
        user: from.id,
        private,
        thread: message.topic(),
        forum: topics::chat_has_topics(state, &message),
    };
    // Photos and documents go into the next prompt (`media`).
    if let Some(incoming) = attachments::Incoming::of(&message) {
        media::handle(&ctx, &message, incoming).await;
        return;
    }
    let Some(text) = message.text.as_deref() else {
        if ctx.private && voice::recording(&message).is_some() {
            if let Err(e) = voice::handle(&ctx, &message).await {
                tracing::error!(chat = ctx.chat, user = ctx.user, error = %e, "handling a voice note");
                ctx.reply("Something went wrong on our side. Please try again in a moment.")
                    .await;
            }
        } else if ctx.private {
            ctx.reply("I understand text messages, photos, documents and voice notes.")
                .await;
        }
        return;
    };
    let command = parse_command(text);
    // In a group, `/status@other_bot` is meant for another bot.
    if let Some(cmd) = &command
        && let (Some(target), Some(me)) = (cmd.target, state.bot_username.as_deref())
        && !target.eq_ignore_ascii_case(me)
    {
        return;
    }
    if !ctx.private {
        let result = group::handle(&ctx, &message, text, command).await;
        if let Err(e) = result {
            tracing::error!(chat = ctx.chat, user = ctx.user, error = %e, "handling a group message");
            // Said once per group and day at most, like the opt-in hint.
            group::apologize_once(&ctx).await;
        }
        return;
    }
    let result = match command {
        Some(cmd) => match cmd.name.as_str() {
            "start" => start::start(&ctx, cmd.args).await,
            "help" => start::help(&ctx).await,
            "pair" => pair::run(&ctx, cmd.args).await,
            "agents" => agents::list(&ctx).await,
            "use" => agents::use_by_name(&ctx, cmd.args).await,
            "new" => new::run(&ctx).await,
            "stop" => stop::run(&ctx).await,
            "get" => get::run(&ctx, cmd.args).await,
            "sessions" => sessions::run(&ctx).await,
            "rules" => rules::run(&ctx).await,
            "clean" => sessions::clean::run(&ctx).await,
            "status" => status::run(&ctx).await,
            "notify" => notify::run(&ctx, cmd.args).await,
            "queue" => queue::list(&ctx).await,
            "mode" => mode::run(&ctx, cmd.args).await,
            "unpair" => unpair::run(&ctx, cmd.args).await,
            "allowgroup" | "disallowgroup" => {
                ctx.reply(group::ONLY_IN_GROUPS).await;
                Ok(())
            }
            _ => {
                ctx.reply("Unknown command. /help lists what I understand.")
                    .await;
                Ok(())
            }
        },
        None => typed_text(&ctx, text).await,
    };
    if let Err(e) = result {
        tracing::error!(chat = ctx.chat, user = ctx.user, error = %e, "handling a message");
        ctx.reply("Something went wrong on our side. Please try again in a moment.")
            .await;
    }
}

/// A text that is not a command: after ✎ other / ✎ Revise an answer,
/// after ✎ Edit message a commit message, else a prompt.
async fn typed_text(ctx: &Ctx<'_>, text: &str) -> Result<()> {
    // A stranger has paired nothing, so no ✎ of theirs waits for this
    // text: they are told how to pair before any round trip to Redis.
    let Some(user) = prompt::known_user(ctx).await? else {
        return Ok(());
    };
    if answer::take_text(ctx, text).await? || checkpoints::take_text(ctx, text).await? {
        return Ok(());
    }
    prompt::run_as(ctx, &user, text).await
}

/// Logs a queued reply's failure once its delivery is settled (the outbox
/// logs it too); the handler does not wait for it.
fn log_failure(chat: i64, sending: crate::telegram::Sending) {
    tokio::spawn(async move {
        if let Err(e) = sending.wait().await {
            tracing::warn!(chat, error = %e, "sending a bot reply");
        }
    });
}
