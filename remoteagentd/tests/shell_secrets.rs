//! The secret store against a real Secret Service (gnome-keyring on a
//! private session bus; `scripts/test` sets `REMOTEAGENT_TEST_KEYRING=1`),
//! and its clear error when no Secret Service is reachable.

use remoteagent_proto::AgentId;
use remoteagentd::config::SecretStoreKind;
use remoteagentd::secrets::SecretStore;

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
    assert_eq!(store.get(&id).await.unwrap(), None);
    store.set(&id, "jwt-one").await.unwrap();
    store.set(&id, "jwt-two").await.unwrap();
    assert_eq!(store.get(&id).await.unwrap().as_deref(), Some("jwt-two"));
    // A second store object (as after a daemon restart) sees the same entry.
    let again = SecretStore::new(SecretStoreKind::Keyring, tmp.path().join("secrets"));
    assert_eq!(again.get(&id).await.unwrap().as_deref(), Some("jwt-two"));
    assert!(!tmp.path().join("secrets").exists(), "nothing on disk");
    store.delete(&id).await.unwrap();
    store.delete(&id).await.unwrap();
    assert_eq!(again.get(&id).await.unwrap(), None);
}
