//! The database: sqlx `Any` over SQLite (the embedded default, a file in the
//! data dir) or PostgreSQL (`DATABASE_URL=postgres://…`), with the same
//! queries for both. Ids are TEXT, times BIGINT epoch milliseconds, flags
//! BIGINT 0/1, placeholders `$n`: `Any` decodes only integers, floats,
//! strings and bytes reliably across both (a PostgreSQL `TIMESTAMPTZ` or
//! UUID column fails), and `?` placeholders break on PostgreSQL.
//!
//! * [`users`], [`agents`], [`sessions`], [`pairing`], [`groups`],
//!   [`poll_offsets`], [`notify`], [`queue`], [`modes`], [`topics`]: one module per
//!   table, plain functions over [`Db`];
//!   rows are `#[derive(sqlx::FromRow)]` with typed ids.

pub mod agents;
pub mod groups;
pub mod modes;
pub mod notify;
pub mod pairing;
pub mod poll_offsets;
pub mod queue;
pub mod sessions;
pub mod topics;
pub mod users;

use std::time::Duration;

use remoteagent_proto::AgentId;
use remoteagent_proto::ids::IdError;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

/// Connections per process to PostgreSQL.
pub const POSTGRES_POOL: u32 = 24;

/// Which SQL server the pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool plus the dialect it speaks.
#[derive(Debug, Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

/// One migration: its version and its statements in each dialect.
struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

impl Migration {
    fn sql(&self, backend: Backend) -> &'static str {
        match backend {
            Backend::Sqlite => self.sqlite,
            Backend::Postgres => self.postgres,
        }
    }
}

/// A migration: one file in `migrations/` where the dialects agree (all of
/// them so far), or one per dialect in `migrations/{sqlite,postgres}/`
/// where they cannot.
macro_rules! migration {
    ($version:literal, $file:literal) => {
        Migration {
            version: $version,
            sqlite: include_str!(concat!("../../migrations/", $file)),
            postgres: include_str!(concat!("../../migrations/", $file)),
        }
    };
    ($version:literal, sqlite: $sqlite:literal, postgres: $postgres:literal) => {
        Migration {
            version: $version,
            sqlite: include_str!(concat!("../../migrations/sqlite/", $sqlite)),
            postgres: include_str!(concat!("../../migrations/postgres/", $postgres)),
        }
    };
}

/// Every migration, listed once.
const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_init.sql"),
    migration!(2, "0002_group_chats.sql"),
    migration!(3, "0003_drop_processed_updates.sql"),
    migration!(4, "0004_telegram_poll_offsets.sql"),
    migration!(
        5,
        sqlite: "0005_notify_settings.sql",
        postgres: "0005_notify_settings.sql"
    ),
    migration!(6, "0006_prompt_queue.sql"),
    migration!(7, "0007_agent_modes.sql"),
    migration!(8, "0008_agent_topics.sql"),
];

