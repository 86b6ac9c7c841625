//! `notify_settings`: each user's `/notify` choice, whether a run's end is
//! also sent as a new message (so that the phone notifies). No row means
//! the default: on.

use sqlx::Row;

use super::{Db, now};

/// Whether `user` wants a new message when a run ends.
pub async fn wants_final(db: &Db, user: i64) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT final_notify FROM notify_settings WHERE telegram_id = $1")
        .bind(user)
        .fetch_optional(&db.pool)
        .await?;
    match row {
        None => Ok(true),
        Some(row) => Ok(row.try_get::<i64, _>("final_notify")? != 0),
    }
}

/// Stores `user`'s choice.
pub async fn set_final(db: &Db, user: i64, on: bool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notify_settings (telegram_id, final_notify, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (telegram_id) DO UPDATE SET final_notify = excluded.final_notify, updated_at = excluded.updated_at",
    )
    .bind(user)
    .bind(i64::from(on))
    .bind(now())
    .execute(&db.pool)
    .await?;
    Ok(())
}
