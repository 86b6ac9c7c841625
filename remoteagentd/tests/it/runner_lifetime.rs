//! Runners die with their daemon. The real `remoteagentd` binary, a real
//! Redis, and a runner that starts a child in its process group (as a tool
//! call would) and then stays silent: `kill -9` of the daemon ends the
//! runner at once (PR_SET_PDEATHSIG, Linux), and the restarted daemon ends
//! the child that outlived it, from the record in the session log, before
//! a new session in the same folder runs.

#![cfg(target_os = "linux")]

use crate::execution_support;

use std::path::Path;

use execution_support::daemon::DaemonHome;
use execution_support::{Setup, WAIT, fixture};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use remoteagent_proto::SessionId;
use remoteagent_proto::events::OutputEvent;
use remoteagent_proto::runner::RunnerSpec;
use remoteagent_testkit::wait_for;
use remoteagentd::runner::process::read_stat;

/// Gone, or dead and waiting to be reaped.
fn gone(pid: i32) -> bool {
    read_stat(pid).is_none_or(|s| s.state == 'Z' || s.state == 'X')
}

async fn wait_gone(pid: i32, what: &str, d: &DaemonHome) {
    let ended = wait_for(WAIT, || async move { gone(pid).then_some(()) }).await;
    assert!(ended.is_some(), "{what} ({pid}) still runs:\n{}", d.log());
}

/// Starts a session and returns its runner's and child's pids, from the
/// line the runner prints.
async fn start_session(s: &Setup, d: &DaemonHome) -> (SessionId, i32, i32) {
    let session = SessionId::generate();
    s.send(s.command(&session, "work quietly")).await;
    let line = wait_for(WAIT, || async {
        s.events(&session).await.iter().find_map(|e| match e {
            OutputEvent::Chunk(c) if c.text.contains('\n') => Some(c.text.clone()),
            _ => None,
        })
    })
    .await;
    let Some(line) = line else {
        panic!("the runner never printed:\n{}", d.log())
    };
    let words: Vec<&str> = line.split_whitespace().collect();
    let ["runner", runner, "child", child] = words.as_slice() else {
        panic!("unexpected output {line:?}")
    };
    (session, runner.parse().unwrap(), child.parse().unwrap())
}

/// Processes working in `dir`, with their process groups.
fn working_in(dir: &Path) -> Vec<(i32, i32)> {
    let dir = std::fs::canonicalize(dir).unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|c| c == dir))
        .filter_map(|pid| {
            let stat = read_stat(pid)?;
            (stat.state != 'Z').then_some((pid, stat.pgrp))
        })
        .collect()
}

/// Kills what this test started if an assertion fails half-way (only
/// while it is still the same process).
struct Cleanup(Vec<(i32, u64)>);

impl Cleanup {
    fn add(&mut self, pid: i32) {
        if let Some(s) = read_stat(pid) {
            self.0.push((pid, s.start_ticks));
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for (pid, start) in &self.0 {
            if read_stat(*pid).is_some_and(|s| s.start_ticks == *start) {
                let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_daemons_runner_and_its_children_do_not_outlive_it() {
    let s = Setup::new().await;
    let runner = RunnerSpec::Command(vec![fixture("silent_with_child.sh")]);
    let mut d = DaemonHome::new(&s, runner, "").await;
    d.start(&s).await;
    let mut cleanup = Cleanup(Vec::new());

    let (first, runner, child) = start_session(&s, &d).await;
    cleanup.add(runner);
    cleanup.add(child);
    let log = d.session_log(&s, &first);
    assert!(
        log.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with(&format!("# runner pid {runner} pgid {runner} start "))),
        "{log}"
    );
    assert_eq!(read_stat(child).map(|s| s.pgrp), Some(runner));

    // Without a restart: the runner dies with the daemon. Its child, which
    // the kernel does not signal, is still there.
    d.kill(&s).await;
    wait_gone(runner, "the runner of the killed daemon", &d).await;
    assert!(!gone(child), "the child is expected to outlive the runner");

    // The restarted daemon ends the child before it takes a command.
    d.start(&s).await;
    wait_gone(child, "the runner's child", &d).await;

    // A new session in the same folder runs alone.
    let (_second, new_runner, new_child) = start_session(&s, &d).await;
    cleanup.add(new_runner);
    cleanup.add(new_child);
    let working = working_in(s.project.path());
    assert!(
        !working.is_empty() && working.iter().all(|(_, pgrp)| *pgrp == new_runner),
        "processes in the project folder (pid, pgrp): {working:?}, new runner {new_runner}"
    );
    d.stop().await;
    wait_gone(new_child, "the stopped session's child", &d).await;
}
