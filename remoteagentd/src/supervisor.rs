//! The supervisor owns every paired agent: their metadata, their secrets and
//! the [`AgentHandle`]s of their tasks. The control handlers and the pairing
//! flow go through it; it never holds its lock across an `.await`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, Instant};

use remoteagent_proto::control::{AgentInfo, DaemonStatus, ErrorCode};
use remoteagent_proto::events::StoppedBy;
use remoteagent_proto::keys::CloudPublicKey;
use remoteagent_proto::{AgentId, SessionId};
use secrecy::SecretString;
use tokio::sync::{mpsc, watch};

use crate::agent::{AgentHandle, AgentNotice, AgentSettings, AgentSpec};
use crate::approval::Decision;
use crate::config::Config;
use crate::request_error::ControlError;
use crate::secrets::SecretStore;
use crate::state::{AgentMeta, StateDir};

/// One paired agent as the supervisor sees it.
struct Slot {
    meta: AgentMeta,
    /// `None` when the agent could not be started (its secret is missing,
    /// its pinned key is unreadable, …); `problem` says why.
    handle: Option<Arc<AgentHandle>>,
    problem: Option<String>,
}

pub struct Supervisor {
    agents: Mutex<HashMap<AgentId, Slot>>,
    /// Project folders with a pairing under way, so two `pair` commands for
    /// one folder cannot both succeed.
    pairing: Mutex<Vec<PathBuf>>,
    /// The settings agents take at their next session; a reload sends new
    /// ones (see `reload`).
    settings: watch::Sender<Arc<AgentSettings>>,
    pub secrets: SecretStore,
    pub state: StateDir,
    /// The config in force; a reload replaces it.
    config: RwLock<Arc<Config>>,
    /// Where the config file is read again on reload (set by the daemon).
    config_file: OnceLock<PathBuf>,
    /// What the last reload left to tell: its failure, keys that need a
    /// restart.
    reload: Mutex<crate::reload::ReloadState>,
    pub http: reqwest::Client,
    pub socket: PathBuf,
    started: Instant,
    notices: mpsc::Sender<AgentNotice>,
}

/// Removes a folder from the "pairing under way" list when the pairing ends,
/// however it ends (including the client hanging up).
pub struct PairingGuard {
    supervisor: Arc<Supervisor>,
    path: PathBuf,
}

impl Drop for PairingGuard {
    fn drop(&mut self) {
        self.supervisor.pairing_list().retain(|p| p != &self.path);
    }
}

impl Supervisor {
    pub fn new(
        config: Config,
        settings: AgentSettings,
        secrets: SecretStore,
        state: StateDir,
        socket: PathBuf,
    ) -> Result<(Arc<Self>, mpsc::Receiver<AgentNotice>), reqwest::Error> {
        let (notices, rx) = mpsc::channel(64);
        let http = reqwest::Client::builder()
            // A cloud that cannot be reached is said within 5 s.
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("remoteagentd/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok((
            Arc::new(Supervisor {
                agents: Mutex::new(HashMap::new()),
                pairing: Mutex::new(Vec::new()),
                settings: watch::Sender::new(Arc::new(settings)),
                secrets,
                state,
                config: RwLock::new(Arc::new(config)),
                config_file: OnceLock::new(),
                reload: Mutex::new(Default::default()),
                http,
                socket,
                started: Instant::now(),
                notices,
            }),
            rx,
        ))
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<AgentId, Slot>> {
        // A panic while holding the lock leaves the map itself consistent
        // (every mutation is a single insert/remove), so keep going.
        self.agents.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        // Every write replaces the whole `Arc`, so a poisoned lock still
        // holds a complete config.
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The agent settings in force.
    pub fn settings(&self) -> Arc<AgentSettings> {
        self.settings.borrow().clone()
    }

    /// Puts a reloaded config and its agent settings in force: new agents
    /// start with them, running ones take them at their next session.
    pub fn apply_config(&self, config: Config, settings: AgentSettings) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        self.settings.send_replace(Arc::new(settings));
    }

