//! Property tests of the pager against a strict model of Telegram: random
//! outputs (any lengths, newlines at page edges, multi-byte and HTML
//! characters), random page sizes and budgets, lost chunks, deleted
//! messages, unreachable Telegram, and takeovers by another replica at any
//! saved point (also in the middle of a chunk). Each run asserts that every
//! operation obeys Telegram's rules, that every character of the output is
//! shown or attached exactly once, that the status comes last, followed
//! by exactly one ping replying to it, and that no button outlives the
//! session.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use remoteagent_proto::events::{ChunkPayload, DoneStatus, NoticePayload, StreamKind};
use remoteagent_proto::{AgentId, SessionId};
use remoteagent_testkit::telegram::checks;

use super::*;
use crate::forwarder::store::Progress;
use crate::telegram::{Document, DocumentSource, TelegramError};

const CHAT: i64 = 42;

/// One message as the user sees it.
#[derive(Debug, Clone)]
struct Msg {
    /// Visible text, trimmed as Telegram stores it.
    text: String,
    keyboard: bool,
    document: Option<Vec<u8>>,
    /// The message it replies to.
    reply_to: Option<i64>,
}

/// Telegram as strict as the real one, for the pager alone.
#[derive(Default)]
struct Sim {
    messages: BTreeMap<i64, Msg>,
    /// Messages the user deleted, as they were.
    deleted: BTreeMap<i64, Msg>,
    next_id: i64,
    /// Refusals of content: each is a bug of the pager.
    refusals: Vec<String>,
    /// Faults to inject, drawn per call.
    rng: Option<StdRng>,
    delete_rate: f64,
    transport_rate: f64,
    /// The last state stored, and whether to "crash" right after a save.
    stored: Option<SavedState>,
    crash_rate: f64,
    crashed: bool,
    /// Entries of the stream, for the output file.
    output: String,
    lost_chunks: u64,
    failed: Option<TelegramError>,
    /// Blobs of `file` events, by key, and the keys deleted.
    blobs: BTreeMap<String, Vec<u8>>,
    dropped: Vec<String>,
    /// "Crash" right after the save that marks a file as being sent.
    crash_on_pending_file: bool,
    /// The user turned the message at the end off (`/notify off`).
    no_ping: bool,
    /// Replies to a message that is gone are refused (a Telegram that
    /// ignored `allow_sending_without_reply`), and the message replied to
    /// is deleted just before the reply: the refusal the pager must
    /// survive.
    refuse_missing_reply: bool,
    /// Drafts shown: (draft id, visible text).
    drafts: Vec<(i64, String)>,
    /// Drafts refused with a 400 (a chat the method is not open to), at
    /// this rate per draft; 1.0 refuses every draft.
    draft_refuse_rate: f64,
    /// Drafts refused so far.
    drafts_refused: u32,
    /// Messages the bot deleted (the control message).
    bot_deleted: BTreeMap<i64, Msg>,
    /// Edits Telegram accepted.
    edits: u32,
}

/// Telegram's checks of a message text in HTML parse mode (the strict
/// fake's own rules): the visible text as stored, or the exact refusal.
fn check_text(html: &str, limit: usize) -> Result<String, String> {
    let rendered =
        checks::check_message_text(html, Some("HTML")).map_err(|r| r.description.clone())?;
    assert!(checks::utf16_len(&rendered.text) <= limit);
    Ok(rendered.text)
}

fn check_keyboard(keyboard: &Option<InlineKeyboard>) -> Result<(), String> {
    match keyboard {
        None => Ok(()),
        Some(k) => {
            let markup = serde_json::to_value(k).map_err(|e| e.to_string())?;
            checks::check_reply_markup(&markup).map_err(|r| r.description)
        }
    }
}

fn refused(description: String) -> TelegramError {
    TelegramError::Api {
        code: 400,
        description,
    }
}

impl Sim {
    fn fault(&mut self, rate: f64) -> bool {
        match self.rng.as_mut() {
            Some(rng) if rate > 0.0 => rng.gen_bool(rate),
            _ => false,
        }
    }

    /// A random message of the chat the user deletes now.
    fn maybe_delete(&mut self) {
        if self.fault(self.delete_rate) && !self.messages.is_empty() {
            let ids: Vec<i64> = self.messages.keys().copied().collect();
            let i = self.rng.as_mut().map_or(0, |r| r.gen_range(0..ids.len()));
            if let Some(m) = self.messages.remove(&ids[i]) {
                self.deleted.insert(ids[i], m);
            }
        }
    }
}

