//! The cloud started in-process for integration tests: a fresh database
//! (SQLite file or a new PostgreSQL database), the shared Redis, the fake
//! Telegram, and the app listening on 127.0.0.1:0, driven over real HTTP.

#![allow(dead_code)]

mod runs;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use remoteagent_cloud::{App, AppState, Config};
use remoteagent_proto::api::PairResponse;
use remoteagent_proto::events::{PairEvent, PairedPayload};
use remoteagent_proto::{AgentId, names};
use remoteagent_testkit::RedisServer;
use remoteagent_testkit::telegram::{FakeTelegram, updates};
use serde_json::Value;

pub const TIMEOUT: Duration = Duration::from_secs(30);
pub const SECRET: &str = "test-webhook-secret-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs the named `async fn name(app: &TestApp)` against both databases.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::support::TestApp::start($crate::support::Backend::Sqlite).await;
                super::$name(&app).await;
                app.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app = $crate::support::TestApp::start($crate::support::Backend::Postgres).await;
                super::$name(&app).await;
                app.finish().await;
            }
        }
    )*};
}

/// A PostgreSQL database created for one test and dropped afterwards, even
/// when the test panics.
struct PgDatabase {
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot block on async
        // work: use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                sqlx::any::install_default_drivers();
                if let Ok(pool) = sqlx::AnyPool::connect(&remoteagent_testkit::database_url()).await
                {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
                }
            });
        })
        .join();
    }
}

async fn create_pg_database() -> (String, PgDatabase) {
    sqlx::any::install_default_drivers();
    let base = remoteagent_testkit::database_url();
    let pool = sqlx::AnyPool::connect(&base)
        .await
        .expect("connecting to the test PostgreSQL");
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("creating a test database");
    pool.close().await;
    let (prefix, _) = base.rsplit_once('/').expect("a database URL with a path");
    (format!("{prefix}/{name}"), PgDatabase { name })
}

pub struct TestApp {
    pub tg: FakeTelegram,
    pub base: String,
    pub state: AppState,
    pub http: reqwest::Client,
    pub redis: redis::Client,
    /// The Redis the app uses: a private server unless REDIS_URL was given.
    pub redis_url: String,
    pub dir: tempfile::TempDir,
    next_update: AtomicI64,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _pg: Option<PgDatabase>,
    /// Dropped last: the app must be gone before its Redis.
    _redis_server: Option<RedisServer>,
}