impl Db {
    /// Connects, prepares SQLite (WAL, foreign keys) and runs the migrations.
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(sqlx::Error::Configuration(
                "DATABASE_URL must start with sqlite: or postgres://".into(),
            ));
        };
        if backend == Backend::Sqlite {
            create_sqlite_parent(url)?;
        }
        let mut options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        options = match backend {
            // SQLite allows one writer at a time; a small pool with a busy
            // timeout (set per connection below) avoids "database is locked".
            Backend::Sqlite => options.max_connections(4).after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA busy_timeout = 10000")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA foreign_keys = ON")
                        .execute(&mut *conn)
                        .await?;
                    // With WAL, NORMAL syncs at checkpoints instead of on
                    // every commit: still safe against a crash of the
                    // process; only a power loss may undo the last commits.
                    // A per-commit fsync cost most of the webhook's capacity.
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            }),
            // Every update's handler runs a few statements; under load 10
            // connections queued them. PostgreSQL's default limit is 100,
            // leaving room for a few replicas.
            Backend::Postgres => options.max_connections(POSTGRES_POOL),
        };
        if backend == Backend::Postgres {
            // One direct connection first: a refused or misconfigured server
            // is then reported at once with its own words, where the pool
            // would retry until its timeout and say only "timed out".
            use sqlx::Connection;
            sqlx::AnyConnection::connect(url).await?.close().await?;
        }
        let pool = options.connect(url).await?;
        if backend == Backend::Sqlite {
            // WAL lets readers proceed while a writer commits; the mode is
            // stored in the database file, so setting it once suffices.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        let db = Db { pool, backend };
        if let Some(path) = crate::data_dir::sqlite_path(url) {
            // Whatever umask this process has, the files now on disk (the
            // database, its WAL and shared memory) are for this user only.
            crate::data_dir::secure_sqlite_files(&path)
                .map_err(|e| sqlx::Error::Configuration(e.to_string().into()))?;
        }
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), sqlx::Error> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        for m in MIGRATIONS {
            let done: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) AS n FROM schema_migrations WHERE version = $1",
            )
            .bind(m.version)
            .fetch_one(&self.pool)
            .await?;
            if done > 0 {
                continue;
            }
            // One transaction per migration: both dialects have
            // transactional DDL, so a failed migration leaves nothing behind.
            let mut tx = self.pool.begin().await?;
            for statement in m
                .sql(self.backend)
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(m.version)
                .bind(now())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version = m.version, "applied a database migration");
        }
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}

fn create_sqlite_parent(url: &str) -> Result<(), sqlx::Error> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or("");
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        crate::data_dir::create_private_dir(parent)
            .map_err(|e| sqlx::Error::Configuration(e.to_string().into()))?;
    }
    Ok(())
}

/// Epoch milliseconds as the database stores them.
pub fn now() -> i64 {
    remoteagent_proto::now_ms() as i64
}

/// A nullable TEXT column of ids: `#[sqlx(try_from = "NullableText")]`
/// decodes it into an `Option` of a typed id.
#[derive(sqlx::Type)]
#[sqlx(transparent)]
pub(crate) struct NullableText(Option<String>);

impl TryFrom<NullableText> for Option<AgentId> {
    type Error = IdError;
    fn try_from(text: NullableText) -> Result<Self, IdError> {
        text.0.map(AgentId::parse).transpose()
    }
}

/// A BIGINT 0/1 flag column: `#[sqlx(try_from = "Flag")]` on a `bool`.
#[derive(sqlx::Type)]
#[sqlx(transparent)]
pub(crate) struct Flag(i64);

impl From<Flag> for bool {
    fn from(flag: Flag) -> bool {
        flag.0 != 0
    }
}

/// A TEXT column of ids, read alone (`SELECT agent_id …`).
pub(crate) fn parse_id<T: TryFrom<String, Error = IdError>>(
    text: String,
) -> Result<T, sqlx::Error> {
    T::try_from(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

#[cfg(test)]
mod migration_tests {
    use super::*;

    /// The `NNNN_name.sql` files of a migration dir, sorted (none when the
    /// dir does not exist).
    fn files(sub: &str) -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(sub);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .filter(|name| name.ends_with(".sql"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn version(name: &str) -> i64 {
        name.split('_').next().unwrap().parse().unwrap()
    }

    /// One schema history: every file is listed, the versions run 1..=N
    /// without a gap, and a migration written per dialect exists for both
    /// (and not also in the shared dir), so one forgotten for a dialect, or
    /// numbered differently, fails here instead of on a deployment.
    #[test]
    fn the_dialects_share_one_schema_history() {
        let (sqlite, postgres) = (files("sqlite"), files("postgres"));
        assert_eq!(
            sqlite, postgres,
            "a dialect-specific migration needs both files"
        );
        let shared = files("");
        for name in &sqlite {
            assert!(
                !shared.contains(name),
                "{name} is both shared and per dialect"
            );
        }
        let mut versions: Vec<i64> = shared.iter().chain(&sqlite).map(|n| version(n)).collect();
        versions.sort();
        let listed: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert_eq!(listed, versions, "MIGRATIONS and the files differ");
        assert_eq!(versions, (1..=versions.len() as i64).collect::<Vec<_>>());
    }
}
