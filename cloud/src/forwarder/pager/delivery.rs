//! Getting the pager's messages to Telegram: sends and edits retried while
//! Telegram is unreachable (with [`Backoff`], never waiting after the last
//! attempt, each wait cancellable through [`Io::pause`]), repairs (a
//! deleted message is sent anew, a refused page ends live output), the
//! page with the status, and the output file at the end.

use std::time::Duration;

use remoteagent_proto::backoff::Backoff;
use remoteagent_proto::events::DonePayload;

use super::{Io, Pager, Stop};
use crate::forwarder::page::{self, Line};
use crate::telegram::{Document, InlineKeyboard, TelegramError};

/// Attempts at a message while Telegram is unreachable, before the output it
/// carries is declared not shown (and attached at the end instead).
const SEND_ATTEMPTS: u32 = 5;
/// Attempts at the session's last messages (the status): longer, since
/// nothing comes after them.
const FINAL_ATTEMPTS: u32 = 10;

/// Waits between attempts at one Telegram call: 2, 4, 8, then 16 s.
fn retries(attempts: u32) -> Backoff {
    Backoff::new(Duration::from_secs(2), Duration::from_secs(16))
        .attempts(attempts)
        .without_jitter()
}

/// What became of a message the pager tried to show.
pub(super) enum Shown {
    /// Telegram has it.
    Yes,
    /// It was refused or could not be delivered; the user is told (or
    /// blocked the bot).
    No,
}

impl<I: Io> Pager<I> {
    /// Shows the current page as it is now, with `keyboard`, and waits until
    /// Telegram has it. A page that cannot be shown is repaired: sent anew
    /// when its message is gone, else said and attached at the end.
    pub(super) async fn deliver_page(
        &mut self,
        keyboard: Option<InlineKeyboard>,
    ) -> Result<(), Stop> {
        if self.muted {
            return Ok(());
        }
        if !page::is_visible(&self.page.html) {
            // Nothing a user could see (Telegram would refuse it as empty).
            // A message that shows something else must not keep a button.
            if self.page.message != 0 && keyboard.is_none() {
                let html = page::placeholder(&self.saved.agent_name);
                let (chat, msg) = (self.chat(), self.page.message);
                let _ = self.edit_now(chat, msg, html, None).await;
            }
            return Ok(());
        }
        if let Err(why) = page::check_fits(&self.page.html, self.page_chars) {
            // A bug in the paging; never sent as it is.
            tracing::error!(session = %self.saved.session_id, why, "a page does not fit Telegram's rules");
            if self.page.message != 0 {
                // Its message keeps what it showed, without the button.
                let (chat, msg) = (self.chat(), self.page.message);
                let html = self.saved_page_html();
                let _ = self.edit_now(chat, msg, html, None).await;
            }
            self.page.message = 0;
            return self.output_not_shown("it broke Telegram's limits").await;
        }
        let (chat, html) = (self.chat(), self.page.html.clone());
        if self.page.message == 0 {
            return match self.send_now(chat, html, keyboard).await {
                Some(id) => {
                    self.page.message = id;
                    Ok(())
                }
                None if self.muted => Ok(()),
                None => self.output_not_shown("Telegram did not accept it").await,
            };
        }
        let msg = self.page.message;
        match self
            .edit_now(chat, msg, html.clone(), keyboard.clone())
            .await
        {
            Shown::Yes => Ok(()),
            Shown::No if self.muted => Ok(()),
            Shown::No => self.output_not_shown("Telegram did not accept it").await,
        }
    }

    /// Sends a message, retrying while Telegram is unreachable. `None` if it
    /// could not be sent.
    pub(super) async fn send_now(
        &mut self,
        chat: i64,
        html: String,
        keyboard: Option<InlineKeyboard>,
    ) -> Option<i64> {
        self.send_tries(chat, html, keyboard, SEND_ATTEMPTS).await
    }