impl Io for &mut Sim {
    async fn send(
        &mut self,
        chat: i64,
        html: String,
        keyboard: Option<InlineKeyboard>,
    ) -> Result<i64, TelegramError> {
        assert_eq!(chat, CHAT);
        if self.fault(self.transport_rate) {
            return Err(TelegramError::Transport("connection reset".into()));
        }
        let text = check_text(&html, 4096).map_err(|e| {
            self.refusals.push(format!("sendMessage {html:?}: {e}"));
            refused(e)
        })?;
        check_keyboard(&keyboard).map_err(|e| {
            self.refusals.push(e.clone());
            refused(e)
        })?;
        self.maybe_delete();
        self.next_id += 1;
        self.messages.insert(
            self.next_id,
            Msg {
                text,
                keyboard: keyboard.is_some(),
                document: None,
                reply_to: None,
            },
        );
        Ok(self.next_id)
    }

    async fn send_reply(
        &mut self,
        chat: i64,
        html: String,
        reply_to: i64,
    ) -> Result<i64, TelegramError> {
        if self.refuse_missing_reply
            && let Some(m) = self.messages.remove(&reply_to)
        {
            self.deleted.insert(reply_to, m);
        }
        let found = self.messages.contains_key(&reply_to);
        if !found && self.refuse_missing_reply {
            return Err(refused(
                "Bad Request: message to be replied not found".into(),
            ));
        }
        let id = Io::send(self, chat, html, None).await?;
        // Sent without the reply when its message is gone
        // (`allow_sending_without_reply`).
        if let Some(m) = self.messages.get_mut(&id) {
            m.reply_to = found.then_some(reply_to);
        }
        Ok(id)
    }

    async fn wants_ping(&mut self, user: i64) -> bool {
        assert_eq!(user, CHAT, "the ping's choice is the owner's");
        !self.no_ping
    }

    async fn edit(
        &mut self,
        _chat: i64,
        message: i64,
        html: String,
        keyboard: Option<InlineKeyboard>,
    ) -> Result<(), TelegramError> {
        if self.fault(self.transport_rate) {
            return Err(TelegramError::Transport("connection reset".into()));
        }
        let text = check_text(&html, 4096).map_err(|e| {
            self.refusals.push(format!("editMessageText {html:?}: {e}"));
            refused(e)
        })?;
        check_keyboard(&keyboard).map_err(|e| {
            self.refusals.push(e.clone());
            refused(e)
        })?;
        let Some(m) = self.messages.get_mut(&message) else {
            return Err(refused("Bad Request: message to edit not found".into()));
        };
        if m.document.is_some() {
            return Err(refused(
                "Bad Request: there is no text in the message to edit".into(),
            ));
        }
        // "message is not modified" counts as done (the client says so).
        self.edits += 1;
        m.text = text;
        m.keyboard = keyboard.is_some();
        self.maybe_delete();
        Ok(())
    }

    async fn draft(&mut self, chat: i64, draft_id: i64, html: String) -> Result<(), TelegramError> {
        assert_eq!(chat, CHAT);
        if self.fault(self.transport_rate) {
            return Err(TelegramError::Transport("connection reset".into()));
        }
        if self.fault(self.draft_refuse_rate) {
            self.drafts_refused += 1;
            return Err(refused("Bad Request: TEXTDRAFT_PEER_INVALID".into()));
        }
        if draft_id == 0 {
            self.refusals.push("a draft with id 0".into());
            return Err(refused("Bad Request: draft_id must be non-zero".into()));
        }
        let rendered = checks::check_draft_text(&html, Some("HTML")).map_err(|r| {
            self.refusals
                .push(format!("sendMessageDraft {html:?}: {}", r.description));
            refused(r.description.clone())
        })?;
        self.drafts.push((draft_id, rendered.text));
        Ok(())
    }

    async fn delete(&mut self, _chat: i64, message: i64) -> Result<(), TelegramError> {
        match self.messages.remove(&message) {
            Some(m) => {
                self.bot_deleted.insert(message, m);
                Ok(())
            }
            None => Err(refused("Bad Request: message to delete not found".into())),
        }
    }

    fn edit_soon(&mut self, chat: i64, message: i64, html: String, keyboard: InlineKeyboard) {
        // Applied at once; a failure is reported on the next look, as the
        // outbox does.
        let result =
            futures::executor::block_on(Io::edit(self, chat, message, html, Some(keyboard)));
        if let Err(e) = result {
            self.failed = Some(e);
        }
    }

    fn failed_edit(&mut self) -> Option<TelegramError> {
        self.failed.take()
    }

