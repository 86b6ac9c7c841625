//! `pairing_codes` and `pair_attempts`.

use remoteagent_proto::{AgentId, PairingId};

use super::{Db, now, parse_id};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PairingCode {
    pub code: String,
    #[sqlx(try_from = "String")]
    pub pairing_id: PairingId,
    pub project_name: String,
    pub hostname: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub used_by: Option<i64>,
}

const COLUMNS: &str =
    "code, pairing_id, project_name, hostname, created_at, expires_at, used_at, used_by";

/// Inserts a code; false if the code already exists (the caller draws again).
pub async fn insert(db: &Db, code: &PairingCode) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO pairing_codes (code, pairing_id, project_name, hostname, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(code.code.clone())
    .bind(code.pairing_id.as_str().to_string())
    .bind(code.project_name.clone())
    .bind(code.hostname.clone())
    .bind(code.created_at)
    .bind(code.expires_at)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn get(db: &Db, code: &str) -> Result<Option<PairingCode>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM pairing_codes WHERE code = $1");
    sqlx::query_as::<_, PairingCode>(sqlx::AssertSqlSafe(sql))
        .bind(code.to_string())
        .fetch_optional(&db.pool)
        .await
}

/// Consumes the code if it is unused and unexpired. Only one caller can win:
/// the condition and the write are one statement.
pub async fn consume(db: &Db, code: &str, user: i64) -> Result<bool, sqlx::Error> {
    let at = now();
    let done = sqlx::query(
        "UPDATE pairing_codes SET used_at = $1, used_by = $2 \
         WHERE code = $3 AND used_at IS NULL AND expires_at > $4",
    )
    .bind(at)
    .bind(user)
    .bind(code.to_string())
    .bind(at)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn set_agent(db: &Db, code: &str, agent_id: &AgentId) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE pairing_codes SET agent_id = $1 WHERE code = $2")
        .bind(agent_id.as_str().to_string())
        .bind(code.to_string())
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Pairing ids of codes that expired unused between `since` and now, whose
/// short-lived Redis users should be gone.
pub async fn expired_unused_since(db: &Db, since: i64) -> Result<Vec<PairingId>, sqlx::Error> {
    sqlx::query_scalar::<_, String>(
        "SELECT pairing_id FROM pairing_codes WHERE used_at IS NULL AND expires_at <= $1 AND expires_at > $2",
    )
    .bind(now())
    .bind(since)
    .fetch_all(&db.pool)
    .await?
    .into_iter()
    .map(parse_id)
    .collect()
}

pub async fn record_wrong_attempt(db: &Db, user: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO pair_attempts (id, telegram_id, attempted_at) VALUES ($1, $2, $3)")
        .bind(uuid::Uuid::new_v4().simple().to_string())
        .bind(user)
        .bind(now())
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Wrong attempts of `user` since `since`, and the oldest of them.
pub async fn wrong_attempts_since(
    db: &Db,
    user: i64,
    since: i64,
) -> Result<(i64, Option<i64>), sqlx::Error> {
    sqlx::query_as(
        "SELECT COUNT(*) AS n, MIN(attempted_at) AS oldest FROM pair_attempts WHERE telegram_id = $1 AND attempted_at > $2",
    )
    .bind(user)
    .bind(since)
    .fetch_one(&db.pool)
    .await
}

/// Drops attempts and codes older than `before` (housekeeping).
pub async fn prune(db: &Db, before: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM pair_attempts WHERE attempted_at < $1")
        .bind(before)
        .execute(&db.pool)
        .await?;
    Ok(())
}
