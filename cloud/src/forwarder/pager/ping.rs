//! The ping: a session's end told again as a new message, replying to
//! the message that shows the status. Telegram does not notify on edits,
//! so without it a user who put the phone away never learns that the run
//! ended. It goes through the outbox like everything else (paced, 429s
//! waited out), is retried while Telegram is unreachable, and is sent at
//! most once per session: it is recorded (`pinged`) before the session
//! is cleared, so a replica that takes the session over after it went out
//! does not send it again.

use std::time::Duration;

use remoteagent_proto::backoff::Backoff;
use remoteagent_proto::events::DonePayload;

use super::{Io, Pager, Stop};
use crate::forwarder::page;
use crate::telegram::TelegramError;

/// Attempts at the ping while Telegram is unreachable.
const PING_ATTEMPTS: u32 = 10;

impl<I: Io> Pager<I> {
    /// Sends the ping of a finished session, unless it went out already,
    /// the user does not want it (`FINAL_NOTIFY`, `/notify off`), or there
    /// is nothing to tell (a prompt that never ran was answered at once).
    pub(super) async fn ping(&mut self, done: &DonePayload) -> Result<(), Stop> {
        if self.saved.more.pinged {
            return Ok(());
        }
        if let Some(html) = page::ping_html(&self.saved.agent_name, done)
            && !self.muted
        {
            let owner = self.owner();
            if self.io.wants_ping(owner).await {
                let target = self.status_message();
                self.send_ping(html, target).await?;
            } else {
                tracing::info!(agent = %self.saved.agent_id, session = %self.saved.session_id, "no message at the end: the user or the cloud turned it off");
            }
        }
        self.saved.more.pinged = true;
        self.save(true).await
    }

    /// The message showing the status: the output file (or what stands for
    /// it), else the last page. 0 when none could be shown.
    fn status_message(&self) -> i64 {
        if self.saved.more.file_sent {
            self.saved.more.status_msg
        } else {
            self.page.message
        }
    }

    /// Sends the ping as a reply to `target` (an ordinary message when
    /// there is none), retrying while Telegram is unreachable. A refusal
    /// of the reply (its message gone) is sent again without it. Stopped
    /// meanwhile, it is left to the next owner of the session.
    async fn send_ping(&mut self, html: String, mut target: i64) -> Result<(), Stop> {
        let chat = self.chat();
        let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(16))
            .attempts(PING_ATTEMPTS)
            .without_jitter();
        loop {
            let sent = if target == 0 {
                self.io.send(chat, html.clone(), None).await
            } else {
                self.io.send_reply(chat, html.clone(), target).await
            };
            match sent {
                Ok(id) => {
                    tracing::info!(agent = %self.saved.agent_id, session = %self.saved.session_id, message = id, reply_to = target, "end of the session sent as a new message");
                    return Ok(());
                }
                Err(e @ TelegramError::Api { code: 403, .. }) => {
                    self.mute(&e);
                    return Ok(());
                }
                Err(TelegramError::Api { description, .. })
                    if target != 0 && description.contains("message to be replied not found") =>
                {
                    tracing::warn!(session = %self.saved.session_id, message = target, "the message to reply to is gone; sending the end without the reply");
                    target = 0;
                }
                Err(TelegramError::Api { code, description }) => {
                    // Nothing of the output is lost: the status is shown on
                    // the output itself.
                    tracing::error!(agent = %self.saved.agent_id, session = %self.saved.session_id, code, %description, "Telegram refused the message that says the session ended");
                    return Ok(());
                }
                Err(e) => {
                    let attempt = backoff.failures() + 1;
                    tracing::warn!(session = %self.saved.session_id, attempt, error = %e, "sending the end of the session failed");
                    let Some(delay) = backoff.next_delay() else {
                        tracing::error!(agent = %self.saved.agent_id, session = %self.saved.session_id, "the message that says the session ended could not be sent; the status is on its output");
                        return Ok(());
                    };
                    self.io.pause(delay).await?;
                }
            }
        }
    }
}