    async fn send_document(
        &mut self,
        _chat: i64,
        document: Document,
    ) -> Result<i64, TelegramError> {
        let caption = match &document.caption {
            None => None,
            Some(c) => match checks::check_caption(c, Some("HTML")) {
                Ok(r) => r.map(|r| r.text),
                Err(r) => {
                    self.refusals
                        .push(format!("caption {c:?}: {}", r.description));
                    return Err(refused(r.description));
                }
            },
        };
        let bytes = match &document.source {
            DocumentSource::Bytes(b) => b.clone(),
            DocumentSource::File(p) => std::fs::read(p).unwrap_or_default(),
        };
        if bytes.is_empty() {
            self.refusals.push("empty document".into());
            return Err(refused("Bad Request: file must be non-empty".into()));
        }
        self.next_id += 1;
        let caption = caption.unwrap_or_default();
        self.messages.insert(
            self.next_id,
            Msg {
                text: caption,
                keyboard: false,
                document: Some(bytes),
                reply_to: None,
            },
        );
        Ok(self.next_id)
    }

    async fn output_file(
        &mut self,
        _done: &DonePayload,
        _entry_id: &str,
    ) -> Result<OutputFile, String> {
        Ok(OutputFile {
            source: DocumentSource::Bytes(self.output.clone().into_bytes()),
            written: self.output.len() as u64,
            total: self.output.len() as u64,
            lost: self.lost_chunks,
            _guard: None,
        })
    }

    async fn fetch_file(
        &mut self,
        file: &remoteagent_proto::files::Attachment,
    ) -> Result<FetchedFile, crate::blob_fetch::FetchError> {
        use crate::blob_fetch::FetchError;
        use sha2::Digest;
        let bytes = self.blobs.get(&file.key).ok_or(FetchError::Missing)?;
        if bytes.len() as u64 != file.size
            || hex::encode(sha2::Sha256::digest(bytes)) != file.sha256
        {
            return Err(FetchError::Mismatch);
        }
        Ok(FetchedFile {
            source: DocumentSource::Bytes(bytes.clone()),
            _guards: Vec::new(),
        })
    }

    async fn drop_blob(&mut self, key: &str) {
        self.blobs.remove(key);
        self.dropped.push(key.to_string());
    }

    async fn save(&mut self, state: Option<&SavedState>) -> Result<(), Stop> {
        if let Some(state) = state {
            self.stored = Some(state.clone());
            if self.crash_on_pending_file && !state.more.file_pending.is_empty() {
                self.crash_on_pending_file = false;
                self.crashed = true;
                return Err(Stop::Cancelled);
            }
            if self.fault(self.crash_rate) {
                // The replica dies right after this save.
                self.crashed = true;
                return Err(Stop::Cancelled);
            }
        }
        Ok(())
    }

    async fn pause(&mut self, _d: Duration) -> Result<(), Stop> {
        Ok(())
    }
}

fn state() -> SavedState {
    SavedState {
        agent_id: AgentId::parse("a1").unwrap(),
        session_id: SessionId::parse("s1").unwrap(),
        chat_id: CHAT,
        agent_name: "hello".into(),
        message_id: 0,
        html: String::new(),
        chars: 0,
        last_id: "0-0".into(),
        skip: 0,
        more: Progress::default(),
    }
}

/// Random output text: short and long lines, runs of newlines and spaces,
/// multi-byte characters (2-unit emoji included) and HTML specials. No line
/// starts with the marks of the pager's own lines.
fn random_text(rng: &mut StdRng, max: usize) -> String {
    let pieces = [
        "a", "b", "line ", "é", "中", "🚀", "<", ">", "&", "&amp;", " ", "\n", "\n\n", "\t",
    ];
    let len = rng.gen_range(0..=max);
    let mut s = String::new();
    while s.len() < len {
        if rng.gen_bool(0.02) {
            s.push_str(&"x".repeat(rng.gen_range(1..3000)));
        } else {
            s.push_str(pieces[rng.gen_range(0..pieces.len())]);
        }
    }
    s
}

/// Marks that start the pager's own lines (never output, see `random_text`).
const MARKS: &[&str] = &["⚠️", "✅", "❌", "⏹", "⏳", "…", "🔐"];

/// The characters a user sees, whitespace left out (Telegram turns
/// control characters into spaces and trims each message).
fn non_ws(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect()
}

struct Run {
    seed: u64,
    page_chars: usize,
    max_pages: usize,
    /// `STREAM_MODE=draft`: the page is shown as drafts, and drafts are
    /// refused at this rate (`None`: edit mode).
    drafts: Option<f64>,
}

