//! A voice note, end to end: the real cloud (its speech-to-text key read
//! from a 0600 file) downloads it from the fake Bot API, the fake
//! speech-to-text server transcribes it, the user presses ▶ Run, and the
//! real daemon runs the transcript as the prompt; the runner's output
//! arrives in the chat.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use remoteagent_e2e::{Cloud, Daemon, Home, fixture};
use remoteagent_testkit::stt::FakeStt;
use remoteagent_testkit::telegram::{FakeMessage, FakeTelegram, updates};
use remoteagent_testkit::{RedisServer, wait_for};

const WAIT: Duration = Duration::from_secs(30);
const OWNER: i64 = 5001;
const KEY: &str = "sk-e2e-voice-key-0123456789";
const SPOKEN: &str = "fix the failing test in parser.rs";

struct World {
    // Field order is drop order: the processes before the servers they use.
    daemon: Daemon,
    home: Home,
    cloud: Cloud,
    stt: FakeStt,
    tg: FakeTelegram,
    _redis: RedisServer,
    _key_dir: tempfile::TempDir,
}

impl World {
    async fn start() -> World {
        let redis = RedisServer::start().unwrap();
        let tg = FakeTelegram::start().await;
        let stt = FakeStt::start().await;
        stt.require_key(KEY);
        stt.set_transcript(SPOKEN);
        let key_dir = tempfile::tempdir().unwrap();
        let key_file = key_dir.path().join("stt-key");
        std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let stt_url = stt.base_url();
        let cloud = Cloud::start_with(
            &redis.url(),
            &tg.api_base(),
            &tg.token(),
            tempfile::tempdir().unwrap(),
            &[
                ("STT_URL", &stt_url),
                ("STT_API_KEY_FILE", key_file.to_str().unwrap()),
                ("STT_TIMEOUT_SECS", "20"),
            ],
        )
        .await
        .unwrap();
        let home = Home::new(&cloud.url).unwrap();
        let daemon = Daemon::start(&home).await.unwrap();
        World {
            daemon,
            home,
            cloud,
            stt,
            tg,
            _redis: redis,
            _key_dir: key_dir,
        }
    }

    fn logs(&self) -> String {
        format!(
            "cloud:\n{}\ndaemon:\n{}",
            self.cloud.proc.tail(40),
            self.daemon.proc.tail(40)
        )
    }

    /// Waits for a message in `chat` that `pred` accepts.
    async fn wait_message(&self, what: &str, pred: impl Fn(&FakeMessage) -> bool) -> FakeMessage {
        let found = wait_for(WAIT, || {
            let hit = self.tg.messages(OWNER).into_iter().find(|m| pred(m));
            async move { hit }
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "no message {what}; messages: {:#?}\n{}",
                self.tg.messages(OWNER),
                self.logs()
            )
        })
    }

    /// `remoteagentctl pair` of a project running `answer.sh`, confirmed
    /// with `/pair CODE`.
    async fn pair(&self, name: &str) {
        let project = self.home.project(name).unwrap();
        let runner = fixture("answer.sh");
        let (mut ctl, code) = self
            .home
            .start_pairing(
                &format!("pair-{name}"),
                &project,
                &["--command", runner.to_str().unwrap()],
            )
            .await;
        self.cloud.say(OWNER, &format!("/pair {code}")).await;
        let exit = ctl.wait(WAIT).await.unwrap();
        assert_eq!(exit, Some(0), "pair failed:\n{}", ctl.output());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_note_becomes_a_prompt_after_run() {
    let w = World::start().await;
    w.pair("hello").await;

    let ogg = b"OggS\0\x02a voice note from the phone".to_vec();
    let file = w.tg.add_file(ogg.clone(), "voice", "oga");
    w.cloud
        .deliver(&updates::voice(w.cloud.update_id(), OWNER, OWNER, &file, 4))
        .await;
    let shown = w
        .wait_message("with the transcript and its buttons", |m| {
            m.text.starts_with("🎙 For hello: “") && m.reply_markup.is_some()
        })
        .await;
    assert_eq!(shown.text, format!("🎙 For hello: “{SPOKEN}”"));
    let request = &w.stt.requests()[0];
    assert_eq!(request.file, ogg);
    assert_eq!(
        request.bearer.as_deref(),
        Some(KEY),
        "the key from the file"
    );
    assert_eq!(request.model.as_deref(), Some("whisper-1"));

    let run = shown.reply_markup.as_ref().unwrap()["inline_keyboard"][0][0]["callback_data"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(run.starts_with("voice:run:"), "{run}");
    w.cloud
        .deliver(&updates::callback(
            w.cloud.update_id(),
            OWNER,
            OWNER,
            shown.message_id,
            &run,
        ))
        .await;
    let output = w
        .wait_message("with the runner's answer to the transcript", |m| {
            m.text
                .contains(&format!("Looking at the project for: {SPOKEN}"))
                && m.text.contains("Finished.")
        })
        .await;
    assert!(output.text.contains("Found 3 files."), "{}", output.text);
    let settled = w.tg.message(OWNER, shown.message_id).unwrap();
    assert!(settled.reply_markup.is_none(), "{settled:?}");
    assert!(
        settled.text.ends_with("▶ Sent to hello."),
        "{}",
        settled.text
    );

    // Neither secret reached the cloud's log: the STT key, nor the bot
    // token that is part of every file download's URL.
    let log = w.cloud.proc.output();
    assert!(log.contains("voice note transcribed"), "{}", w.logs());
    assert!(!log.contains(KEY), "the STT key was logged");
    assert!(!log.contains(&w.tg.token()), "the bot token was logged");
}
