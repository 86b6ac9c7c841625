//! Files in the chat: a `file` event of the stream (the runner's outbox,
//! or any file the daemon sends with a session) becomes a document, sent
//! below everything shown so far, with output after it on a page below.
//!
//! The file is fetched from its blob and checked first
//! (`crate::blob_fetch`); a file that expired, or whose size or SHA-256
//! differs, is not sent, and the user is told. Sending is at most once:
//! the entry is stored as shown, with the file's name as pending, before
//! the upload starts; a replica that resumes a session with a pending name
//! says the file may not have arrived rather than sending it again. The
//! blob is deleted once the file was sent (or can never be).

use std::time::Duration;

use remoteagent_proto::backoff::Backoff;
use remoteagent_proto::files::{FileOrigin, FilePayload, safe_file_name};

use super::{FetchedFile, Io, Pager, Stop};
use crate::blob_fetch::FetchError;
use crate::forwarder::page::Line;
use crate::telegram::{Document, TelegramError, escape_html};

/// Attempts at fetching a file while Redis cannot be read.
const FETCH_ATTEMPTS: u32 = 5;

impl<I: Io> Pager<I> {
    /// A `file` event: the file as a document (see the module doc).
    pub(super) async fn deliver_file(
        &mut self,
        f: &FilePayload,
        entry_id: &str,
    ) -> Result<(), Stop> {
        let name = safe_file_name(&f.file.name);
        if self.muted {
            self.io.drop_blob(&f.file.key).await;
            return Ok(());
        }
        let fetched = match self.fetch(f).await? {
            Ok(file) => file,
            Err(e) => {
                tracing::warn!(agent = %self.saved.agent_id, session = %self.saved.session_id, file = %name, error = %e, "a file for the chat could not be fetched");
                if !e.is_transient() {
                    self.io.drop_blob(&f.file.key).await;
                }
                return self
                    .append_line(Line::notice(&format!("⚠️ {name} could not be sent: {e}")))
                    .await;
            }
        };
        // Below everything shown so far; output after it goes on a page
        // below it, so the status stays the last thing in the chat.
        self.break_page().await?;
        self.saved.more.file_pending = name.clone();
        self.saved.last_id = entry_id.to_string();
        self.saved.skip = 0;
        self.save(true).await?;
        let document = Document {
            file_name: name.clone(),
            caption: Some(caption(&self.saved.agent_name, f.origin)),
            source: fetched.source.clone(),
        };
        let sent = self.send_document(document).await;
        drop(fetched);
        self.saved.more.file_pending.clear();
        match sent {
            Ok(_) => {
                tracing::info!(agent = %self.saved.agent_id, session = %self.saved.session_id, file = %name, bytes = f.file.size, "file sent to the chat");
            }
            Err(_) if self.muted => {}
            Err(e) => {
                tracing::error!(agent = %self.saved.agent_id, session = %self.saved.session_id, file = %name, error = %e, "Telegram did not accept a file");
                let why = match &e {
                    TelegramError::Api { description, .. } => description.clone(),
                    other => other.to_string(),
                };
                self.append_line(Line::notice(&format!(
                    "⚠️ Telegram did not accept {name}: {why}"
                )))
                .await?;
            }
        }
        self.io.drop_blob(&f.file.key).await;
        self.save(true).await
    }

    /// The replica before this one stopped while it sent a file: whether
    /// Telegram got it is unknown, and it is not sent twice.
    pub(super) async fn file_interrupted(&mut self) -> Result<(), Stop> {
        let name = std::mem::take(&mut self.saved.more.file_pending);
        tracing::warn!(agent = %self.saved.agent_id, session = %self.saved.session_id, file = %name, "a file was being sent when the forwarder stopped");
        self.append_line(Line::notice(&format!(
            "⚠️ {name} may not have arrived: the cloud restarted while sending it"
        )))
        .await?;
        self.save(true).await
    }

    /// Fetches the file, retrying while Redis cannot be read (a replica
    /// told to stop leaves the file to the next one).
    async fn fetch(&mut self, f: &FilePayload) -> Result<Result<FetchedFile, FetchError>, Stop> {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(8))
            .attempts(FETCH_ATTEMPTS)
            .without_jitter();
        loop {
            match self.io.fetch_file(&f.file).await {
                Err(e) if e.is_transient() => {
                    let Some(delay) = backoff.next_delay() else {
                        return Ok(Err(e));
                    };
                    tracing::warn!(session = %self.saved.session_id, error = %e, "fetching a file for the chat; retrying");
                    self.io.pause(delay).await?;
                }
                other => return Ok(other),
            }
        }
    }
}

/// The caption of a file: which agent sent it, and why.
pub(in crate::forwarder) fn caption(agent_name: &str, origin: FileOrigin) -> String {
    let from = format!("📎 from <b>{}</b>", escape_html(agent_name));
    match origin {
        FileOrigin::Get => format!("{from} (/get)"),
        FileOrigin::Outbox | FileOrigin::Other => from,
    }
}
