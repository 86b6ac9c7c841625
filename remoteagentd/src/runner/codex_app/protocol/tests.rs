//! The daemon's side of the protocol against the schema a real Codex
//! printed (`tests/fixtures/codex-app/schema-*.json`) and a real
//! transcript of it.

use serde_json::{Value, json};

use super::*;
use crate::runner::text::test_support::fixture;

const SCHEMA: &str = "codex-app/schema-0.171.0.json";

fn schema() -> Value {
    serde_json::from_str(&fixture(SCHEMA)).unwrap()
}

fn def<'a>(schema: &'a Value, name: &str) -> &'a Value {
    schema["definitions"]
        .get(name)
        .unwrap_or_else(|| panic!("the schema has no {name}"))
}

fn names(schema: &Value, list: &str) -> Vec<String> {
    serde_json::from_value(schema[list].clone()).unwrap()
}

/// Every member of `ours` is a property of `name`, and every property
/// `name` requires is there.
fn conforms(schema: &Value, name: &str, ours: &Value) {
    let d = def(schema, name);
    let props = d["properties"].as_object().unwrap();
    let ours = ours.as_object().unwrap();
    for key in ours.keys() {
        assert!(props.contains_key(key), "{name} has no property {key}");
    }
    for key in d["required"].as_array().into_iter().flatten() {
        let key = key.as_str().unwrap();
        assert!(ours.contains_key(key), "{name} requires {key}: {ours:?}");
    }
}

/// The string values a definition allows (its `enum`, or those of its
/// `oneOf` branches).
fn values(d: &Value) -> Vec<String> {
    let mut out: Vec<String> = d["enum"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    for branch in d["oneOf"].as_array().into_iter().flatten() {
        out.extend(values(branch));
    }
    out
}

/// The properties we read of `name` are in the schema.
fn reads(schema: &Value, name: &str, fields: &[&str]) {
    let props = def(schema, name)["properties"].as_object().unwrap();
    for field in fields {
        assert!(props.contains_key(*field), "{name} has no property {field}");
    }
}

/// The branch of a `oneOf` whose `type` is `kind`.
fn branch<'a>(d: &'a Value, kind: &str) -> &'a Value {
    d["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["properties"]["type"]["enum"][0] == kind)
        .unwrap_or_else(|| panic!("no {kind} branch"))
}

#[test]
fn the_schema_is_of_a_known_codex() {
    let s = schema();
    assert_eq!(s["codexVersion"], "0.171.0");
}

#[test]
fn method_names_are_the_servers() {
    let s = schema();
    let client = names(&s, "clientRequests");
    for m in [INITIALIZE, THREAD_START, THREAD_RESUME, TURN_START] {
        assert!(client.iter().any(|c| c == m), "no client request {m}");
    }
    assert!(names(&s, "clientNotifications").contains(&INITIALIZED.to_string()));
    let asks = names(&s, "serverRequests");
    for m in [COMMAND_APPROVAL, FILE_CHANGE_APPROVAL] {
        assert!(asks.iter().any(|c| c == m), "no server request {m}");
    }
    let told = names(&s, "serverNotifications");
    for m in [
        THREAD_STARTED,
        TURN_COMPLETED,
        ITEM_STARTED,
        ITEM_COMPLETED,
        COMMAND_OUTPUT_DELTA,
        ERROR,
    ] {
        assert!(told.iter().any(|c| c == m), "no server notification {m}");
    }
}

#[test]
fn what_the_daemon_sends_fits_the_schema() {
    let s = schema();
    let init = serde_json::to_value(InitializeParams::daemon()).unwrap();
    conforms(&s, "InitializeParams", &init);
    conforms(&s, "ClientInfo", &init["clientInfo"]);
    let start = serde_json::to_value(ThreadStartParams {
        cwd: "/p".into(),
        approval_policy: AskForApproval::Untrusted,
        sandbox: "workspace-write".into(),
    })
    .unwrap();
    conforms(&s, "ThreadStartParams", &start);
    let resume = serde_json::to_value(ThreadResumeParams {
        thread_id: "t".into(),
        cwd: "/p".into(),
        approval_policy: AskForApproval::OnRequest,
        sandbox: "read-only".into(),
    })
    .unwrap();
    conforms(&s, "ThreadResumeParams", &resume);
    let turn = serde_json::to_value(TurnStartParams {
        thread_id: "t".into(),
        input: vec![UserInput::Text { text: "hi".into() }],
    })
    .unwrap();
    conforms(&s, "TurnStartParams", &turn);
    let text = branch(def(&s, "UserInput"), "text");
    let ours = turn["input"][0].as_object().unwrap();
    for key in ours.keys() {
        assert!(
            text["properties"].get(key).is_some(),
            "UserInput has no {key}"
        );
    }

    // Enumerations: our names are among the schema's.
    let policies = values(def(&s, "AskForApproval"));
    for p in [
        AskForApproval::Untrusted,
        AskForApproval::OnRequest,
        AskForApproval::Never,
    ] {
        let name = serde_json::to_value(p).unwrap();
        assert!(
            policies.contains(&name.as_str().unwrap().to_string()),
            "{name}"
        );
    }
    let sandboxes = values(def(&s, "SandboxMode"));
    for sandbox in [
        crate::runner::Sandbox::ReadOnly,
        crate::runner::Sandbox::WorkspaceWrite,
        crate::runner::Sandbox::FullAccess,
    ] {
        assert!(sandboxes.contains(&sandbox.codex_name().to_string()));
    }
    for (response, decisions) in [
        (
            "CommandExecutionRequestApprovalResponse",
            "CommandExecutionApprovalDecision",
        ),
        (
            "FileChangeRequestApprovalResponse",
            "FileChangeApprovalDecision",
        ),
    ] {
        let allowed = values(def(&s, decisions));
        for decision in [ApprovalDecision::Accept, ApprovalDecision::Decline] {
            let answer = serde_json::to_value(ApprovalResponse { decision }).unwrap();
            conforms(&s, response, &answer);
            let name = answer["decision"].as_str().unwrap().to_string();
            assert!(allowed.contains(&name), "{decisions} has no {name}");
        }
    }
}

