//! `remoteagentctl approvals`, `approve` and `deny` with the real daemon: a
//! script runner asks for approval through `remoteagentd approval-hook`
//! (as Claude Code's PreToolUse hook does), the request is listed and
//! answered from the computer, the phone's later press changes nothing,
//! and answering twice or an unknown id fails with its exit code.

use crate::common;

use common::*;
use remoteagent_proto::events::{
    ApprovalPayload, ApprovalRequestPayload, ApprovalResolvedPayload, CommandEvent, OutputEvent,
};
use remoteagent_proto::{SessionId, envelope};
use remoteagent_testkit::wait_for;

/// The runner: the prompt is "AGENT SESSION"; it asks about `make deploy`
/// through the daemon's approval hook and prints the hook's answer.
fn script(home: &Home) -> String {
    let input = r#"{"session_id":"c","hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"make deploy"},"tool_use_id":"t","cwd":"/"}"#;
    format!(
        "set -- $1\nout=$(printf '%s' '{input}' | '{}' approval-hook --socket '{}' --agent \"$1\" --session \"$2\" --timeout-secs 120)\necho \"hook: $out\"\n",
        daemon_bin().display(),
        home.socket().display()
    )
}

async fn setup() -> Paired {
    let s = Paired::start("web", "", 30 * 24 * 3600, |_| {}).await;
    // The runner is read at each session: the script needs the home's socket.
    std::fs::write(s.project.join("run.sh"), script(&s.home)).unwrap();
    s
}

impl Paired {
    /// Starts a session whose runner asks for approval; returns its id and
    /// the request once it is in the stream.
    async fn ask(&self) -> (SessionId, ApprovalRequestPayload) {
        let session = SessionId::generate();
        let prompt = format!("{} {}", self.agent, session);
        self.publish(&self.sign(&session, &prompt, 30)).await;
        let found = wait_for(PATIENCE, || async {
            self.events(&session).await.iter().find_map(|e| match e {
                OutputEvent::ApprovalRequest(r) => Some(r.clone()),
                _ => None,
            })
        })
        .await;
        let req =
            found.unwrap_or_else(|| panic!("no approval request:\n{}", self.daemon.log_text()));
        (session, req)
    }

    /// The phone's answer: a signed `approval` envelope.
    async fn phone(&self, session: &SessionId, request_id: &str, allow: bool) {
        let env = envelope::sign(
            &self.cloud.state.key,
            &self.agent,
            CommandEvent::Approval(ApprovalPayload {
                session_id: session.clone(),
                request_id: request_id.to_string(),
                allow,
                answer: None,
                scope: None,
            }),
            30,
        )
        .unwrap();
        self.publish(&env).await;
    }

    async fn ctl_answer(&self, args: &[&str]) -> std::process::Output {
        let home = self.home.clone();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            home.ctl(&args)
        })
        .await
    }
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

fn chunks(events: &[OutputEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            OutputEvent::Chunk(c) => Some(c.text.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn approvals_are_listed_and_answered_from_the_computer() {
    let s = setup().await;
    let none = s.ctl_answer(&["approvals"]).await;
    assert!(none.status.success(), "{}", stderr(&none));
    assert_eq!(stdout(&none).trim(), "No approval requests are waiting.");

    // Listed, then approved by a prefix of its id.
    let (sid, req) = s.ask().await;
    let id = req.request_id.clone();
    let listed = s.ctl_answer(&["approvals"]).await;
    let text = stdout(&listed);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(text.contains(&id), "{text}");
    assert!(text.contains("web (run "), "{text}");
    assert!(text.contains("Bash: make deploy"), "{text}");
    assert!(text.contains("unless answered"), "{text}");
    let json = s.ctl_answer(&["--json", "approvals"]).await;
    let v: serde_json::Value = serde_json::from_str(stdout(&json).trim()).unwrap();
    assert_eq!(v[0]["request_id"], id.as_str());
    assert_eq!(v[0]["session_id"], sid.as_str());
    assert_eq!(v[0]["tool"], "Bash");

    let approved = s.ctl_answer(&["approve", &id[..5]]).await;
    assert!(approved.status.success(), "{}", stderr(&approved));
    assert_eq!(
        stdout(&approved).trim(),
        format!("Approved request {id} of web: Bash make deploy.")
    );
    // The phone's press comes too late and changes nothing: the agent takes
    // it (the session ignores it, or has ended already), and the session's
    // events, complete at its `done`, hold only the computer's answer.
    s.phone(&sid, &id, false).await;
    let taken = wait_for(PATIENCE, || async {
        let log = s.daemon.log_text();
        (log.contains("approval answer received allow=false")
            || log.contains("approval answer ignored"))
        .then_some(())
    })
    .await;
    assert!(taken.is_some(), "{}", s.daemon.log_text());
    let (events, _) = s.wait_done(&sid).await;
    let out = chunks(&events);
    assert!(out.contains(r#""permissionDecision":"allow""#), "{out}");
    assert!(
        out.contains("approved by the user on their computer"),
        "{out}"
    );
    assert_eq!(
        resolved(&events),
        vec![ApprovalResolvedPayload {
            request_id: id.clone(),
            allow: true,
            reason: "approved from your computer".into(),
        }]
    );
    let again = s.ctl_answer(&["approve", &id]).await;
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains(&format!(
            "request {id} was already answered: approved from your computer"
        )),
        "{}",
        stderr(&again)
    );

    // Denied with a reason the runner is given.
    let (sid, req) = s.ask().await;
    let denied = s
        .ctl_answer(&["deny", &req.request_id, "--reason", "use make check"])
        .await;
    assert!(denied.status.success(), "{}", stderr(&denied));
    assert!(
        stdout(&denied).starts_with("Denied request"),
        "{}",
        stdout(&denied)
    );
    let (events, _) = s.wait_done(&sid).await;
    let out = chunks(&events);
    assert!(out.contains(r#""permissionDecision":"deny""#), "{out}");
    assert!(
        out.contains("denied by the user on their computer: use make check; do not retry it"),
        "{out}"
    );
    assert_eq!(
        resolved(&events)[0].reason,
        "denied from your computer: use make check"
    );

    // Answered on the phone first: the computer is told who won.
    let (sid, req) = s.ask().await;
    s.phone(&sid, &req.request_id, true).await;
    let (events, _) = s.wait_done(&sid).await;
    assert_eq!(resolved(&events)[0].reason, "approved from the phone");
    let late = s.ctl_answer(&["deny", &req.request_id]).await;
    assert_eq!(late.status.code(), Some(1));
    assert!(
        stderr(&late).contains("was already answered: approved from the phone"),
        "{}",
        stderr(&late)
    );

    // An id nobody asked with.
    let unknown = s.ctl_answer(&["approve", "nosuch1"]).await;
    assert_eq!(unknown.status.code(), Some(4));
    assert!(
        stderr(&unknown).contains("no approval request nosuch1 is waiting"),
        "{}",
        stderr(&unknown)
    );
}
