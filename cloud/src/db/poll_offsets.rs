//! `telegram_poll_offsets`: where the poller resumes, per bot. Kept in the
//! database, not in Redis, because Redis may restart empty: with the claims
//! (`ra:upd:…`) gone, only this stops a restarted poller from fetching and
//! acting on the updates it already took.

use sqlx::Row;

use super::{Db, now};

/// The `offset` of the next `getUpdates` for `bot`, if one was stored.
pub async fn get(db: &Db, bot: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query("SELECT next_offset FROM telegram_poll_offsets WHERE bot = $1")
        .bind(bot.to_string())
        .fetch_optional(&db.pool)
        .await?
        .map(|row| row.try_get("next_offset"))
        .transpose()
}

/// Stores `offset` for `bot`, only forward: a replica that lost the poll
/// lease mid-batch and writes late can never move it back.
pub async fn advance(db: &Db, bot: &str, offset: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO telegram_poll_offsets (bot, next_offset, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (bot) DO UPDATE SET next_offset = excluded.next_offset, updated_at = excluded.updated_at \
         WHERE telegram_poll_offsets.next_offset < excluded.next_offset",
    )
    .bind(bot.to_string())
    .bind(offset)
    .bind(now())
    .execute(&db.pool)
    .await?;
    Ok(())
}
