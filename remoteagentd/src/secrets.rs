//! Where agent JWTs are kept: the OS keyring (service `remoteagent`, account
//! `agent:{agentId}`), or, only when the user opted in with
//! `secret_store = "file"`, 0600 files under
//! `$XDG_DATA_HOME/remoteagent/secrets/{agentId}`.
//!
//! The keyring calls are blocking D-Bus (or Keychain) round trips, so they
//! run on a dedicated thread (see [`KeyringWorker`]).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use keyring_core::{CredentialStore, Entry};
use remoteagent_proto::AgentId;
use secrecy::SecretString;

use crate::config::SecretStoreKind;
use crate::paths::ensure_private_dir;

/// The keyring service name of every RemoteAgent secret.
pub const KEYRING_SERVICE: &str = "remoteagent";

/// What a user without a keyring is told to do.
pub const FILE_STORE_HINT: &str = "no OS keyring (Secret Service) is reachable. Either start one \
(e.g. gnome-keyring or KeePassXC with Secret Service enabled), or opt in to storing agent tokens \
in 0600 files by adding `secret_store = \"file\"` to ~/.config/remoteagent/config.toml and \
restarting remoteagentd";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// No keyring service could be reached at all.
    #[error("{FILE_STORE_HINT} ({detail})")]
    Unavailable { detail: String },
    #[error("the keyring refused the operation: {0}")]
    Keyring(String),
    #[error("{action} {path}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
}

/// The account name of an agent's secret.
pub fn keyring_account(agent: &AgentId) -> String {
    format!("agent:{agent}")
}

/// The configured secret store.
#[derive(Clone)]
pub struct SecretStore {
    inner: Arc<Inner>,
}

