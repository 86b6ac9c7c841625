//! Pairing through the real CLI and daemon against a fake cloud and a
//! private Redis: success, expiry, refusal, an unreachable cloud, a forged
//! confirmation, cancellation; then restart and unpair of a paired agent.

use crate::common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use remoteagent_proto::events::{PairEvent, PairedPayload};
use remoteagent_proto::keys::CloudSigningKey;
use remoteagent_proto::{AgentId, token};
use remoteagent_testkit::RedisServer;

struct Setup {
    home: Arc<Home>,
    cloud: FakeCloud,
    redis: RedisServer,
    daemon: Daemon,
}

async fn setup() -> Setup {
    let redis = RedisServer::start().unwrap();
    let cloud = FakeCloud::start(redis.url()).await;
    let home = Arc::new(Home::with_file_store(&cloud.url));
    let h = home.clone();
    let daemon = blocking(move || h.start_daemon()).await;
    Setup {
        home,
        cloud,
        redis,
        daemon,
    }
}

/// Starts `pair` and waits until the code is shown (the daemon listens).
async fn start_pair(home: &Arc<Home>, args: &[&str]) -> (std::process::Child, Lines, String) {
    let h = home.clone();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut child = blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        h.spawn_ctl(&args)
    })
    .await;
    let lines = Lines::of(&mut child);
    let (shown, lines) = blocking(move || (lines.until("Pairing code:"), lines)).await;
    (child, lines, shown)
}

async fn end(child: std::process::Child, lines: Lines) -> (String, std::process::Output) {
    blocking(move || (lines.rest(), finish(child))).await
}

