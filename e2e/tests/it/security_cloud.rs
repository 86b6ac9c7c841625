//! The cloud's side of the hostile-input findings (issue 12), against the
//! real `remoteagent-cloud` binary (and, for group chats, the real daemon
//! and CLI), a private Redis and the fake Telegram Bot API:
//!
//! 3. its data dir and SQLite files are private to its user;
//! 4. group chats run nothing until the owner opts one in;
//! 5. names lose bidi and zero-width characters;
//! 6. behind a trusted proxy the `/api/pair` limit is per client, and
//!    replicas share it;
//! 7. exact answers for a vanished session's button, an unknown approval
//!    request and a login dated in the future;
//!
//! plus `/metrics` behind `METRICS_TOKEN`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use redis::IntoConnectionInfo;
use remoteagent_e2e::{Cloud, Daemon, Home, fixture};
use remoteagent_proto::api::{ErrorBody, PairResponse};
use remoteagent_proto::events::PairEvent;
use remoteagent_proto::{SessionId, names};
use remoteagent_testkit::telegram::{BOT_USERNAME, FakeTelegram, updates};
use remoteagent_testkit::{RedisServer, wait_for};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const OWNER: i64 = 4001;
const STRANGER: i64 = 4002;
const GROUP: i64 = -1_004_000_000_001;

struct World {
    // Field order is drop order: the cloud before the servers it uses.
    cloud: Cloud,
    tg: FakeTelegram,
    redis: RedisServer,
}

impl World {
    async fn start(extra: &[(&str, &str)]) -> World {
        World::start_with_umask(extra, None).await
    }

    /// A world whose cloud starts with `umask` (when given).
    async fn start_with_umask(extra: &[(&str, &str)], umask: Option<u32>) -> World {
        let redis = RedisServer::start().unwrap();
        let tg = FakeTelegram::start().await;
        let cloud = Cloud::start_with_umask(
            &redis.url(),
            &tg.api_base(),
            &tg.token(),
            tempfile::tempdir().unwrap(),
            extra,
            umask,
        )
        .await
        .unwrap();
        World { cloud, tg, redis }
    }

    fn update_id(&self) -> i64 {
        self.cloud.update_id()
    }

    async fn deliver(&self, update: &Value) {
        self.cloud.deliver(update).await;
    }

    async fn say(&self, user: i64, text: &str) {
        self.cloud.say(user, text).await;
    }

    async fn in_group(&self, user: i64, text: &str) {
        self.deliver(&updates::group_text(self.update_id(), user, GROUP, text))
            .await;
    }

    fn texts(&self, chat: i64) -> Vec<String> {
        self.tg.messages(chat).into_iter().map(|m| m.text).collect()
    }

