//! `processed_updates`: Telegram retries a webhook delivery it thinks failed,
//! so each `update_id` is claimed once and only the claiming request acts.

use super::{Db, now};

/// True if this call claimed the update (it was not seen before).
pub async fn claim(db: &Db, update_id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO processed_updates (update_id, received_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(update_id)
    .bind(now())
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Forgets updates older than `before`; Telegram stops retrying long before.
pub async fn prune(db: &Db, before: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM processed_updates WHERE received_at < $1")
        .bind(before)
        .execute(&db.pool)
        .await?;
    Ok(())
}
