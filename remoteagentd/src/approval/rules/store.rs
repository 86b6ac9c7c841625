//! Where saved rules live: "this session" rules in memory, with the
//! conversation they belong to; "always here" rules in
//! `$XDG_CONFIG_HOME/remoteagent/rules/{agentId}.json` (the daemon's
//! config directory, never the project folder the agent can write), 0600
//! in a 0700 folder, rewritten whole to `.partial` and renamed. Daemon-wide
//! (in the agent settings), so an agent task restarted for a token renewal
//! keeps its session rules.
//!
//! Rules are numbered per agent (`rule 3`), one counter for both scopes,
//! kept in the file so a number is never reused for another rule.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use remoteagent_proto::AgentId;
use remoteagent_proto::rules::{RuleInfo, Scope};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::super::policy::ToolRule;
use super::derive;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{action} {path}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("{path} is not a list of rules ({reason}); fix or remove it")]
    Corrupt { path: PathBuf, reason: String },
    #[error("no place to keep rules (the daemon's config directory is unknown)")]
    NoDir,
    #[error("'{0}' is not a rule")]
    Bad(String),
}

/// One rule as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Saved {
    id: u32,
    pattern: String,
    #[serde(default)]
    saved_at_ms: u64,
}

/// The file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    #[serde(default)]
    next_id: u32,
    #[serde(default)]
    rules: Vec<Saved>,
}

#[derive(Debug, Default)]
struct AgentRules {
    /// The file was read (or found missing).
    loaded: bool,
    /// Why the file could not be read: its rules are not used, and it is
    /// not overwritten.
    broken: Option<String>,
    next_id: u32,
    always: Vec<Saved>,
    /// (conversation key, rule).
    session: Vec<(String, Saved)>,
    /// Automatic allows per rule since the daemon started.
    uses: HashMap<u32, u64>,
}

impl AgentRules {
    fn all(&self) -> impl Iterator<Item = (Scope, &Saved)> {
        self.session
            .iter()
            .map(|(_, r)| (Scope::Session, r))
            .chain(self.always.iter().map(|r| (Scope::Always, r)))
    }
}

/// A rule that allowed a tool use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub id: u32,
    pub pattern: String,
}

/// Every agent's rules.
#[derive(Debug, Clone, Default)]
pub struct RuleStore {
    /// `None`: no config directory (in-process tests); "always" is refused.
    dir: Option<PathBuf>,
    agents: Arc<Mutex<HashMap<AgentId, AgentRules>>>,
}

impl RuleStore {
    pub fn new(dir: PathBuf) -> Self {
        RuleStore {
            dir: Some(dir),
            agents: Default::default(),
        }
    }

