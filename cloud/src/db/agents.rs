//! `agents`: one row per paired project. A revoked agent keeps its row (for
//! its sessions' history) with its token hash cleared.

use remoteagent_proto::AgentId;

use super::{Db, now};

pub const ACTIVE: &str = "active";
pub const REVOKED: &str = "revoked";

#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Agent {
    #[sqlx(try_from = "String")]
    pub id: AgentId,
    pub owner: i64,
    pub name: String,
    pub hostname: String,
    /// SHA-256 hex of the current JWT; `None` once revoked.
    pub token_hash: Option<String>,
    pub status: String,
    pub created_at: i64,
    pub last_seen_at: Option<i64>,
}

impl Agent {
    pub fn is_active(&self) -> bool {
        self.status == ACTIVE
    }
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("name", &self.name)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "id, owner, name, hostname, token_hash, status, created_at, last_seen_at";

pub async fn get(db: &Db, id: &AgentId) -> Result<Option<Agent>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM agents WHERE id = $1");
    sqlx::query_as::<_, Agent>(sqlx::AssertSqlSafe(sql))
        .bind(id.as_str().to_string())
        .fetch_optional(&db.pool)
        .await
}

/// The owner's active agents, by name.
pub async fn list_active(db: &Db, owner: i64) -> Result<Vec<Agent>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM agents WHERE owner = $1 AND status = 'active' ORDER BY name"
    );
    sqlx::query_as::<_, Agent>(sqlx::AssertSqlSafe(sql))
        .bind(owner)
        .fetch_all(&db.pool)
        .await
}

pub async fn count_active(db: &Db, owner: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) AS n FROM agents WHERE owner = $1 AND status = 'active'")
        .bind(owner)
        .fetch_one(&db.pool)
        .await
}

pub async fn find_active_by_name(
    db: &Db,
    owner: i64,
    name: &str,
) -> Result<Option<Agent>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM agents WHERE owner = $1 AND status = 'active' AND LOWER(name) = LOWER($2)"
    );
    sqlx::query_as::<_, Agent>(sqlx::AssertSqlSafe(sql))
        .bind(owner)
        .bind(name.to_string())
        .fetch_optional(&db.pool)
        .await
}

/// Inserts an agent, naming it `wanted`, or `wanted-2`, `wanted-3` … when the
/// owner already has an active agent of that name. Returns the name given.
pub async fn insert(
    db: &Db,
    id: &AgentId,
    owner: i64,
    wanted: &str,
    hostname: &str,
    token_hash: &str,
) -> Result<String, sqlx::Error> {
    for n in 1..=1000u32 {
        let name = if n == 1 {
            wanted.to_string()
        } else {
            format!("{wanted}-{n}")
        };
        if find_active_by_name(db, owner, &name).await?.is_some() {
            continue;
        }
        let inserted = sqlx::query(
            "INSERT INTO agents (id, owner, name, hostname, token_hash, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'active', $6) ON CONFLICT DO NOTHING",
        )
        .bind(id.as_str().to_string())
        .bind(owner)
        .bind(name.clone())
        .bind(hostname.to_string())
        .bind(token_hash.to_string())
        .bind(now())
        .execute(&db.pool)
        .await?;
        // Zero rows: a concurrent pairing took this name between the check
        // and the insert (the unique index refused it); try the next one.
        if inserted.rows_affected() == 1 {
            return Ok(name);
        }
    }
    Err(sqlx::Error::Protocol("no free agent name".into()))
}

pub async fn set_token_hash(db: &Db, id: &AgentId, token_hash: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE agents SET token_hash = $1 WHERE id = $2 AND status = 'active'")
        .bind(token_hash.to_string())
        .bind(id.as_str().to_string())
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks the agent revoked and forgets its token hash; true if it was active.
pub async fn revoke(db: &Db, id: &AgentId) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE agents SET status = 'revoked', token_hash = NULL, revoked_at = $1 WHERE id = $2 AND status = 'active'",
    )
    .bind(now())
    .bind(id.as_str().to_string())
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn touch(db: &Db, id: &AgentId) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE agents SET last_seen_at = $1 WHERE id = $2")
        .bind(now())
        .bind(id.as_str().to_string())
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// An active agent's id and the hash of its token.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenHash {
    #[sqlx(try_from = "String")]
    pub id: AgentId,
    pub token_hash: String,
}

/// Every active agent's id and token hash (to restore Redis users).
pub async fn active_token_hashes(db: &Db) -> Result<Vec<TokenHash>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, token_hash FROM agents WHERE status = 'active' AND token_hash IS NOT NULL",
    )
    .fetch_all(&db.pool)
    .await
}
