//! Photos and documents sent to the bot, on their way into a prompt
//! (ARCHITECTURE.md, Contracts: "Files").
//!
//! Each file is fetched from Telegram at once (`getFile` + download, at
//! most 20 MB), hashed (SHA-256) and stored as a blob of the agent it is
//! for (`blob:{agentId}:{blobId}`, `EX` [`BLOB_TTL_SECS`]); its
//! [`Attachment`] waits in the user's [`pending`] record until a prompt
//! takes it. A caption is that prompt (the caller runs it at once); without
//! one the user is asked what to do with the file, and their next message
//! is the prompt, carrying every file that waits (an album, several
//! documents). An album arrives as one message per item: its prompt, or
//! the question, comes once no item arrived for [`ALBUM_SETTLE`].
//!
//! Limits ([`Limits`], `ATTACHMENTS_MAX_FILES` / `ATTACHMENTS_MAX_TOTAL_MB`)
//! are checked before anything is stored: a file over them is refused in
//! words, and nothing runs. Files wait [`BLOB_TTL_SECS`]: a prompt after
//! that runs without them and says so; a blob gone before its time (Redis
//! lost it) stops the prompt, so a file is never silently left out.
//! `/use` keeps waiting files: they go with the next prompt to whichever
//! agent it is for (their blobs are moved to its keys). `/new` only changes
//! the conversation.
//!
//! This module decides and stores; `super::media` runs the prompts, so that
//! `super::prompt` can take the waiting files without a circle.

mod fetch;
pub mod pending;

use std::time::Duration;

use remoteagent_proto::files::{Attachment, BLOB_TTL_SECS, MAX_DOWNLOAD_BYTES, safe_file_name};
use sha2::{Digest, Sha256};

use super::Ctx;
use super::update::Message;
use crate::config::Config;
use crate::db::agents;
use crate::error::{Error, Result};
use crate::telegram::escape_html;
use fetch::FetchError;
use pending::{Album, Pending, PendingFile, Readied};

/// `ATTACHMENTS_MAX_FILES`'s default.
pub const DEFAULT_MAX_FILES: usize = 10;
/// `ATTACHMENTS_MAX_TOTAL_MB`'s default.
pub const DEFAULT_MAX_TOTAL_MB: u64 = 50;
/// How long an album may go without a new item before it counts as
/// complete (Telegram delivers an album's items right after each other).
pub const ALBUM_SETTLE: Duration = Duration::from_millis(1500);

/// What one prompt may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_files: usize,
    pub max_total_bytes: u64,
}

impl Limits {
    pub fn of(config: &Config) -> Limits {
        Limits {
            max_files: config.attachments_max_files,
            max_total_bytes: config.attachments_max_total_bytes,
        }
    }
}

/// A photo or a document of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub file_id: String,
    /// As Telegram announced it (it may not).
    pub size: Option<u64>,
    /// A document's name, already safe; `None` for a photo (named from its
    /// hash once downloaded).
    pub name: Option<String>,
    pub mime: String,
    /// The album (`media_group_id`) it belongs to.
    pub album: Option<String>,
}

impl Incoming {
    /// The file of `message`: the largest size of a photo (Telegram lists
    /// them smallest first), or a document; `None` for anything else.
    pub fn of(message: &Message) -> Option<Incoming> {
        if let Some(largest) = message.photo.last() {
            return Some(Incoming {
                file_id: largest.file_id.clone(),
                size: largest.file_size,
                name: None,
                mime: "image/jpeg".into(),
                album: message.media_group_id.clone(),
            });
        }
        let doc = message.document.as_ref()?;
        Some(Incoming {
            file_id: doc.file_id.clone(),
            size: doc.file_size,
            name: Some(safe_file_name(doc.file_name.as_deref().unwrap_or("file"))),
            mime: doc
                .mime_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
            album: message.media_group_id.clone(),
        })
    }

    /// How the file is named to the user before it is downloaded.
    fn shown_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| "this photo".into())
    }
}

