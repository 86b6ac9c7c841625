//! The `PreToolUse` hook: how Claude Code is told to run it
//! ([`settings_json`], for `--settings`), and the hook itself ([`run`]), which is
//! `remoteagentd approval-hook --socket … --agent … --session …`.
//!
//! Claude Code runs the hook's command through a shell before every tool use,
//! writes the tool use as JSON on its stdin and reads the decision as JSON
//! from its stdout. The hook asks the daemon over the control socket and
//! prints what it answers. It fails closed: whatever goes wrong (no daemon,
//! bad input, no answer in time, a session that is not running) it prints a
//! DENY with the reason, and it always exits 0 so Claude reads that JSON.
//! Nothing else is ever written to stdout.
//!
//! No secret takes part: the socket path is not one, and the daemon checks
//! that the peer is our own user.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use remoteagent_control::codec::encode_line;
use remoteagent_control::{BlockingClient, BlockingError};
use remoteagent_proto::control::{
    ApprovalRequest, ClientMessage, MAX_LINE_BYTES, Request, Response,
};
use remoteagent_proto::{AgentId, SessionId};
use serde_json::{Value, json};

use super::Decision;

/// The daemon's subcommand that is the hook.
pub const SUBCOMMAND: &str = "approval-hook";
/// Claude's timeout for the hook is the approval timeout plus this.
pub const HOOK_SLACK_SECS: u64 = 30;
/// The hook gives up this long after the approval timeout, so that it still
/// prints its DENY before Claude's own timeout (which would fall back to
/// Claude's permission rules) kills it.
pub const CLIENT_SLACK_SECS: u64 = 20;
/// Largest hook input read from stdin.
pub const MAX_STDIN_BYTES: usize = 1024 * 1024;
/// Longest text kept per field when a huge tool input must be cut down to
/// fit one control-socket line.
const REDUCED_FIELD_CHARS: usize = 4096;

/// Where the hook finds the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookTarget {
    /// The daemon executable (absolute).
    pub program: PathBuf,
    /// The control socket.
    pub socket: PathBuf,
}

impl HookTarget {
    /// The running daemon's own executable, with `socket`.
    pub fn current(socket: PathBuf) -> std::io::Result<HookTarget> {
        Ok(HookTarget {
            program: running_executable(std::env::current_exe()?),
            socket,
        })
    }
}

/// Linux names an executable that was replaced while it ran (a package
/// upgrade) `/usr/bin/remoteagentd (deleted)`; the file now at the original
/// path is the one to run.
fn running_executable(path: PathBuf) -> PathBuf {
    match path.to_str().and_then(|p| p.strip_suffix(" (deleted)")) {
        Some(original) => PathBuf::from(original),
        None => path,
    }
}

/// `s` as one POSIX shell word: single quotes, each `'` written `'\''`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn utf8<'a>(path: &'a Path, what: &str) -> Result<&'a str, String> {
    path.to_str()
        .ok_or_else(|| format!("the {what} path {} is not UTF-8", path.display()))
}

/// The shell command Claude runs before each tool use.
pub fn hook_command(
    target: &HookTarget,
    agent: &AgentId,
    session: &SessionId,
    approval_timeout_secs: u64,
) -> Result<String, String> {
    let timeout = (approval_timeout_secs + CLIENT_SLACK_SECS).to_string();
    let words = [
        utf8(&target.program, "remoteagentd executable")?,
        SUBCOMMAND,
        "--socket",
        utf8(&target.socket, "control socket")?,
        "--agent",
        agent.as_str(),
        "--session",
        session.as_str(),
        "--timeout-secs",
        &timeout,
    ];
    Ok(words
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" "))
}

/// The `--settings` JSON that installs the hook for every tool.
pub fn settings_json(
    target: &HookTarget,
    agent: &AgentId,
    session: &SessionId,
    approval_timeout_secs: u64,
) -> Result<String, String> {
    let command = hook_command(target, agent, session, approval_timeout_secs)?;
    Ok(json!({
        "hooks": {
            "PreToolUse": [{
                "matcher": "*",
                "hooks": [{
                    "type": "command",
                    "command": command,
                    "timeout": approval_timeout_secs + HOOK_SLACK_SECS,
                }]
            }]
        }
    })
    .to_string())
}

