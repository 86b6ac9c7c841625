//! Redis ACL users: one short-lived user per pairing attempt (it may only
//! SUBSCRIBE to `pair:{pairingId}`) and one per agent (its own channel and
//! keys only; its password is its JWT). With `REDIS_ACL=false` every call is
//! a no-op and daemons use the server's default user.
//!
//! On a Redis Cluster every node needs every user (Redis does not
//! replicate `ACL SETUSER`): each user is set and deleted on every primary
//! and replica (`nodes.rs`), and a node that failed is logged with its
//! address and repaired by the watch.
//!
//! A Redis without an ACL file forgets these users when it restarts, and
//! every paired daemon is locked out until they exist again.
//! [`spawn_user_watch`] notices within [`USER_CHECK_EVERY`] (one `ACL
//! GETUSER` of [`SENTINEL_USER`] per node) and re-creates them, on exactly
//! the nodes that lost them, from the token hashes the database keeps.
//!
//! Users created by an older cloud lack rules added since (the blob keys
//! of files from the phone): [`Acl::update_agent_rules`] brings them up to
//! date once per start, without touching their passwords or connections.

mod nodes;
mod rules;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::{Cmd, RedisResult, Value};
use remoteagent_proto::{AgentId, PairingId, names};
use remoteagent_rediskit::Conn;
use remoteagent_rediskit::nodes::NodeAddr;
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use crate::db::{self, Db};
use rules::RuleSets;

/// How often the cloud checks that Redis still knows every active agent's
/// user: one `ACL GETUSER` per node, so that daemons are let in again
/// within seconds of a Redis restart that lost their users.
pub const USER_CHECK_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Acl {
    enabled: bool,
    nodes: Arc<nodes::Nodes>,
    /// Set once every agent user's rules were found or made current.
    rules_current: Arc<AtomicBool>,
    /// Set when a node refused or missed a change (a cluster node down for
    /// a moment): the next check repairs every node, not only those that
    /// lost the sentinel.
    repair: Arc<AtomicBool>,
}

impl std::fmt::Debug for Acl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acl")
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// What a change must reach to count as done.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Some node: a user that exists on some nodes already lets its daemon
    /// in there, and the watch makes it on the others within seconds.
    Any,
    /// Every node: a deleted user must not live on anywhere.
    All,
}

/// An ACL error without its text: Redis quotes the offending rule, and a
/// rule may carry a password. Keeps the error's code and kind.
fn scrubbed(e: &redis::RedisError, what: &str, node: &str) -> redis::RedisError {
    let code = e.code().unwrap_or("no code").to_string();
    let detail = if e.code().is_some() {
        format!("server error code {code}")
    } else {
        // Not the server's words (a connection error): safe to keep.
        e.to_string()
    };
    let detail = if node == remoteagent_rediskit::nodes::STANDALONE {
        detail
    } else {
        format!("{detail} (node {node})")
    };
    redis::RedisError::from((e.kind(), "ACL command failed", format!("{what}: {detail}")))
}