/// What the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Nothing: the user has been answered (asked what to do with the file,
    /// or told why it was not kept).
    Answered,
    /// Run this prompt now (the file's caption); it carries the waiting
    /// files.
    RunNow(String),
    /// An album item: settle it ([`settle_album`]) after [`ALBUM_SETTLE`],
    /// with this sequence number.
    Album(u64),
}

/// Takes the file of `message` for `agent` (already checked to be the
/// sender's and active): fetched, stored, and waiting for its prompt.
/// `caption` is the prompt that came with it (mentions stripped in groups).
pub async fn receive(
    ctx: &Ctx<'_>,
    incoming: &Incoming,
    agent: &agents::Agent,
    caption: Option<&str>,
) -> Result<Received> {
    let state = ctx.state;
    let limits = Limits::of(&state.config);
    let now = pending::now();
    let mut record = pending::load(&state.redis, ctx.chat, ctx.user)
        .await?
        .unwrap_or_else(|| Pending::new(agent.id.clone()));
    let caption = caption.map(str::trim).filter(|c| !c.is_empty());
    let nothing_ran = if caption.is_some() {
        " Nothing ran."
    } else {
        ""
    };

    // Before any download: what Telegram announced.
    if let Some(size) = incoming.size.filter(|s| *s > MAX_DOWNLOAD_BYTES) {
        ctx.reply(format!("{}{nothing_ran}", too_big_to_download(Some(size))))
            .await;
        return Ok(Received::Answered);
    }
    if let Some(refusal) = over_limit(
        &limits,
        record.live_count(now),
        record.live_bytes(now),
        &incoming.shown_name(),
        incoming.size.unwrap_or(0),
    ) {
        ctx.reply(format!("{}{nothing_ran}", escape_html(&refusal)))
            .await;
        return Ok(Received::Answered);
    }

    let bytes = match fetch::download(state, &incoming.file_id).await {
        Ok(bytes) => bytes,
        Err(FetchError::TooBig) => {
            ctx.reply(format!(
                "{}{nothing_ran}",
                too_big_to_download(incoming.size)
            ))
            .await;
            return Ok(Received::Answered);
        }
        Err(FetchError::Failed(why)) => {
            tracing::warn!(chat = ctx.chat, user = ctx.user, reason = %why, "fetching a file from Telegram");
            ctx.reply(format!(
                "I could not fetch {} from Telegram ({}).{nothing_ran} Please send it again.",
                escape_html(&incoming.shown_name()),
                escape_html(&why)
            ))
            .await;
            return Ok(Received::Answered);
        }
    };
    let size = bytes.len() as u64;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let name = incoming
        .name
        .clone()
        .unwrap_or_else(|| format!("photo-{}.jpg", &sha256[..8]));
    // Announced sizes may be missing: the real one decides.
    if let Some(refusal) = over_limit(
        &limits,
        record.live_count(now),
        record.live_bytes(now),
        &name,
        size,
    ) {
        ctx.reply(format!("{}{nothing_ran}", escape_html(&refusal)))
            .await;
        return Ok(Received::Answered);
    }
    let key = fetch::store_blob(state, &agent.id, &bytes).await?;
    tracing::info!(chat = ctx.chat, user = ctx.user, agent = %agent.id, size, "file stored for a prompt");

    record.agent = agent.id.clone();
    record.seq += 1;
    record.files.push(PendingFile {
        attachment: Attachment {
            key,
            name: name.clone(),
            mime: incoming.mime.clone(),
            size,
            sha256,
        },
        stored_at: now,
    });
    let outcome = match (&incoming.album, caption) {
        (Some(id), caption) => {
            let same = record.album.as_ref().filter(|a| &a.id == id);
            let caption = caption
                .map(str::to_string)
                .or_else(|| same.and_then(|a| a.caption.clone()));
            record.album = Some(Album {
                id: id.clone(),
                caption,
            });
            Received::Album(record.seq)
        }
        (None, Some(caption)) => Received::RunNow(caption.to_string()),
        (None, None) => {
            ctx.reply(waiting_question(&record, now, Some(&name), &agent.name))
                .await;
            Received::Answered
        }
    };
    pending::save(&state.redis, ctx.chat, ctx.user, &record).await?;
    Ok(outcome)
}

