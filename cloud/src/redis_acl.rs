//! Redis ACL users: one short-lived user per pairing attempt (it may only
//! SUBSCRIBE to `pair:{pairingId}`) and one per agent (its own channel and
//! keys only; its password is its JWT). With `REDIS_ACL=false` every call is
//! a no-op and daemons use the server's default user.
//!
//! A Redis without an ACL file forgets these users when it restarts, and
//! every paired daemon is locked out until they exist again.
//! [`spawn_user_watch`] notices within [`USER_CHECK_EVERY`] (one `ACL USERS`
//! per check, see [`SENTINEL_USER`]) and re-creates them from the token
//! hashes the database keeps.
//!
//! Users created by an older cloud lack rules added since (the blob keys
//! of files from the phone): [`Acl::update_agent_rules`] brings them up to
//! date once per start, without touching their passwords or connections.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use remoteagent_rediskit::Conn;
use redis::{Cmd, FromRedisValue, RedisResult};
use remoteagent_proto::{AgentId, PairingId, names};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use crate::db::{self, Db};

/// How often the cloud checks that Redis still knows every active agent's
/// user: a single `ACL USERS` round trip, so that daemons are let in again
/// within seconds of a Redis restart that lost their users.
pub const USER_CHECK_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Acl {
    enabled: bool,
    conn: Conn,
    /// Set once every agent user's rules were found or made current.
    rules_current: Arc<AtomicBool>,
}

