//! `users`: one row per Telegram user who paired at least once.

use remoteagent_proto::AgentId;

use super::{Db, Flag, NullableText, now};

/// A user's plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The first `TRIAL_DAYS` days: no agent limit.
    Trial,
    /// After the trial: `FREE_PLAN_AGENTS` agents.
    Free,
    /// Paid: no agent limit.
    Pro,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Trial => "trial",
            Plan::Free => "free",
            Plan::Pro => "pro",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "pro" => Plan::Pro,
            "free" => Plan::Free,
            _ => Plan::Trial,
        }
    }
}

impl From<String> for Plan {
    fn from(s: String) -> Self {
        Plan::parse(&s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    pub telegram_id: i64,
    #[sqlx(try_from = "String")]
    pub plan: Plan,
    pub subscription_status: String,
    pub trial_ends_at: i64,
    pub trial_reminder_sent_at: Option<i64>,
    #[sqlx(try_from = "NullableText")]
    pub current_agent: Option<AgentId>,
    #[sqlx(try_from = "Flag")]
    pub next_new: bool,
    pub created_at: i64,
}

const COLUMNS: &str = "telegram_id, plan, subscription_status, trial_ends_at, trial_reminder_sent_at, current_agent, next_new, created_at";

pub async fn get(db: &Db, telegram_id: i64) -> Result<Option<User>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE telegram_id = $1");
    sqlx::query_as::<_, User>(sqlx::AssertSqlSafe(sql))
        .bind(telegram_id)
        .fetch_optional(&db.pool)
        .await
}

/// Creates the user on first contact (a trial of `trial_days`), and returns
/// the row either way.
pub async fn get_or_create(
    db: &Db,
    telegram_id: i64,
    trial_days: u32,
) -> Result<User, sqlx::Error> {
    let created = now();
    let trial_ends = created + i64::from(trial_days) * 24 * 3600 * 1000;
    sqlx::query(
        "INSERT INTO users (telegram_id, plan, subscription_status, trial_ends_at, next_new, created_at) \
         VALUES ($1, 'trial', 'none', $2, 0, $3) ON CONFLICT (telegram_id) DO NOTHING",
    )
    .bind(telegram_id)
    .bind(trial_ends)
    .bind(created)
    .execute(&db.pool)
    .await?;
    get(db, telegram_id).await?.ok_or(sqlx::Error::RowNotFound)
}

pub async fn set_current_agent(
    db: &Db,
    telegram_id: i64,
    agent: Option<&AgentId>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET current_agent = $1 WHERE telegram_id = $2")
        .bind(agent.map(|a| a.as_str().to_string()))
        .bind(telegram_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

pub async fn set_next_new(db: &Db, telegram_id: i64, value: bool) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET next_new = $1 WHERE telegram_id = $2")
        .bind(i64::from(value))
        .bind(telegram_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

pub async fn set_plan(db: &Db, telegram_id: i64, plan: Plan) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET plan = $1 WHERE telegram_id = $2")
        .bind(plan.as_str())
        .bind(telegram_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

pub async fn set_trial_ends_at(db: &Db, telegram_id: i64, at_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET trial_ends_at = $1 WHERE telegram_id = $2")
        .bind(at_ms)
        .bind(telegram_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Trial users whose trial ends between `from` and `until` and who were not
/// reminded yet.
pub async fn due_for_reminder(db: &Db, from: i64, until: i64) -> Result<Vec<User>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM users WHERE plan = 'trial' AND trial_reminder_sent_at IS NULL \
         AND trial_ends_at > $1 AND trial_ends_at <= $2 ORDER BY telegram_id"
    );
    sqlx::query_as::<_, User>(sqlx::AssertSqlSafe(sql))
        .bind(from)
        .bind(until)
        .fetch_all(&db.pool)
        .await
}

/// Marks the reminder as sent; true only for the caller that marked it, so
/// two concurrent runs never both send.
pub async fn claim_reminder(db: &Db, telegram_id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE users SET trial_reminder_sent_at = $1 WHERE telegram_id = $2 AND trial_reminder_sent_at IS NULL",
    )
    .bind(now())
    .bind(telegram_id)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Undoes [`claim_reminder`] when the message could not be sent, so the
/// next run tries again.
pub async fn release_reminder(db: &Db, telegram_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET trial_reminder_sent_at = NULL WHERE telegram_id = $1")
        .bind(telegram_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}