/// What an album comes to once it settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Nothing to do: another item or a prompt came after it.
    Nothing,
    /// The user was asked what to do with the files.
    Asked,
    /// Run the album's caption as a prompt for this agent (the one the
    /// files were sent for).
    Run {
        caption: String,
        agent: remoteagent_proto::AgentId,
    },
}

/// Settles the album whose last item had sequence number `seq`, unless
/// something arrived after it.
pub async fn settle_album(ctx: &Ctx<'_>, seq: u64) -> Result<Settled> {
    let state = ctx.state;
    let Some(mut record) = pending::load(&state.redis, ctx.chat, ctx.user).await? else {
        return Ok(Settled::Nothing);
    };
    if record.seq != seq {
        return Ok(Settled::Nothing);
    }
    let Some(album) = record.album.take() else {
        return Ok(Settled::Nothing);
    };
    pending::save(&state.redis, ctx.chat, ctx.user, &record).await?;
    match album.caption {
        Some(caption) => Ok(Settled::Run {
            caption,
            agent: record.agent.clone(),
        }),
        None => {
            let name = agents::get(&state.db, &record.agent)
                .await?
                .map_or_else(|| "your agent".to_string(), |a| a.name);
            let now = pending::now();
            ctx.reply(waiting_question(&record, now, None, &name)).await;
            Ok(Settled::Asked)
        }
    }
}

/// Whether `message` is an item of an album whose earlier items are
/// waiting in this chat (a group reads it although it mentions no one:
/// only one item of an album carries the caption).
pub async fn continues_album(ctx: &Ctx<'_>, message: &Message) -> Result<bool> {
    let Some(id) = message.media_group_id.as_deref() else {
        return Ok(false);
    };
    Ok(pending::load(&ctx.state.redis, ctx.chat, ctx.user)
        .await?
        .and_then(|p| p.album)
        .is_some_and(|a| a.id == id))
}

/// What a prompt takes along.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Taken {
    /// Whether files were waiting (then [`sent`] forgets them once the
    /// prompt went out).
    pub found: bool,
    pub files: Vec<Attachment>,
    /// An album's caption not run yet: it goes before the prompt's text.
    pub caption: Option<String>,
}

impl Taken {
    /// The prompt's text with an unrun album caption before it.
    pub fn prompt(&self, text: &str) -> String {
        match &self.caption {
            Some(caption) => format!("{caption}\n\n{text}"),
            None => text.to_string(),
        }
    }
}

/// The files waiting for a prompt in this chat, made ready for `agent`
/// (blobs under its keys, their TTL renewed). `None` when the prompt must
/// not run: a file was lost before its time; the user has been told and
/// the waiting files dropped. Files that waited too long are left out,
/// and the user is told. The record stays until [`sent`].
pub async fn take_for_prompt(ctx: &Ctx<'_>, agent: &agents::Agent) -> Result<Option<Taken>> {
    let state = ctx.state;
    let Some(mut record) = pending::load(&state.redis, ctx.chat, ctx.user).await? else {
        return Ok(Some(Taken::default()));
    };
    let now = pending::now();
    let readied = pending::ready_for(&state.redis, &agent.id, &record.files, now).await?;
    let (mut ready, mut aged, mut lost) = (Vec::new(), Vec::new(), Vec::new());
    let mut kept = Vec::new();
    for r in readied {
        match r {
            Readied::Ready(a) => {
                ready.push(a.clone());
                // Its blob lives from now on, under the prompt's agent.
                kept.push(PendingFile {
                    attachment: a,
                    stored_at: now,
                });
            }
            Readied::Aged(a) => aged.push(a.name),
            Readied::Lost(a) => lost.push(a.name),
        }
    }
    if !lost.is_empty() {
        let files = std::mem::take(&mut record.files);
        pending::clear(&state.redis, ctx.chat, ctx.user).await?;
        if let Err(e) = pending::delete_blobs(&state.redis, &files).await {
            tracing::warn!(error = %e, "deleting the blobs of dropped files");
        }
        ctx.reply(format!(
            "⚠️ {} could not be found any more (the bot's storage lost {}). Nothing ran: please \
send {} again, then your message.",
            escape_html(&names_list(&lost)),
            if lost.len() == 1 { "it" } else { "them" },
            if lost.len() == 1 { "it" } else { "them" },
        ))
        .await;
        return Ok(None);
    }
    if !aged.is_empty() {
        ctx.reply(format!(
            "⌛ {} waited more than {} minutes for your message and expired; this prompt runs \
without {}.",
            escape_html(&names_list(&aged)),
            BLOB_TTL_SECS / 60,
            if aged.len() == 1 { "it" } else { "them" },
        ))
        .await;
    }
    // The moved keys and the dropped files are remembered, should the
    // prompt not go out (the agent went offline).
    record.files = kept;
    let caption = record.album.as_ref().and_then(|a| a.caption.clone());
    pending::save(&state.redis, ctx.chat, ctx.user, &record).await?;
    Ok(Some(Taken {
        found: true,
        files: ready,
        caption,
    }))
}