    pub(super) async fn send_tries(
        &mut self,
        chat: i64,
        html: String,
        keyboard: Option<InlineKeyboard>,
        attempts: u32,
    ) -> Option<i64> {
        if self.muted {
            return None;
        }
        let mut backoff = retries(attempts);
        loop {
            match self.io.send(chat, html.clone(), keyboard.clone()).await {
                Ok(id) => return Some(id),
                Err(e) if is_blocked(&e) => {
                    self.mute(&e);
                    return None;
                }
                Err(TelegramError::Api { code, description }) => {
                    tracing::error!(session = %self.saved.session_id, code, %description, "Telegram refused a message");
                    return None;
                }
                Err(e) => {
                    let attempt = backoff.failures() + 1;
                    tracing::warn!(session = %self.saved.session_id, attempt, error = %e, "sending a message failed");
                    let delay = backoff.next_delay()?;
                    if self.io.pause(delay).await.is_err() {
                        return None;
                    }
                }
            }
        }
    }

    /// Edits a message and waits; a message that is gone is sent anew (and
    /// becomes the page's message when it was the page's).
    pub(super) async fn edit_now(
        &mut self,
        chat: i64,
        message: i64,
        html: String,
        keyboard: Option<InlineKeyboard>,
    ) -> Shown {
        if self.muted {
            return Shown::No;
        }
        let mut backoff = retries(SEND_ATTEMPTS);
        loop {
            match self
                .io
                .edit(chat, message, html.clone(), keyboard.clone())
                .await
            {
                Ok(()) => return Shown::Yes,
                Err(e) if is_blocked(&e) => {
                    self.mute(&e);
                    return Shown::No;
                }
                Err(TelegramError::Api { description, .. })
                    if description.contains("message to edit not found")
                        || description.contains("message can't be edited") =>
                {
                    // The user deleted it: show it again below.
                    tracing::warn!(session = %self.saved.session_id, message, "a message to edit is gone; sending it anew");
                    return match self.send_now(chat, html, keyboard).await {
                        Some(id) => {
                            if message == self.page.message {
                                self.page.message = id;
                            }
                            Shown::Yes
                        }
                        None => Shown::No,
                    };
                }
                Err(TelegramError::Api { code, description }) => {
                    tracing::error!(session = %self.saved.session_id, code, %description, "Telegram refused an edit");
                    return Shown::No;
                }
                Err(e) => {
                    let attempt = backoff.failures() + 1;
                    tracing::warn!(session = %self.saved.session_id, attempt, error = %e, "editing a message failed");
                    let Some(delay) = backoff.next_delay() else {
                        return Shown::No;
                    };
                    if self.io.pause(delay).await.is_err() {
                        return Shown::No;
                    }
                }
            }
        }
    }

    pub(super) fn mute(&mut self, e: &TelegramError) {
        tracing::error!(agent = %self.saved.agent_id, session = %self.saved.session_id, error = %e, "the user blocked the bot: nothing more can be shown in this chat");
        self.muted = true;
    }

    /// The current page's message without its button (as stored); a message
    /// that is gone stays gone.
    pub(super) async fn drop_button(&mut self) {
        if self.page.message == 0 || self.muted {
            return;
        }
        let (chat, msg, html) = (self.chat(), self.page.message, self.saved_page_html());
        if let Err(e) = self.io.edit(chat, msg, html, None).await {
            tracing::warn!(session = %self.saved.session_id, error = %e, "removing the Stop button of a finished session");
        }
    }

    /// The page with the status: retried longer than others, since nothing
    /// comes after it; if its message cannot be edited, sent anew.
    pub(super) async fn deliver_final_page(&mut self) -> Result<(), Stop> {
        if self.muted {
            return Ok(());
        }
        let (chat, html) = (self.chat(), self.page.html.clone());
        if self.page.message != 0 {
            let msg = self.page.message;
            if let Shown::Yes = self.edit_now(chat, msg, html.clone(), None).await {
                return Ok(());
            }
            if self.muted {
                return Ok(());
            }
            // The old message keeps what it showed, without its button.
            let _ = self.io.edit(chat, msg, self.saved_page_html(), None).await;
        }
        match self.send_tries(chat, html, None, FINAL_ATTEMPTS).await {
            Some(id) => {
                self.page.message = id;
                Ok(())
            }
            None => {
                tracing::error!(agent = %self.saved.agent_id, session = %self.saved.session_id, "the status of a session could not be shown");
                Ok(())
            }
        }
    }