async fn run(r: Run) {
    let mut rng = StdRng::seed_from_u64(r.seed);
    // The stream: chunks, sometimes a notice, sometimes a lost run of seqs.
    let mut events: Vec<(String, OutputEvent)> = Vec::new();
    let mut output = String::new();
    let mut seq = 0u64;
    let mut lost = 0u64;
    let n = rng.gen_range(0..40);
    for i in 0..n {
        let id = format!("{}-0", i + 1);
        if rng.gen_bool(0.05) {
            events.push((
                id,
                OutputEvent::Notice(NoticePayload {
                    text: "⚠️ a notice".into(),
                }),
            ));
            continue;
        }
        if rng.gen_bool(0.05) {
            let gap = rng.gen_range(1..4);
            seq += gap;
            lost += gap;
        }
        let text = random_text(&mut rng, 3000);
        output.push_str(&text);
        events.push((
            id,
            OutputEvent::Chunk(ChunkPayload {
                seq,
                stream: StreamKind::Stdout,
                text,
            }),
        ));
        seq += 1;
    }
    let done = DonePayload {
        status: DoneStatus::Ok,
        exit_code: Some(0),
        duration_ms: 1234,
        message: None,
        chunks: seq,
        withheld_bytes: 0,
        stopped_by: None,
        turns: None,
        cost_usd: None,
    };
    events.push((format!("{}-0", n + 1), OutputEvent::Done(done)));

    let mut sim = Sim {
        rng: Some(StdRng::seed_from_u64(r.seed ^ 0x5eed)),
        delete_rate: if r.seed.is_multiple_of(3) { 0.05 } else { 0.0 },
        transport_rate: if r.seed.is_multiple_of(5) { 0.1 } else { 0.0 },
        crash_rate: if r.seed.is_multiple_of(2) { 0.15 } else { 0.0 },
        output: output.clone(),
        lost_chunks: lost,
        draft_refuse_rate: r.drafts.unwrap_or(0.0),
        ..Sim::default()
    };
    let ctx = format!(
        "seed {} page {} pages {} drafts {:?}",
        r.seed, r.page_chars, r.max_pages, r.drafts
    );

    // Follow the stream; after a crash, a new pager resumes from the last
    // stored state, from the entry after its `last_id` (or the entry
    // `skip` bytes into which it stopped).
    let mut saved = state();
    saved.more.drafts = r.drafts.is_some();
    let mut first = true;
    let mut resumes = 0;
    'outer: loop {
        let mut pager = Pager::new(&mut sim, saved.clone(), r.page_chars, r.max_pages);
        if first {
            pager.placeholder().await;
            first = false;
        } else {
            pager.resumed();
        }
        let start = events
            .iter()
            .position(|(id, _)| id_after(id, &pager.saved.last_id))
            .unwrap_or(events.len());
        for (id, event) in events[start..].iter().cloned() {
            match pager.apply(&id, event).await {
                Ok(Some(_)) => break 'outer,
                Ok(None) => {}
                Err(Stop::Cancelled) => {
                    drop(pager);
                    assert!(sim.crashed, "{ctx}: cancelled without a crash");
                    sim.crashed = false;
                    saved = sim.stored.clone().expect("a stored state");
                    resumes += 1;
                    assert!(resumes < 10_000, "{ctx}: no progress");
                    continue 'outer;
                }
                Err(Stop::Lost) => panic!("{ctx}: lost"),
            }
            if pager.flush().await.is_err() {
                drop(pager);
                sim.crashed = false;
                saved = sim.stored.clone().expect("a stored state");
                resumes += 1;
                continue 'outer;
            }
        }
        panic!("{ctx}: the stream ended without done");
    }

    assert!(
        sim.refusals.is_empty(),
        "{ctx}: Telegram refused {:?}",
        sim.refusals
    );
    let messages: Vec<(i64, Msg)> = sim.messages.clone().into_iter().collect();
    assert!(!messages.is_empty(), "{ctx}: nothing shown");
    for (id, m) in &messages {
        assert!(
            !m.keyboard,
            "{ctx}: message {id} keeps a button after the end: {:?}",
            m.text
        );
    }
    // Exactly one ping, the last message of all (deleted ones included):
    // a new message naming the agent, replying to the message that shows
    // the status (sent without the reply if that one was deleted first).
    let mut all_seen: BTreeMap<i64, Msg> = sim.deleted.clone();
    all_seen.extend(messages.iter().cloned());
    let pings: Vec<(i64, Msg)> = all_seen
        .iter()
        .filter(|(_, m)| is_ping(&m.text))
        .map(|(id, m)| (*id, m.clone()))
        .collect();
    assert_eq!(pings.len(), 1, "{ctx}: pings {pings:?}");
    let (ping_id, ping) = &pings[0];
    assert_eq!(
        all_seen.keys().last(),
        Some(ping_id),
        "{ctx}: the ping is not the last message"
    );
    assert_eq!(ping.text, "✅ hello finished in 1s", "{ctx}");
    // The status is the last line of the last message before the ping.
    let (status_id, last) = all_seen
        .range(..*ping_id)
        .next_back()
        .expect("a message before the ping");
    let last_line = last.text.lines().last().unwrap_or_default();
    assert!(
        last_line.starts_with("✅ done in"),
        "{ctx}: last line {last_line:?} of {:?}",
        last.text
    );
    if sim.messages.contains_key(status_id) {
        assert_eq!(ping.reply_to, Some(*status_id), "{ctx}: the ping's reply");
    } else {
        // Deleted before the ping (sent without the reply) or after.
        assert!(
            ping.reply_to.is_none_or(|r| r == *status_id),
            "{ctx}: the ping replies to {:?}, not the status {status_id}",
            ping.reply_to
        );
    }

    // The user may delete the file after it came (the ping comes later).
    let document = all_seen.values().find_map(|m| m.document.clone());
    let deleted_some = sim.delete_rate > 0.0 || sim.transport_rate > 0.0;
    // Live pages: their output lines (the pager's own lines removed).
    let mut shown = String::new();
    // What the user saw, deleted messages included (they saw them).
    let mut seen: BTreeMap<i64, Msg> = sim.deleted.clone();
    seen.extend(messages.iter().cloned());
    for m in seen.values() {
        if m.document.is_some() {
            continue;
        }
        // Runs of output lines between the pager's own lines.
        let mut fragments = vec![String::new()];
        for line in m.text.split('\n') {
            if MARKS.iter().any(|mark| line.starts_with(mark)) {
                fragments.push(String::new());
            } else if let Some(f) = fragments.last_mut() {
                f.push_str(line);
                f.push('\n');
            }
        }
        if !deleted_some {
            for f in &fragments {
                assert!(
                    shown_form(&output).contains(shown_form(f).trim()),
                    "{ctx}: a page is not a piece of the output: {f:?}"
                );
            }
        }
        let body = fragments.concat();
        shown.push_str(&body);
    }
    let shown = non_ws(&shown);
    let all = non_ws(&output);
    match &document {
        Some(bytes) => {
            assert_eq!(
                bytes,
                output.as_bytes(),
                "{ctx}: the file is not the output"
            );
            // What was shown live is the start of the output, once.
            if !deleted_some {
                assert!(
                    all.starts_with(&shown),
                    "{ctx}: live pages are not the output's start"
                );
            }
        }
        None => {
            if !deleted_some {
                assert_eq!(
                    shown, all,
                    "{ctx}: live output differs (resumes: {resumes})"
                );
            } else {
                // A deleted page is shown again below: nothing is missing.
                let mut rest = all.as_str();
                for ch in shown.chars() {
                    if rest.starts_with(ch) {
                        rest = &rest[ch.len_utf8()..];
                    }
                }
                assert!(
                    rest.is_empty() || shown.len() >= all.len(),
                    "{ctx}: output missing"
                );
            }
        }
    }
    if lost > 0 {
        let said = all_seen.values().any(|m| m.text.contains("of output w"));
        assert!(said, "{ctx}: {lost} lost chunks not announced");
    }
    match r.drafts {
        None => assert!(sim.drafts.is_empty(), "{ctx}: a draft in edit mode"),
        Some(_) => {
            // The control message is gone (or kept without its button).
            let controls = sim.bot_deleted.len()
                + messages
                    .iter()
                    .filter(|(_, m)| m.text.contains("the output is in the messages below"))
                    .count();
            assert!(controls <= 1, "{ctx}: {controls} control messages");
            let faults = deleted_some || sim.crash_rate > 0.0;
            if sim.drafts_refused == 0 && document.is_none() && !faults {
                // Drafts all along: no page was edited, each was persisted
                // by one sendMessage.
                assert_eq!(sim.edits, 0, "{ctx}: pages edited in draft mode");
                if !all.is_empty() {
                    assert!(!sim.drafts.is_empty(), "{ctx}: no draft shown");
                }
            }
            // Every draft shows a piece of the output (and the pager's own
            // lines), never more than a page.
            for (_, text) in &sim.drafts {
                assert!(checks::utf16_len(text) <= r.page_chars, "{ctx}");
            }
        }
    }
}

