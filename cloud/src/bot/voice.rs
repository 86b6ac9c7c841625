//! Voice notes and audio files as prompts.
//!
//! A recording sent in the private chat is downloaded from Telegram
//! (`getFile`, at most 20 MB), transcribed by the speech-to-text server
//! (`crate::stt`, `STT_URL`) and shown with the agent it is for and three
//! buttons; nothing runs until the sender presses ▶ Run:
//!
//! | data | action |
//! |---|---|
//! | `voice:run:{id}` | send the transcript to the agent, as if typed |
//! | `voice:edit:{id}` | show it copyable, to be corrected and sent as text |
//! | `voice:cancel:{id}` | drop it |
//!
//! The transcript waits in Redis (`ra:voice:{id}`, [`KEEP_SECS`]) under a
//! random id that fits the 64 bytes of callback data; the first press takes
//! it (`DEL` answers 1 once), so a double press runs nothing twice, and the
//! pressed message loses its buttons. Downloading and transcribing take
//! seconds to a minute, so they run outside the user's lane: a `/stop`
//! typed meanwhile is not held up. A "Transcribing…" message is sent at
//! once and edited into the transcript or into what went wrong.

use remoteagent_proto::AgentId;
use remoteagent_proto::events::MAX_PROMPT_BYTES;
use remoteagent_proto::files::{MAX_DOWNLOAD_BYTES, safe_file_name};
use serde::{Deserialize, Serialize};

use super::update::{CallbackQuery, FileRef, Message};
use super::{Ctx, prompt};
use crate::commands;
use crate::db::agents;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::stt::{Audio, Stt, SttError};
use crate::telegram::outbox::Sending;
use crate::telegram::render::{fit_prefix, visible_len};
use crate::telegram::{
    InlineButton, InlineKeyboard, MAX_MESSAGE_CHARS, TelegramError, escape_html, split_pages,
};

/// The answer to a voice note when no speech-to-text server is configured.
pub const NEEDS_STT: &str = "Voice notes need STT_URL; see README.";
/// A button whose transcript is gone (taken, or past [`KEEP_SECS`]).
pub const EXPIRED: &str = "This voice note expired; send it again.";
/// Someone else pressed a transcript's button.
pub const NOT_YOURS: &str = "Only the account that sent this voice note can do that.";
/// What Edit says under the copyable transcript.
pub const SEND_CORRECTED: &str = "Send the corrected text as a message.";
/// How long a transcript waits for a press.
pub const KEEP_SECS: u64 = 24 * 60 * 60;

/// A transcript waiting for its button.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    /// Who sent the voice note: the only one who may press.
    user: i64,
    chat: i64,
    agent_id: AgentId,
    agent_name: String,
    text: String,
}

fn pending_key(id: &str) -> String {
    format!("ra:voice:{id}")
}

/// Ids are 32 lowercase hex digits; button data is whatever a client sends.
fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The recording in `message`, if it is a voice note or an audio file.
pub fn recording(message: &Message) -> Option<&FileRef> {
    message.voice.as_ref().or(message.audio.as_ref())
}

/// A voice note or audio file in the private chat.
pub async fn handle(ctx: &Ctx<'_>, message: &Message) -> Result<()> {
    let Some(file) = recording(message) else {
        return Ok(());
    };
    let Some(stt) = ctx.state.stt.clone() else {
        ctx.reply(NEEDS_STT).await;
        return Ok(());
    };
    // Which agent it is for is settled now, and named with the transcript.
    let Some(agent) = ctx.owned_current_agent().await? else {
        return Ok(());
    };
    if let Some(size) = file.file_size
        && size > MAX_DOWNLOAD_BYTES
    {
        ctx.reply(too_big(Some(size))).await;
        return Ok(());
    }
    // In a topic, the transcript shows there, where the voice note is.
    let placeholder = ctx.state.outbox.queue_send_to(
        crate::telegram::ChatRef {
            chat: ctx.chat,
            thread: ctx.thread,
        },
        format!("🎙 Transcribing for <b>{}</b>…", escape_html(&agent.name)),
        None,
    );
    let job = Job {
        state: ctx.state.clone(),
        stt,
        chat: ctx.chat,
        user: ctx.user,
        agent_id: agent.id,
        agent_name: agent.name,
        file: file.clone(),
        voice: message.voice.is_some(),
    };
    tokio::spawn(job.run(placeholder));
    Ok(())
}

