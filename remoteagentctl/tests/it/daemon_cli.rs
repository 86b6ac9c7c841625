//! The daemon's shell and the CLI without any paired agent: the control
//! socket's safety (permissions, garbage, oversized lines, protocol
//! version), single instance, stale sockets, config errors, exit codes.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;

use common::*;
use remoteagent_proto::control::{ErrorCode, PROTOCOL_VERSION, Reply, Response};

/// A raw connection to the control socket, for sending what the CLI never
/// would.
struct Raw {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Raw {
    fn connect(home: &Home) -> Raw {
        let s = UnixStream::connect(home.socket()).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        Raw {
            writer: s.try_clone().unwrap(),
            reader: BufReader::new(s),
        }
    }

    fn send(&mut self, line: &[u8]) {
        self.writer.write_all(line).unwrap();
        self.writer.write_all(b"\n").unwrap();
    }

    /// The next reply, or `None` when the daemon closed the connection.
    fn reply(&mut self) -> Option<Reply> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(serde_json::from_str(&line).unwrap()),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(e) => panic!("reading a reply: {e}"),
        }
    }

    fn hello(&mut self) {
        self.send(
            format!(
                r#"{{"id":1,"request":{{"type":"hello","protocol":{PROTOCOL_VERSION},"client_version":"test"}}}}"#
            )
            .as_bytes(),
        );
        let r = self.reply().unwrap();
        assert!(matches!(r.data, Some(Response::Hello { .. })), "{r:?}");
    }
}

fn error_code(reply: &Reply) -> ErrorCode {
    reply
        .error
        .as_ref()
        .map(|e| e.code)
        .unwrap_or(ErrorCode::Unknown)
}