impl std::fmt::Debug for Acl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acl")
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl Acl {
    pub fn new(enabled: bool, conn: Conn) -> Self {
        Acl {
            enabled,
            conn,
            rules_current: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Runs `cmd` on the shared connection, and once more if the first try
    /// met a dead connection: after a Redis restart the manager reconnects
    /// only once a call has failed on the old socket, and that call should
    /// not be the one that fails. Every command sent here is idempotent.
    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        let mut conn = self.conn.clone();
        match cmd.query_async(&mut conn).await {
            Err(e) if e.is_io_error() || e.is_connection_dropped() => {
                tracing::debug!(error = %e, "Redis connection lost; trying again on a new one");
                cmd.query_async(&mut conn).await
            }
            other => other,
        }
    }

    /// The names of the users Redis knows.
    async fn user_names(&self) -> RedisResult<HashSet<String>> {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("USERS");
        Ok(self.query::<Vec<String>>(&cmd).await?.into_iter().collect())
    }

    /// `ACL SETUSER name reset <rules> <password rule>`: `reset` first so
    /// that a user of the same name never keeps older passwords or rights.
    async fn set_user(
        &self,
        name: &str,
        rules: Vec<String>,
        password_rule: String,
    ) -> redis::RedisResult<()> {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER").arg(name).arg("reset");
        for rule in rules {
            cmd.arg(rule);
        }
        cmd.arg(password_rule);
        self.query::<()>(&cmd).await.map_err(|e| {
            // Redis quotes the offending rule in its error text, and a rule
            // may carry a password: keep only the error's code and kind.
            let code = e.code().unwrap_or("no code").to_string();
            redis::RedisError::from((
                e.kind(),
                "ACL SETUSER failed",
                format!("server error code {code}"),
            ))
        })
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
        self.set_user(
            &name,
            names::pairing_acl_rules(pairing),
            format!(">{}", password.expose_secret()),
        )
        .await?;
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
        let name = names::agent_redis_user(agent);
        self.set_user(
            &name,
            names::agent_acl_rules(agent),
            format!("#{token_hash}"),
        )
        .await?;
        Ok(name)
    }

    /// Re-creates the users of `agents` (id, token hash) that Redis does not
    /// know, e.g. after a restart of a Redis without an ACL file. Users that
    /// exist are left alone, so their connections are not disturbed.
    /// Returns how many were re-created.
    pub async fn restore_agent_users(
        &self,
        agents: &[(AgentId, String)],
    ) -> redis::RedisResult<usize> {
        if !self.enabled || agents.is_empty() {
            return Ok(0);
        }
        let existing = self.user_names().await?;
        Ok(self.create_missing(agents, &existing).await?.len())
    }

    /// Creates the users of `agents` missing from `existing`; returns the
    /// agents whose user was created.
    async fn create_missing(
        &self,
        agents: &[(AgentId, String)],
        existing: &HashSet<String>,
    ) -> RedisResult<Vec<AgentId>> {
        let mut restored = Vec::new();
        for (agent, hash) in agents {
            if existing.contains(&names::agent_redis_user(agent)) {
                continue;
            }
            self.create_agent_user(agent, hash).await?;
            restored.push(agent.clone());
        }
        Ok(restored)
    }

    /// Brings the rules of the existing users of `agents` up to what
    /// [`names::agent_acl_rules`] says now (a user paired by an older cloud
    /// lacks the newer rules). `ACL SETUSER` with the full rule set and no
    /// `reset` keeps the user's password hash, and Redis applies one
    /// SETUSER as a whole, so a subscription the rules still allow stays
    /// connected (`cloud/tests/it/acl_upgrade.rs` checks both on the real
    /// server). Users whose rules match are not touched; missing users are
    /// [`Acl::restore_agent_users`]'s. Returns how many were updated.
    pub async fn update_agent_rules(&self, agents: &[AgentId]) -> RedisResult<usize> {
        if !self.enabled {
            return Ok(0);
        }
        let mut updated = 0;
        for agent in agents {
            let name = names::agent_redis_user(agent);
            let mut get = redis::cmd("ACL");
            get.arg("GETUSER").arg(&name);
            let described: redis::Value = self.query(&get).await?;
            if matches!(described, redis::Value::Nil) {
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
            self.query::<()>(&set).await.map_err(|e| {
                let code = e.code().unwrap_or("no code").to_string();
                redis::RedisError::from((
                    e.kind(),
                    "ACL SETUSER failed",
                    format!("server error code {code}"),
                ))
            })?;
            tracing::info!(agent = %agent, "brought an agent's Redis user's rules up to date");
            updated += 1;
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

    /// Deletes a user; Redis closes its open connections.
    async fn delete_user(&self, name: &str) -> redis::RedisResult<()> {
        if !self.enabled {
            return Ok(());
        }
        let mut cmd = redis::cmd("ACL");
        cmd.arg("DELUSER").arg(name);
        self.query::<i64>(&cmd).await.map(|_| ())
    }

    pub async fn delete_pairing_user(&self, pairing: &PairingId) -> redis::RedisResult<()> {
        self.delete_user(&names::pairing_redis_user(pairing)).await
    }

    pub async fn delete_agent_user(&self, agent: &AgentId) -> redis::RedisResult<()> {
        self.delete_user(&names::agent_redis_user(agent)).await
    }
}

/// A user's rights as sets of rules, in a form `ACL GETUSER` (Redis 6.2 or
/// 7) and a rule list can both be read into: key patterns, channels,
/// command rules, and whether the user is on.
#[derive(Debug, Default, PartialEq, Eq)]
struct RuleSets {
    on: bool,
    keys: HashSet<String>,
    channels: HashSet<String>,
    commands: HashSet<String>,
}

impl RuleSets {
    fn of_rules(rules: &[String]) -> RuleSets {
        let mut sets = RuleSets::default();
        for rule in rules {
            if rule == "on" {
                sets.on = true;
            } else if let Some(key) = rule.strip_prefix('~') {
                sets.keys.insert(key.to_string());
            } else if let Some(channel) = rule.strip_prefix('&') {
                sets.channels.insert(channel.to_string());
            } else if rule.starts_with('+') || rule.starts_with('-') {
                sets.commands.insert(rule.clone());
            }
        }
        sets
    }

    /// From `ACL GETUSER`'s answer: field names and values alternating
    /// (RESP2) or a map (RESP3); values are strings of space-separated
    /// rules (7.x) or arrays (6.2, without the `~`/`&` prefixes).
    fn of_user(described: &redis::Value) -> RuleSets {
        let pairs: Vec<(String, &redis::Value)> = match described {
            redis::Value::Map(map) => map
                .iter()
                .map(|(k, v)| (value_tokens(k).join(" "), v))
                .collect(),
            redis::Value::Array(items) => items
                .chunks(2)
                .filter_map(|kv| match kv {
                    [k, v] => Some((value_tokens(k).join(" "), v)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut sets = RuleSets::default();
        for (field, value) in pairs {
            let tokens = value_tokens(value);
            match field.as_str() {
                "flags" => sets.on = tokens.iter().any(|t| t == "on"),
                "keys" => {
                    sets.keys = tokens
                        .into_iter()
                        .map(|t| t.trim_start_matches('~').to_string())
                        .collect()
                }
                "channels" => {
                    sets.channels = tokens
                        .into_iter()
                        .map(|t| t.trim_start_matches('&').to_string())
                        .collect()
                }
                "commands" => sets.commands = tokens.into_iter().collect(),
                _ => {}
            }
        }
        sets
    }
}

/// The words of a reply value: a string split at spaces, an array's
/// members' words.
fn value_tokens(value: &redis::Value) -> Vec<String> {
    match value {
        redis::Value::BulkString(bytes) => String::from_utf8_lossy(bytes)
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        redis::Value::SimpleString(s) | redis::Value::VerbatimString { text: s, .. } => {
            s.split_whitespace().map(str::to_string).collect()
        }
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.iter().flat_map(value_tokens).collect()
        }
        _ => Vec::new(),
    }
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
/// once every agent user exists. Redis forgets it together with the
/// agents' users, so its absence is the cheap sign that they must be
/// restored: a check is one `ACL USERS` and no database query.
pub const SENTINEL_USER: &str = "ra-cloud-acl-sentinel";

/// One check: when Redis has lost its users (the sentinel is gone),
/// re-creates those of the active agents and then the sentinel. Returns how
/// many agent users were re-created.
pub async fn restore_lost_users(acl: &Acl, db: &Db) -> Result<usize, WatchError> {
    if !acl.enabled() {
        return Ok(0);
    }
    let existing = acl.user_names().await?;
    if existing.contains(SENTINEL_USER) {
        return Ok(0);
    }
    let agents: Vec<(AgentId, String)> = db::agents::active_token_hashes(db)
        .await?
        .into_iter()
        .map(|a| (a.id, a.token_hash))
        .collect();
    let restored = acl.create_missing(&agents, &existing).await?;
    // An unpairing that revoked an agent after the read above deleted its
    // user before it was created again here: delete it once more
    // (unpairing revokes in the database before it deletes the user).
    for id in &restored {
        let still_active = db::agents::get(db, id)
            .await?
            .is_some_and(|a| a.is_active());
        if !still_active {
            tracing::info!(agent = %id, "agent unpaired while its Redis user was restored; deleting it");
            acl.delete_agent_user(id).await?;
        }
    }
    let mut cmd = redis::cmd("ACL");
    cmd.arg("SETUSER")
        .arg(SENTINEL_USER)
        .arg("reset")
        .arg("off");
    acl.query::<()>(&cmd).await?;
    Ok(restored.len())
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