/// Whether a message is the ping of agent `hello`.
fn is_ping(text: &str) -> bool {
    ["✅ hello finished", "❌ hello failed", "⏹ hello stopped"]
        .iter()
        .any(|p| text.starts_with(p))
}

/// Text as Telegram stores it: `\r` removed, other controls but `\n` as
/// spaces.
fn shown_form(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '\r')
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect()
}

/// Whether stream id `id` comes after `last` (ids `N-0` here).
fn id_after(id: &str, last: &str) -> bool {
    let n = |s: &str| {
        s.split('-')
            .next()
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or(0)
    };
    n(id) > n(last)
}

#[tokio::test]
async fn any_output_is_shown_or_attached_exactly_once_within_telegrams_rules() {
    for seed in 0..400u64 {
        let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(7919));
        let page_chars = *[64usize, 100, 257, 1000, 4096]
            .get(rng.gen_range(0..5))
            .unwrap();
        let max_pages = rng.gen_range(1..12);
        run(Run {
            seed,
            page_chars,
            max_pages,
            drafts: None,
        })
        .await;
    }
}

/// The same with `STREAM_MODE=draft`: the live page is a draft, persisted
/// by `sendMessage` when it fills or the session ends, so the messages
/// left in the chat are the output exactly; drafts refused now and then
/// (or always, as in a chat they are not open to) fall back to edits
/// without losing a byte.
#[tokio::test]
async fn with_drafts_the_persisted_messages_are_the_output_exactly() {
    for seed in 0..400u64 {
        let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(104_729));
        let page_chars = *[64usize, 100, 257, 1000, 4096]
            .get(rng.gen_range(0..5))
            .unwrap();
        let max_pages = rng.gen_range(1..12);
        let refuse = *[0.0, 0.0, 0.05, 0.3, 1.0].get(rng.gen_range(0..5)).unwrap();
        run(Run {
            seed,
            page_chars,
            max_pages,
            drafts: Some(refuse),
        })
        .await;
    }
}