fn too_big(size: Option<u64>) -> String {
    let size = size.map_or(String::new(), |s| {
        format!(" ({:.1} MB)", s as f64 / 1_000_000.0)
    });
    format!(
        "🎙 This recording is too big{size}: Telegram lets bots download at most {} MB. Please send a shorter one.",
        MAX_DOWNLOAD_BYTES / 1_000_000
    )
}

/// Download, transcription and showing of one recording.
struct Job {
    state: AppState,
    stt: Stt,
    chat: i64,
    user: i64,
    agent_id: AgentId,
    agent_name: String,
    file: FileRef,
    voice: bool,
}

impl Job {
    async fn run(self, placeholder: Sending) {
        let shutdown = self.state.shutdown.clone();
        let (html, keyboard) = tokio::select! {
            shown = self.transcript() => match shown {
                Ok((html, keyboard)) => (html, Some(keyboard)),
                Err(html) => (html, None),
            },
            // The outbox stops too: nothing could be said any more.
            _ = shutdown.cancelled() => return,
        };
        let outbox = &self.state.outbox;
        let edited = match placeholder.wait().await {
            Ok(message) => {
                outbox
                    .edit(self.chat, message, html.clone(), keyboard.clone())
                    .wait()
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = edited {
            // The placeholder is gone or never came: the result comes anew.
            tracing::warn!(chat = self.chat, error = %e, "showing a transcript in its placeholder");
            if let Err(e) = outbox.queue_send(self.chat, html, keyboard).wait().await {
                tracing::warn!(chat = self.chat, error = %e, "sending a transcript");
            }
        }
    }

    /// The transcript's message and buttons, or what to say instead.
    async fn transcript(&self) -> Result<(String, InlineKeyboard), String> {
        let audio = self.download().await?;
        let bytes = audio.bytes.len();
        let text = match self.stt.transcribe(audio).await {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(
                    user = self.user,
                    bytes,
                    endpoint = %self.stt.endpoint_for_logs(),
                    error = %e,
                    "transcribing a voice note"
                );
                return Err(failure_text(&e));
            }
        };
        if text.is_empty() {
            return Err("🎙 No words were heard in that recording.".into());
        }
        if text.len() > MAX_PROMPT_BYTES {
            return Err(format!(
                "🎙 That recording makes a prompt of {} KiB; the limit is {} KiB. Please send a shorter one.",
                text.len().div_ceil(1024),
                MAX_PROMPT_BYTES / 1024
            ));
        }
        let pending = Pending {
            user: self.user,
            chat: self.chat,
            agent_id: self.agent_id.clone(),
            agent_name: self.agent_name.clone(),
            text,
        };
        let id = uuid::Uuid::new_v4().simple().to_string();
        if let Err(e) = store(&self.state, &id, &pending).await {
            tracing::error!(user = self.user, error = %e, "keeping a transcript");
            return Err(
                "🎙 The transcript could not be kept on our side; please send the recording again in a moment."
                    .into(),
            );
        }
        tracing::info!(
            user = self.user,
            agent = %self.agent_id,
            bytes,
            chars = pending.text.chars().count(),
            "voice note transcribed"
        );
        Ok((shown(&pending, None), buttons(&id)))
    }

    /// The recording's bytes, named and typed for the transcription server.
    async fn download(&self) -> Result<Audio, String> {
        let telegram = &self.state.telegram;
        let fetched = match telegram.get_file(&self.file.file_id).await {
            Ok(info) => match info.file_path {
                Some(path) => telegram
                    .download_file(&path, MAX_DOWNLOAD_BYTES)
                    .await
                    .map(|bytes| (path, bytes)),
                None => Err(TelegramError::Api {
                    code: 400,
                    description: "Telegram gave no path to download it from".into(),
                }),
            },
            Err(e) => Err(e),
        };
        let (path, bytes) = fetched.map_err(|e| {
            tracing::warn!(user = self.user, error = %e, "downloading a voice note");
            match e {
                TelegramError::Api { code: 413, .. } => too_big(None),
                TelegramError::Api { description, .. }
                    if description.contains("file is too big") =>
                {
                    too_big(self.file.file_size)
                }
                e => format!(
                    "🎙 The recording could not be fetched from Telegram: {}",
                    escape_html(&e.to_string())
                ),
            }
        })?;
        let (file_name, mime) = name_and_type(&self.file, &path, self.voice);
        Ok(Audio {
            bytes,
            file_name,
            mime,
        })
    }
}

/// What the user is told when transcription failed.
fn failure_text(e: &SttError) -> String {
    let why = match e {
        SttError::Timeout(secs) => format!(
            "the transcription timed out: the speech-to-text server did not answer within {secs} s"
        ),
        SttError::Refused { status, message } => {
            format!("the speech-to-text server refused it (HTTP {status}): {message}")
        }
        SttError::Unreachable(why) => {
            format!("the speech-to-text server cannot be reached ({why})")
        }
        SttError::BadAnswer(body) => {
            format!("the speech-to-text server's answer has no transcript ({body})")
        }
    };
    format!(
        "🎙 Could not transcribe that recording: {}.",
        escape_html(why.trim_end_matches('.'))
    )
}

/// The file name (whose extension tells the server the format) and type.
fn name_and_type(file: &FileRef, path: &str, voice: bool) -> (String, String) {
    let mime = file
        .mime_type
        .clone()
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| {
            if voice {
                "audio/ogg"
            } else {
                "application/octet-stream"
            }
            .into()
        });
    let has_extension = |n: &str| {
        n.rsplit_once('.')
            .is_some_and(|(stem, ext)| !stem.is_empty() && !ext.is_empty())
    };
    // The sender's name of an audio file, else Telegram's (`file_3.oga`).
    let named = [file.file_name.as_deref(), Some(path)]
        .into_iter()
        .flatten()
        .map(safe_file_name)
        .find(|n| has_extension(n));
    let name = named.unwrap_or_else(|| {
        let ext = extension_of(&mime).unwrap_or(if voice { "ogg" } else { "mp3" });
        format!("{}.{ext}", if voice { "voice" } else { "audio" })
    });
    (name, mime)
}

