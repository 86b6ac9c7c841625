//! The daemon library in-process (the pueue-style fixture): `daemon::run` in
//! a temporary tree answers on its socket and stops cleanly when cancelled.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use remoteagent_proto::control::{PROTOCOL_VERSION, Reply, Response};
use remoteagentd::config::{Config, SecretStoreKind};
use remoteagentd::paths::Paths;
use tokio_util::sync::CancellationToken;

fn paths(root: &std::path::Path) -> Paths {
    Paths {
        config_file: root.join("config/remoteagent/config.toml"),
        agents_dir: root.join("data/remoteagent/agents"),
        secrets_dir: root.join("data/remoteagent/secrets"),
        log_root: root.join("state/remoteagent/logs"),
        envelopes_dir: root.join("state/remoteagent/envelopes"),
        inbox_root: root.join("state/remoteagent/inbox"),
        conversations_dir: root.join("state/remoteagent/conversations"),
        rules_dir: root.join("config/remoteagent/rules"),
        worktrees_root: root.join("state/remoteagent/worktrees"),
        socket: root.join("run/remoteagent/remoteagentd.sock"),
    }
}

fn ask(socket: &std::path::Path, lines: &[&str]) -> Vec<Reply> {
    let s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut out = Vec::new();
    for line in lines {
        writeln!(w, "{line}").unwrap();
        let mut reply = String::new();
        r.read_line(&mut reply).unwrap();
        out.push(serde_json::from_str(&reply).unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn run_serves_and_stops_when_cancelled() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = paths(tmp.path());
    let config = Config {
        secret_store: SecretStoreKind::File,
        ..Config::default()
    };
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(remoteagentd::daemon::run(
        paths.clone(),
        config,
        shutdown.clone(),
    ));
    let socket = paths.socket.clone();
    let up = remoteagent_testkit::wait_for(Duration::from_secs(30), || {
        let socket = socket.clone();
        async move { UnixStream::connect(&socket).ok().map(|_| ()) }
    })
    .await;
    assert!(up.is_some(), "the socket never appeared");

    let socket = paths.socket.clone();
    let replies = tokio::task::spawn_blocking(move || {
        ask(
            &socket,
            &[
                &format!(
                    r#"{{"id":1,"request":{{"type":"hello","protocol":{PROTOCOL_VERSION},"client_version":"t"}}}}"#
                ),
                r#"{"id":2,"request":{"type":"status"}}"#,
                r#"{"id":3,"request":{"type":"logs"}}"#,
            ],
        )
    })
    .await
    .unwrap();
    match &replies[1].data {
        Some(Response::Status(s)) => {
            assert_eq!(s.agents, 0);
            assert_eq!(s.pid, std::process::id());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        replies[2].error.as_ref().map(|e| e.code),
        Some(remoteagent_proto::control::ErrorCode::NotFound)
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), daemon)
        .await
        .expect("run did not return after the cancel")
        .unwrap()
        .unwrap();
    assert!(!paths.socket.exists());
}