#[test]
fn ctl_without_daemon_says_so_and_exits_3() {
    let home = Home::new();
    for args in [&["status"][..], &["list"], &["stop", "x"], &["pair", "."]] {
        let out = home.ctl(args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("remoteagentd is not running"), "{err}");
        assert!(err.contains("remoteagentd.sock"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line only: {err}");
    }
}

#[test]
fn usage_errors_exit_2_and_help_documents_exit_codes() {
    let home = Home::new();
    let out = home.ctl(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    let out = home.ctl(&["pair", "--runner", "vim"]);
    assert_eq!(out.status.code(), Some(2));
    let help = stdout(&home.ctl(&["--help"]));
    assert!(help.contains("3 daemon not running"), "{help}");
}

#[test]
fn socket_is_private_and_status_answers() {
    let home = Home::with_file_store("http://127.0.0.1:9");
    let mut daemon = home.start_daemon();
    let socket = home.socket();
    let dir_mode = std::fs::metadata(socket.parent().unwrap()).unwrap().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);

    let out = home.ctl(&["--json", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["pid"], daemon.pid());
    assert_eq!(status["agents"], 0);

    assert!(daemon.terminate().success());
    assert!(!socket.exists(), "the socket is removed on shutdown");
}

#[test]
fn garbage_and_oversized_lines_do_not_hurt_the_daemon() {
    let home = Home::with_file_store("http://127.0.0.1:9");
    let _daemon = home.start_daemon();

    let mut raw = Raw::connect(&home);
    // Before hello: garbage gets a bad_request, the connection stays usable.
    raw.send(b"this is not json");
    assert_eq!(error_code(&raw.reply().unwrap()), ErrorCode::BadRequest);
    raw.send(br#"{"id":5,"request":{"type":"list"}}"#);
    let r = raw.reply().unwrap();
    assert_eq!(r.id, 5);
    assert_eq!(
        error_code(&r),
        ErrorCode::BadRequest,
        "hello must come first"
    );
    raw.hello();
    raw.send(br#"{"id":7,"request":{"type":"format_disk"}}"#);
    let r = raw.reply().unwrap();
    assert_eq!((r.id, error_code(&r)), (7, ErrorCode::BadRequest));
    raw.send(br#"{"id":8,"request":{"type":"stop"}}"#);
    assert_eq!(error_code(&raw.reply().unwrap()), ErrorCode::BadRequest);
    raw.send(b"\x00\xff\xfe{{{");
    assert_eq!(error_code(&raw.reply().unwrap()), ErrorCode::BadRequest);
    raw.send(br#"{"id":9,"request":{"type":"list"}}"#);
    let r = raw.reply().unwrap();
    assert!(matches!(r.data, Some(Response::Agents { .. })), "{r:?}");

    // A line over the cap: an error reply, then the connection is closed.
    let mut big = Raw::connect(&home);
    let line = vec![b'a'; remoteagent_proto::control::MAX_LINE_BYTES + 10];
    // The daemon may close before reading everything; a broken pipe is fine.
    let _ = big.writer.write_all(&line);
    let _ = big.writer.write_all(b"\n");
    let r = big.reply().expect("an error reply before closing");
    assert_eq!(error_code(&r), ErrorCode::BadRequest);
    assert!(big.reply().is_none(), "the connection is closed");

    // The daemon is still fine, up for a span written as everywhere.
    let out = home.ctl(&["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    let uptime = said.lines().find_map(|l| l.strip_prefix("uptime:   "));
    assert!(uptime.is_some_and(is_span), "{said}");
}

#[test]
fn wrong_protocol_version_is_a_clear_error() {
    let home = Home::with_file_store("http://127.0.0.1:9");
    let _daemon = home.start_daemon();
    let mut raw = Raw::connect(&home);
    raw.send(br#"{"id":1,"request":{"type":"hello","protocol":999,"client_version":"9.9"}}"#);
    let r = raw.reply().unwrap();
    assert_eq!(error_code(&r), ErrorCode::ProtocolMismatch);
    assert!(r.error.unwrap().message.contains("999"));
    assert!(raw.reply().is_none());
}

#[test]
fn a_second_daemon_refuses_to_start() {
    let home = Home::with_file_store("http://127.0.0.1:9");
    let daemon = home.start_daemon();
    let out = home.daemon_command().output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("already running"), "{err}");
    assert!(
        err.contains(&daemon.pid().to_string()),
        "names the pid: {err}"
    );
    // The first one is unharmed.
    assert!(home.ctl(&["status"]).status.success());
}

#[test]
fn a_stale_socket_is_replaced() {
    let home = Home::with_file_store("http://127.0.0.1:9");
    let mut daemon = home.start_daemon();
    daemon.kill();
    assert!(
        home.socket().exists(),
        "SIGKILL leaves the socket file behind"
    );
    let out = home.ctl(&["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let daemon = home.start_daemon();
    let out = home.ctl(&["--json", "status"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["pid"], daemon.pid());
}

#[test]
fn a_bad_config_is_one_clear_error() {
    let home = Home::new();
    home.write_config("secret_store = \"vault\"\n");
    let out = home.daemon_command().output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("config.toml"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!home.socket().exists());
}

#[test]
fn a_loose_socket_dir_is_tightened() {
    // A socket dir someone loosened is made private again on start.
    let home = Home::with_file_store("http://127.0.0.1:9");
    let dir = home.socket().parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let _daemon = home.start_daemon();
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
}

#[test]
fn sigint_also_shuts_down_cleanly() {
    let home = Home::with_file_store("http://127.0.0.1:9");
    let mut daemon = home.start_daemon();
    daemon.signal(nix::sys::signal::Signal::SIGINT);
    assert!(daemon.wait().success(), "{}", daemon.log_text());
    assert!(!home.socket().exists());
}

#[test]
fn daemonize_detaches_and_writes_a_pidfile() {
    let home = Home::with_file_store("http://127.0.0.1:9");
    let pidfile = home.path().join("remoteagentd.pid");
    let out = home
        .daemon_command()
        .args(["--daemonize", "--pidfile"])
        .arg(&pidfile)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // It returns once the daemon serves, and says where it is.
    let said = stdout(&out);
    assert!(said.starts_with("remoteagentd started: pid "), "{said}");
    assert!(said.contains("remoteagentd.log"), "{said}");
    let pid = poll(PATIENCE, || {
        let text = std::fs::read_to_string(&pidfile).ok()?;
        text.trim().parse::<i32>().ok()
    })
    .expect("no pidfile");
    assert!(said.contains(&format!("pid {pid},")), "{said} vs {pid}");
    let answered = home.ctl(&["status"]).status.success().then_some(());
    // A second one fails, and says why, instead of exiting 0.
    let again = home
        .daemon_command()
        .args(["--daemonize", "--pidfile"])
        .arg(home.path().join("second.pid"))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1), "{}", stdout(&again));
    assert!(
        stderr(&again).contains("already running"),
        "{}",
        stderr(&again)
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(
        answered.is_some(),
        "the daemonized remoteagentd never answered"
    );
    let gone = poll(PATIENCE, || (!home.socket().exists()).then_some(()));
    assert!(
        gone.is_some(),
        "the daemonized remoteagentd did not shut down"
    );
    let version = home.daemon_command().arg("--version").output().unwrap();
    assert!(stdout(&version).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn ctl_refuses_a_socket_owned_by_someone_else() {
    let home = Home::new();
    let socket = home.socket();
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let ours = nix::unistd::geteuid().as_raw();
    let other = if ours == 65534 { 65533 } else { 65534 };
    if std::os::unix::fs::lchown(&socket, Some(other), None).is_err() {
        eprintln!("skipping: cannot chown (not root)");
        return;
    }
    let out = home.ctl(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("belongs to uid"), "{}", stderr(&out));
}

#[test]
fn the_daemon_refuses_peers_of_another_uid() {
    use std::os::unix::process::CommandExt;
    if !nix::unistd::geteuid().is_root() || which("python3").is_none() {
        eprintln!("skipping: needs root (to act as another user) and python3");
        return;
    }
    let home = Home::with_file_store("http://127.0.0.1:9");
    let daemon = home.start_daemon();
    // Open the path to everyone, so only the peer-uid check stands between
    // another user and the daemon.
    for dir in [
        home.path().to_path_buf(),
        home.path().join("run"),
        home.socket().parent().unwrap().to_path_buf(),
    ] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(home.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let script = format!(
        r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect({socket:?})
s.settimeout(30)
try:
    s.sendall(b'{{"id":1,"request":{{"type":"hello","protocol":{PROTOCOL_VERSION},"client_version":"x"}}}}\n')
    data = s.recv(4096)
except (ConnectionResetError, BrokenPipeError):
    data = b""
sys.stdout.write("REPLY:" + data.decode())
"#,
        socket = home.socket().to_string_lossy()
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "REPLY:", "another user got an answer");
    assert!(
        daemon.log_text().contains("another user"),
        "{}",
        daemon.log_text()
    );
    // Our own user is still served.
    assert!(home.ctl(&["status"]).status.success());
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

#[test]
fn an_agent_without_its_secret_is_listed_with_the_problem() {
    let home = Home::with_file_store("http://127.0.0.1:9");
    let id = remoteagent_proto::AgentId::generate();
    let key = remoteagent_proto::keys::CloudSigningKey::generate();
    std::fs::create_dir_all(home.agents_dir()).unwrap();
    let meta = serde_json::json!({
        "id": id.as_str(),
        "name": "orphan",
        "path": home.project("orphan"),
        "runner": {"preset": "claude"},
        "cloudUrl": "http://127.0.0.1:9",
        "redisUrl": "redis://127.0.0.1:1",
        "redisUsername": "",
        "cloudPublicKey": key.public_key().to_base64(),
        "pairedAtMs": 1,
    });
    std::fs::write(
        home.agents_dir().join(format!("{id}.json")),
        serde_json::to_vec(&meta).unwrap(),
    )
    .unwrap();
    // A corrupt file next to it hides nothing and crashes nothing.
    std::fs::write(home.agents_dir().join("broken.json"), "{not json").unwrap();
    let daemon = home.start_daemon();
    let out = home.ctl(&["--json", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let agents: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(agents.as_array().unwrap().len(), 1, "{agents}");
    assert_eq!(agents[0]["name"], "orphan");
    assert_eq!(agents[0]["online"], false);
    let problem = agents[0]["problem"].as_str().unwrap_or_default();
    assert!(problem.contains("missing"), "{agents}");
    let table = stdout(&home.ctl(&["list"]));
    assert!(table.contains("missing"), "{table}");
    assert!(
        daemon.log_text().contains("agent not started"),
        "{}",
        daemon.log_text()
    );
    assert!(
        daemon.log_text().contains("broken.json"),
        "{}",
        daemon.log_text()
    );
    // It can still be unpaired (offline: the cloud cannot be told).
    let out = home.ctl(&["--json", "unpair", "orphan"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!home.agents_dir().join(format!("{id}.json")).exists());
}