fn extension_of(mime: &str) -> Option<&'static str> {
    Some(match mime.split(';').next()?.trim() {
        "audio/ogg" | "audio/opus" => "ogg",
        "audio/mpeg" | "audio/mp3" => "mp3",
        "audio/mp4" | "audio/x-m4a" | "audio/m4a" | "audio/aac" => "m4a",
        "audio/wav" | "audio/x-wav" | "audio/wave" => "wav",
        "audio/flac" | "audio/x-flac" => "flac",
        "audio/webm" => "webm",
        _ => return None,
    })
}

async fn store(state: &AppState, id: &str, pending: &Pending) -> Result<()> {
    let json = serde_json::to_string(pending).map_err(Error::internal)?;
    redis::cmd("SET")
        .arg(pending_key(id))
        .arg(json)
        .arg("EX")
        .arg(KEEP_SECS)
        .query_async::<()>(&mut state.redis.clone())
        .await?;
    Ok(())
}

async fn load(state: &AppState, id: &str) -> Result<Option<Pending>> {
    let json: Option<String> = redis::cmd("GET")
        .arg(pending_key(id))
        .query_async(&mut state.redis.clone())
        .await?;
    Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
}

/// Takes the transcript for one press: true for exactly one caller.
async fn take(state: &AppState, id: &str) -> Result<bool> {
    let removed: i64 = redis::cmd("DEL")
        .arg(pending_key(id))
        .query_async(&mut state.redis.clone())
        .await?;
    Ok(removed == 1)
}