#[tokio::test(flavor = "multi_thread")]
async fn pair_list_and_metadata() {
    let s = setup().await;
    std::fs::create_dir_all(s.home.path().join("proj")).unwrap();
    let (mut child, lines, shown) = start_pair(&s.home, &["pair", "./proj"]).await;
    assert!(shown.contains("XK9-4TZ"), "{shown}");
    let (agent, jwt, event) = s.cloud.paired_event("proj");
    assert_eq!(s.cloud.publish_pair(&event).await, 1);
    let rest = lines.rest();
    let out = blocking(move || {
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        (status, err)
    })
    .await;
    assert!(
        out.0.success(),
        "{rest}\n{}\n{}",
        out.1,
        s.daemon.log_text()
    );
    assert!(rest.contains("Paired 'proj'"), "{rest}");
    let all = format!("{shown}{rest}");
    assert!(
        all.contains("/pair XK9-4TZ") && all.contains("@RemoteAgentTestBot"),
        "{all}"
    );
    assert!(all.contains("http://cloud.test/connect"), "{all}");

    // The cloud was asked with the folder's name.
    let (_, request) = s.cloud.state.pairings.lock().unwrap()[0].clone();
    assert_eq!(request.project_name, "proj");

    let list = s.home.ctl(&["list"]);
    assert!(list.status.success());
    let text = stdout(&list);
    assert!(
        text.contains("proj") && text.contains(&agent.as_str()[..8]),
        "{text}"
    );
    // Not a terminal: tab-separated lines for scripts, a header first.
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(
        lines[0],
        ["NAME", "ID", "PATH", "RUNNER", "ONLINE", "RUNNING"],
        "{text}"
    );
    assert_eq!(lines[1][0], "proj", "{text}");
    assert_eq!(lines[1][1], &agent.as_str()[..8], "{text}");
    assert_eq!(lines[1][4], "yes", "{text}");
    let bare = stdout(&s.home.ctl(&["list", "--no-headers"]));
    assert_eq!(bare.lines().count(), 1, "{bare}");
    assert!(bare.starts_with("proj\t"), "{bare}");
    // With --json, an error is JSON too.
    let missing = s.home.ctl(&["--json", "stop", "nobody"]);
    assert_eq!(missing.status.code(), Some(4));
    let err: serde_json::Value = serde_json::from_str(stderr(&missing).trim()).unwrap();
    assert_eq!(err["error"]["exit"], 4);
    assert!(
        err["error"]["message"].as_str().unwrap().contains("nobody"),
        "{err}"
    );

    let json = s.home.ctl(&["--json", "list"]);
    let agents: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(agents[0]["id"], agent.as_str());
    assert_eq!(agents[0]["name"], "proj");
    // `pair` answers once the agent is online (its presence key written),
    // so a prompt sent right after it is taken, not answered "offline".
    assert_eq!(agents[0]["online"], true, "online as soon as pair returns");
    assert!(rest.contains("Send it a message in Telegram"), "{rest}");
    let mut redis = remoteagent_testkit::redis_conn(&s.redis.url()).await;
    let presence: bool = redis::cmd("EXISTS")
        .arg(remoteagent_proto::names::presence_key(&agent))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(
        presence,
        "online means the presence key the cloud checks exists"
    );
    let canonical = std::fs::canonicalize(s.home.path().join("proj")).unwrap();
    assert_eq!(agents[0]["path"], canonical.to_string_lossy().as_ref());

    let meta_file = s.home.agents_dir().join(format!("{agent}.json"));
    let meta = std::fs::metadata(&meta_file).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&meta_file).unwrap();
    assert!(!text.contains(&jwt), "the JWT must not be in the metadata");
    assert!(text.contains(&s.cloud.state.key.public_key().to_base64()));
    // With the file store the token is in its own 0600 file.
    let secret = s.home.secrets_dir().join(agent.as_str());
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), jwt);
    assert_eq!(std::fs::metadata(&secret).unwrap().mode() & 0o777, 0o600);
    // And never in the daemon's log.
    assert!(!s.daemon.log_text().contains(&jwt));

    // The same folder again is a conflict.
    let again = s.home.ctl(&["pair", "./proj"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already paired"),
        "{}",
        stderr(&again)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_code_is_reported() {
    let s = setup().await;
    s.cloud
        .set_mode(PairMode::Code(Duration::from_millis(1500)));
    let project = s.home.project("web");
    let (child, lines, _) = start_pair(&s.home, &["pair", project.to_str().unwrap()]).await;
    let (_, out) = end(child, lines).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("expired"), "{err}");
    assert!(
        std::fs::read_dir(s.home.agents_dir())
            .map(|d| d.count())
            .unwrap_or(0)
            == 0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pair_failed_is_a_refusal_with_the_clouds_reason() {
    let s = setup().await;
    let project = s.home.project("web");
    let (child, lines, _) = start_pair(&s.home, &["pair", project.to_str().unwrap()]).await;
    let event = FakeCloud::failed_event("plan_limit", "your plan allows 1 agent");
    assert_eq!(s.cloud.publish_pair(&event).await, 1);
    let (_, out) = end(child, lines).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("refused") && err.contains("your plan allows 1 agent"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cloud_http_refusal_is_reported() {
    let s = setup().await;
    s.cloud.set_mode(PairMode::Refuse(
        403,
        "pairing disabled for this account".into(),
    ));
    let project = s.home.project("web");
    let h = s.home.clone();
    let out = blocking(move || h.ctl(&["pair", project.to_str().unwrap()])).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("pairing disabled for this account"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_cloud_is_reported() {
    let redis = RedisServer::start().unwrap();
    let port = remoteagent_testkit::free_port();
    let home = Home::with_file_store(&format!("http://127.0.0.1:{port}"));
    let _daemon = home.start_daemon();
    let project = home.project("web");
    let out = home.ctl(&["pair", project.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot reach the cloud"), "{err}");
    assert!(err.contains("RemoteAgent needs a cloud"), "{err}");
    drop(redis);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cloud_url_that_is_no_cloud_or_silent_is_said_in_seconds() {
    let _redis = RedisServer::start().unwrap();
    // Another web server: answers, but not as a RemoteAgent cloud.
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_url = format!("http://{}", other.local_addr().unwrap());
    tokio::spawn(async move {
        let app = axum::Router::new()
            .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "<h1>nginx</h1>") });
        let _ = axum::serve(other, app).await;
    });
    // A port that takes the connection and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());

    for (url, expected) in [
        (other_url, "is not a RemoteAgent cloud"),
        (silent_url, "did not answer within 5 s"),
    ] {
        let home = Arc::new(Home::with_file_store(&url));
        let h = home.clone();
        let _daemon = blocking(move || h.start_daemon()).await;
        let project = home.project("web");
        let h = home.clone();
        let out = blocking(move || h.ctl(&["pair", project.to_str().unwrap()])).await;
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(err.contains(expected), "{url}: {err}");
    }
    drop(silent);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_env_overrides_the_cloud_url() {
    let s = setup().await;
    drop(s.daemon);
    // Config names a dead cloud; the environment names the live one.
    let port = remoteagent_testkit::free_port();
    s.home.write_config(&format!(
        "secret_store = \"file\"\ncloud_url = \"http://127.0.0.1:{port}\"\n"
    ));
    let h = s.home.clone();
    let url = s.cloud.url.clone();
    let _daemon = blocking(move || {
        h.start_daemon_with(|c| {
            c.env("REMOTEAGENT_CLOUD_URL", url);
        })
    })
    .await;
    let project = s.home.project("web");
    let (child, lines, _) = start_pair(&s.home, &["pair", project.to_str().unwrap()]).await;
    assert_eq!(s.cloud.state.pairings.lock().unwrap().len(), 1);
    drop(lines);
    drop(child);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_confirmation_naming_another_cloud_key_is_refused() {
    let s = setup().await;
    let project = s.home.project("web");
    let (child, lines, _) = start_pair(&s.home, &["pair", project.to_str().unwrap()]).await;
    // Someone who can publish on Redis, with their own key pair.
    let attacker = CloudSigningKey::generate();
    let agent = AgentId::generate();
    let (jwt, _) = token::issue(&attacker, &agent, 666, 3600).unwrap();
    let forged = PairEvent::Paired(PairedPayload {
        jwt,
        agent_id: agent.clone(),
        name: "web".into(),
        redis_username: String::new(),
        cloud_public_key: attacker.public_key().to_base64(),
    });
    assert_eq!(
        s.cloud
            .publish_pair(&serde_json::to_string(&forged).unwrap())
            .await,
        1
    );
    let (_, out) = end(child, lines).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("different cloud key"), "{err}");
    assert!(!s.home.agents_dir().join(format!("{agent}.json")).exists());
    assert!(!s.home.secrets_dir().join(agent.as_str()).exists());
    assert!(s.daemon.log_text().contains("SECURITY"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_not_signed_by_the_pinned_key_is_refused() {
    let s = setup().await;
    let project = s.home.project("web");
    let (child, lines, _) = start_pair(&s.home, &["pair", project.to_str().unwrap()]).await;
    // The right public key named, but a token signed by another key.
    let agent = AgentId::generate();
    let (jwt, _) = token::issue(&CloudSigningKey::generate(), &agent, 1, 3600).unwrap();
    let forged = PairEvent::Paired(PairedPayload {
        jwt,
        agent_id: agent.clone(),
        name: "web".into(),
        redis_username: String::new(),
        cloud_public_key: s.cloud.state.key.public_key().to_base64(),
    });
    s.cloud
        .publish_pair(&serde_json::to_string(&forged).unwrap())
        .await;
    let (_, out) = end(child, lines).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("invalid token"), "{}", stderr(&out));
    assert!(!s.home.agents_dir().join(format!("{agent}.json")).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_cancels_the_pairing() {
    let s = setup().await;
    let project = s.home.project("web");
    let (child, lines, _) = start_pair(&s.home, &["pair", project.to_str().unwrap()]).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let (_, out) = end(child, lines).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cancelled"), "{}", stderr(&out));
    // The user's choice, not a failure.
    assert!(!stderr(&out).contains("failed"), "{}", stderr(&out));
    // The daemon stops listening for this pairing. Its subscribers are
    // counted, not published to: a `paired` event sent while it still
    // listened would pair the folder (and fail the pairing below).
    let gone = remoteagent_testkit::wait_for(PATIENCE, || async {
        (s.cloud.pair_listeners().await == 0).then_some(())
    })
    .await;
    assert!(gone.is_some(), "the daemon still listens after the cancel");
    // And the folder can be paired again.
    let (child, lines, _) = start_pair(&s.home, &["pair", project.to_str().unwrap()]).await;
    drop(lines);
    drop(child);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_folder_is_an_error() {
    let s = setup().await;
    let h = s.home.clone();
    let out = blocking(move || h.ctl(&["pair", "./does-not-exist"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does-not-exist"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_command_runner_is_stored_as_argv() {
    let s = setup().await;
    let project = s.home.project("tool");
    let (agent, _) = pair_project(
        &s.home,
        &s.cloud,
        &project,
        "tool",
        &["--command", "./my-agent --flag 'two words'"],
    )
    .await;
    let text = std::fs::read_to_string(s.home.agents_dir().join(format!("{agent}.json"))).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        meta["runner"],
        serde_json::json!({"command": ["./my-agent", "--flag", "two words"]})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runner_the_daemon_cannot_start_is_warned_about_with_the_code() {
    let s = setup().await;
    for (name, executable) in [("missing", false), ("present", true)] {
        let project = s.home.project(name);
        if executable {
            let runner = project.join("my-agent");
            std::fs::write(&runner, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&runner, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let (child, lines, shown) = start_pair(
            &s.home,
            &[
                "pair",
                project.to_str().unwrap(),
                "--command",
                "./my-agent --fast",
            ],
        )
        .await;
        let (_, _, event) = s.cloud.paired_event(name);
        assert_eq!(s.cloud.publish_pair(&event).await, 1);
        let (rest, out) = end(child, lines).await;
        assert!(out.status.success(), "{rest}\n{}", stderr(&out));
        // The deep link that pairs in one tap (the bot's `/start CODE`).
        let all = format!("{shown}{rest}");
        assert!(
            all.contains("Open https://t.me/RemoteAgentTestBot?start=XK9-4TZ"),
            "{all}"
        );
        let warned =
            stderr(&out).contains("warning: the runner ./my-agent is not an executable file");
        assert_eq!(warned, !executable, "{name}: {}", stderr(&out));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_survive_restarts_and_crashes() {
    let mut s = setup().await;
    let web = s.home.project("web");
    let api = s.home.project("api");
    let (web_id, _) = pair_project(&s.home, &s.cloud, &web, "web", &[]).await;
    let (api_id, _) = pair_project(&s.home, &s.cloud, &api, "api", &["--runner", "codex"]).await;

    let status = blocking({
        let mut d = std::mem::replace(
            &mut s.daemon,
            Daemon {
                child: None,
                log: Default::default(),
            },
        );
        move || d.terminate()
    })
    .await;
    assert!(status.success());
    assert_eq!(s.home.ctl(&["list"]).status.code(), Some(3));

    let h = s.home.clone();
    let mut daemon = blocking(move || h.start_daemon()).await;
    let ids = |home: &Home| {
        let out = home.ctl(&["--json", "list"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut ids: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let mut want = vec![web_id.to_string(), api_id.to_string()];
    want.sort();
    assert_eq!(ids(&s.home), want);

    daemon.kill();
    let h = s.home.clone();
    let _daemon = blocking(move || h.start_daemon()).await;
    assert_eq!(ids(&s.home), want);
    let out = s.home.ctl(&["--json", "list"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let api = v
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "api")
        .unwrap();
    assert_eq!(api["runner"], serde_json::json!({"preset": "codex"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn unpair_revokes_in_the_cloud_and_forgets_locally() {
    let s = setup().await;
    let web = s.home.project("web");
    let (agent, jwt) = pair_project(&s.home, &s.cloud, &web, "web", &[]).await;
    let h = s.home.clone();
    // An id prefix names the agent.
    let prefix = agent.as_str()[..6].to_string();
    let out = blocking(move || h.ctl(&["unpair", &prefix])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Unpaired 'web'"), "{}", stdout(&out));
    assert_eq!(s.cloud.deletes(), vec![(agent.to_string(), jwt)]);
    assert!(!s.home.agents_dir().join(format!("{agent}.json")).exists());
    assert!(!s.home.secrets_dir().join(agent.as_str()).exists());
    let out = s.home.ctl(&["--json", "list"]);
    assert_eq!(stdout(&out).trim(), "[]");
    let out = s.home.ctl(&["unpair", "web"]);
    assert_eq!(out.status.code(), Some(4));
}

#[tokio::test(flavor = "multi_thread")]
async fn unpair_works_offline_and_says_so() {
    let s = setup().await;
    let web = s.home.project("web");
    let (agent, _) = pair_project(&s.home, &s.cloud, &web, "web", &[]).await;
    // The cloud goes away.
    drop(s.cloud);
    let h = s.home.clone();
    let out = blocking(move || h.ctl(&["--json", "unpair", "web"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cloud_revoked"], false);
    assert!(!s.home.agents_dir().join(format!("{agent}.json")).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn names_and_prefixes_resolve_or_say_why_not() {
    let s = setup().await;
    let a = s.home.project("a");
    let b = s.home.project("b");
    pair_project(&s.home, &s.cloud, &a, "same", &[]).await;
    pair_project(&s.home, &s.cloud, &b, "same", &[]).await;
    let h = s.home.clone();
    let out = blocking(move || h.ctl(&["stop", "same"])).await;
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("several agents"), "{}", stderr(&out));
    let out = s.home.ctl(&["stop", "nobody"]);
    assert_eq!(out.status.code(), Some(4));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_close_to_expiry_is_renewed() {
    let mut s = setup().await;
    let web = s.home.project("web");
    // A token with a day left: due for renewal (the daemon renews a week ahead).
    let (agent, old) = pair_project_with_ttl(&s.home, &s.cloud, &web, "web", &[], 24 * 3600).await;
    let mut d = std::mem::replace(
        &mut s.daemon,
        Daemon {
            child: None,
            log: Default::default(),
        },
    );
    assert!(blocking(move || d.terminate()).await.success());
    let h = s.home.clone();
    let daemon = blocking(move || h.start_daemon()).await;
    let renewed = remoteagent_testkit::wait_for(PATIENCE, || async {
        s.cloud.state.refreshes.lock().unwrap().first().cloned()
    })
    .await;
    let (id, bearer, new) = renewed.unwrap_or_else(|| panic!("no renewal:\n{}", daemon.log_text()));
    assert_eq!(
        (id.as_str(), bearer.as_str()),
        (agent.as_str(), old.as_str())
    );
    let secret = s.home.secrets_dir().join(agent.as_str());
    let stored = remoteagent_testkit::wait_for(PATIENCE, || async {
        let now = std::fs::read_to_string(&secret).ok()?;
        (now == new).then_some(())
    })
    .await;
    assert!(stored.is_some(), "the new token was not stored");
    assert!(!daemon.log_text().contains(&new));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_pairing_redis_is_reported_before_the_code_is_shown() {
    let dead = format!("redis://127.0.0.1:{}", remoteagent_testkit::free_port());
    let cloud = FakeCloud::start(dead).await;
    let home = Arc::new(Home::with_file_store(&cloud.url));
    let h = home.clone();
    let _daemon = blocking(move || h.start_daemon()).await;
    let project = home.project("web");
    let h = home.clone();
    let out = blocking(move || h.ctl(&["pair", project.to_str().unwrap()])).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot reach the cloud's Redis"), "{err}");
    // No code was shown: the user is not asked to type one nobody listens for.
    assert!(!stdout(&out).contains("XK9-4TZ"), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_dying_while_waiting_is_reported() {
    let mut s = setup().await;
    let project = s.home.project("web");
    let (child, lines, _) = start_pair(&s.home, &["pair", project.to_str().unwrap()]).await;
    s.redis.stop();
    let (_, out) = end(child, lines).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("Redis"), "{}", stderr(&out));
    // The daemon lives on.
    assert!(s.home.ctl(&["status"]).status.success());
}