/// The prompt went out: its files are no longer waiting.
pub async fn sent(ctx: &Ctx<'_>) -> Result<()> {
    pending::clear(&ctx.state.redis, ctx.chat, ctx.user)
        .await
        .map_err(Error::from)
}

/// "That file is 23.4 MB; Telegram lets bots download at most 20 MB."
pub fn too_big_to_download(size: Option<u64>) -> String {
    let limit = mb_text(MAX_DOWNLOAD_BYTES);
    match size.filter(|s| *s > MAX_DOWNLOAD_BYTES) {
        Some(size) => format!(
            "That file is {}; Telegram lets bots download at most {limit}.",
            mb_text(size)
        ),
        None => format!("That file is over {limit}; Telegram lets bots download at most {limit}."),
    }
}

/// Why a file `name` of `size` bytes is not kept, when `waiting` files of
/// `waiting_bytes` already wait for the prompt; plain text.
pub fn over_limit(
    limits: &Limits,
    waiting: usize,
    waiting_bytes: u64,
    name: &str,
    size: u64,
) -> Option<String> {
    if waiting + 1 > limits.max_files {
        return Some(format!(
            "A prompt can carry at most {} files, and {waiting} are already waiting for your \
message; {name} was not kept. Send your message for them first.",
            limits.max_files
        ));
    }
    let total = waiting_bytes.saturating_add(size);
    if total > limits.max_total_bytes {
        return Some(if waiting == 0 {
            format!(
                "{name} is {}; a prompt can carry at most {} of files. It was not kept.",
                mb_text(size),
                mb_text(limits.max_total_bytes)
            )
        } else {
            format!(
                "{name} ({}) would bring the files waiting for your message to {}; a prompt can \
carry at most {}. It was not kept: send your message for the waiting files first.",
                mb_text(size),
                mb_text(total),
                mb_text(limits.max_total_bytes)
            )
        });
    }
    None
}

/// "📎 Got photo.jpg for hello. What should it do with it? Send your
/// answer as a message." (HTML).
fn waiting_question(record: &Pending, now: u64, newest: Option<&str>, agent: &str) -> String {
    let count = record.live_count(now);
    let agent = escape_html(agent);
    let ask = "Send your answer as a message.";
    match (count, newest) {
        (1, Some(name)) => format!(
            "📎 Got {} for {agent}. What should it do with it? {ask}",
            escape_html(name)
        ),
        (1, None) => {
            let name = record.live(now).next().map_or("", |f| &f.attachment.name);
            format!(
                "📎 Got {} for {agent}. What should it do with it? {ask}",
                escape_html(name)
            )
        }
        (n, Some(name)) => format!(
            "📎 Got {} for {agent} ({n} files are waiting). What should it do with them? {ask}",
            escape_html(name)
        ),
        (n, None) => format!("📎 Got {n} files for {agent}. What should it do with them? {ask}"),
    }
}

