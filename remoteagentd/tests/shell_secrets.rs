//! The secret store against a real Secret Service (gnome-keyring on a
//! private session bus; `scripts/test` sets `REMOTEAGENT_TEST_KEYRING=1`),
//! and its clear error when no Secret Service is reachable.

use remoteagent_proto::AgentId;
use remoteagentd::config::SecretStoreKind;
use remoteagentd::secrets::SecretStore;
use secrecy::ExposeSecret;

#[tokio::test(flavor = "multi_thread")]
async fn keyring_round_trip() {
    if std::env::var("REMOTEAGENT_TEST_KEYRING").as_deref() != Ok("1") {
        eprintln!(
            "skipping: set REMOTEAGENT_TEST_KEYRING=1 and run under dbus-run-session with an \
             unlocked gnome-keyring (scripts/test does both)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = SecretStore::new(SecretStoreKind::Keyring, tmp.path().join("secrets"));
    let id = AgentId::generate();
    assert!(store.get(&id).await.unwrap().is_none());
    store.set(&id, "jwt-one").await.unwrap();
    store.set(&id, "jwt-two").await.unwrap();
    let got = store.get(&id).await.unwrap();
    assert_eq!(got.as_ref().map(|s| s.expose_secret()), Some("jwt-two"));
    // A second store object (as after a daemon restart) sees the same entry.
    let again = SecretStore::new(SecretStoreKind::Keyring, tmp.path().join("secrets"));
    let got = again.get(&id).await.unwrap();
    assert_eq!(got.as_ref().map(|s| s.expose_secret()), Some("jwt-two"));
    assert!(!tmp.path().join("secrets").exists(), "nothing on disk");
    store.delete(&id).await.unwrap();
    store.delete(&id).await.unwrap();
    assert!(again.get(&id).await.unwrap().is_none());
}