impl Acl {
    /// `conn`: the cloud's shared connection (a cluster's reaches each
    /// node directly, see `nodes.rs`).
    pub fn new(enabled: bool, conn: Conn) -> Self {
        Acl {
            enabled,
            nodes: Arc::new(nodes::Nodes::new(conn)),
            rules_current: Arc::new(AtomicBool::new(false)),
            repair: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Runs an ACL change on every node. Every node that failed is logged
    /// with its address and marked for the watch's repair; the result is an
    /// error when `need` was not met (the first failure, node named).
    async fn change(&self, cmd: &Cmd, what: &str, need: Need) -> RedisResult<()> {
        let answers = self
            .nodes
            .on_every_node(cmd)
            .await
            .map_err(|e| scrubbed(&e, what, remoteagent_rediskit::nodes::STANDALONE))?;
        let mut first_error = None;
        let mut done = 0;
        let several = answers.len() > 1;
        for (node, answer) in answers {
            match answer {
                Ok(_) => done += 1,
                Err(e) => {
                    let e = scrubbed(&e, what, &node);
                    if several {
                        tracing::warn!(node = %node, error = %e, "a Redis node missed an ACL change; the user watch repairs it");
                    }
                    self.repair.store(true, Ordering::SeqCst);
                    first_error.get_or_insert(e);
                }
            }
        }
        match (first_error, need) {
            (None, _) => Ok(()),
            (Some(_), Need::Any) if done > 0 => Ok(()),
            (Some(e), _) => Err(e),
        }
    }

    /// `ACL SETUSER name reset <rules> <password rule>`: `reset` first so
    /// that a user of the same name never keeps older passwords or rights.
    fn set_user_cmd(name: &str, rules: Vec<String>, password_rule: String) -> Cmd {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER").arg(name).arg("reset");
        for rule in rules {
            cmd.arg(rule);
        }
        cmd.arg(password_rule);
        cmd
    }

    fn agent_user_cmd(agent: &AgentId, token_hash: &str) -> Cmd {
        Self::set_user_cmd(
            &names::agent_redis_user(agent),
            names::agent_acl_rules(agent),
            format!("#{token_hash}"),
        )
    }

    /// Creates the pairing attempt's user; returns `(username, password)`, or
    /// empty strings when ACLs are off.
    pub async fn create_pairing_user(
        &self,
        pairing: &PairingId,
    ) -> redis::RedisResult<(String, SecretString)> {
        if !self.enabled {
            return Ok((String::new(), SecretString::from(String::new())));
        }
        let name = names::pairing_redis_user(pairing);
        let password = random_secret();
        let cmd = Self::set_user_cmd(
            &name,
            names::pairing_acl_rules(pairing),
            format!(">{}", password.expose_secret()),
        );
        // Every node: the password exists nowhere else, so the watch could
        // not make this user on a node that missed it.
        self.change(&cmd, "ACL SETUSER", Need::All).await?;
        Ok((name, password))
    }

    /// Creates (or replaces) the agent's user, whose password is its JWT.
    /// The rule is `#{sha256 hex}`, which Redis treats exactly like
    /// `>{jwt}`: the cloud keeps only that hash, so it never sends the token
    /// itself to Redis (no trace in MONITOR or the slow log) and can
    /// re-create the user after Redis lost its ACL (see
    /// [`Acl::restore_agent_users`]). Returns the username, empty when ACLs
    /// are off.
    pub async fn create_agent_user(
        &self,
        agent: &AgentId,
        token_hash: &str,
    ) -> redis::RedisResult<String> {
        if !self.enabled {
            return Ok(String::new());
        }
        let cmd = Self::agent_user_cmd(agent, token_hash);
        self.change(&cmd, "ACL SETUSER", Need::Any).await?;
        Ok(names::agent_redis_user(agent))
    }

    /// Re-creates the users of `agents` (id, token hash) that a node does
    /// not know, e.g. after a restart of a Redis without an ACL file, and on
    /// a cluster deletes on each node the users of agents no longer active
    /// (a deletion a node missed while it was unreachable, whichever replica
    /// saw it fail). Users that exist are left alone, so their connections
    /// are not disturbed. Returns how many were re-created.
    pub async fn restore_agent_users(
        &self,
        db: &Db,
        agents: &[(AgentId, String)],
    ) -> Result<usize, WatchError> {
        if !self.enabled {
            return Ok(0);
        }
        let all = self.nodes.list().await?;
        let sweep = self.nodes.is_cluster();
        let mut restored = 0;
        let mut first_error = None;
        for node in &all {
            match self.repair_node(db, node, agents, sweep).await {
                Ok(n) => restored += n,
                Err(e) => {
                    tracing::warn!(node = %node, error = %e, "checking a Redis node's agent users");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if restored == 0 => Err(e),
            _ => Ok(restored),
        }
    }

    /// The user names `node` knows.
    async fn users_on(&self, node: &str) -> RedisResult<HashSet<String>> {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("USERS");
        let names: Vec<String> = redis::from_redis_value(self.nodes.on_node(node, &cmd).await?)?;
        Ok(names.into_iter().collect())
    }

    /// Makes `node` hold the users of `agents` it lacks; with `sweep`,
    /// also deletes there the users of agents that are no longer active
    /// (each checked in the database first: an agent paired since `agents`
    /// was read is kept). Returns how many users were created.
    async fn repair_node(
        &self,
        db: &Db,
        node: &str,
        agents: &[(AgentId, String)],
        sweep: bool,
    ) -> Result<usize, WatchError> {
        let existing = self.users_on(node).await?;
        let mut restored = Vec::new();
        for (agent, hash) in agents {
            if existing.contains(&names::agent_redis_user(agent)) {
                continue;
            }
            let cmd = Self::agent_user_cmd(agent, hash);
            self.nodes
                .on_node(node, &cmd)
                .await
                .map_err(|e| scrubbed(&e, "ACL SETUSER", node))?;
            restored.push(agent.clone());
        }
        // An unpairing that revoked an agent after `agents` was read
        // deleted its user before it was created again here: delete it
        // once more (unpairing revokes in the database before it deletes
        // the user).
        let mut stale: Vec<AgentId> = Vec::new();
        for id in &restored {
            if !is_active(db, id).await? {
                tracing::info!(agent = %id, "agent unpaired while its Redis user was restored; deleting it");
                stale.push(id.clone());
            }
        }
        if sweep {
            let active: HashSet<String> = agents
                .iter()
                .map(|(id, _)| names::agent_redis_user(id))
                .collect();
            for name in &existing {
                let Some(id) = name.strip_prefix("ra-agent-") else {
                    continue;
                };
                let Ok(id) = AgentId::parse(id) else { continue };
                if active.contains(name) || is_active(db, &id).await? {
                    continue;
                }
                tracing::warn!(agent = %id, node = %node, "deleting the Redis user of an unpaired agent that a node still had");
                stale.push(id);
            }
        }
        for id in &stale {
            let mut del = redis::cmd("ACL");
            del.arg("DELUSER").arg(names::agent_redis_user(id));
            self.nodes.on_node(node, &del).await?;
        }
        Ok(restored.len() - restored.iter().filter(|id| stale.contains(id)).count())
    }

    /// Brings the rules of the existing users of `agents` up to what
    /// [`names::agent_acl_rules`] says now (a user paired by an older cloud
    /// lacks the newer rules), on every node. `ACL SETUSER` with the full
    /// rule set and no `reset` keeps the user's password hash, and Redis
    /// applies one SETUSER as a whole, so a subscription the rules still
    /// allow stays connected (`cloud/tests/it/acl_upgrade.rs` checks both on
    /// the real server). Users whose rules match are not touched; missing
    /// users are [`Acl::restore_agent_users`]'s. Returns how many users
    /// were updated (counted once per node).
    pub async fn update_agent_rules(&self, agents: &[AgentId]) -> RedisResult<usize> {
        if !self.enabled {
            return Ok(0);
        }
        let mut updated = 0;
        for node in self.nodes.list().await? {
            for agent in agents {
                let name = names::agent_redis_user(agent);
                let mut get = redis::cmd("ACL");
                get.arg("GETUSER").arg(&name);
                let described = self.nodes.on_node(&node, &get).await?;
                if matches!(described, Value::Nil) {
                    continue;
                }
                let wanted = names::agent_acl_rules(agent);
                if RuleSets::of_user(&described) == RuleSets::of_rules(&wanted) {
                    continue;
                }
                let mut set = redis::cmd("ACL");
                set.arg("SETUSER").arg(&name);
                for rule in &wanted {
                    set.arg(rule);
                }
                self.nodes
                    .on_node(&node, &set)
                    .await
                    .map_err(|e| scrubbed(&e, "ACL SETUSER", &node))?;
                tracing::info!(agent = %agent, node = %node, "brought an agent's Redis user's rules up to date");
                updated += 1;
            }
        }
        Ok(updated)
    }

    /// [`Acl::update_agent_rules`] until it succeeded once in this process.
    pub async fn update_agent_rules_once(&self, agents: &[AgentId]) -> RedisResult<usize> {
        if self.rules_current.load(Ordering::SeqCst) {
            return Ok(0);
        }
        let updated = self.update_agent_rules(agents).await?;
        self.rules_current.store(true, Ordering::SeqCst);
        Ok(updated)
    }

    /// Deletes a user on every node; Redis closes its open connections. An
    /// error when any node still may have it (the watch retries there).
    async fn delete_user(&self, name: &str) -> redis::RedisResult<()> {
        if !self.enabled {
            return Ok(());
        }
        let mut cmd = redis::cmd("ACL");
        cmd.arg("DELUSER").arg(name);
        self.change(&cmd, "ACL DELUSER", Need::All).await
    }

    pub async fn delete_pairing_user(&self, pairing: &PairingId) -> redis::RedisResult<()> {
        self.delete_user(&names::pairing_redis_user(pairing)).await
    }

    pub async fn delete_agent_user(&self, agent: &AgentId) -> redis::RedisResult<()> {
        self.delete_user(&names::agent_redis_user(agent)).await
    }
}

async fn is_active(db: &Db, id: &AgentId) -> Result<bool, sqlx::Error> {
    Ok(db::agents::get(db, id)
        .await?
        .is_some_and(|a| a.is_active()))
}

/// 32 random bytes as hex: a password nobody types.
pub fn random_secret() -> SecretString {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    SecretString::from(hex::encode(bytes))
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// A user nobody can log in as (`off`, no password, no rights), created
/// on a node once every agent user exists there. A node forgets it
/// together with the agents' users, so its absence is the cheap sign that
/// they must be restored there: a check is one `ACL GETUSER` per node and
/// no database query.
pub const SENTINEL_USER: &str = "ra-cloud-acl-sentinel";

/// One check: on each node that lost its users (the sentinel is gone) —
/// or on every node, after a change some node missed — re-creates those of
/// the active agents and then the sentinel. Returns how many agent users
/// were re-created (counted once per node). A node that cannot be checked
/// is logged with its address and checked again next time; the result is
/// an error when no node could be.
pub async fn restore_lost_users(acl: &Acl, db: &Db) -> Result<usize, WatchError> {
    if !acl.enabled() {
        return Ok(0);
    }
    let mut get = redis::cmd("ACL");
    get.arg("GETUSER").arg(SENTINEL_USER);
    let answers = acl.nodes.on_every_node(&get).await?;
    let repair_all = acl.repair.swap(false, Ordering::SeqCst);
    let mut lacking: Vec<NodeAddr> = Vec::new();
    let mut failed = Vec::new();
    let checked = answers.len();
    for (node, answer) in answers {
        match answer {
            Ok(Value::Nil) => lacking.push(node),
            Ok(_) if repair_all => lacking.push(node),
            Ok(_) => {}
            Err(e) => failed.push((node, e)),
        }
    }
    let several = checked > 1;
    for (node, e) in &failed {
        if several {
            tracing::warn!(node = %node, error = %e, "checking a Redis node's ACL users; trying again at the next check");
        }
    }
    if !failed.is_empty() {
        // Whatever the failed nodes missed meanwhile is repaired once they
        // answer again.
        acl.repair.store(true, Ordering::SeqCst);
    }
    if failed.len() == checked
        && let Some((_, e)) = failed.into_iter().next()
    {
        return Err(e.into());
    }
    if lacking.is_empty() {
        return Ok(0);
    }
    let agents: Vec<(AgentId, String)> = db::agents::active_token_hashes(db)
        .await?
        .into_iter()
        .map(|a| (a.id, a.token_hash))
        .collect();
    let mut restored = 0;
    let mut first_error = None;
    for node in &lacking {
        let repaired = async {
            let n = acl.repair_node(db, node, &agents, repair_all).await?;
            let mut sentinel = redis::cmd("ACL");
            sentinel
                .arg("SETUSER")
                .arg(SENTINEL_USER)
                .arg("reset")
                .arg("off");
            acl.nodes.on_node(node, &sentinel).await?;
            Ok::<usize, WatchError>(n)
        };
        match repaired.await {
            Ok(n) => restored += n,
            Err(e) => {
                if several {
                    tracing::warn!(node = %node, error = %e, "re-creating a Redis node's ACL users; trying again at the next check");
                }
                acl.repair.store(true, Ordering::SeqCst);
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) if !several => Err(e),
        _ => Ok(restored),
    }
}

/// Checks every [`USER_CHECK_EVERY`] until `shutdown`.
pub fn spawn_user_watch(
    acl: Acl,
    db: Db,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            match restore_lost_users(&acl, &db).await {
                Ok(n) => {
                    if n > 0 {
                        tracing::warn!(
                            restored = n,
                            "re-created agent Redis users that Redis had lost"
                        );
                    }
                    if failing {
                        tracing::info!("checking agent Redis users works again");
                    }
                    failing = false;
                }
                // Once per outage at warning level: the check runs every
                // few seconds.
                Err(e) if !failing => {
                    tracing::warn!(error = %e, "checking agent Redis users");
                    failing = true;
                }
                Err(e) => tracing::debug!(error = %e, "checking agent Redis users"),
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(USER_CHECK_EVERY) => {}
            }
        }
    })
}
