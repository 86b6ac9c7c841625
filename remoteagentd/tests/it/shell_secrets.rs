//! The secret store against a real Secret Service (gnome-keyring on a
//! private session bus, which `scripts/test` starts and then runs the
//! ignored tests in). Ignored by default: without a Secret Service it fails,
//! which is the point of running it, never a silent pass.

use remoteagent_proto::AgentId;
use remoteagentd::config::SecretStoreKind;
use remoteagentd::secrets::SecretStore;
use secrecy::ExposeSecret;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a Secret Service: run by scripts/test with --ignored"]
async fn keyring_round_trip() {
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
