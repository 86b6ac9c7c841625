//! Operations: trial reminders (in-process and the `cron` subcommand),
//! `/healthz` with Redis up and down, `/metrics`, start-up errors of the
//! binary, graceful shutdown.

use crate::support;

use std::process::Command;
use std::time::Duration;

use remoteagent_cloud::db::{self, users};
use remoteagent_cloud::{App, Config, cron};
use remoteagent_testkit::RedisServer;
use remoteagent_testkit::telegram::FakeTelegram;
use support::{Backend, TestApp, user_id};

const HOUR: i64 = 3600 * 1000;

async fn trial_reminders_are_sent_once(app: &TestApp) {
    let soon = user_id();
    let later = user_id();
    let over = user_id();
    let pro = user_id();
    for u in [soon, later, over, pro] {
        users::get_or_create(&app.state.db, u, 14).await.unwrap();
    }
    let now = db::now();
    users::set_trial_ends_at(&app.state.db, soon, now + 30 * HOUR)
        .await
        .unwrap();
    users::set_trial_ends_at(&app.state.db, later, now + 72 * HOUR)
        .await
        .unwrap();
    users::set_trial_ends_at(&app.state.db, over, now - HOUR)
        .await
        .unwrap();
    users::set_trial_ends_at(&app.state.db, pro, now + 10 * HOUR)
        .await
        .unwrap();
    users::set_plan(&app.state.db, pro, users::Plan::Pro)
        .await
        .unwrap();
    // The in-process task may have run at start-up already; either way the
    // total is one reminder.
    let sent = cron::send_trial_reminders(&app.state).await.unwrap();
    let again = cron::send_trial_reminders(&app.state).await.unwrap();
    assert!(sent <= 1 && again == 0, "{sent} then {again}");
    app.expect_message(soon, "trial ends in about").await;
    assert_eq!(app.count_messages(soon, "trial ends"), 1);
    for u in [later, over, pro] {
        assert!(app.tg.messages(u).is_empty(), "user {u} was reminded");
    }
    let row = users::get(&app.state.db, soon).await.unwrap().unwrap();
    assert!(row.trial_reminder_sent_at.is_some());
}