    pub fn set_config_file(&self, path: PathBuf) {
        let _ = self.config_file.set(path);
    }

    pub fn config_file(&self) -> Option<&Path> {
        self.config_file.get().map(PathBuf::as_path)
    }

    pub fn reload_state(&self) -> MutexGuard<'_, crate::reload::ReloadState> {
        self.reload.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads `path` again and puts it in force; on failure keeps the old
    /// config and returns (and records) the failure's text.
    pub fn reload_config(&self, path: &Path) -> Result<crate::reload::Reloaded, String> {
        let mut new = match crate::config::Config::load(path) {
            Ok(config) => config,
            Err(e) => {
                let failure = format!(
                    "config reload failed at {}: {e}",
                    crate::reload::hhmm_utc(std::time::SystemTime::now())
                );
                tracing::error!(path = %path.display(), error = %e, "config reload failed; keeping the previous config");
                self.reload_state().failure = Some(failure.clone());
                return Err(failure);
            }
        };
        let old = self.config();
        let changed = crate::reload::changed_keys(&old, &new);
        let (restart, live): (Vec<_>, Vec<_>) = changed
            .into_iter()
            .partition(|k| crate::config::RESTART_KEYS.contains(k));
        // What cannot change while running keeps its running value, so that
        // `status`, `doctor` and new agents describe what is really in use.
        new.secret_store = old.secret_store;
        for key in &restart {
            tracing::warn!(key, path = %path.display(), "config: {key} changed; takes effect after a restart");
        }
        let settings = crate::reload::agent_settings(&self.settings(), &new);
        self.apply_config(new, settings);
        if live.is_empty() {
            tracing::info!(path = %path.display(), "config reloaded: nothing that applies live changed");
        } else {
            tracing::info!(path = %path.display(), changed = %live.join(", "), "config reloaded");
        }
        let restart_needed: Vec<String> = restart.iter().map(|k| k.to_string()).collect();
        {
            let mut state = self.reload_state();
            state.failure = None;
            // A key changed back to its running value needs no restart anymore.
            state.restart_needed = restart_needed.clone();
        }
        Ok(crate::reload::Reloaded {
            changed: live.into_iter().map(String::from).collect(),
            restart_needed,
        })
    }

