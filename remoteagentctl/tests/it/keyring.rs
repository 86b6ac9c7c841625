//! The OS keyring: a real Secret Service round trip (ignored by default;
//! `scripts/test` runs it with `--ignored` under dbus-run-session with an
//! unlocked gnome-keyring, and without one it fails rather than passing
//! silently), and the clear error when no Secret Service is reachable.

use crate::common;

use std::sync::Arc;

use common::*;
use remoteagent_testkit::RedisServer;
use remoteagentd::config::SecretStoreKind;
use remoteagentd::secrets::SecretStore;
use secrecy::ExposeSecret;

#[tokio::test(flavor = "multi_thread")]
async fn pairing_without_a_secret_service_explains_the_file_store() {
    let redis = RedisServer::start().unwrap();
    let cloud = FakeCloud::start(redis.url()).await;
    let mut home = Home::new();
    home.write_config(&format!("cloud_url = \"{}\"\n", cloud.url));
    home.env.insert(
        "DBUS_SESSION_BUS_ADDRESS".into(),
        format!("unix:path={}/no-such-bus", home.path().display()),
    );
    let home = Arc::new(home);
    let h = home.clone();
    let _daemon = blocking(move || h.start_daemon()).await;
    let project = home.project("web");
    let h = home.clone();
    let out = blocking(move || h.ctl(&["pair", project.to_str().unwrap()])).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("secret_store = \"file\""), "{err}");
    assert!(err.contains("keyring"), "{err}");
    // Refused before a code was requested: the user did not type it for nothing.
    assert!(cloud.state.pairings.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a Secret Service: run by scripts/test with --ignored"]
async fn secret_service_round_trip() {
    let redis = RedisServer::start().unwrap();
    let cloud = FakeCloud::start(redis.url()).await;
    let home = Home::new();
    home.write_config(&format!(
        "secret_store = \"keyring\"\ncloud_url = \"{}\"\n",
        cloud.url
    ));
    let home = Arc::new(home);
    let h = home.clone();
    let mut daemon = blocking(move || h.start_daemon()).await;
    let project = home.project("web");
    let (agent, jwt) = pair_project(&home, &cloud, &project, "web", &[]).await;

    // In the keyring (service remoteagent, account agent:{id}), not on disk.
    let keyring = SecretStore::new(SecretStoreKind::Keyring, home.secrets_dir());
    let stored = keyring.get(&agent).await.unwrap();
    assert_eq!(
        stored.as_ref().map(|s| s.expose_secret()),
        Some(jwt.as_str())
    );
    assert!(!home.secrets_dir().exists());
    let meta = std::fs::read_to_string(home.agents_dir().join(format!("{agent}.json"))).unwrap();
    assert!(!meta.contains(&jwt));

    // A restart reads it back.
    assert!(blocking(move || daemon.terminate()).await.success());
    let h = home.clone();
    let _daemon = blocking(move || h.start_daemon()).await;
    let out = home.ctl(&["--json", "list"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["id"], agent.as_str());

    // Unpair deletes the keyring entry.
    let h = home.clone();
    let out = blocking(move || h.ctl(&["unpair", "web"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(keyring.get(&agent).await.unwrap().is_none());
}