impl TestApp {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, &[]).await
    }

    /// Starts with extra configuration pairs (overriding the defaults).
    pub async fn start_with(backend: Backend, extra: &[(&str, &str)]) -> Self {
        Self::start_with_fake(backend, extra, FakeTelegram::start().await).await
    }

    /// Starts against a fake the test prepared (forums, topic mode).
    pub async fn start_with_fake(
        backend: Backend,
        extra: &[(&str, &str)],
        tg: FakeTelegram,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap().to_string();
        let (database_url, pg) = match backend {
            Backend::Sqlite => (format!("sqlite://{}/cloud.db?mode=rwc", data_dir), None),
            Backend::Postgres => {
                let (url, guard) = create_pg_database().await;
                (url, Some(guard))
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let api_base = tg.api_base();
        let token = tg.token();
        // A private Redis per app: the forwarder keeps its session registry
        // in Redis, and apps sharing one would adopt each other's sessions.
        let (redis_url, redis_server) = match extra.iter().find(|(k, _)| *k == "REDIS_URL") {
            Some((_, url)) => (url.to_string(), None),
            None => {
                let server = RedisServer::start().unwrap();
                (server.url(), Some(server))
            }
        };
        let mut pairs: Vec<(&str, &str)> = vec![
            ("PUBLIC_URL", &base),
            ("TELEGRAM_BOT_TOKEN", &token),
            ("TELEGRAM_WEBHOOK_SECRET", SECRET),
            ("TELEGRAM_API_BASE", &api_base),
            ("REMOTEAGENT_DATA_DIR", &data_dir),
            ("DATABASE_URL", &database_url),
            ("REDIS_URL", &redis_url),
        ];
        pairs.extend_from_slice(extra);
        let config = Config::from_pairs(pairs).unwrap();
        let app = App::build(config).await.unwrap();
        let state = app.state.clone();
        let server = tokio::spawn(app.serve(listener));
        TestApp {
            tg,
            base,
            state,
            http: reqwest::Client::new(),
            // A cluster's first seed (tests on a cluster connect per node).
            redis: redis::Client::open(redis_url.split(',').next().unwrap_or_default()).unwrap(),
            redis_url,
            dir,
            next_update: AtomicI64::new(1000),
            server,
            _pg: pg,
            _redis_server: redis_server,
        }
    }

    /// Stops the server (graceful shutdown) and drops the database.
    pub async fn finish(self) {
        self.state.shutdown.cancel();
        self.remove_acl_users().await;
        let _ = tokio::time::timeout(TIMEOUT, self.server).await;
    }

    /// Deletes the Redis users this test's agents and pairings created, so
    /// the shared Redis does not collect them run after run.
    async fn remove_acl_users(&self) {
        use sqlx::Row;
        let Ok(mut conn) = self
            .redis
            .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
            .await
        else {
            return;
        };
        let mut users = Vec::new();
        if let Ok(rows) = sqlx::query("SELECT id FROM agents")
            .fetch_all(&self.state.db.pool)
            .await
        {
            for row in rows {
                if let Ok(id) = row.try_get::<String, _>("id") {
                    users.push(format!("ra-agent-{id}"));
                }
            }
        }
        if let Ok(rows) = sqlx::query("SELECT pairing_id FROM pairing_codes")
            .fetch_all(&self.state.db.pool)
            .await
        {
            for row in rows {
                if let Ok(id) = row.try_get::<String, _>("pairing_id") {
                    users.push(format!("ra-pair-{id}"));
                }
            }
        }
        for user in users {
            let _ = redis::cmd("ACL")
                .arg("DELUSER")
                .arg(user)
                .query_async::<i64>(&mut conn)
                .await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn update_id(&self) -> i64 {
        self.next_update.fetch_add(1, Ordering::SeqCst)
    }

    /// Posts an update to the webhook with the right secret.
    pub async fn webhook(&self, update: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/api/telegram"))
            .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
            .json(update)
            .send()
            .await
            .unwrap()
    }

    /// `user` types `text` in their private chat with the bot.
    pub async fn say(&self, user: i64, text: &str) {
        let update = updates::text(self.update_id(), user, user, text);
        let response = self.webhook(&update).await;
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
    }

    /// `user` presses a button carrying `data`.
    pub async fn press(&self, user: i64, data: &str) -> String {
        self.press_on(user, 1, data).await
    }

    /// `user` presses a button carrying `data` under the bot's message
    /// `message_id` in their private chat; returns the callback's answer.
    pub async fn press_on(&self, user: i64, message_id: i64, data: &str) -> String {
        let id = self.update_id();
        let update = updates::callback(id, user, user, message_id, data);
        let query_id = update["callback_query"]["id"].as_str().unwrap().to_string();
        let response = self.webhook(&update).await;
        assert_eq!(response.status(), 200);
        let answered = self
            .tg
            .wait_for(
                |calls| {
                    calls.iter().any(|c| {
                        c.method == "answerCallbackQuery"
                            && c.body["callback_query_id"].as_str() == Some(query_id.as_str())
                    })
                },
                TIMEOUT,
            )
            .await;
        assert!(answered, "callback {data} was not answered");
        self.tg
            .calls_of("answerCallbackQuery")
            .into_iter()
            .find(|c| c.body["callback_query_id"].as_str() == Some(query_id.as_str()))
            .and_then(|c| c.body["text"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Waits until the bot has said something containing `needle` to `chat`.
    pub async fn expect_message(&self, chat: i64, needle: &str) -> String {
        let found = self
            .tg
            .wait_for_messages(chat, |m| m.iter().any(|m| m.text.contains(needle)), TIMEOUT)
            .await;
        let texts: Vec<String> = self.tg.messages(chat).into_iter().map(|m| m.text).collect();
        assert!(
            found,
            "no message containing {needle:?} in chat {chat}; saw {texts:#?}"
        );
        texts
            .into_iter()
            .rev()
            .find(|t| t.contains(needle))
            .unwrap_or_default()
    }

    /// Waits until exactly `n` of the bot's messages in `chat` contain
    /// `needle`; whether that happened.
    pub async fn wait_count(&self, chat: i64, needle: &str, n: usize) -> bool {
        self.tg
            .wait_for_messages(
                chat,
                |m| m.iter().filter(|m| m.text.contains(needle)).count() == n,
                TIMEOUT,
            )
            .await
    }

    /// Number of the bot's messages in `chat` containing `needle`.
    pub fn count_messages(&self, chat: i64, needle: &str) -> usize {
        self.tg
            .messages(chat)
            .iter()
            .filter(|m| m.text.contains(needle))
            .count()
    }

    pub async fn pair_request(&self, project: &str) -> PairResponse {
        let response = self
            .http
            .post(self.url("/api/pair"))
            .json(&serde_json::json!({"projectName": project, "hostname": "devbox"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Subscribes to the pairing channel with the pairing's own Redis
    /// credentials, as the daemon does.
    pub async fn pair_subscriber(&self, pair: &PairResponse) -> redis::aio::PubSub {
        let client = client_as(&pair.redis.url, &pair.redis.username, &pair.redis.password);
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub
            .subscribe(names::pair_channel(&pair.pairing_id))
            .await
            .unwrap();
        pubsub
    }

    /// Pairs a new agent named `project` for `user` through `/pair CODE`.
    pub async fn pair_agent(&self, user: i64, project: &str) -> (PairResponse, PairedPayload) {
        let pair = self.pair_request(project).await;
        let mut sub = self.pair_subscriber(&pair).await;
        let typed = pair.code.to_lowercase().replace('-', " ");
        self.say(user, &format!("/pair {typed}")).await;
        match next_pair_event(&mut sub).await {
            PairEvent::Paired(p) => (pair, p),
            other => panic!("expected paired, got {other:?}"),
        }
    }

    /// Marks the agent online, as its daemon's heartbeat would.
    pub async fn set_presence(&self, agent: &AgentId) {
        let mut conn = self
            .redis
            .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
            .await
            .unwrap();
        redis::cmd("SET")
            .arg(names::presence_key(agent))
            .arg("1")
            .arg("EX")
            .arg(120)
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }

    /// Pairs `project` for `user` and brings its agent online as its
    /// daemon would: a presence key and a subscription to its channel.
    pub async fn online_agent(&self, user: i64, project: &str) -> (AgentId, redis::aio::PubSub) {
        let (_, paired) = self.pair_agent(user, project).await;
        let agent = paired.agent_id;
        self.set_presence(&agent).await;
        let sub = self.agent_subscriber(&agent).await;
        (agent, sub)
    }

    /// Subscribes to the agent's command channel (as the cloud's admin user).
    pub async fn agent_subscriber(&self, agent: &AgentId) -> redis::aio::PubSub {
        let mut pubsub = self.redis.get_async_pubsub().await.unwrap();
        pubsub.subscribe(names::agent_channel(agent)).await.unwrap();
        pubsub
    }
}

/// A Redis client that authenticates as `user`/`password` (none if empty).
pub fn client_as(url: &str, user: &str, password: &str) -> redis::Client {
    use redis::IntoConnectionInfo;
    let mut info = url.into_connection_info().unwrap();
    if !user.is_empty() {
        let settings = info
            .redis_settings()
            .clone()
            .set_username(user)
            .set_password(password);
        info = info.set_redis_settings(settings);
    }
    redis::Client::open(info).unwrap()
}

pub async fn next_message(sub: &mut redis::aio::PubSub) -> String {
    let msg = tokio::time::timeout(TIMEOUT, sub.on_message().next())
        .await
        .expect("no message within the timeout")
        .expect("the subscription ended");
    msg.get_payload::<String>().unwrap()
}

pub async fn next_pair_event(sub: &mut redis::aio::PubSub) -> PairEvent {
    serde_json::from_str(&next_message(sub).await).unwrap()
}

/// A user id no other test uses.
pub fn user_id() -> i64 {
    1_000_000 + i64::from(rand::random::<u32>() % 1_000_000_000)
}