    fn pairing_list(&self) -> MutexGuard<'_, Vec<PathBuf>> {
        self.pairing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads every agent from the state dir and the secret store and starts
    /// it. Problems with one agent are logged and shown by `list`; they never
    /// stop the daemon.
    pub async fn load_all(self: &Arc<Self>) -> Result<(), crate::state::StateError> {
        for loaded in self.state.load_all()? {
            let meta = match loaded {
                Ok(meta) => meta,
                Err(e) => {
                    tracing::warn!(error = %e, "skipping unreadable agent metadata");
                    continue;
                }
            };
            let jwt = match self.secrets.get(&meta.id).await {
                Ok(Some(jwt)) => Ok(jwt),
                Ok(None) => Err("its token is missing from the secret store; pair it again".into()),
                Err(e) => Err(format!("its token could not be read: {e}")),
            };
            match jwt {
                Ok(jwt) => self.start(meta, jwt),
                Err(problem) => {
                    tracing::warn!(agent = %meta.id, name = %meta.name, %problem, "agent not started");
                    self.slots().insert(
                        meta.id.clone(),
                        Slot {
                            meta,
                            handle: None,
                            problem: Some(problem),
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Starts an agent's task and records it.
    pub fn start(&self, mut meta: AgentMeta, jwt: SecretString) {
        // Sessions report their conversation to the running slot, so its id
        // is the newest: restarting with metadata read earlier (a token
        // renewal) must not roll it back.
        if let Some(slot) = self.slots().get(&meta.id) {
            meta.conversation = slot.meta.conversation.clone();
        }
        let (handle, problem) = match CloudPublicKey::from_base64(&meta.cloud_public_key) {
            Ok(cloud_public_key) => {
                let spec = AgentSpec {
                    id: meta.id.clone(),
                    name: meta.name.clone(),
                    path: meta.path.clone(),
                    runner: meta.runner.clone(),
                    redis_url: meta.redis_url.clone(),
                    redis_username: meta.redis_username.clone(),
                    jwt,
                    cloud_public_key,
                    conversation: meta.conversation.clone(),
                };
                tracing::info!(agent = %meta.id, name = %meta.name, path = %meta.path.display(), "starting agent");
                let handle =
                    AgentHandle::spawn_live(spec, self.settings.subscribe(), self.notices.clone());
                (Some(Arc::new(handle)), None)
            }
            Err(e) => {
                tracing::warn!(agent = %meta.id, error = %e, "agent has an unreadable cloud key");
                (
                    None,
                    Some(format!("its pinned cloud key is unreadable: {e}")),
                )
            }
        };
        let old = self.slots().insert(
            meta.id.clone(),
            Slot {
                meta,
                handle,
                problem,
            },
        );
        if let Some(Slot {
            handle: Some(old), ..
        }) = old
        {
            // A restart (a renewed token): the running session ends as in
            // a shutdown.
            tokio::spawn(shutdown_handle(old, StoppedBy::Shutdown));
        }
    }

    /// Marks a folder as being paired; `conflict` when it is paired already
    /// or another pairing of it is under way.
    pub fn begin_pairing(self: &Arc<Self>, path: &Path) -> Result<PairingGuard, ControlError> {
        if let Some(slot) = self.slots().values().find(|s| s.meta.path == path) {
            return Err(ControlError::new(
                ErrorCode::Conflict,
                format!(
                    "{} is already paired as '{}' ({}); unpair it first",
                    path.display(),
                    slot.meta.name,
                    slot.meta.id
                ),
            ));
        }
        let mut pairing = self.pairing_list();
        if pairing.iter().any(|p| p == path) {
            return Err(ControlError::new(
                ErrorCode::Conflict,
                format!("a pairing of {} is already under way", path.display()),
            ));
        }
        pairing.push(path.to_path_buf());
        Ok(PairingGuard {
            supervisor: self.clone(),
            path: path.to_path_buf(),
        })
    }

    /// Finds an agent by exact name or id, else by unique id prefix or name.
    pub fn resolve(&self, query: &str) -> Result<AgentId, ControlError> {
        let slots = self.slots();
        let query = query.trim();
        if let Some(id) = slots.keys().find(|id| id.as_str() == query) {
            return Ok(id.clone());
        }
        let by_name: Vec<&Slot> = slots.values().filter(|s| s.meta.name == query).collect();
        let candidates: Vec<&Slot> = if by_name.is_empty() && !query.is_empty() {
            slots
                .values()
                .filter(|s| s.meta.id.as_str().starts_with(query))
                .collect()
        } else {
            by_name
        };
        match candidates.as_slice() {
            [one] => Ok(one.meta.id.clone()),
            [] => Err(ControlError::new(
                ErrorCode::NotFound,
                format!("no agent named '{query}' (see `remoteagentctl list`)"),
            )),
            many => {
                let mut names: Vec<String> = many
                    .iter()
                    .map(|s| format!("{} ({})", s.meta.name, s.meta.id))
                    .collect();
                names.sort();
                Err(ControlError::new(
                    ErrorCode::Ambiguous,
                    format!(
                        "'{query}' matches several agents: {}; use a longer id prefix",
                        names.join(", ")
                    ),
                ))
            }
        }
    }

    fn info(slot: &Slot) -> AgentInfo {
        let (online, running_session) = match &slot.handle {
            Some(h) => (h.online(), h.running_session()),
            None => (false, None),
        };
        AgentInfo {
            id: slot.meta.id.clone(),
            name: slot.meta.name.clone(),
            path: slot.meta.path.clone(),
            runner: slot.meta.runner.clone(),
            online,
            running_session,
            paired_at_ms: slot.meta.paired_at_ms,
            cloud_url: slot.meta.cloud_url.clone(),
            problem: slot.problem.clone(),
        }
    }

    /// Every agent, oldest pairing first.
    pub fn list(&self) -> Vec<AgentInfo> {
        let mut all: Vec<AgentInfo> = self.slots().values().map(Self::info).collect();
        all.sort_by(|a, b| {
            a.paired_at_ms
                .cmp(&b.paired_at_ms)
                .then_with(|| a.name.cmp(&b.name))
        });
        all
    }

    pub fn agent_info(&self, id: &AgentId) -> Option<AgentInfo> {
        self.slots().get(id).map(Self::info)
    }

    /// Waits up to `limit` for a just-paired agent to be online, so that
    /// `pair` returns once a prompt sent from Telegram would be taken.
    /// Never holds the slots lock across the wait.
    pub async fn wait_online(&self, id: &AgentId, limit: Duration) -> Option<AgentInfo> {
        let online = self
            .slots()
            .get(id)
            .and_then(|s| s.handle.as_ref())
            .map(|h| h.online_watch());
        if let Some(mut rx) = online {
            let _ = tokio::time::timeout(limit, rx.wait_for(|online| *online)).await;
        }
        self.agent_info(id)
    }

    /// Every agent's metadata with the reason it is not running, if any.
    pub fn metas(&self) -> Vec<(AgentMeta, Option<String>)> {
        let mut all: Vec<_> = self
            .slots()
            .values()
            .map(|s| (s.meta.clone(), s.problem.clone()))
            .collect();
        all.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        all
    }

    pub fn meta(&self, id: &AgentId) -> Option<AgentMeta> {
        self.slots().get(id).map(|s| s.meta.clone())
    }

    pub fn status(&self) -> DaemonStatus {
        let slots = self.slots();
        let infos: Vec<AgentInfo> = slots.values().map(Self::info).collect();
        let online = infos.iter().filter(|a| a.online).count();
        let reload = self.reload_state().clone();
        DaemonStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
            redis_connected: online == infos.len(),
            agents: infos.len(),
            agents_online: online,
            sessions_running: infos.iter().filter(|a| a.running_session.is_some()).count(),
            socket: self.socket.clone(),
            cloud_url: self.config().cloud_url.clone(),
            config_problem: reload.failure,
            restart_needed: reload.restart_needed,
            auto_allowed: self.settings().approval.rules.auto_allowed_total(),
        }
    }

    /// Aborts the agent's running session.
    pub async fn stop(&self, id: &AgentId) -> Result<SessionId, ControlError> {
        let handle = self.slots().get(id).and_then(|s| s.handle.clone());
        let Some(handle) = handle else {
            return Err(ControlError::new(
                ErrorCode::Conflict,
                "the agent is not running, so nothing can be stopped",
            ));
        };
        handle
            .abort_running()
            .await
            .ok_or_else(|| ControlError::new(ErrorCode::Conflict, "the agent has no run going on"))
    }

    /// Asks agent `id`'s running session `session` whether its runner may
    /// use `tool` (for Claude Code's approval hook). Anything but that
    /// session running right now is a DENY. The agent's handle is not held
    /// while the answer is awaited (see [`AgentHandle::ask_approval`]).
    pub async fn ask_approval(
        &self,
        id: &AgentId,
        session: SessionId,
        tool: String,
        input: serde_json::Value,
        cwd: Option<String>,
    ) -> Decision {
        let handle = self.slots().get(id).and_then(|s| s.handle.clone());
        let Some(handle) = handle else {
            tracing::info!(agent = %id, session = %session, "approval request denied: no such agent running");
            return Decision::deny("no such agent running");
        };
        let decision = handle.ask_approval(session, tool, input, cwd);
        drop(handle);
        decision.await
    }

    /// Forgets an agent locally: stops its task (a running session is
    /// stopped `by` whoever unpaired it), deletes its secret and metadata.
    /// Returns its metadata, or `None` if it was unknown.
    pub async fn forget(&self, id: &AgentId, by: StoppedBy) -> Option<AgentMeta> {
        let slot = self.slots().remove(id)?;
        if let Some(handle) = slot.handle {
            shutdown_handle(handle, by).await;
        }
        if let Err(e) = self.secrets.delete(id).await {
            tracing::warn!(agent = %id, error = %e, "could not delete the agent's secret");
        }
        if let Err(e) = self.state.remove(id) {
            tracing::warn!(agent = %id, error = %e, "could not delete the agent's metadata");
        }
        if let Err(e) = self.settings().conversations.remove(id) {
            tracing::warn!(agent = %id, error = %e, "could not delete the agent's list of sessions");
        }
        if let Err(e) = self.settings().approval.rules.forget(id) {
            tracing::warn!(agent = %id, error = %e, "could not delete the agent's approval rules");
        }
        // Its envelopes can no longer verify (nobody pins its key): the
        // record of seen ones has nothing left to guard.
        self.settings().seen.forget(id);
        tracing::info!(agent = %id, name = %slot.meta.name, "agent forgotten");
        Some(slot.meta)
    }

    /// Stops every agent's task concurrently (each publishes its running
    /// session's `done`), and stores the conversation ids they end with.
    pub async fn shutdown_all(&self) {
        let handles: Vec<Arc<AgentHandle>> = self
            .slots()
            .values_mut()
            .filter_map(|s| s.handle.take())
            .collect();
        let ended = futures::future::join_all(handles.into_iter().map(|h| async move {
            let id = h.id().clone();
            (id, shutdown_handle(h, StoppedBy::Shutdown).await)
        }))
        .await;
        // A session aborted by the shutdown reports its conversation as the
        // daemon stops; the notice loop may already be gone by then.
        for (id, conversation) in ended {
            if let Some(conversation) = conversation {
                self.remember_conversation(&id, conversation);
            }
        }
    }

    /// Records an agent's conversation id in its metadata, so the next
    /// prompt resumes it after a restart too. An agent forgotten meanwhile
    /// stays forgotten: the slot is checked and the file written under the
    /// same lock that `forget` takes to remove the slot.
    pub fn remember_conversation(&self, id: &AgentId, conversation: String) {
        let mut slots = self.slots();
        let Some(slot) = slots.get_mut(id) else {
            return;
        };
        if slot.meta.conversation.as_deref() == Some(conversation.as_str()) {
            return;
        }
        slot.meta.conversation = Some(conversation);
        match self.state.save(&slot.meta) {
            Ok(()) => tracing::debug!(agent = %id, "conversation id stored"),
            Err(e) => {
                tracing::warn!(agent = %id, error = %e, "could not store the conversation id")
            }
        }
    }

    /// Handles the agents' notices until every sender is gone.
    pub async fn run_notices(self: Arc<Self>, mut rx: mpsc::Receiver<AgentNotice>) {
        while let Some(notice) = rx.recv().await {
            match notice {
                AgentNotice::Unpaired(id) => {
                    tracing::info!(agent = %id, "the cloud unpaired this agent");
                    self.forget(&id, StoppedBy::Phone).await;
                }
                AgentNotice::Conversation {
                    agent,
                    conversation,
                } => self.remember_conversation(&agent, conversation),
            }
        }
    }
}

/// Shuts a handle down once no request is using it any more: `stop` holds
/// a clone only for as long as its abort takes. Returns the conversation id
/// the agent ended with, if its sessions reported one.
async fn shutdown_handle(mut handle: Arc<AgentHandle>, by: StoppedBy) -> Option<String> {
    loop {
        match Arc::try_unwrap(handle) {
            Ok(h) => return h.shutdown_by(by).await,
            Err(shared) => {
                handle = shared;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretStoreKind;
    use remoteagent_proto::runner::RunnerSpec;

    fn supervisor(root: &Path) -> Arc<Supervisor> {
        let settings = AgentSettings {
            log_root: root.join("logs"),
            abort_grace: Duration::from_secs(1),
            max_prompt_bytes: 1024,
            approval: Default::default(),
            seen: Arc::new(crate::seen_envelopes::SeenEnvelopes::new(
                root.join("envelopes"),
            )),
            stream_budget: crate::output::DEFAULT_STREAM_BUDGET,
            log_limits: Default::default(),
            log_events: Default::default(),
            outbox_hint: true,
            inbox: crate::inbox::InboxSettings {
                root: root.join("inbox"),
                limits: Default::default(),
            },
            conversations: crate::conversations::History::new(root.join("conversations")),
            worktrees: Default::default(),
        };
        let (s, _rx) = Supervisor::new(
            Config::default(),
            settings,
            SecretStore::new(SecretStoreKind::File, root.join("secrets")),
            StateDir::new(root.join("agents")),
            root.join("sock"),
        )
        .unwrap();
        s
    }

    /// Records an agent without starting it (as one whose secret is missing).
    fn add(s: &Supervisor, id: &str, name: &str, path: &str) {
        let meta = AgentMeta {
            id: AgentId::parse(id).unwrap(),
            name: name.into(),
            path: path.into(),
            runner: RunnerSpec::default(),
            cloud_url: "http://c".into(),
            redis_url: "redis://x".into(),
            redis_username: String::new(),
            cloud_public_key: "k".into(),
            paired_at_ms: 1,
            conversation: None,
        };
        s.slots().insert(
            meta.id.clone(),
            Slot {
                meta,
                handle: None,
                problem: Some("not started".into()),
            },
        );
    }

    #[test]
    fn agents_resolve_by_name_id_and_unique_prefix() {
        let tmp = tempfile::tempdir().unwrap();
        let s = supervisor(tmp.path());
        add(&s, "abc111", "web", "/p/web");
        add(&s, "abc222", "api", "/p/api");
        add(&s, "fff333", "dup", "/p/d1");
        add(&s, "fff444", "dup", "/p/d2");
        assert_eq!(s.resolve("web").unwrap().as_str(), "abc111");
        assert_eq!(s.resolve("abc222").unwrap().as_str(), "abc222");
        assert_eq!(s.resolve("abc2").unwrap().as_str(), "abc222");
        assert_eq!(s.resolve("abc").unwrap_err().code, ErrorCode::Ambiguous);
        let dup = s.resolve("dup").unwrap_err();
        assert_eq!(dup.code, ErrorCode::Ambiguous);
        assert!(dup.message.contains("fff333") && dup.message.contains("fff444"));
        assert_eq!(s.resolve("nope").unwrap_err().code, ErrorCode::NotFound);
        assert_eq!(s.resolve("").unwrap_err().code, ErrorCode::NotFound);
    }

    #[test]
    fn a_folder_is_paired_once() {
        let tmp = tempfile::tempdir().unwrap();
        let s = supervisor(tmp.path());
        add(&s, "abc111", "web", "/p/web");
        let err = s.begin_pairing(Path::new("/p/web")).err().unwrap();
        assert_eq!(err.code, ErrorCode::Conflict);
        let guard = s.begin_pairing(Path::new("/p/new")).unwrap();
        assert_eq!(
            s.begin_pairing(Path::new("/p/new")).err().unwrap().code,
            ErrorCode::Conflict
        );
        drop(guard);
        assert!(s.begin_pairing(Path::new("/p/new")).is_ok());
    }

    #[tokio::test]
    async fn stop_without_a_running_agent_is_a_conflict() {
        let tmp = tempfile::tempdir().unwrap();
        let s = supervisor(tmp.path());
        add(&s, "abc111", "web", "/p/web");
        let id = s.resolve("web").unwrap();
        assert_eq!(s.stop(&id).await.unwrap_err().code, ErrorCode::Conflict);
        assert!(s.forget(&id, StoppedBy::Computer).await.is_some());
        assert!(s.list().is_empty());
        assert!(s.forget(&id, StoppedBy::Computer).await.is_none());
    }
}