/// The hook's command-line arguments.
#[derive(Debug, Clone)]
pub struct HookArgs {
    pub socket: PathBuf,
    pub agent: String,
    pub session: String,
    /// How long to wait for the daemon's decision in all.
    pub timeout_secs: u64,
}

/// Runs the hook: reads the tool use from `stdin`, asks the daemon, and
/// returns the one line of JSON to print (a DENY on any failure).
pub fn run(args: &HookArgs, stdin: impl Read) -> String {
    let decision = ask(args, stdin).unwrap_or_else(|reason| {
        Decision::deny(format!(
            "RemoteAgent could not get a decision, so this tool use is denied: {reason}"
        ))
    });
    decision_json(&decision)
}

/// Claude Code's `PreToolUse` output for a decision.
/// An allow may carry `updatedInput`: the tool's input with the user's
/// answers (see [`super::questions`]).
pub fn decision_json(decision: &Decision) -> String {
    let mut output = json!({
        "hookEventName": "PreToolUse",
        "permissionDecision": if decision.allow { "allow" } else { "deny" },
        "permissionDecisionReason": decision.reason,
    });
    if let (true, Some(input), Value::Object(fields)) =
        (decision.allow, &decision.updated_input, &mut output)
    {
        fields.insert("updatedInput".into(), input.clone());
    }
    json!({ "hookSpecificOutput": output }).to_string()
}

/// The tool use named by the hook's input: (tool, input).
fn parse_input(stdin: impl Read) -> Result<(String, Value, Option<String>), String> {
    let mut bytes = Vec::new();
    stdin
        .take(MAX_STDIN_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading the hook input: {e}"))?;
    if bytes.len() > MAX_STDIN_BYTES {
        return Err(format!(
            "the hook input is larger than {} MiB",
            MAX_STDIN_BYTES / (1024 * 1024)
        ));
    }
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("the hook input is not JSON: {e}"))?;
    if let Some(event) = value.get("hook_event_name").and_then(Value::as_str)
        && event != "PreToolUse"
    {
        return Err(format!("the hook ran for {event}, not PreToolUse"));
    }
    let tool = value
        .get("tool_name")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .ok_or("the hook input names no tool (tool_name)")?
        .to_string();
    let input = value.get("tool_input").cloned().unwrap_or(Value::Null);
    let cwd = value.get("cwd").and_then(Value::as_str).map(str::to_string);
    Ok((tool, input, cwd))
}

/// The request line; a tool input too large for one control-socket line is
/// cut down to the fields the policy and the summary use.
fn request_line(id: u64, request: ApprovalRequest) -> Result<Vec<u8>, String> {
    let encode = |request: ApprovalRequest| {
        encode_line(&ClientMessage {
            id,
            request: Request::Approval(request),
        })
        .map_err(|e| format!("encoding the request: {e}"))
    };
    let line = encode(request.clone())?;
    if line.len() <= MAX_LINE_BYTES {
        return Ok(line);
    }
    let ApprovalRequest {
        agent,
        session,
        tool,
        input,
        cwd,
    } = request;
    let mut reduced = serde_json::Map::new();
    if let Value::Object(fields) = &input {
        for (k, v) in fields {
            if let Some(s) = v.as_str() {
                let cut: String = s.chars().take(REDUCED_FIELD_CHARS).collect();
                reduced.insert(k.clone(), Value::String(cut));
            }
        }
    }
    // Said, so that no diff is made of the cut strings.
    reduced.insert(super::shown::INPUT_CUT.into(), Value::Bool(true));
    let line = encode(ApprovalRequest {
        agent,
        session,
        tool,
        input: Value::Object(reduced),
        cwd,
    })?;
    if line.len() > MAX_LINE_BYTES {
        return Err("the tool request is too large to ask about".into());
    }
    Ok(line)
}