    fn file(&self, agent: &AgentId) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{agent}.json")))
    }

    /// Runs `f` on `agent`'s rules, read from the file the first time.
    fn with<T>(&self, agent: &AgentId, f: impl FnOnce(&mut AgentRules) -> T) -> T {
        // A poisoned lock only means a panic elsewhere mid-update; the
        // rules themselves stay consistent (every update is one push or
        // remove), so they are used on.
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        let rules = agents.entry(agent.clone()).or_default();
        if !rules.loaded {
            rules.loaded = true;
            rules.next_id = 1;
            if let Some(path) = self.file(agent) {
                match read(&path) {
                    Ok(file) => {
                        // Numbers start at 1, as people count.
                        rules.next_id = file
                            .next_id
                            .max(file.rules.iter().map(|r| r.id + 1).max().unwrap_or(1))
                            .max(1);
                        rules.always = file.rules;
                    }
                    Err(e) => {
                        tracing::warn!(agent = %agent, error = %e, "the saved approval rules cannot be read: none of them is used");
                        rules.broken = Some(e.to_string());
                    }
                }
            }
        }
        f(rules)
    }

    /// The first rule that allows `tool` with `input`: this conversation's
    /// session rules, then the agent's "always" rules. Counts the use.
    pub fn check(
        &self,
        agent: &AgentId,
        conversation: &str,
        project: &Path,
        tool: &str,
        input: &Value,
    ) -> Option<Hit> {
        self.with(agent, |rules| {
            let session = rules
                .session
                .iter()
                .filter(|(c, _)| c == conversation)
                .map(|(_, r)| r);
            let found = session.chain(rules.always.iter()).find(|r| {
                ToolRule::parse(&r.pattern)
                    .is_ok_and(|rule| derive::matches(&rule, tool, input, project))
            })?;
            let hit = Hit {
                id: found.id,
                pattern: found.pattern.clone(),
            };
            *rules.uses.entry(hit.id).or_default() += 1;
            Some(hit)
        })
    }

    /// Saves `pattern` for `scope` (the same rule saved again keeps its
    /// number). "Always" rules are written to the file before this returns.
    pub fn save(
        &self,
        agent: &AgentId,
        conversation: &str,
        pattern: &str,
        scope: Scope,
    ) -> Result<u32, StoreError> {
        ToolRule::parse(pattern).map_err(|_| StoreError::Bad(pattern.to_string()))?;
        let file = self.file(agent);
        self.with(agent, |rules| {
            let existing = match scope {
                Scope::Always => rules.always.iter().find(|r| r.pattern == pattern),
                _ => rules
                    .session
                    .iter()
                    .find(|(c, r)| c == conversation && r.pattern == pattern)
                    .map(|(_, r)| r),
            };
            if let Some(r) = existing {
                return Ok(r.id);
            }
            let saved = Saved {
                id: rules.next_id,
                pattern: pattern.to_string(),
                saved_at_ms: remoteagent_proto::now_ms(),
            };
            match scope {
                Scope::Always => {
                    let path = file.ok_or(StoreError::NoDir)?;
                    if let Some(reason) = &rules.broken {
                        return Err(StoreError::Corrupt {
                            path,
                            reason: reason.clone(),
                        });
                    }
                    let mut always = rules.always.clone();
                    always.push(saved.clone());
                    write(
                        &path,
                        &File {
                            next_id: saved.id + 1,
                            rules: always.clone(),
                        },
                    )?;
                    rules.always = always;
                }
                Scope::Session | Scope::Once => {
                    rules
                        .session
                        .push((conversation.to_string(), saved.clone()));
                }
            }
            rules.next_id = saved.id + 1;
            Ok(saved.id)
        })
    }

    /// The agent's rules, session rules first.
    pub fn list(&self, agent: &AgentId) -> Vec<RuleInfo> {
        self.with(agent, |rules| {
            rules
                .all()
                .map(|(scope, r)| RuleInfo {
                    id: r.id,
                    pattern: r.pattern.clone(),
                    scope,
                    uses: rules.uses.get(&r.id).copied().unwrap_or(0),
                })
                .collect()
        })
    }

    /// Revokes rule `id`: its pattern, or `None` if there is no such rule.
    pub fn revoke(&self, agent: &AgentId, id: u32) -> Result<Option<RuleInfo>, StoreError> {
        let file = self.file(agent);
        self.with(agent, |rules| {
            if let Some(at) = rules.session.iter().position(|(_, r)| r.id == id) {
                let (_, r) = rules.session.remove(at);
                return Ok(Some(RuleInfo {
                    id,
                    pattern: r.pattern,
                    scope: Scope::Session,
                    uses: rules.uses.remove(&id).unwrap_or(0),
                }));
            }
            let Some(at) = rules.always.iter().position(|r| r.id == id) else {
                return Ok(None);
            };
            let mut always = rules.always.clone();
            let r = always.remove(at);
            if let Some(path) = file {
                write(
                    &path,
                    &File {
                        next_id: rules.next_id,
                        rules: always.clone(),
                    },
                )?;
            }
            rules.always = always;
            Ok(Some(RuleInfo {
                id,
                pattern: r.pattern,
                scope: Scope::Always,
                uses: rules.uses.remove(&id).unwrap_or(0),
            }))
        })
    }

    /// Session rules saved under a run's own key move to the conversation
    /// the runner reported, so the next run continuing it finds them.
    pub fn adopt(&self, agent: &AgentId, from: &str, to: &str) {
        self.with(agent, |rules| {
            for (c, _) in rules.session.iter_mut().filter(|(c, _)| c == from) {
                *c = to.to_string();
            }
        });
    }

    /// Automatic allows of `agent`'s rules since the daemon started.
    pub fn auto_allowed(&self, agent: &AgentId) -> u64 {
        self.with(agent, |rules| rules.uses.values().sum())
    }

    /// Automatic allows of every agent's rules since the daemon started
    /// (`remoteagentctl status`).
    pub fn auto_allowed_total(&self) -> u64 {
        let agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        agents.values().flat_map(|r| r.uses.values()).sum()
    }

    /// Forgets an agent's rules (unpair); a missing file is no error.
    pub fn forget(&self, agent: &AgentId) -> Result<(), StoreError> {
        self.agents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(agent);
        let Some(path) = self.file(agent) else {
            return Ok(());
        };
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io {
                path,
                action: "removing",
                source,
            }),
        }
    }
}

fn read(path: &Path) -> Result<File, StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(File::default()),
        Err(source) => {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                action: "reading",
                source,
            });
        }
    };
    let file: File = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if let Some(bad) = file
        .rules
        .iter()
        .find(|r| ToolRule::parse(&r.pattern).is_err())
    {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("'{}' is not a rule", bad.pattern),
        });
    }
    Ok(file)
}

