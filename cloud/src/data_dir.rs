//! Keeping the cloud's files private to its user.
//!
//! The data directory and the SQLite database hold live pairing codes,
//! prompt previews and token hashes: another local user who reads a pending
//! code and sends `/pair CODE` first becomes the owner of someone else's
//! agent. So the process umask is 0077 before anything is created (the
//! binary sets it first thing), directories are created 0700, and files
//! an older build (or a careless copy) left open to others are tightened,
//! with a warning in the log.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{Mode, umask};

use crate::config::{Config, ExposeSecret};

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("creating {0}: {1}")]
    Create(PathBuf, std::io::Error),
    #[error("restricting the permissions of {0}: {1}")]
    Chmod(PathBuf, std::io::Error),
}

/// Makes files and directories this process creates private to its user.
/// Process-wide: the binary calls it before starting any thread.
pub fn restrict_umask() {
    umask(Mode::from_bits_truncate(0o077));
}

/// Creates the data directory (0700) and tightens it and the SQLite files
/// when they are open to other users.
pub fn prepare(config: &Config) -> Result<(), DataDirError> {
    create_private_dir(&config.data_dir)?;
    tighten(&config.data_dir, 0o700)?;
    if let Some(db) = sqlite_path(config.database_url.expose_secret()) {
        if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_dir(parent)?;
        }
        secure_sqlite_files(&db)?;
    }
    Ok(())
}

/// Creates `dir` and its missing parents with mode 0700.
pub fn create_private_dir(dir: &Path) -> Result<(), DataDirError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| DataDirError::Create(dir.to_path_buf(), e))
}

/// The database file, its WAL and its shared-memory file, each set to 0600
/// if it exists and others may read it. SQLite gives a new `-wal`/`-shm`
/// the mode of the database file, so this also covers files it creates
/// later.
pub fn secure_sqlite_files(db: &Path) -> Result<(), DataDirError> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        tighten(Path::new(&name), 0o600)?;
    }
    Ok(())
}

/// Sets `path` to `mode` when it grants anything to group or others.
fn tighten(path: &Path, mode: u32) -> Result<(), DataDirError> {
    let current = match std::fs::metadata(path) {
        Ok(m) => m.permissions().mode() & 0o7777,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(DataDirError::Chmod(path.to_path_buf(), e)),
    };
    if current & 0o077 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| DataDirError::Chmod(path.to_path_buf(), e))?;
    tracing::warn!(
        path = %path.display(),
        was = format!("{current:o}"),
        now = format!("{mode:o}"),
        "was readable by other users; permissions restricted"
    );
    Ok(())
}

/// The file behind a `sqlite:` URL, if it names one.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite:///tmp/x/cloud.db?mode=rwc"),
            Some(PathBuf::from("/tmp/x/cloud.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://db/x"), None);
    }

    #[test]
    fn open_files_and_dirs_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/b");
        create_private_dir(&data).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        let db = data.join("cloud.db");
        std::fs::write(&db, "").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(data.join("cloud.db-wal"), "").unwrap();
        std::fs::set_permissions(
            data.join("cloud.db-wal"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        secure_sqlite_files(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&data.join("cloud.db-wal")), 0o600);
    }
}