/// The approval request's id (the client's `hello` has the one before).
const APPROVAL_ID: u64 = remoteagent_control::blocking::HELLO_ID + 1;

fn ask(args: &HookArgs, stdin: impl Read) -> Result<Decision, String> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs.max(1));
    let (tool, input, cwd) = parse_input(stdin)?;
    let agent = AgentId::parse(&args.agent).map_err(|e| format!("bad --agent: {e}"))?;
    let session = SessionId::parse(&args.session).map_err(|e| format!("bad --session: {e}"))?;

    let line = request_line(
        APPROVAL_ID,
        ApprovalRequest {
            agent,
            session,
            tool,
            input,
            cwd,
        },
    )?;
    // The owner check (another user's socket could answer "allow") and the
    // hello are the client's.
    let timed_out = || {
        format!(
            "no decision from remoteagentd within {} s",
            args.timeout_secs
        )
    };
    let failed = |e: BlockingError| match e {
        BlockingError::TimedOut => timed_out(),
        BlockingError::Closed => "remoteagentd closed the connection without a decision".into(),
        e => e.to_string(),
    };
    let mut client = BlockingClient::connect(&args.socket).map_err(failed)?;
    client.send_line(&line).map_err(failed)?;
    let reply = client.next_before(deadline).map_err(failed)?;
    if let Some(error) = reply.error {
        return Err(error.message);
    }
    match (reply.id, reply.data) {
        (
            APPROVAL_ID,
            Some(Response::ApprovalDecision {
                allow,
                reason,
                updated_input,
            }),
        ) => Ok(Decision {
            allow,
            reason,
            updated_input,
        }),
        (_, other) => Err(format!("remoteagentd answered unexpectedly: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(program: &str, socket: &str) -> HookTarget {
        HookTarget {
            program: program.into(),
            socket: socket.into(),
        }
    }

    /// Splits a shell command line into words with the real shell.
    fn shell_words(command: &str) -> Vec<String> {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                r#"for w in {command}; do printf '%s\0' "$w"; done"#
            ))
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .unwrap()
            .split_terminator('\0')
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn quoting_survives_the_shell() {
        for s in [
            "plain",
            "a b",
            "it's",
            "'",
            "''",
            "$(rm -rf ~)",
            "`id`",
            "a\"b\\c",
            "",
        ] {
            assert_eq!(shell_words(&shell_quote(s)), vec![s.to_string()], "{s:?}");
        }
    }

    #[test]
    fn the_hook_command_is_safe_with_odd_paths() {
        let t = target(
            "/opt/My Apps/it's/remoteagentd",
            "/run/user/1000/remote agent/$HOME/remoteagentd.sock",
        );
        let agent = AgentId::parse("agent_1").unwrap();
        let session = SessionId::parse("s-1").unwrap();
        let json = settings_json(&t, &agent, &session, 300).unwrap();
        let v: Value = serde_json::from_str(&json).unwrap();
        let hook = &v["hooks"]["PreToolUse"][0];
        assert_eq!(hook["matcher"], "*");
        assert_eq!(hook["hooks"][0]["type"], "command");
        assert_eq!(hook["hooks"][0]["timeout"], 330);
        let command = hook["hooks"][0]["command"].as_str().unwrap();
        assert_eq!(
            shell_words(command),
            vec![
                "/opt/My Apps/it's/remoteagentd",
                "approval-hook",
                "--socket",
                "/run/user/1000/remote agent/$HOME/remoteagentd.sock",
                "--agent",
                "agent_1",
                "--session",
                "s-1",
                "--timeout-secs",
                "320",
            ]
        );
    }

    #[test]
    fn non_utf8_paths_are_refused_not_mangled() {
        use std::os::unix::ffi::OsStrExt;
        let bad = PathBuf::from(std::ffi::OsStr::from_bytes(b"/tmp/\xff/remoteagentd"));
        let t = HookTarget {
            program: bad,
            socket: "/s".into(),
        };
        let err = settings_json(
            &t,
            &AgentId::parse("a").unwrap(),
            &SessionId::parse("s").unwrap(),
            1,
        )
        .unwrap_err();
        assert!(err.contains("not UTF-8"), "{err}");
    }

    #[test]
    fn a_replaced_executable_is_found_at_its_path() {
        assert_eq!(
            running_executable("/usr/bin/remoteagentd (deleted)".into()),
            PathBuf::from("/usr/bin/remoteagentd")
        );
        assert_eq!(
            running_executable("/usr/bin/remoteagentd".into()),
            PathBuf::from("/usr/bin/remoteagentd")
        );
    }

    fn decision_of(output: &str) -> (String, String) {
        let v: Value = serde_json::from_str(output).unwrap();
        let h = &v["hookSpecificOutput"];
        assert_eq!(h["hookEventName"], "PreToolUse");
        (
            h["permissionDecision"].as_str().unwrap().to_string(),
            h["permissionDecisionReason"].as_str().unwrap().to_string(),
        )
    }

    fn args(socket: &Path) -> HookArgs {
        HookArgs {
            socket: socket.to_path_buf(),
            agent: "a1".into(),
            session: "s1".into(),
            timeout_secs: 5,
        }
    }

    #[test]
    fn every_failure_is_a_deny() {
        let tmp = tempfile::tempdir().unwrap();
        let nowhere = tmp.path().join("none.sock");
        let input =
            r#"{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"ls"}}"#;
        let (d, reason) = decision_of(&run(&args(&nowhere), input.as_bytes()));
        assert_eq!(d, "deny");
        assert!(reason.contains("not reachable"), "{reason}");
        for (bad, says) in [
            ("not json", "not JSON"),
            (r#"{"tool_input":{}}"#, "names no tool"),
            (
                r#"{"hook_event_name":"PostToolUse","tool_name":"Bash"}"#,
                "PostToolUse",
            ),
        ] {
            let (d, reason) = decision_of(&run(&args(&nowhere), bad.as_bytes()));
            assert_eq!(d, "deny");
            assert!(reason.contains(says), "{reason}");
        }
        let huge = vec![b' '; MAX_STDIN_BYTES + 10];
        let (d, reason) = decision_of(&run(&args(&nowhere), &huge[..]));
        assert_eq!(d, "deny");
        assert!(reason.contains("larger"), "{reason}");
        let mut bad_id = args(&nowhere);
        bad_id.session = "../x".into();
        let (d, reason) = decision_of(&run(&bad_id, input.as_bytes()));
        assert_eq!(d, "deny");
        assert!(reason.contains("--session"), "{reason}");
    }

    #[test]
    fn a_silent_daemon_is_a_deny_after_the_timeout() {
        let tmp = tempfile::tempdir().unwrap();
        let sock = tmp.path().join("d.sock");
        // Accepts and reads, never answers.
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
        });
        let mut a = args(&sock);
        a.timeout_secs = 1;
        let input = r#"{"tool_name":"Bash","tool_input":{"command":"ls"}}"#;
        let (d, reason) = decision_of(&run(&a, input.as_bytes()));
        assert_eq!(d, "deny");
        assert!(reason.contains("within 1 s"), "{reason}");
        drop(server);
    }

    #[test]
    fn huge_inputs_are_cut_to_fit_a_line() {
        let request = ApprovalRequest {
            agent: AgentId::parse("a").unwrap(),
            session: SessionId::parse("s").unwrap(),
            tool: "Write".into(),
            input: json!({"file_path": "/p/big.txt", "content": "x".repeat(MAX_LINE_BYTES), "n": 1}),
            cwd: None,
        };
        let line = request_line(2, request).unwrap();
        assert!(line.len() <= MAX_LINE_BYTES);
        let m: ClientMessage = serde_json::from_slice(&line).unwrap();
        let Request::Approval(ApprovalRequest { input, .. }) = m.request else {
            panic!()
        };
        assert_eq!(input["file_path"], "/p/big.txt");
        assert_eq!(
            input["content"].as_str().unwrap().len(),
            REDUCED_FIELD_CHARS
        );
    }
}
