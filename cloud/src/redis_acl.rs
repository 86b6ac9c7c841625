//! Redis ACL users: one short-lived user per pairing attempt (it may only
//! SUBSCRIBE to `pair:{pairingId}`) and one per agent (its own channel and
//! keys only; its password is its JWT). With `REDIS_ACL=false` every call is
//! a no-op and daemons use the server's default user.

use redis::aio::ConnectionManager;
use remoteagent_proto::{AgentId, PairingId, names};

#[derive(Clone)]
pub struct Acl {
    enabled: bool,
    conn: ConnectionManager,
}

impl std::fmt::Debug for Acl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acl")
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl Acl {
    pub fn new(enabled: bool, conn: ConnectionManager) -> Self {
        Acl { enabled, conn }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
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
        let mut conn = self.conn.clone();
        cmd.query_async::<()>(&mut conn).await.map_err(|e| {
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
    ) -> redis::RedisResult<(String, String)> {
        if !self.enabled {
            return Ok((String::new(), String::new()));
        }
        let name = names::pairing_redis_user(pairing);
        let password = random_secret();
        self.set_user(
            &name,
            names::pairing_acl_rules(pairing),
            format!(">{password}"),
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
        let mut conn = self.conn.clone();
        let existing: std::collections::HashSet<String> = redis::cmd("ACL")
            .arg("USERS")
            .query_async::<Vec<String>>(&mut conn)
            .await?
            .into_iter()
            .collect();
        let mut restored = 0;
        for (agent, hash) in agents {
            if existing.contains(&names::agent_redis_user(agent)) {
                continue;
            }
            self.create_agent_user(agent, hash).await?;
            restored += 1;
        }
        Ok(restored)
    }

    /// Deletes a user; Redis closes its open connections.
    async fn delete_user(&self, name: &str) -> redis::RedisResult<()> {
        if !self.enabled {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        redis::cmd("ACL")
            .arg("DELUSER")
            .arg(name)
            .query_async::<i64>(&mut conn)
            .await
            .map(|_| ())
    }

    pub async fn delete_pairing_user(&self, pairing: &PairingId) -> redis::RedisResult<()> {
        self.delete_user(&names::pairing_redis_user(pairing)).await
    }

    pub async fn delete_agent_user(&self, agent: &AgentId) -> redis::RedisResult<()> {
        self.delete_user(&names::agent_redis_user(agent)).await
    }
}

/// 32 random bytes as hex: a password nobody types.
pub fn random_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}
