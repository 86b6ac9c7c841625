//! The cloud's signing key: from `REMOTEAGENT_SIGNING_KEY`, else read from
//! `{data_dir}/signing.key`, else generated there (mode 0600) on first start.
//! Every daemon pins the public half at pairing, so losing or replacing this
//! file means every agent must pair again.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use remoteagent_proto::keys::CloudSigningKey;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("REMOTEAGENT_SIGNING_KEY is not a valid key: {0}")]
    Env(String),
    #[error("{0}: not a valid signing key: {1}")]
    Invalid(PathBuf, String),
    #[error("{0}: {1} ({2})")]
    Io(PathBuf, &'static str, std::io::Error),
    #[error("{0} is readable by other users (mode {1:o}); run chmod 600 on it")]
    Permissions(PathBuf, u32),
}

/// The key file's name inside the data directory.
pub const KEY_FILE: &str = "signing.key";

pub fn load_or_generate(
    from_env: Option<&str>,
    data_dir: &Path,
) -> Result<CloudSigningKey, KeyFileError> {
    if let Some(text) = from_env {
        return CloudSigningKey::from_base64(text).map_err(|e| KeyFileError::Env(e.to_string()));
    }
    let path = data_dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mode = std::fs::metadata(&path)
                .map_err(|e| KeyFileError::Io(path.clone(), "reading the key's permissions", e))?
                .permissions()
                .mode()
                & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyFileError::Permissions(path, mode));
            }
            CloudSigningKey::from_base64(&text)
                .map_err(|e| KeyFileError::Invalid(path, e.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => generate(data_dir, &path),
        Err(e) => Err(KeyFileError::Io(path, "reading the signing key", e)),
    }
}

fn generate(data_dir: &Path, path: &Path) -> Result<CloudSigningKey, KeyFileError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|e| KeyFileError::Io(data_dir.to_path_buf(), "creating the data directory", e))?;
    let key = CloudSigningKey::generate();
    // `create_new` makes a concurrent first start fail instead of silently
    // overwriting a key another process already handed out.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| KeyFileError::Io(path.to_path_buf(), "creating the signing key", e))?;
    file.write_all(key.to_base64().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| KeyFileError::Io(path.to_path_buf(), "writing the signing key", e))?;
    tracing::info!(path = %path.display(), "generated a new signing key");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_generate(None, dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = load_or_generate(None, dir.path()).unwrap();
        assert_eq!(first.public_key(), again.public_key());
    }

    #[test]
    fn env_key_wins_and_bad_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = CloudSigningKey::generate();
        let loaded = load_or_generate(Some(&key.to_base64()), dir.path()).unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
        assert!(!dir.path().join(KEY_FILE).exists());
        assert!(matches!(
            load_or_generate(Some("nope!"), dir.path()),
            Err(KeyFileError::Env(_))
        ));
        std::fs::write(dir.path().join(KEY_FILE), "garbage").unwrap();
        std::fs::set_permissions(
            dir.path().join(KEY_FILE),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert!(matches!(
            load_or_generate(None, dir.path()),
            Err(KeyFileError::Permissions(_, 0o644))
        ));
    }
}
