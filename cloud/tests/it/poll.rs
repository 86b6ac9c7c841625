//! Poll mode against the strict fake Bot API: a cloud without a public URL
//! fetches its updates with `getUpdates`, pairs by `/start CODE` and
//! answers; a restart neither repeats nor loses an update (the offset is in
//! the database, even when Redis comes back empty); two clouds on one bot
//! token never poll at once, and the second takes over when the first dies;
//! a webhook left set gets the clear line, and `delete-webhook` fixes it.

use crate::support;

use std::process::{Child, Command, Stdio};

use remoteagent_cloud::config::TelegramMode;
use remoteagent_cloud::db::poll_offsets;
use remoteagent_cloud::{App, AppState, Config};
use remoteagent_proto::api::PairResponse;
use remoteagent_proto::events::PairEvent;
use remoteagent_testkit::RedisServer;
use remoteagent_testkit::telegram::{BOT_ID, BOT_USERNAME, FakeTelegram, updates};
use support::{TIMEOUT, client_as, next_pair_event, user_id};

/// What clouds of one test share: the bot, the data dir (SQLite).
struct Bot {
    tg: FakeTelegram,
    dir: tempfile::TempDir,
}

impl Bot {
    async fn new() -> Bot {
        Bot {
            tg: FakeTelegram::start().await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn data_dir(&self) -> String {
        self.dir.path().to_str().unwrap().to_string()
    }

    /// The settings of a cloud in poll mode (no PUBLIC_URL) on `redis`.
    fn env(&self, redis: &RedisServer, replica: &str) -> Vec<(String, String)> {
        [
            ("TELEGRAM_BOT_TOKEN", self.tg.token()),
            ("TELEGRAM_API_BASE", self.tg.api_base()),
            ("REMOTEAGENT_DATA_DIR", self.data_dir()),
            ("REDIS_URL", redis.url()),
            ("REMOTEAGENT_REPLICA_ID", replica.to_string()),
            // Short, so that a test sees many polls and a quick takeover.
            ("TELEGRAM_POLL_TIMEOUT_SECS", "1".to_string()),
            ("TELEGRAM_POLL_LEASE_SECS", "3".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// `user` writes `text` to the bot: an update for `getUpdates`.
    fn say(&self, user: i64, text: &str) -> i64 {
        self.tg.push_update(updates::text(0, user, user, text))
    }

    async fn expect_message(&self, chat: i64, needle: &str) {
        let found = self
            .tg
            .wait_for_messages(chat, |m| m.iter().any(|m| m.text.contains(needle)), TIMEOUT)
            .await;
        let texts: Vec<String> = self.tg.messages(chat).into_iter().map(|m| m.text).collect();
        assert!(found, "no {needle:?} in chat {chat}: {texts:#?}");
    }

    fn count(&self, chat: i64, needle: &str) -> usize {
        self.tg
            .messages(chat)
            .iter()
            .filter(|m| m.text.contains(needle))
            .count()
    }

    /// The `getUpdates` calls so far.
    fn polls(&self) -> usize {
        self.tg.calls_of("getUpdates").len()
    }
}

/// A cloud served in-process.
struct Cloud {
    state: AppState,
    base: String,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Cloud {
    async fn start(bot: &Bot, redis: &RedisServer, replica: &str) -> Cloud {
        let env = bot.env(redis, replica);
        let config = Config::from_pairs(env.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        assert_eq!(config.telegram_mode, TelegramMode::Poll);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = App::build(config).await.unwrap();
        let state = app.state.clone();
        let server = tokio::spawn(app.serve(listener));
        Cloud {
            state,
            base,
            server,
        }
    }

    /// A graceful stop, as on SIGTERM.
    async fn stop(self) {
        self.state.shutdown.cancel();
        let stopped = tokio::time::timeout(TIMEOUT, self.server).await;
        assert!(stopped.is_ok(), "the cloud did not stop");
    }

    async fn pair_request(&self, project: &str) -> PairResponse {
        let response = reqwest::Client::new()
            .post(format!("{}/api/pair", self.base))
            .json(&serde_json::json!({"projectName": project, "hostname": "devbox"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

/// The holder of the bot's poll lease (`replica/random`), if any.
async fn lease_holder(redis: &RedisServer) -> Option<String> {
    let mut conn = remoteagent_testkit::redis_conn(&redis.url()).await;
    redis::cmd("GET")
        .arg(format!("ra:poll:{BOT_ID}"))
        .query_async(&mut conn)
        .await
        .unwrap()
}

async fn wait_for_holder(redis: &RedisServer, replica: &str) {
    let prefix = format!("{replica}/");
    let held = remoteagent_testkit::wait_for(TIMEOUT, || async {
        lease_holder(redis)
            .await
            .filter(|h| h.starts_with(&prefix))
            .map(|_| ())
    })
    .await;
    assert!(
        held.is_some(),
        "{replica} never held the poll lease (holder: {:?})",
        lease_holder(redis).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_cloud_pairs_by_deep_link_and_answers() {
    let bot = Bot::new().await;
    let redis = RedisServer::start().unwrap();
    let cloud = Cloud::start(&bot, &redis, "solo").await;
    let user = user_id();

    // Without a public URL, the way to finish pairing is the deep link.
    let pair = cloud.pair_request("demo").await;
    assert_eq!(
        pair.connect_url,
        format!("https://t.me/{BOT_USERNAME}?start={}", pair.code)
    );
    let client = client_as(&pair.redis.url, &pair.redis.username, &pair.redis.password);
    let mut sub = client.get_async_pubsub().await.unwrap();
    sub.subscribe(remoteagent_proto::names::pair_channel(&pair.pairing_id))
        .await
        .unwrap();
    // The deep link makes Telegram send `/start CODE`.
    bot.say(user, &format!("/start {}", pair.code));
    assert!(matches!(
        next_pair_event(&mut sub).await,
        PairEvent::Paired(_)
    ));
    bot.expect_message(user, "Paired").await;
    // A prompt is answered (the agent has no daemon here: offline).
    bot.say(user, "hello there");
    bot.expect_message(user, "offline").await;

    // The polls asked for what the webhook gets, with a long poll.
    let calls = bot.tg.calls_of("getUpdates");
    assert!(!calls.is_empty());
    for call in &calls {
        assert_eq!(
            call.body["allowed_updates"],
            serde_json::json!(["message", "callback_query"])
        );
        assert_eq!(call.body["timeout"], serde_json::json!(1));
    }
    assert!(
        bot.tg.refused_calls().is_empty(),
        "{:#?}",
        bot.tg.refused_calls()
    );

    // No public URL: no /connect page, and nothing may post updates.
    let http = reqwest::Client::new();
    let page = http
        .get(format!("{}/connect", cloud.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
    let text = page.text().await.unwrap();
    assert!(text.contains("/pair CODE"), "{text}");
    assert!(text.contains(BOT_USERNAME), "{text}");
    let webhook = http
        .post(format!("{}/api/telegram", cloud.base))
        .json(&updates::text(1, user, user, "/help"))
        .send()
        .await
        .unwrap();
    assert_eq!(webhook.status(), 404);
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_neither_repeats_nor_loses_an_update() {
    let bot = Bot::new().await;
    let redis = RedisServer::start().unwrap();
    let user = user_id();
    let cloud = Cloud::start(&bot, &redis, "first").await;
    let first = bot.say(user, "/help");
    bot.expect_message(user, "Pairing").await;
    // Stored once the batch was taken; confirmed to Telegram by the next
    // poll's offset.
    let stored = remoteagent_testkit::wait_for(TIMEOUT, || async {
        poll_offsets::get(&cloud.state.db, &BOT_ID.to_string())
            .await
            .unwrap()
            .filter(|o| *o == first + 1)
    })
    .await;
    assert_eq!(stored, Some(first + 1));
    cloud.stop().await;

    // Written while the cloud is down; and Redis comes back empty, so the
    // claims of taken updates are gone: only the stored offset remains.
    let second = bot.say(user, "/help");
    drop(redis);
    let redis = RedisServer::start().unwrap();
    let polls_before = bot.polls();
    let cloud = Cloud::start(&bot, &redis, "second").await;
    let answered = bot
        .tg
        .wait_for_messages(user, |m| m.len() >= 2, TIMEOUT)
        .await;
    assert!(
        answered,
        "the update sent while the cloud was down was lost"
    );
    // The restarted poller started after the first update, so that one was
    // not fetched again; the second was taken exactly once.
    let resumed = &bot.tg.calls_of("getUpdates")[polls_before];
    assert_eq!(resumed.body["offset"], serde_json::json!(first + 1));
    let confirmed = remoteagent_testkit::wait_for(TIMEOUT, || async {
        bot.tg.pending_updates().is_empty().then_some(())
    })
    .await;
    assert!(confirmed.is_some(), "the second update was never confirmed");
    assert_eq!(bot.count(user, "Pairing"), 2, "one answer per /help");
    assert_eq!(
        poll_offsets::get(&cloud.state.db, &BOT_ID.to_string())
            .await
            .unwrap(),
        Some(second + 1)
    );
    cloud.stop().await;
}

fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_remoteagent-cloud"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info");
    cmd
}

/// The cloud binary in poll mode, its log in `log`.
fn spawn_cloud(bot: &Bot, redis: &RedisServer, replica: &str, log: &std::path::Path) -> Child {
    let mut cmd = binary();
    cmd.envs(bot.env(redis, replica))
        .env(
            "REMOTEAGENT_BIND",
            format!("127.0.0.1:{}", remoteagent_testkit::free_port()),
        )
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    cmd.spawn().unwrap()
}

/// Ends `child` at once (SIGKILL), as a crash would.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clouds_on_one_bot_never_poll_at_once() {
    let bot = Bot::new().await;
    let redis = RedisServer::start().unwrap();
    let user = user_id();
    let log = bot.dir.path().join("a.log");
    let mut a = spawn_cloud(&bot, &redis, "a", &log);
    wait_for_holder(&redis, "a").await;
    let b = Cloud::start(&bot, &redis, "b").await;

    // Both run for several poll rounds: only `a` polls. Two pollers would
    // overlap, and Telegram ends the waiting one with 409.
    let polls = bot.polls();
    bot.say(user, "/help");
    bot.expect_message(user, "Pairing").await;
    let rounds = bot
        .tg
        .wait_for(|calls| calls.len() >= polls + 5, TIMEOUT)
        .await;
    assert!(rounds, "polling stopped");
    assert!(
        bot.tg.refused_calls().is_empty(),
        "{:#?}",
        bot.tg.refused_calls()
    );
    wait_for_holder(&redis, "a").await;

    // `a` dies without letting go: `b` takes over once the lease runs out.
    kill(&mut a);
    bot.say(user, "/agents");
    bot.expect_message(user, "no paired agents").await;
    wait_for_holder(&redis, "b").await;
    assert!(
        bot.tg
            .refused_calls()
            .iter()
            .all(|c| c.method != "getUpdates"),
        "{:#?}",
        bot.tg.refused_calls()
    );
    // A graceful stop lets go of the lease at once.
    b.stop().await;
    assert_eq!(lease_holder(&redis).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_left_set_is_named_and_delete_webhook_fixes_it() {
    let bot = Bot::new().await;
    let redis = RedisServer::start().unwrap();
    let user = user_id();
    bot.tg.set_webhook("https://old.example/api/telegram");
    let log = bot.dir.path().join("cloud.log");
    let mut cloud = spawn_cloud(&bot, &redis, "solo", &log);

    // Refused as Telegram refuses it, and told in one line with the fix.
    let refused = bot
        .tg
        .wait_for(
            |calls| {
                calls
                    .iter()
                    .any(|c| c.method == "getUpdates" && c.status == 409)
            },
            TIMEOUT,
        )
        .await;
    assert!(refused, "the cloud never polled");
    let told = remoteagent_testkit::wait_for(TIMEOUT, || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines()
            .find(|l| l.contains("remoteagent-cloud delete-webhook"))
            .map(str::to_string)
    })
    .await;
    let line = told.expect("no line naming delete-webhook");
    assert!(line.contains("webhook"), "{line}");
    assert!(line.contains("ERROR"), "{line}");
    bot.say(user, "/help");

    // The fix the line names.
    let mut delete = binary();
    delete.envs(bot.env(&redis, "cli")).arg("delete-webhook");
    let out = tokio::task::spawn_blocking(move || delete.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("webhook deleted"), "{stdout}");
    assert_eq!(bot.tg.webhook(), None);
    // The poller's next try works, and the update written meanwhile is
    // answered.
    bot.expect_message(user, "Pairing").await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.contains(&bot.tg.token()), "the token is in the log");
    kill(&mut cloud);
}
