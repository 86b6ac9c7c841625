//! Where the daemon's control socket is, and whether a socket there is ours.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The name of the folder the daemon uses inside each base directory.
pub const APP_DIR: &str = "remoteagent";
/// The control socket's file name.
pub const SOCKET_FILE: &str = "remoteagentd.sock";

/// `$XDG_RUNTIME_DIR/remoteagent/remoteagentd.sock`, or, without a runtime
/// dir, a per-uid folder under the temp dir (the daemon checks that folder
/// is its own before binding, since anyone can create folders there).
pub fn default_socket_path() -> PathBuf {
    // XDG says relative values are invalid and must be ignored.
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = match runtime {
        Some(dir) => dir.join(APP_DIR),
        None => {
            let uid = nix::unistd::geteuid().as_raw();
            std::env::temp_dir().join(format!("{APP_DIR}-{uid}"))
        }
    };
    base.join(SOCKET_FILE)
}

/// A socket file that belongs to another user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} belongs to uid {owner}, not to us (uid {ours})", path.display())]
pub struct NotOurs {
    pub path: PathBuf,
    pub owner: u32,
    pub ours: u32,
}

/// Refuses a socket file owned by another user: in the temp-dir fallback
/// another user could have planted one to collect our pairing requests or to
/// answer "allow" to approvals. A missing file passes (connecting then says
/// what is wrong).
pub fn check_owner(path: &Path) -> Result<(), NotOurs> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let ours = nix::unistd::geteuid().as_raw();
    if meta.uid() != ours {
        return Err(NotOurs {
            path: path.to_path_buf(),
            owner: meta.uid(),
            ours,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_and_missing_files_pass() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("s");
        assert_eq!(check_owner(&file), Ok(()));
        std::fs::write(&file, b"").unwrap();
        assert_eq!(check_owner(&file), Ok(()));
    }

    #[test]
    fn a_root_owned_file_is_refused_unless_we_are_root() {
        // `/` belongs to root on every unix.
        let result = check_owner(Path::new("/"));
        if nix::unistd::geteuid().is_root() {
            assert_eq!(result, Ok(()));
        } else {
            assert_eq!(result.unwrap_err().owner, 0);
        }
    }

    #[test]
    fn the_socket_file_is_named_for_the_daemon() {
        assert!(default_socket_path().ends_with(SOCKET_FILE));
    }
}