async fn health_and_metrics(app: &TestApp) {
    let response = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["database"], "ok");
    assert_eq!(body["redis"], "ok");
    assert_eq!(body["service"], "remoteagent-cloud");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let user = user_id();
    app.pair_agent(user, "counted").await;
    let response = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    assert!(
        text.contains("remoteagent_pairings_requested_total 1"),
        "{text}"
    );
    assert!(text.contains("# TYPE remoteagent_sessions gauge"), "{text}");
    // The daemon hears `paired` a moment before the counter moves.
    let counted = remoteagent_testkit::wait_for(support::TIMEOUT, || async {
        let text = app
            .http
            .get(app.url("/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("remoteagent_pairings_completed_total 1")
            .then_some(())
    })
    .await;
    assert!(counted.is_some());
}

both_backends!(trial_reminders_are_sent_once, health_and_metrics);

/// With `METRICS_TOKEN`, `/metrics` answers only the right bearer token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_require_a_token() {
    let app = TestApp::start_with(
        support::Backend::Sqlite,
        &[("METRICS_TOKEN", "s3cr3t-metrics")],
    )
    .await;
    let get = |auth: Option<&'static str>| {
        let mut request = app.http.get(app.url("/metrics"));
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        request.send()
    };
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cr3t-metric"),
        Some("s3cr3t-metrics"),
    ] {
        let response = get(auth).await.unwrap();
        assert_eq!(response.status(), 401, "{auth:?}");
        assert!(!response.text().await.unwrap().contains("remoteagent_"));
    }
    let response = get(Some("Bearer s3cr3t-metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("remoteagent_updates_received_total")
    );
    // Health stays open: load balancers probe it without a token.
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_a_dead_redis() {
    let mut redis = RedisServer::start().unwrap();
    let url = redis.url();
    let app = TestApp::start_with(Backend::Sqlite, &[("REDIS_URL", &url)]).await;
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let user = user_id();
    app.pair_agent(user, "cut-off").await;
    redis.stop();
    let response = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["redis"], "unreachable");
    assert_eq!(body["database"], "ok");
    // A pairing request fails cleanly, without details.
    let response = app
        .http
        .post(app.url("/api/pair"))
        .json(&serde_json::json!({"projectName": "p", "hostname": "h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let err: remoteagent_proto::api::ErrorBody = response.json().await.unwrap();
    assert_eq!(err.error.code, "internal");
    assert_eq!(err.error.message, "internal error");
    // A prompt while Redis is down cannot be claimed (update ids are
    // claimed in Redis): the webhook answers 5xx, so that Telegram delivers
    // it again rather than it being lost or run twice.
    let update = remoteagent_testkit::telegram::updates::text(app.update_id(), user, user, "hello");
    let status = app.webhook(&update).await.status();
    assert!(status.is_server_error(), "answered {status} without Redis");
    redis.restart().unwrap();
    let healthy = remoteagent_testkit::wait_for(Duration::from_secs(30), || async {
        let r = app.http.get(app.url("/healthz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    assert!(healthy.is_some(), "did not recover after Redis came back");
    // Telegram's redelivery is then processed: no daemon runs the agent, so
    // the user is told it is offline.
    let accepted = remoteagent_testkit::wait_for(Duration::from_secs(30), || async {
        app.webhook(&update)
            .await
            .status()
            .is_success()
            .then_some(())
    })
    .await;
    assert!(accepted.is_some(), "the redelivered update was refused");
    app.expect_message(user, "is offline").await;
    app.finish().await;
}

fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_remoteagent-cloud"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn");
    cmd
}

#[test]
fn a_missing_setting_stops_start_up_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = binary()
        .env("REMOTEAGENT_DATA_DIR", dir.path())
        .env("PUBLIC_URL", "https://x.example")
        .env("TELEGRAM_WEBHOOK_SECRET", "s")
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("TELEGRAM_BOT_TOKEN is not set"), "{stderr}");
}

/// A database or Redis that refuses: one line each, naming the cause (not
/// "pool timed out", not the cause three times over) and the fix.
#[test]
fn a_refusing_database_or_redis_stops_start_up_with_one_line_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    // Never reached: the database and Redis come first.
    let api = format!("http://127.0.0.1:{}", remoteagent_testkit::free_port());
    let start = |key: &str, value: &str| {
        let out = binary()
            .env("REMOTEAGENT_DATA_DIR", dir.path())
            .env("TELEGRAM_BOT_TOKEN", "1:x")
            .env("TELEGRAM_MODE", "poll")
            .env("TELEGRAM_API_BASE", &api)
            .env("REMOTEAGENT_BIND", "127.0.0.1:0")
            .env(key, value)
            .arg("serve")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let last = stderr.lines().last().unwrap_or_default().to_string();
        assert!(last.starts_with("remoteagent-cloud: "), "{stderr}");
        last
    };
    let closed = format!("127.0.0.1:{}", remoteagent_testkit::free_port());

    let line = start("DATABASE_URL", &format!("postgres://ra@{closed}/x"));
    assert!(
        line.contains(&format!(
            "cannot use the database postgres://ra@{closed}/x: "
        )) && line.contains("refused")
            && line
                .ends_with("is the database server running there? Start it, or fix DATABASE_URL"),
        "{line}"
    );
    assert_eq!(line.matches("refused").count(), 1, "{line}");

    let pg = remoteagent_testkit::database_url();
    let (scheme, rest) = pg.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let line = start(
        "DATABASE_URL",
        &format!("{scheme}://no_such_role_ra@{host}"),
    );
    assert!(
        line.contains("role \"no_such_role_ra\" does not exist")
            && line.ends_with("check the user, password and database name in DATABASE_URL"),
        "{line}"
    );

    let line = start("REDIS_URL", &format!("redis://{closed}"));
    assert!(
        line.contains(&format!("cannot use Redis at redis://{closed}: "))
            && line.ends_with("or fix REDIS_URL"),
        "{line}"
    );
    assert_eq!(line.matches("refused").count(), 1, "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cron_subcommand_reminds_and_exits() {
    let tg = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_string();
    let database_url = format!("sqlite://{data_dir}/cloud.db?mode=rwc");
    let pairs = [
        ("PUBLIC_URL", "http://127.0.0.1:9"),
        ("TELEGRAM_WEBHOOK_SECRET", "s"),
        ("REMOTEAGENT_DATA_DIR", data_dir.as_str()),
        ("DATABASE_URL", database_url.as_str()),
    ];
    let token = tg.token();
    let api = tg.api_base();
    let redis_url = remoteagent_testkit::redis_url();
    let mut all = pairs.to_vec();
    all.extend([
        ("TELEGRAM_BOT_TOKEN", token.as_str()),
        ("TELEGRAM_API_BASE", api.as_str()),
        ("REDIS_URL", redis_url.as_str()),
    ]);
    // Prepare the database (and the signing key) through the library.
    let app = App::build(Config::from_pairs(all.clone()).unwrap())
        .await
        .unwrap();
    let user = user_id();
    users::get_or_create(&app.state.db, user, 1).await.unwrap();
    drop(app);
    for _ in 0..2 {
        let mut cmd = binary();
        for (k, v) in &all {
            cmd.env(k, v);
        }
        let out = tokio::task::spawn_blocking(move || cmd.arg("cron").output())
            .await
            .unwrap()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let reminders: Vec<_> = tg
        .calls_of("sendMessage")
        .into_iter()
        .filter(|c| c.chat_id() == Some(user))
        .collect();
    assert_eq!(reminders.len(), 1);
    assert!(reminders[0].text().unwrap().contains("trial ends"));
    // The key generated on first start is private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("signing.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_server_gracefully() {
    let tg = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = remoteagent_testkit::free_port();
    let redis = RedisServer::start().unwrap();
    let mut cmd = binary();
    cmd.env("PUBLIC_URL", "http://127.0.0.1:9")
        .env("TELEGRAM_WEBHOOK_SECRET", "s")
        .env("TELEGRAM_BOT_TOKEN", tg.token())
        .env("TELEGRAM_API_BASE", tg.api_base())
        .env("REMOTEAGENT_DATA_DIR", dir.path())
        .env("REDIS_URL", redis.url())
        .env("REMOTEAGENT_BIND", format!("127.0.0.1:{port}"));
    let mut child = cmd.spawn().unwrap();
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let up = remoteagent_testkit::wait_for(Duration::from_secs(30), || async {
        let r = http.get(&url).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    assert!(up.is_some(), "the server did not come up");
    nix_kill(child.id());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    // The default database lives in the data dir.
    assert!(dir.path().join("cloud.db").exists());
}

/// Sends SIGTERM to `pid` the way a service manager would.
fn nix_kill(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_webhook_registers_the_public_url_and_secret() {
    let tg = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = binary();
    cmd.env("PUBLIC_URL", "https://ra.example/")
        .env("TELEGRAM_WEBHOOK_SECRET", "hook-secret")
        .env("TELEGRAM_BOT_TOKEN", tg.token())
        .env("TELEGRAM_API_BASE", tg.api_base())
        .env("REMOTEAGENT_DATA_DIR", dir.path())
        .arg("set-webhook");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        tg.webhook(),
        Some((
            "https://ra.example/api/telegram".to_string(),
            Some("hook-secret".to_string())
        ))
    );
    // The bot token appears nowhere in what the command printed.
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!printed.contains(&tg.token()), "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_mode_runs_without_telegram() {
    let app = TestApp::start_with(Backend::Sqlite, &[("TELEGRAM_API_BASE", "console")]).await;
    assert!(app.state.telegram.is_console());
    let user = user_id();
    app.say(user, "/help").await;
    let pair = app.pair_request("demo").await;
    let mut sub = app.pair_subscriber(&pair).await;
    app.say(user, &format!("/pair {}", pair.code)).await;
    assert!(matches!(
        support::next_pair_event(&mut sub).await,
        remoteagent_proto::events::PairEvent::Paired(_)
    ));
    // Nothing went to the fake Telegram.
    assert!(app.tg.calls().is_empty());
    app.finish().await;
}