    async fn wait_text(&self, chat: i64, needle: &str) -> String {
        let found = wait_for(WAIT, || {
            let hit = self.texts(chat).into_iter().find(|t| t.contains(needle));
            async move { hit }
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "no message containing {needle:?} in chat {chat}; messages: {:#?}\ncloud:\n{}",
                self.texts(chat),
                self.cloud.proc.tail(40)
            )
        })
    }

    /// `user` presses a button carrying `data`; returns the bot's answer.
    async fn press(&self, user: i64, data: &str) -> String {
        let update = updates::callback(self.update_id(), user, user, 1, data);
        let query = update["callback_query"]["id"].as_str().unwrap().to_string();
        self.deliver(&update).await;
        let answer = wait_for(WAIT, || {
            let answer = self
                .tg
                .calls_of("answerCallbackQuery")
                .into_iter()
                .find(|c| c.body["callback_query_id"].as_str() == Some(query.as_str()))
                .map(|c| c.body["text"].as_str().unwrap_or_default().to_string());
            async move { answer }
        })
        .await;
        answer.unwrap_or_else(|| panic!("{data} was not answered:\n{}", self.cloud.proc.tail(40)))
    }

    async fn pair_request(&self, project: &str, hostname: &str) -> PairResponse {
        let response = reqwest::Client::new()
            .post(format!("{}/api/pair", self.cloud.url))
            .json(&json!({"projectName": project, "hostname": hostname}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", self.cloud.proc.tail(20));
        response.json().await.unwrap()
    }

    /// Pairs over HTTP and `/pair CODE`, listening on the pairing channel
    /// with the pairing's own credentials as a daemon does; returns the
    /// `paired` event.
    async fn pair(
        &self,
        user: i64,
        project: &str,
        hostname: &str,
    ) -> remoteagent_proto::events::PairedPayload {
        let pair = self.pair_request(project, hostname).await;
        let mut info = pair.redis.url.as_str().into_connection_info().unwrap();
        let settings = info
            .redis_settings()
            .clone()
            .set_username(&pair.redis.username)
            .set_password(&pair.redis.password);
        info = info.set_redis_settings(settings);
        let mut sub = redis::Client::open(info)
            .unwrap()
            .get_async_pubsub()
            .await
            .unwrap();
        sub.subscribe(names::pair_channel(&pair.pairing_id))
            .await
            .unwrap();
        self.say(user, &format!("/pair {}", pair.code)).await;
        use futures::StreamExt as _;
        let message = tokio::time::timeout(WAIT, sub.on_message().next())
            .await
            .expect("no pairing event")
            .expect("the subscription ended");
        match serde_json::from_str(&message.get_payload::<String>().unwrap()).unwrap() {
            PairEvent::Paired(p) => p,
            other => panic!("expected paired, got {other:?}"),
        }
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Finding 3: the data dir is created 0700 and the database, its WAL and
/// shared memory 0600, whatever the umask it was started with; files an
/// older build left open are tightened at start, and the log says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_and_database_are_private() {
    // The usual umask of a login shell: what the cloud must not rely on.
    // The cloud's own, not this process's: the other tests share it.
    let login_umask = Some(0o022);
    let w = World::start_with_umask(&[], login_umask).await;
    let data = w.cloud.dir.path().join("data");
    let files = ["cloud.db", "cloud.db-wal", "cloud.db-shm"].map(|f| data.join(f));
    let present = wait_for(WAIT, || {
        let all = files.iter().all(|f| f.exists());
        async move { all.then_some(()) }
    })
    .await;
    assert!(
        present.is_some(),
        "{:?}",
        std::fs::read_dir(&data).unwrap().collect::<Vec<_>>()
    );
    assert_eq!(mode(&data), 0o700);
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }

    // Stopped, opened up (as a careless copy or an older build leaves
    // them), started again: tightened, and the log says so.
    let World {
        cloud, tg, redis, ..
    } = w;
    let Cloud { mut proc, dir, .. } = cloud;
    proc.stop().await.unwrap();
    set_mode(&data, 0o755);
    for f in files.iter().filter(|f| f.exists()) {
        set_mode(f, 0o644);
    }
    let cloud = Cloud::start_with_umask(
        &redis.url(),
        &tg.api_base(),
        &tg.token(),
        dir,
        &[],
        login_umask,
    )
    .await
    .unwrap();
    assert_eq!(mode(&data), 0o700);
    for f in files.iter().filter(|f| f.exists()) {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    let log = cloud.proc.output();
    assert!(log.contains("permissions restricted"), "{log}");
    assert!(log.contains("cloud.db"), "{log}");
}

/// Finding 4, with the real daemon and a real runner: in a group that was
/// not opted in, the owner's messages (even ones that mention the bot) run
/// nothing and get one hint; after `/allowgroup`, only messages addressed
/// to the bot run, and the output goes to the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_runs_nothing_until_opted_in() {
    let w = World::start(&[]).await;
    let home = Home::new(&w.cloud.url).unwrap();
    let _daemon = Daemon::start(&home).await.unwrap();
    let project = home.project("webapp").unwrap();
    let runner = fixture("answer.sh");
    let (mut ctl, code) = home
        .start_pairing("pair", &project, &["--command", runner.to_str().unwrap()])
        .await;
    w.say(OWNER, &format!("/pair {code}")).await;
    assert_eq!(ctl.wait(WAIT).await.unwrap(), Some(0), "{}", ctl.output());
    w.wait_text(OWNER, "Paired").await;
    let me = format!("@{BOT_USERNAME}");

    // Not opted in: plain text (privacy mode off) and a mention run
    // nothing. The owner's next private prompt is handled after them (one
    // user's updates are handled in order) and is the first to run.
    w.in_group(OWNER, "group plain text").await;
    w.in_group(OWNER, &format!("{me} group mention")).await;
    w.in_group(OWNER, &format!("{me} group mention again"))
        .await;
    w.say(OWNER, "private prompt").await;
    w.wait_text(OWNER, "Looking at the project for: private prompt")
        .await;
    w.wait_text(OWNER, "Finished.").await;
    let hints = w
        .texts(GROUP)
        .iter()
        .filter(|t| t.contains("I only take prompts in private chats"))
        .count();
    assert_eq!(hints, 1, "{:#?}", w.texts(GROUP));
    assert!(
        !w.texts(GROUP)
            .iter()
            .any(|t| t.contains("Looking at the project")),
        "{:#?}",
        w.texts(GROUP)
    );

    // Opted in: the plain text still runs nothing; the mention runs, and
    // its output is in the group.
    w.in_group(OWNER, "/allowgroup").await;
    w.wait_text(GROUP, "This group is opted in for webapp")
        .await;
    w.in_group(OWNER, "just chatting").await;
    w.in_group(OWNER, &format!("{me} group prompt")).await;
    w.wait_text(GROUP, "Looking at the project for: group prompt")
        .await;
    w.wait_text(GROUP, "Finished.").await;
    assert!(
        !w.texts(GROUP).iter().any(|t| t.contains("just chatting")),
        "{:#?}",
        w.texts(GROUP)
    );
}

/// Finding 5: a name or hostname with bidi overrides and zero-width
/// characters is stored and shown without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_lose_bidi_and_zero_width_characters() {
    let w = World::start(&[]).await;
    let paired = w
        .pair(
            OWNER,
            "report\u{202E}fdp.exe\u{200B}",
            "dev\u{2066}box\u{FEFF}",
        )
        .await;
    assert_eq!(paired.name, "reportfdp.exe");
    let text = w.wait_text(OWNER, "Paired").await;
    assert!(text.contains("reportfdp.exe"), "{text}");
    w.say(OWNER, "/agents").await;
    let list = w.wait_text(OWNER, "Your agents").await;
    assert!(list.contains("reportfdp.exe on devbox"), "{list}");
    for t in w.texts(OWNER) {
        assert!(
            !t.chars()
                .any(|c| matches!(c, '\u{202E}' | '\u{200B}' | '\u{2066}' | '\u{FEFF}')),
            "{t:?}"
        );
    }
}