    /// The current page's last stored text, or the placeholder.
    pub(super) fn saved_page_html(&self) -> String {
        if page::is_visible(&self.saved.html) {
            self.saved.html.clone()
        } else {
            page::placeholder(&self.saved.agent_name)
        }
    }

    /// Re-reads the whole stream and sends it with the status as its
    /// caption; if that is impossible, the status is sent as a message that
    /// says why the file is missing.
    pub(super) async fn send_output_file(
        &mut self,
        status: &Line,
        withheld: Option<&Line>,
        done: &DonePayload,
        entry_id: &str,
    ) -> Result<(), Stop> {
        if self.muted {
            return Ok(());
        }
        let status_html = match withheld {
            Some(w) => format!("{}\n{}", w.html, status.html),
            None => status.html.clone(),
        };
        let file = match self.io.output_file(done, entry_id).await {
            Ok(file) => file,
            Err(e) => {
                tracing::error!(agent = %self.saved.agent_id, session = %self.saved.session_id, error = %e, "assembling the output file");
                let html = format!(
                    "<i>⚠️ The whole output could not be read back to attach it.</i>\n{status_html}"
                );
                let shown = self
                    .send_tries(self.chat(), html, None, FINAL_ATTEMPTS)
                    .await;
                return self.file_done(shown).await;
            }
        };
        let cut = (file.written < file.total).then_some((file.written, file.total));
        let caption = page::file_caption(&status_html, file.lost, cut);
        // The message that ends up showing the status.
        let status_msg;
        if file.written == 0 {
            // Telegram refuses empty files; nothing of the output is left.
            let html = format!("<i>⚠️ No output is left to attach.</i>\n{caption}");
            status_msg = self
                .send_tries(self.chat(), html, None, FINAL_ATTEMPTS)
                .await;
        } else {
            let document = Document {
                file_name: format!("output-{}.txt", self.saved.session_id),
                caption: Some(caption.clone()),
                source: file.source.clone(),
            };
            match self.send_document(document).await {
                Err(e) => {
                    tracing::error!(agent = %self.saved.agent_id, session = %self.saved.session_id, error = %e, "sending the output file");
                    status_msg = if self.muted {
                        None
                    } else {
                        let html = format!(
                            "<i>⚠️ Telegram did not accept the output file.</i>\n{caption}"
                        );
                        self.send_tries(self.chat(), html, None, FINAL_ATTEMPTS)
                            .await
                    };
                }
                Ok(id) => {
                    tracing::info!(agent = %self.saved.agent_id, session = %self.saved.session_id, bytes = file.written, total = file.total, lost = file.lost, "output file sent");
                    status_msg = Some(id);
                }
            }
        }
        drop(file);
        self.file_done(status_msg).await
    }

    /// The output file (or what stands for it, `shown`) went out: stored,
    /// so that no replica sends it again, with the message the ping
    /// replies to.
    pub(super) async fn file_done(&mut self, shown: Option<i64>) -> Result<(), Stop> {
        self.saved.more.file_sent = true;
        self.saved.more.status_msg = shown.unwrap_or(0);
        self.save(true).await
    }

    /// Sends a document, retrying while Telegram is unreachable (a second
    /// copy of the file is better than none).
    pub(super) async fn send_document(&mut self, document: Document) -> Result<i64, TelegramError> {
        let chat = self.chat();
        let mut backoff = retries(FINAL_ATTEMPTS);
        loop {
            match self.io.send_document(chat, document.clone()).await {
                Err(e) if is_blocked(&e) => {
                    self.mute(&e);
                    return Err(e);
                }
                Err(TelegramError::Transport(e)) => {
                    let attempt = backoff.failures() + 1;
                    let Some(delay) = backoff.next_delay() else {
                        return Err(TelegramError::Transport(e));
                    };
                    tracing::warn!(session = %self.saved.session_id, attempt, error = %e, "sending the output file failed");
                    if self.io.pause(delay).await.is_err() {
                        return Err(TelegramError::Transport(e));
                    }
                }
                other => return other,
            }
        }
    }
}

/// 403 "Forbidden: bot was blocked by the user" and the like: the chat is
/// closed to the bot.
fn is_blocked(e: &TelegramError) -> bool {
    matches!(e, TelegramError::Api { code: 403, .. })
}