fn buttons(id: &str) -> InlineKeyboard {
    let button = |text: &str, action: &str| InlineButton {
        text: text.into(),
        callback_data: format!("voice:{action}:{id}"),
    };
    InlineKeyboard {
        inline_keyboard: vec![vec![
            button("▶ Run", "run"),
            button("✎ Edit", "edit"),
            button("✖ Cancel", "cancel"),
        ]],
    }
}

/// Room kept free in a transcript's message for the heading and footer.
const FRAME_ROOM: usize = 300;

/// `🎙 For hello: “…”`, plus `footer` (HTML) on a line of its own. A
/// transcript too long for one message is shortened here (Run still sends
/// all of it).
fn shown(p: &Pending, footer: Option<&str>) -> String {
    let room = MAX_MESSAGE_CHARS - FRAME_ROOM - visible_len(&p.agent_name);
    let mut html = format!("🎙 For <b>{}</b>: “", escape_html(&p.agent_name));
    let cut = fit_prefix(&p.text, room, 0, room);
    html.push_str(&escape_html(&p.text[..cut]));
    if cut < p.text.len() {
        html.push_str(&format!(
            "…”\n<i>(shortened here; Run sends all {} characters)</i>",
            p.text.chars().count()
        ));
    } else {
        html.push('”');
    }
    if let Some(footer) = footer {
        html.push_str("\n\n");
        html.push_str(footer);
    }
    html
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Run,
    Edit,
    Cancel,
}

/// A press of a transcript's button (`rest` is the data after `voice:`);
/// returns the callback's answer.
pub async fn press(state: &AppState, query: &CallbackQuery, rest: &str) -> Result<String> {
    let (action, id) = match rest.split_once(':') {
        Some(("run", id)) => (Action::Run, id),
        Some(("edit", id)) => (Action::Edit, id),
        Some(("cancel", id)) => (Action::Cancel, id),
        _ => return Ok("This button is malformed.".into()),
    };
    if !valid_id(id) {
        return Ok(EXPIRED.into());
    }
    let Some(pending) = load(state, id).await? else {
        return Ok(EXPIRED.into());
    };
    let user = query.from.id;
    if pending.user != user {
        return Ok(NOT_YOURS.into());
    }
    // The pressed message, when it is in the chat the note came from.
    let message = query
        .message
        .as_ref()
        .filter(|m| m.chat.id == pending.chat)
        .map(|m| m.message_id);
    let ctx = Ctx {
        state,
        chat: pending.chat,
        user,
        private: true,
        thread: None,
        forum: state.topics_in_private,
    };
    match action {
        Action::Run => run(&ctx, id, pending, message).await,
        Action::Edit => {
            if !take(state, id).await? {
                return Ok(EXPIRED.into());
            }
            settle(
                &ctx,
                &pending,
                message,
                "✎ <i>Correct it and send it as a message.</i>",
            );
            show_copyable(&ctx, &pending.text).await;
            Ok("Send the corrected text.".into())
        }
        Action::Cancel => {
            if !take(state, id).await? {
                return Ok(EXPIRED.into());
            }
            settle(&ctx, &pending, message, "✖ Cancelled.");
            Ok("Cancelled.".into())
        }
    }
}

/// ▶ Run: the transcript goes the way a typed prompt goes, to the agent
/// named with it. While that agent is offline the buttons stay (the user is
/// told so, in the words a typed prompt gets), for a press once it is back.
async fn run(ctx: &Ctx<'_>, id: &str, pending: Pending, message: Option<i64>) -> Result<String> {
    let state = ctx.state;
    let agent = agents::get(&state.db, &pending.agent_id)
        .await?
        .filter(|a| a.owner == ctx.user && a.is_active());
    let Some(agent) = agent else {
        return Ok(format!(
            "{} was unpaired; pick another agent with /agents and send the recording again.",
            pending.agent_name
        ));
    };
    if !commands::is_online(&state.redis, &agent.id).await? {
        let name = agent.name.clone();
        prompt::run_for_agent(ctx, agent, &pending.text).await?;
        return Ok(format!(
            "{name} is offline; press Run again once it is back."
        ));
    }
    if !take(state, id).await? {
        return Ok(EXPIRED.into());
    }
    let footer = format!("▶ Sent to <b>{}</b>.", escape_html(&agent.name));
    settle(ctx, &pending, message, &footer);
    let name = agent.name.clone();
    prompt::run_for_agent(ctx, agent, &pending.text).await?;
    Ok(format!("Sent to {name}."))
}