/// The reported case: a page ends just before a line's `\n`, so the next
/// page would open with only that `\n`, which Telegram refuses as empty.
#[tokio::test]
async fn a_page_that_would_open_with_a_lone_newline_is_not_sent_blank() {
    let mut sim = Sim::default();
    let mut pager = Pager::new(&mut sim, state(), 100, 8);
    pager.placeholder().await;
    let chunk = |seq, text: &str| {
        OutputEvent::Chunk(ChunkPayload {
            seq,
            stream: StreamKind::Stdout,
            text: text.into(),
        })
    };
    // 100 units exactly, then the line's newline alone in the next batch.
    pager
        .apply("1-0", chunk(0, &"x".repeat(100)))
        .await
        .unwrap();
    pager.flush().await.unwrap();
    pager.apply("2-0", chunk(1, "\n")).await.unwrap();
    pager.flush().await.unwrap();
    pager.apply("3-0", chunk(2, "next\n")).await.unwrap();
    let done = DonePayload {
        status: DoneStatus::Ok,
        exit_code: Some(0),
        duration_ms: 5,
        message: None,
        chunks: 3,
        withheld_bytes: 0,
        stopped_by: None,
        turns: None,
        cost_usd: None,
    };
    pager.apply("4-0", OutputEvent::Done(done)).await.unwrap();
    drop(pager);
    assert!(sim.refusals.is_empty(), "{:?}", sim.refusals);
    let texts: Vec<String> = sim.messages.values().map(|m| m.text.clone()).collect();
    assert_eq!(
        texts,
        vec![
            "x".repeat(100),
            "next\n\n✅ done in 0.0 s".to_string(),
            "✅ hello finished in 0s".to_string()
        ]
    );
}

fn chunk_event(seq: u64, text: &str) -> OutputEvent {
    OutputEvent::Chunk(ChunkPayload {
        seq,
        stream: StreamKind::Stdout,
        text: text.into(),
    })
}

fn done_after(chunks: u64) -> OutputEvent {
    OutputEvent::Done(DonePayload {
        status: DoneStatus::Ok,
        exit_code: Some(0),
        duration_ms: 5,
        message: None,
        chunks,
        withheld_bytes: 0,
        stopped_by: None,
        turns: None,
        cost_usd: None,
    })
}

/// A `file` event for `bytes` in blob `key`, stored in the sim unless
/// `stored` says what the blob holds instead.
fn file_event(sim: &mut Sim, key: &str, bytes: &[u8], stored: Option<&[u8]>) -> OutputEvent {
    use sha2::Digest;
    sim.blobs
        .insert(key.into(), stored.unwrap_or(bytes).to_vec());
    OutputEvent::File(remoteagent_proto::files::FilePayload {
        file: remoteagent_proto::files::Attachment {
            key: key.into(),
            name: "report.txt".into(),
            mime: "text/plain".into(),
            size: bytes.len() as u64,
            sha256: hex::encode(sha2::Sha256::digest(bytes)),
        },
        origin: remoteagent_proto::files::FileOrigin::Outbox,
    })
}

fn shown(sim: &Sim) -> Vec<(String, Option<Vec<u8>>, bool)> {
    sim.messages
        .values()
        .map(|m| (m.text.clone(), m.document.clone(), m.keyboard))
        .collect()
}