#[test]
fn what_the_daemon_reads_is_in_the_schema() {
    let s = schema();
    reads(
        &s,
        "CommandExecutionRequestApprovalParams",
        &["itemId", "command", "cwd", "reason"],
    );
    reads(
        &s,
        "FileChangeRequestApprovalParams",
        &["itemId", "reason", "grantRoot"],
    );
    reads(&s, "FileUpdateChange", &["path", "kind", "diff"]);
    let update = branch(def(&s, "PatchChangeKind"), "update");
    assert!(update["properties"].get("move_path").is_some());
    reads(&s, "ThreadStartResponse", &["thread"]);
    reads(&s, "ThreadResumeResponse", &["thread"]);
    reads(&s, "Thread", &["id"]);
    reads(&s, "ItemStartedNotification", &["item"]);
    reads(&s, "ItemCompletedNotification", &["item"]);
    reads(
        &s,
        "CommandExecutionOutputDeltaNotification",
        &["itemId", "delta"],
    );
    reads(&s, "TurnCompletedNotification", &["turn"]);
    reads(&s, "Turn", &["status", "error"]);
    reads(&s, "TurnError", &["message"]);
    reads(&s, "ErrorNotification", &["error", "willRetry"]);
    let statuses = values(def(&s, "TurnStatus"));
    for status in ["completed", "failed", "interrupted"] {
        assert!(statuses.contains(&status.to_string()), "{status}");
    }
    let item = def(&s, "ThreadItem");
    for (kind, fields) in [
        ("agentMessage", &["id", "text"][..]),
        (
            "commandExecution",
            &["id", "command", "aggregatedOutput", "exitCode", "status"][..],
        ),
        ("fileChange", &["id", "changes", "status"][..]),
        ("mcpToolCall", &["server", "tool", "status", "error"][..]),
        ("webSearch", &["query"][..]),
    ] {
        let b = branch(item, kind);
        for field in fields {
            assert!(
                b["properties"].get(*field).is_some(),
                "{kind} has no {field}"
            );
        }
    }
    for status in ["declined", "failed", "completed"] {
        assert!(values(def(&s, "CommandExecutionStatus")).contains(&status.to_string()));
        assert!(values(def(&s, "PatchApplyStatus")).contains(&status.to_string()));
    }
}

#[test]
fn a_real_transcript_reads() {
    let transcript = fixture("codex-app/transcript-0.171.0.jsonl");
    let mut thread = None;
    let mut notifications = Vec::new();
    for line in transcript.lines() {
        let entry: Value = serde_json::from_str(line).unwrap();
        let msg = entry["msg"].to_string();
        let parsed = Incoming::parse(&msg).unwrap_or_else(|| panic!("unreadable: {msg}"));
        if entry["dir"] == "client" {
            continue;
        }
        match parsed {
            Incoming::Response { id, result } if id == json!(2) => {
                let r: ThreadResult = serde_json::from_value(result.unwrap()).unwrap();
                thread = Some(r.thread.id);
            }
            Incoming::Response { result, .. } => assert!(result.is_ok()),
            Incoming::Notification { method, .. } => notifications.push(method),
            Incoming::Request { method, .. } => panic!("unexpected request {method}"),
        }
    }
    assert_eq!(
        thread.as_deref(),
        Some("01a23838-3704-7532-84c0-90a223aecd5f")
    );
    let known = names(&schema(), "serverNotifications");
    for method in &notifications {
        assert!(known.contains(method), "{method} is not in the schema");
    }
    assert!(notifications.iter().any(|m| m == ITEM_STARTED));
}

#[test]
fn lines_are_read_leniently() {
    assert_eq!(
        Incoming::parse(r#"{"id":7,"error":{"code":-32600,"message":"no such thread"}}"#),
        Some(Incoming::Response {
            id: json!(7),
            result: Err(RpcError {
                code: -32600,
                message: "no such thread".into()
            })
        })
    );
    assert!(matches!(
        Incoming::parse(r#"{"method":"x/y","params":{"a":1},"emittedAtMs":1}"#),
        Some(Incoming::Notification { .. })
    ));
    assert_eq!(Incoming::parse("Reading config…"), None);
    assert_eq!(Incoming::parse(r#"{"result":1}"#), None);
    let line = request(3, TURN_START, &json!({"threadId": "t"}));
    assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
}
