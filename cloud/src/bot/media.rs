//! Photos and documents: the glue between [`super::attachments`], which
//! fetches, stores and keeps the files waiting, and [`super::prompt`],
//! which runs the prompt that carries them (a caption at once; an album's
//! once it settled). In a group the file is read by the group's rules
//! ([`super::group::media_target`]).

use crate::db::agents;
use crate::error::{Error, Result};
use crate::state::AppState;

use super::attachments::{self, ALBUM_SETTLE, Incoming, Received, Settled};
use super::update::Message;
use super::{Ctx, group, prompt};

/// Handles a message carrying a photo or a document; failures are logged
/// and apologized for, as for texts.
pub async fn handle(ctx: &Ctx<'_>, message: &Message, incoming: Incoming) {
    let result = if ctx.private {
        private(ctx, message, &incoming).await
    } else {
        match group::media_target(ctx, message).await {
            Ok(Some((agent, caption))) => in_group(ctx, &incoming, agent, caption.as_deref()).await,
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        }
    };
    if let Err(e) = result {
        apologize(ctx, &e).await;
    }
}

async fn private(ctx: &Ctx<'_>, message: &Message, incoming: &Incoming) -> Result<()> {
    let Some(agent) = ctx.owned_current_agent().await? else {
        return Ok(());
    };
    let received = attachments::receive(ctx, incoming, &agent, message.caption.as_deref()).await?;
    follow(ctx, received, None).await
}

async fn in_group(
    ctx: &Ctx<'_>,
    incoming: &Incoming,
    agent: agents::Agent,
    caption: Option<&str>,
) -> Result<()> {
    let received = attachments::receive(ctx, incoming, &agent, caption).await?;
    follow(ctx, received, Some(agent)).await
}

/// Does what [`attachments::receive`] decided; `group_agent` is the agent
/// a group was opted in for (`None` in a private chat: the current one).
async fn follow(
    ctx: &Ctx<'_>,
    received: Received,
    group_agent: Option<agents::Agent>,
) -> Result<()> {
    match received {
        Received::Answered => Ok(()),
        Received::RunNow(caption) => match group_agent {
            None => prompt::run(ctx, &caption).await,
            Some(agent) => prompt::run_for_agent(ctx, agent, &caption).await,
        },
        Received::Album(seq) => {
            settle_later(ctx, seq);
            Ok(())
        }
    }
}

/// After [`ALBUM_SETTLE`], settles the album in the user's lane, behind
/// whatever arrived meanwhile (more items, a prompt).
fn settle_later(ctx: &Ctx<'_>, seq: u64) {
    let state = ctx.state.clone();
    let (chat, user, private) = (ctx.chat, ctx.user, ctx.private);
    tokio::spawn(async move {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = tokio::time::sleep(ALBUM_SETTLE) => {}
        }
        let lane_state = state.clone();
        state.lanes.run(user, async move {
            settle(lane_state, chat, user, private, seq).await;
        });
    });
}

async fn settle(state: AppState, chat: i64, user: i64, private: bool, seq: u64) {
    let ctx = Ctx {
        state: &state,
        chat,
        user,
        private,
        thread: None,
        // A private chat's topics are the bot's (a group's need its message).
        forum: private && state.topics_in_private,
    };
    let result = async {
        match attachments::settle_album(&ctx, seq).await? {
            Settled::Nothing | Settled::Asked => Ok(()),
            Settled::Run { caption, .. } if private => prompt::run(&ctx, &caption).await,
            Settled::Run { caption, agent } => {
                let agent = agents::get(&state.db, &agent)
                    .await?
                    .filter(|a| a.owner == user && a.is_active());
                match agent {
                    Some(agent) => prompt::run_for_agent(&ctx, agent, &caption).await,
                    None => {
                        ctx.reply("That agent is no longer yours to command; nothing ran.")
                            .await;
                        Ok(())
                    }
                }
            }
        }
    }
    .await;
    if let Err(e) = result {
        apologize(&ctx, &e).await;
    }
}

async fn apologize(ctx: &Ctx<'_>, e: &Error) {
    tracing::error!(chat = ctx.chat, user = ctx.user, error = %e, "handling a photo or document");
    if ctx.private {
        ctx.reply("Something went wrong on our side. Please try again in a moment.")
            .await;
    } else {
        group::apologize_once(ctx).await;
    }
}
