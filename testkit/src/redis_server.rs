//! A private Redis server per test, so a test can restart "Redis" in the
//! middle of a session (or stop it to test a dead Redis) without touching the
//! machine's shared server on 6379.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Whether writes go to an append-only file (kept across a restart).
    persistent: bool,
}

impl RedisServer {
    /// Starts `redis-server` on a free loopback port and waits until it answers.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(true)
    }

    /// Like [`RedisServer::start`], without AOF or RDB snapshots: a restart
    /// loses every key, as after `redis-cli shutdown nosave` on a Redis
    /// configured without persistence (the default of many installs).
    pub fn start_ephemeral() -> anyhow::Result<Self> {
        Self::start_with(false)
    }

    fn start_with(persistent: bool) -> anyhow::Result<Self> {
        let mut server = RedisServer {
            port: crate::free_port(),
            dir: tempfile::tempdir()?,
            child: None,
            persistent,
        };
        server.spawn()?;
        Ok(server)
    }

    /// Whether the data survives [`RedisServer::restart`].
    pub fn is_persistent(&self) -> bool {
        self.persistent
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        // Persistent: an append-only file fsynced on every write, so a
        // restart (even after SIGKILL) keeps the data, like a production
        // Redis with AOF. ACL users are not in the AOF and vanish on restart.
        // Ephemeral: neither AOF nor snapshots, so a restart starts empty.
        let aof: &[&str] = if self.persistent {
            &["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            &["--appendonly", "no"]
        };
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args(aof)
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting redis-server (is it installed?): {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        anyhow::bail!("redis-server on port {} did not start", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}` (no credentials: the default user is open).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Kills the server (SIGKILL, like a crash). Stream data survives in the
    /// AOF for [`RedisServer::restart`] unless the server is ephemeral;
    /// connections are dropped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_then_restart(server: &mut RedisServer) -> Option<String> {
        let client = redis::Client::open(server.url()).unwrap();
        let mut conn = client.get_connection().unwrap();
        let _: () = redis::cmd("SET")
            .arg("k")
            .arg("v")
            .query(&mut conn)
            .unwrap();
        server.restart().unwrap();
        let mut conn = client.get_connection().unwrap();
        redis::cmd("GET").arg("k").query(&mut conn).unwrap()
    }

    #[test]
    fn a_restart_keeps_data_only_with_aof() {
        let mut aof = RedisServer::start().unwrap();
        assert!(aof.is_persistent());
        assert_eq!(set_then_restart(&mut aof).as_deref(), Some("v"));
        let mut ephemeral = RedisServer::start_ephemeral().unwrap();
        assert!(!ephemeral.is_persistent());
        assert_eq!(set_then_restart(&mut ephemeral), None);
    }
}