/// `a.jpg`, `a.jpg and b.pdf`, `a.jpg, b.pdf and c.txt`.
fn names_list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Bytes in megabytes as Telegram counts them, one decimal when needed:
/// `20 MB`, `23.4 MB`, `0.2 MB`.
pub fn mb_text(bytes: u64) -> String {
    let tenths = (bytes + 50_000) / 100_000;
    if tenths.is_multiple_of(10) {
        format!("{} MB", tenths / 10)
    } else {
        format!("{}.{} MB", tenths / 10, tenths % 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_said_as_telegram_counts_them() {
        assert_eq!(mb_text(20_000_000), "20 MB");
        assert_eq!(mb_text(23_400_000), "23.4 MB");
        assert_eq!(mb_text(23_449_999), "23.4 MB");
        assert_eq!(mb_text(150_000), "0.2 MB");
        assert_eq!(
            too_big_to_download(Some(23_400_000)),
            "That file is 23.4 MB; Telegram lets bots download at most 20 MB."
        );
        assert_eq!(
            too_big_to_download(None),
            "That file is over 20 MB; Telegram lets bots download at most 20 MB."
        );
    }

    #[test]
    fn limits_count_the_waiting_files() {
        let limits = Limits {
            max_files: 2,
            max_total_bytes: 10_000_000,
        };
        assert_eq!(over_limit(&limits, 1, 1000, "a.jpg", 1000), None);
        let count = over_limit(&limits, 2, 1000, "c.jpg", 10).unwrap();
        assert_eq!(
            count,
            "A prompt can carry at most 2 files, and 2 are already waiting for your message; \
c.jpg was not kept. Send your message for them first."
        );
        let alone = over_limit(&limits, 0, 0, "big.zip", 12_300_000).unwrap();
        assert_eq!(
            alone,
            "big.zip is 12.3 MB; a prompt can carry at most 10 MB of files. It was not kept."
        );
        let together = over_limit(&limits, 1, 6_000_000, "b.pdf", 5_000_000).unwrap();
        assert!(
            together.starts_with(
                "b.pdf (5 MB) would bring the files waiting for your message to 11 MB"
            ),
            "{together}"
        );
    }

    #[test]
    fn names_read_as_a_list() {
        let n = |v: &[&str]| names_list(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(n(&["a"]), "a");
        assert_eq!(n(&["a", "b"]), "a and b");
        assert_eq!(n(&["a", "b", "c"]), "a, b and c");
    }

    #[test]
    fn the_largest_photo_size_is_taken() {
        let message: Message = serde_json::from_value(serde_json::json!({
            "message_id": 1,
            "chat": {"id": 7, "type": "private"},
            "photo": [
                {"file_id": "small", "file_size": 10, "width": 90, "height": 67},
                {"file_id": "large", "file_size": 1000, "width": 1280, "height": 960}
            ],
            "media_group_id": "g1"
        }))
        .unwrap();
        let incoming = Incoming::of(&message).unwrap();
        assert_eq!(incoming.file_id, "large");
        assert_eq!(incoming.size, Some(1000));
        assert_eq!(incoming.name, None);
        assert_eq!(incoming.album.as_deref(), Some("g1"));
        let message: Message = serde_json::from_value(serde_json::json!({
            "message_id": 2,
            "chat": {"id": 7, "type": "private"},
            "document": {"file_id": "d", "file_name": "../../etc/passwd"}
        }))
        .unwrap();
        let incoming = Incoming::of(&message).unwrap();
        assert_eq!(incoming.name.as_deref(), Some("passwd"));
        assert_eq!(incoming.mime, "application/octet-stream");
        let text: Message = serde_json::from_value(serde_json::json!({
            "message_id": 3,
            "chat": {"id": 7, "type": "private"},
            "text": "hi"
        }))
        .unwrap();
        assert_eq!(Incoming::of(&text), None);
    }
}