struct Inner {
    kind: SecretStoreKind,
    dir: PathBuf,
    keyring: Mutex<Option<KeyringWorker>>,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStore")
            .field("kind", &self.inner.kind)
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

fn keyring_error(e: keyring_core::Error) -> SecretError {
    match e {
        // Without a session bus or a Secret Service, or with a locked store
        // that wants a GUI prompt, nothing can be stored: say what to do.
        keyring_core::Error::NoStorageAccess(inner) => SecretError::Unavailable {
            detail: inner.to_string(),
        },
        other => SecretError::Keyring(other.to_string()),
    }
}

#[cfg(target_os = "linux")]
fn open_platform_store() -> Result<Arc<CredentialStore>, SecretError> {
    let store =
        zbus_secret_service_keyring_store::Store::new().map_err(|e| SecretError::Unavailable {
            detail: e.to_string(),
        })?;
    Ok(store)
}

#[cfg(target_os = "macos")]
fn open_platform_store() -> Result<Arc<CredentialStore>, SecretError> {
    let store = apple_native_keyring_store::keychain::Store::new().map_err(|e| {
        SecretError::Unavailable {
            detail: e.to_string(),
        }
    })?;
    Ok(store)
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn open_platform_store() -> Result<Arc<CredentialStore>, SecretError> {
    Err(SecretError::Unavailable {
        detail: "this platform has no supported keyring".into(),
    })
}

type Job = Box<dyn FnOnce(&mut Option<Arc<CredentialStore>>) + Send>;

/// A plain OS thread that owns the keyring connection and runs every
/// keyring call. The Secret Service store blocks on its own async runtime
/// internally, which panics on any thread that belongs to tokio (including
/// `spawn_blocking` threads), and so does dropping it; a thread of our own
/// keeps both outside tokio.
struct KeyringWorker {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl KeyringWorker {
    fn start() -> Result<Self, SecretError> {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("keyring".into())
            .spawn(move || {
                // Connected on first use; a failed connection is retried on
                // the next call, so a keyring started later is picked up.
                let mut store: Option<Arc<CredentialStore>> = None;
                for job in rx {
                    job(&mut store);
                }
            })
            .map_err(|e| SecretError::Keyring(format!("starting the keyring thread: {e}")))?;
        Ok(KeyringWorker { jobs })
    }
}

impl SecretStore {
    pub fn new(kind: SecretStoreKind, dir: PathBuf) -> Self {
        SecretStore {
            inner: Arc::new(Inner {
                kind,
                dir,
                keyring: Mutex::new(None),
            }),
        }
    }

    async fn with_entry<T, F>(&self, agent: &AgentId, f: F) -> Result<T, SecretError>
    where
        T: Send + 'static,
        F: FnOnce(Entry) -> Result<T, keyring_core::Error> + Send + 'static,
    {
        let account = keyring_account(agent);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |store: &mut Option<Arc<CredentialStore>>| {
            let result = (|| {
                if store.is_none() {
                    *store = Some(open_platform_store()?);
                }
                let Some(store) = store.as_ref() else {
                    return Err(SecretError::Keyring("no keyring store".into()));
                };
                let entry =
                    Entry::new_in_store(store, KEYRING_SERVICE, &account).map_err(keyring_error)?;
                f(entry).map_err(keyring_error)
            })();
            let _ = tx.send(result);
        });
        {
            let mut worker = self.inner.keyring.lock().unwrap_or_else(|e| e.into_inner());
            if worker.is_none() {
                *worker = Some(KeyringWorker::start()?);
            }
            let sent = worker.as_ref().map(|w| w.jobs.send(job));
            if !matches!(sent, Some(Ok(()))) {
                *worker = None;
                return Err(SecretError::Keyring("the keyring thread is gone".into()));
            }
        }
        rx.await
            .map_err(|_| SecretError::Keyring("the keyring call was dropped".into()))?
    }

    fn file(&self, agent: &AgentId) -> PathBuf {
        self.inner.dir.join(agent.as_str())
    }

    /// Stores (or replaces) an agent's JWT.
    pub async fn set(&self, agent: &AgentId, jwt: &str) -> Result<(), SecretError> {
        match self.inner.kind {
            SecretStoreKind::Keyring => {
                let jwt = jwt.to_string();
                self.with_entry(agent, move |e| e.set_password(&jwt)).await
            }
            SecretStoreKind::File => {
                let dir = self.inner.dir.clone();
                ensure_private_dir(&dir).map_err(|e| SecretError::Io {
                    path: dir.clone(),
                    action: "creating",
                    source: std::io::Error::other(e.to_string()),
                })?;
                let path = self.file(agent);
                let partial = dir.join(format!("{agent}.partial"));
                let io = |action| {
                    let path = path.clone();
                    move |source| SecretError::Io {
                        path,
                        action,
                        source,
                    }
                };
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&partial)
                    .map_err(io("creating"))?;
                f.write_all(jwt.as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(io("writing"))?;
                std::fs::rename(&partial, &path).map_err(io("renaming into"))?;
                Ok(())
            }
        }
    }

    /// The agent's JWT, `None` when there is none.
    pub async fn get(&self, agent: &AgentId) -> Result<Option<SecretString>, SecretError> {
        match self.inner.kind {
            SecretStoreKind::Keyring => {
                self.with_entry(agent, |e| match e.get_password() {
                    Ok(p) => Ok(Some(SecretString::from(p))),
                    Err(keyring_core::Error::NoEntry) => Ok(None),
                    Err(e) => Err(e),
                })
                .await
            }
            SecretStoreKind::File => {
                let path = self.file(agent);
                match std::fs::read_to_string(&path) {
                    Ok(s) => Ok(Some(SecretString::from(s.trim()))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(SecretError::Io {
                        path,
                        action: "reading",
                        source,
                    }),
                }
            }
        }
    }

    /// Deletes the agent's JWT; a missing one is not an error.
    pub async fn delete(&self, agent: &AgentId) -> Result<(), SecretError> {
        match self.inner.kind {
            SecretStoreKind::Keyring => {
                self.with_entry(agent, |e| match e.delete_credential() {
                    Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
                    Err(e) => Err(e),
                })
                .await
            }
            SecretStoreKind::File => {
                let path = self.file(agent);
                match std::fs::remove_file(&path) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(source) => Err(SecretError::Io {
                        path,
                        action: "removing",
                        source,
                    }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::os::unix::fs::MetadataExt;

    #[tokio::test]
    async fn file_store_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SecretStore::new(SecretStoreKind::File, tmp.path().join("secrets"));
        let id = AgentId::generate();
        assert!(store.get(&id).await.unwrap().is_none());
        store.set(&id, "jwt-1").await.unwrap();
        store.set(&id, "jwt-2").await.unwrap();
        let got = store.get(&id).await.unwrap();
        assert_eq!(got.as_ref().map(|s| s.expose_secret()), Some("jwt-2"));
        let file = tmp.path().join("secrets").join(id.as_str());
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(tmp.path().join("secrets"))
                .unwrap()
                .mode()
                & 0o777,
            0o700
        );
        store.delete(&id).await.unwrap();
        store.delete(&id).await.unwrap();
        assert!(store.get(&id).await.unwrap().is_none());
    }
}