async fn pair_status(url: &str, forwarded_for: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{url}/api/pair"))
        .header("X-Forwarded-For", forwarded_for)
        .json(&json!({"projectName": "p", "hostname": "h"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Finding 6: two replicas behind a trusted proxy (here 127.0.0.1) share
/// one `/api/pair` limit per client, not one for everybody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_pairing_limit_is_per_client_and_shared() {
    let extra = [("TRUSTED_PROXIES", "127.0.0.1/32")];
    let w = World::start(&extra).await;
    let replica = Cloud::start_with(
        &w.redis.url(),
        &w.tg.api_base(),
        &w.tg.token(),
        tempfile::tempdir().unwrap(),
        &extra,
    )
    .await
    .unwrap();
    for i in 0..10 {
        let url = if i % 2 == 0 {
            &w.cloud.url
        } else {
            &replica.url
        };
        assert_eq!(pair_status(url, "203.0.113.7").await, 200, "request {i}");
    }
    assert_eq!(pair_status(&w.cloud.url, "203.0.113.7").await, 429);
    assert_eq!(pair_status(&replica.url, "6.6.6.6, 203.0.113.7").await, 429);
    // Another client behind the same proxy still gets codes.
    assert_eq!(pair_status(&w.cloud.url, "203.0.113.8").await, 200);
    assert_eq!(pair_status(&replica.url, "198.51.100.20").await, 200);
}

/// `/metrics` with `METRICS_TOKEN` answers only the bearer of the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_require_the_token_when_one_is_set() {
    let w = World::start(&[("METRICS_TOKEN", "e2e-metrics-token")]).await;
    let http = reqwest::Client::new();
    let url = format!("{}/metrics", w.cloud.url);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    let wrong = http
        .get(&url)
        .bearer_auth("e2e-metrics-tokeN")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = http
        .get(&url)
        .bearer_auth("e2e-metrics-token")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert!(right.text().await.unwrap().contains("remoteagent_sessions"));
}

/// Finding 7a: the owner pressing a button of a session that does not
/// exist is told it ended, not that they are not the owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_sessions_button_says_it_ended() {
    let w = World::start(&[]).await;
    w.pair(OWNER, "proj", "devbox").await;
    w.wait_text(OWNER, "Paired").await;
    let gone = SessionId::generate();
    assert_eq!(
        w.press(OWNER, &format!("stop:{gone}")).await,
        "This run has ended."
    );
    assert_eq!(
        w.press(OWNER, &format!("approve:{gone}:req-1")).await,
        "This run has ended."
    );
}

/// Finding 7b: approving a well-formed request id the agent never asked
/// about, in a running session of the owner's, is not "Approved.".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_approval_request_is_not_approved() {
    let w = World::start(&[]).await;
    let paired = w.pair(OWNER, "proj", "devbox").await;
    w.wait_text(OWNER, "Paired").await;
    let mut conn = redis::Client::open(w.redis.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
        .await
        .unwrap();
    redis::cmd("SET")
        .arg(names::presence_key(&paired.agent_id))
        .arg("1")
        .arg("EX")
        .arg(120)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let mut sub = redis::Client::open(w.redis.url())
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    sub.subscribe(names::agent_channel(&paired.agent_id))
        .await
        .unwrap();
    w.say(OWNER, "do something").await;
    w.wait_text(OWNER, "proj is working").await;
    let session: String = {
        use futures::StreamExt as _;
        let token = tokio::time::timeout(WAIT, sub.on_message().next())
            .await
            .unwrap()
            .unwrap()
            .get_payload::<String>()
            .unwrap();
        let claims = remoteagent_proto::envelope::verify(
            &remoteagent_proto::keys::CloudPublicKey::from_base64(&paired.cloud_public_key)
                .unwrap(),
            &paired.agent_id,
            &token,
        )
        .unwrap();
        match claims.command {
            remoteagent_proto::events::CommandEvent::Command(c) => c.session_id.to_string(),
            other => panic!("expected a command, got {other:?}"),
        }
    };
    assert_eq!(
        w.press(OWNER, &format!("approve:{session}:req-unknown"))
            .await,
        "That request is unknown or was already answered."
    );
    // A stranger pressing the same gets the owner-only refusal.
    assert!(
        w.press(STRANGER, &format!("approve:{session}:req-unknown"))
            .await
            .contains("Only the account")
    );
}

/// Finding 7c: a login widget dated an hour in the future is refused as
/// such, not as "too old".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_from_the_future_blames_the_clock() {
    let w = World::start(&[]).await;
    let mut fields = json!({
        "id": OWNER,
        "first_name": "Ada",
        "auth_date": remoteagent_proto::now_secs() as i64 + 3600,
    })
    .as_object()
    .unwrap()
    .clone();
    let hash = remoteagent_cloud_sign(&fields, &w.tg.token());
    fields.insert("hash".into(), json!(hash));
    let pair = w.pair_request("web", "devbox").await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/pair/confirm", w.cloud.url))
        .json(&json!({"code": pair.code, "telegram": fields}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let err: ErrorBody = response.json().await.unwrap();
    assert_eq!(
        err.error.message,
        "the Telegram login is dated in the future: check this device's clock, then log in again"
    );
}

/// The login widget's signature, computed independently of the cloud's
/// code, as Telegram documents it: HMAC-SHA256 keyed with SHA-256 of the
/// bot token over the sorted `key=value` lines.
fn remoteagent_cloud_sign(fields: &serde_json::Map<String, Value>, token: &str) -> String {
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    let mut lines: Vec<String> = fields
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    lines.sort();
    let key = Sha256::digest(token.as_bytes());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(lines.join("\n").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}