#[tokio::test]
async fn a_file_comes_below_the_output_and_the_status_below_it() {
    let mut sim = Sim {
        no_ping: true,
        ..Sim::default()
    };
    let file = file_event(&mut sim, "blob:a1:b1", b"the report", None);
    let mut pager = Pager::new(&mut sim, state(), 4096, 8);
    pager.placeholder().await;
    pager
        .apply("1-0", chunk_event(0, "working\n"))
        .await
        .unwrap();
    pager.flush().await.unwrap();
    pager.apply("2-0", file).await.unwrap();
    pager.apply("3-0", chunk_event(1, "after\n")).await.unwrap();
    pager.apply("4-0", done_after(2)).await.unwrap();
    drop(pager);
    assert!(sim.refusals.is_empty(), "{:?}", sim.refusals);
    assert_eq!(
        shown(&sim),
        vec![
            ("working".to_string(), None, false),
            (
                "📎 from hello".to_string(),
                Some(b"the report".to_vec()),
                false
            ),
            ("after\n\n✅ done in 0.0 s".to_string(), None, false),
        ]
    );
    assert_eq!(sim.dropped, ["blob:a1:b1"]);
    assert!(sim.blobs.is_empty());
}

#[tokio::test]
async fn a_file_that_is_not_what_its_event_says_is_not_sent_and_said() {
    let mut sim = Sim {
        no_ping: true,
        ..Sim::default()
    };
    let changed = file_event(&mut sim, "blob:a1:b1", b"the report", Some(b"the rep0rt"));
    let mut pager = Pager::new(&mut sim, state(), 4096, 8);
    pager.placeholder().await;
    pager.apply("1-0", changed).await.unwrap();
    pager.apply("2-0", done_after(0)).await.unwrap();
    drop(pager);
    let texts = shown(&sim);
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert_eq!(
        texts[0].0,
        "⚠️ report.txt could not be sent: it did not arrive intact (its size or checksum differs)\n\n✅ done in 0.0 s"
    );
    assert_eq!(sim.dropped, ["blob:a1:b1"], "a bad blob is deleted too");

    // A blob that expired: said the same way.
    let mut sim = Sim {
        no_ping: true,
        ..Sim::default()
    };
    let gone = file_event(&mut sim, "blob:a1:b2", b"x", None);
    sim.blobs.clear();
    let mut pager = Pager::new(&mut sim, state(), 4096, 8);
    pager.apply("1-0", gone).await.unwrap();
    pager.apply("2-0", done_after(0)).await.unwrap();
    drop(pager);
    assert!(
        shown(&sim)[0]
            .0
            .starts_with("⚠️ report.txt could not be sent: it expired"),
        "{:?}",
        shown(&sim)
    );
}

#[tokio::test]
async fn a_replica_that_stopped_while_sending_a_file_never_sends_it_twice() {
    let mut sim = Sim {
        crash_on_pending_file: true,
        no_ping: true,
        ..Sim::default()
    };
    let file = file_event(&mut sim, "blob:a1:b1", b"the report", None);
    let events = [
        ("1-0".to_string(), chunk_event(0, "working\n")),
        ("2-0".to_string(), file),
        ("3-0".to_string(), done_after(1)),
    ];
    let mut pager = Pager::new(&mut sim, state(), 4096, 8);
    pager.placeholder().await;
    let mut stopped_at = None;
    for (i, (id, event)) in events.iter().cloned().enumerate() {
        if pager.apply(&id, event).await == Err(Stop::Cancelled) {
            stopped_at = Some(i);
            break;
        }
    }
    drop(pager);
    assert_eq!(stopped_at, Some(1), "the crash came while sending");
    let saved = sim.stored.clone().unwrap();
    assert_eq!(saved.last_id, "2-0", "the file's entry counts as shown");
    assert_eq!(saved.more.file_pending, "report.txt");
    // The next replica resumes after the file's entry.
    let mut pager = Pager::new(&mut sim, saved, 4096, 8);
    pager.resumed();
    pager.apply("3-0", events[2].1.clone()).await.unwrap();
    drop(pager);
    let all = shown(&sim);
    assert!(all.iter().all(|(_, doc, _)| doc.is_none()), "{all:?}");
    let last = &all.last().unwrap().0;
    assert!(
        last.starts_with(
            "⚠️ report.txt may not have arrived: the cloud restarted while sending it"
        ),
        "{all:?}"
    );
    assert!(last.ends_with("✅ done in 0.0 s"), "{all:?}");
}

fn done_event(status: DoneStatus, chunks: u64) -> DonePayload {
    DonePayload {
        status,
        exit_code: None,
        duration_ms: 48_213,
        message: None,
        chunks,
        withheld_bytes: 0,
        stopped_by: None,
        turns: None,
        cost_usd: None,
    }
}

/// Runs one session on `sim`: `texts` as chunks, then `done`.
async fn run_session(sim: &mut Sim, texts: &[&str], done: DonePayload, max_pages: usize) {
    let mut pager = Pager::new(&mut *sim, state(), 100, max_pages);
    pager.placeholder().await;
    for (i, text) in texts.iter().enumerate() {
        let id = format!("{}-0", i + 1);
        pager.apply(&id, chunk_event(i as u64, text)).await.unwrap();
        pager.flush().await.unwrap();
    }
    let id = format!("{}-0", texts.len() + 1);
    let finished = pager.apply(&id, OutputEvent::Done(done)).await.unwrap();
    assert!(finished.is_some());
}

