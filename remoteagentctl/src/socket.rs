//! Where the daemon's control socket is: `--socket`, `REMOTEAGENT_SOCKET`,
//! else the same rule as `remoteagentd` uses
//! (`$XDG_RUNTIME_DIR/remoteagent/remoteagentd.sock`, or a per-uid folder in
//! the temp dir).

use std::path::PathBuf;

pub fn default_socket_path() -> PathBuf {
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = match runtime {
        Some(dir) => dir.join("remoteagent"),
        None => {
            let uid = nix::unistd::geteuid().as_raw();
            std::env::temp_dir().join(format!("remoteagent-{uid}"))
        }
    };
    base.join("remoteagentd.sock")
}