fn write(path: &Path, file: &File) -> Result<(), StoreError> {
    let io = |path: &Path, action| {
        let path = path.to_path_buf();
        move |source| StoreError::Io {
            path,
            action,
            source,
        }
    };
    if let Some(dir) = path.parent() {
        crate::paths::ensure_private_dir(dir).map_err(|e| StoreError::Io {
            path: dir.to_path_buf(),
            action: "creating",
            source: std::io::Error::other(e.to_string()),
        })?;
    }
    let partial = path.with_extension("json.partial");
    let json = serde_json::to_vec_pretty(file).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .map_err(io(&partial, "creating"))?;
    out.write_all(&json)
        .and_then(|()| out.sync_all())
        .map_err(io(&partial, "writing"))?;
    std::fs::rename(&partial, path).map_err(io(path, "renaming into"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn agent() -> AgentId {
        AgentId::parse("a1").unwrap()
    }

    #[test]
    fn session_rules_belong_to_their_conversation() {
        let store = RuleStore::default();
        let p = Path::new("/p");
        let cmd = json!({"command": "cargo test -p x"});
        assert_eq!(store.check(&agent(), "c1", p, "Bash", &cmd), None);
        let id = store
            .save(&agent(), "run:1", "Bash(cargo test *)", Scope::Session)
            .unwrap();
        assert_eq!(
            store
                .save(&agent(), "run:1", "Bash(cargo test *)", Scope::Session)
                .unwrap(),
            id,
            "saved twice, one rule"
        );
        assert_eq!(
            store.check(&agent(), "run:1", p, "Bash", &cmd),
            Some(Hit {
                id,
                pattern: "Bash(cargo test *)".into()
            })
        );
        assert_eq!(store.check(&agent(), "c1", p, "Bash", &cmd), None);
        store.adopt(&agent(), "run:1", "c1");
        assert!(store.check(&agent(), "c1", p, "Bash", &cmd).is_some());
        let sneaky = json!({"command": "cargo test; rm -rf ~"});
        assert_eq!(store.check(&agent(), "c1", p, "Bash", &sneaky), None);
        assert_eq!(store.auto_allowed(&agent()), 2);
        // Without a config dir, "always" is refused in words.
        assert!(
            store
                .save(&agent(), "c1", "Bash(ls)", Scope::Always)
                .is_err()
        );
        assert_eq!(store.list(&agent()).len(), 1);
        let gone = store.revoke(&agent(), id).unwrap().unwrap();
        assert_eq!(gone.pattern, "Bash(cargo test *)");
        assert_eq!(store.check(&agent(), "c1", p, "Bash", &cmd), None);
        assert_eq!(store.revoke(&agent(), id).unwrap(), None);
    }

    #[test]
    fn always_rules_survive_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let rules_dir = dir.path().join("rules");
        let store = RuleStore::new(rules_dir.clone());
        let p = Path::new("/p");
        let edit = json!({"file_path": "/p/src/main.rs"});
        let s = store
            .save(&agent(), "c", "Bash(ls)", Scope::Session)
            .unwrap();
        let a = store
            .save(&agent(), "c", "Edit(src/**)", Scope::Always)
            .unwrap();
        assert_ne!(s, a);
        let path = rules_dir.join("a1.json");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A restart: a new store reads the file; session rules are gone.
        let again = RuleStore::new(rules_dir.clone());
        assert_eq!(
            again.check(&agent(), "other", p, "Edit", &edit),
            Some(Hit {
                id: a,
                pattern: "Edit(src/**)".into()
            })
        );
        let listed = again.list(&agent());
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].scope, Scope::Always);
        // Numbers are never reused.
        let next = again
            .save(&agent(), "c", "Bash(pwd)", Scope::Session)
            .unwrap();
        assert!(next > a);
        again.revoke(&agent(), a).unwrap().unwrap();
        let third = RuleStore::new(rules_dir.clone());
        assert_eq!(third.check(&agent(), "c", p, "Edit", &edit), None);
        assert!(!rules_dir.join("a1.json.partial").exists());
        // A broken file is used for nothing and not overwritten.
        std::fs::write(&path, "{not json").unwrap();
        let broken = RuleStore::new(rules_dir.clone());
        assert!(broken.list(&agent()).is_empty());
        let err = broken
            .save(&agent(), "c", "Bash(ls)", Scope::Always)
            .unwrap_err();
        assert!(err.to_string().contains("fix or remove it"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{not json");
        broken.forget(&agent()).unwrap();
        assert!(!path.exists());
    }
}