/// The end is told again as a new message replying to the page with the
/// status; that page keeps no button; a replica that finishes the session
/// again from the stored state sends nothing more.
#[tokio::test]
async fn the_end_is_pinged_once_as_a_reply_to_the_status() {
    let mut sim = Sim::default();
    let mut done = done_event(DoneStatus::Aborted, 1);
    done.message = Some("aborted".into());
    done.stopped_by = Some(remoteagent_proto::events::StoppedBy::Phone);
    run_session(&mut sim, &["working\n"], done.clone(), 8).await;
    let messages: Vec<(i64, Msg)> = sim.messages.clone().into_iter().collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    let (page_id, page) = &messages[0];
    assert_eq!(page.text, "working\n\n⏹ aborted");
    assert!(!page.keyboard, "the last edit keeps the Stop button");
    let (_, ping) = &messages[1];
    assert_eq!(ping.text, "⏹ hello stopped by you (from the phone)");
    assert_eq!(ping.reply_to, Some(*page_id));
    assert!(!ping.keyboard);

    // Another replica takes over after the ping went out and applies the
    // `done` again: nothing new is sent, the status is not repeated.
    let stored = sim.stored.clone().expect("a stored state");
    assert!(stored.more.pinged);
    let mut pager = Pager::new(&mut sim, stored, 100, 8);
    pager.resumed();
    pager
        .apply("2-0", OutputEvent::Done(done))
        .await
        .unwrap()
        .expect("finished");
    drop(pager);
    assert_eq!(sim.messages.len(), 2);
    assert_eq!(sim.messages[page_id].text, "working\n\n⏹ aborted");
    assert!(sim.refusals.is_empty(), "{:?}", sim.refusals);
}

/// `/notify off` (or `FINAL_NOTIFY=false`): only the edit. A prompt that
/// never ran gets no ping either: its answer came at once.
#[tokio::test]
async fn no_ping_when_turned_off_or_nothing_ran() {
    let mut sim = Sim {
        no_ping: true,
        ..Sim::default()
    };
    run_session(&mut sim, &["hi\n"], done_event(DoneStatus::Ok, 1), 8).await;
    let texts: Vec<String> = sim.messages.values().map(|m| m.text.clone()).collect();
    assert_eq!(texts, vec!["hi\n\n✅ done in 48.2 s".to_string()]);
    assert!(sim.stored.unwrap().more.pinged, "the step is recorded done");

    let mut sim = Sim::default();
    let mut rejected = done_event(DoneStatus::Rejected, 0);
    rejected.message = Some("hello is busy".into());
    run_session(&mut sim, &[], rejected, 8).await;
    let texts: Vec<String> = sim.messages.values().map(|m| m.text.clone()).collect();
    assert_eq!(texts, vec!["⚠️ rejected: hello is busy".to_string()]);
}

/// Past the page budget the status comes with the output file, and the
/// ping replies to the file.
#[tokio::test]
async fn past_the_page_budget_the_ping_replies_to_the_file() {
    let mut sim = Sim {
        output: "x".repeat(300),
        ..Sim::default()
    };
    let mut done = done_event(DoneStatus::Failed, 1);
    done.exit_code = Some(2);
    run_session(&mut sim, &[&"x".repeat(300)], done, 1).await;
    let (file_id, file) = sim
        .messages
        .iter()
        .find(|(_, m)| m.document.is_some())
        .map(|(id, m)| (*id, m.clone()))
        .expect("the output file");
    assert_eq!(file.text, "❌ failed (exit 2)");
    let (_, ping) = sim.messages.iter().next_back().unwrap();
    assert_eq!(ping.text, "❌ hello failed: exit 2");
    assert_eq!(ping.reply_to, Some(file_id));
    assert!(sim.messages.values().all(|m| !m.keyboard));
}

/// The page with the status is deleted just before the ping, and Telegram
/// refuses the reply: the ping goes out without it.
#[tokio::test]
async fn a_ping_whose_message_is_gone_goes_without_the_reply() {
    let mut sim = Sim {
        refuse_missing_reply: true,
        ..Sim::default()
    };
    run_session(&mut sim, &["hi\n"], done_event(DoneStatus::Ok, 1), 8).await;
    let messages: Vec<Msg> = sim.messages.values().cloned().collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0].text, "✅ hello finished in 48s");
    assert_eq!(messages[0].reply_to, None);
    assert!(sim.refusals.is_empty(), "{:?}", sim.refusals);
}