/// The transcript's message without its buttons, with what became of it.
fn settle(ctx: &Ctx<'_>, pending: &Pending, message: Option<i64>, footer: &str) {
    let Some(message) = message else {
        return;
    };
    let delivery = ctx
        .state
        .outbox
        .edit(pending.chat, message, shown(pending, Some(footer)), None);
    let chat = pending.chat;
    tokio::spawn(async move {
        if let Err(e) = delivery.wait().await {
            tracing::warn!(chat, error = %e, "removing a transcript's buttons");
        }
    });
}

/// ✎ Edit: the transcript in `<code>` (Telegram copies it with a tap), in
/// as many messages as it takes, then what to do with it.
async fn show_copyable(ctx: &Ctx<'_>, text: &str) {
    const PAGE: usize = MAX_MESSAGE_CHARS - 200;
    let pages = split_pages(text, PAGE);
    let last = pages.len().saturating_sub(1);
    for (i, page) in pages.iter().enumerate() {
        let mut html = format!("<code>{}</code>", escape_html(page));
        if i == last {
            html.push_str("\n\n");
            html.push_str(SEND_CORRECTED);
        }
        ctx.reply(html).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: Option<&str>, mime: Option<&str>) -> FileRef {
        FileRef {
            file_id: "x".into(),
            file_size: Some(10),
            file_name: name.map(str::to_string),
            mime_type: mime.map(str::to_string),
            duration: Some(3),
        }
    }

    #[test]
    fn recordings_are_named_by_their_format() {
        assert_eq!(
            name_and_type(&file(None, Some("audio/ogg")), "voice/file_3.oga", true),
            ("file_3.oga".into(), "audio/ogg".into())
        );
        assert_eq!(
            name_and_type(
                &file(Some("standup memo.mp3"), Some("audio/mpeg")),
                "music/file_9.mp3",
                false
            ),
            ("standup memo.mp3".into(), "audio/mpeg".into())
        );
        // No extension anywhere: one from the type.
        assert_eq!(
            name_and_type(
                &file(Some("memo"), Some("audio/x-m4a")),
                "music/file_9",
                false
            ),
            ("audio.m4a".into(), "audio/x-m4a".into())
        );
        assert_eq!(
            name_and_type(&file(None, None), "voice/file_1", true),
            ("voice.ogg".into(), "audio/ogg".into())
        );
        // A name is never a path.
        assert_eq!(
            name_and_type(&file(Some("../../x.wav"), None), "", false).0,
            "x.wav"
        );
    }

    #[test]
    fn ids_fit_callback_data() {
        let id = uuid::Uuid::new_v4().simple().to_string();
        assert!(valid_id(&id));
        for b in buttons(&id).inline_keyboard.concat() {
            assert!(b.callback_data.len() <= 64, "{}", b.callback_data);
        }
        assert!(!valid_id("../x"));
        assert!(!valid_id(&"A".repeat(32)));
    }

    #[test]
    fn a_long_transcript_is_shortened_to_fit_one_message() {
        let p = Pending {
            user: 1,
            chat: 1,
            agent_id: AgentId::parse("a1").unwrap(),
            agent_name: "hello".into(),
            text: "word 🚀 ".repeat(2000),
        };
        let html = shown(&p, Some("▶ Sent to <b>hello</b>."));
        let visible = crate::telegram::html_to_text(&html);
        assert!(
            visible_len(&visible) <= MAX_MESSAGE_CHARS,
            "{}",
            visible_len(&visible)
        );
        assert!(
            visible.contains("Run sends all 14000 characters"),
            "{visible}"
        );
        let short = Pending {
            text: "fix <the> test & go".into(),
            ..p
        };
        assert_eq!(
            shown(&short, None),
            "🎙 For <b>hello</b>: “fix &lt;the&gt; test &amp; go”"
        );
    }
}
