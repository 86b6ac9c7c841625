//! Scoped answers and `/rules`, the whole way: Claude Code (the fake that
//! runs its real PreToolUse hook, `remoteagentd approval-hook`) asks for a
//! Bash command; the request offers the rule the daemon derived
//! (`Bash(cargo test *)`) as ✅ … this session / ✅ … always here; a press
//! saves it in the daemon, and later matching tool uses run without
//! asking (the fake prints `ran: …`, the session log says "auto-allowed by
//! rule N"), while a command the rule does not cover is asked again.
//! An "always" rule survives a daemon restart and is revoked from
//! `/rules`.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use remoteagent_e2e::{Daemon, Stack};
use remoteagent_testkit::telegram::{FakeMessage, updates};
use remoteagent_testkit::{RedisServer, wait_for};

const OWNER: i64 = 1001;
const WAIT: Duration = Duration::from_secs(30);

struct World {
    stack: Stack,
}

remoteagent_e2e::derefs_to_stack!(World);

impl World {
    /// The default policy (ask), the fake Claude Code as `claude`, and
    /// the project `app` paired with `--runner claude`.
    async fn start() -> World {
        let stack = Stack::start_on(RedisServer::start().unwrap(), None, "")
            .await
            .unwrap();
        let fake_claude = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../remoteagentd/tests/fixtures/fake-claude/claude");
        stack.home.install_tool("claude", &fake_claude).unwrap();
        let w = World { stack };
        let project = w.home.project("app").unwrap();
        let (mut ctl, code) = w
            .home
            .start_pairing("pair-app", &project, &["--runner", "claude"])
            .await;
        w.cloud.say(OWNER, &format!("/pair {code}")).await;
        let exit = ctl.wait(WAIT).await.unwrap();
        assert_eq!(exit, Some(0), "pair failed:\n{}", ctl.output());
        w
    }

    async fn wait_message(&self, what: &str, pred: impl Fn(&FakeMessage) -> bool) -> FakeMessage {
        let found = wait_for(WAIT, || {
            let hit = self.tg.messages(OWNER).into_iter().find(|m| pred(m));
            async move { hit }
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "no message {what}; messages: {:#?}\n{}",
                self.texts(OWNER),
                self.logs()
            )
        })
    }

    /// An approval request for `command` (with its buttons).
    async fn request_for(&self, command: &str) -> FakeMessage {
        self.wait_message(&format!("asking for {command:?}"), |m| {
            m.text.contains("asks to run") && m.text.contains(command) && has_button(m, "⛔ Deny")
        })
        .await
    }

    fn requests_for(&self, command: &str) -> usize {
        self.tg
            .messages(OWNER)
            .iter()
            .filter(|m| m.text.contains("asks to run") && m.text.contains(command))
            .count()
    }

    /// Presses the button of `message` whose text is `text`; returns the
    /// text the bot answered the press with.
    async fn press(&self, message: &FakeMessage, text: &str) -> String {
        let data = buttons(message)
            .into_iter()
            .find(|(t, _)| t == text)
            .unwrap_or_else(|| panic!("no button {text:?} on {message:#?}"))
            .1;
        assert!(data.len() <= 64, "{data}");
        let before = self.tg.calls_of("answerCallbackQuery").len();
        let update = updates::callback(
            self.cloud.update_id(),
            OWNER,
            OWNER,
            message.message_id,
            &data,
        );
        self.cloud.deliver(&update).await;
        let answered = wait_for(WAIT, || {
            let calls = self.tg.calls_of("answerCallbackQuery");
            async move {
                calls
                    .get(before)
                    .map(|c| c.body["text"].as_str().unwrap_or("").to_string())
            }
        })
        .await;
        answered.unwrap_or_else(|| panic!("the press of {text:?} was never answered"))
    }

    async fn wait_output(&self, needle: &str) {
        let found = wait_for(WAIT, || {
            let hit = self.texts(OWNER).iter().any(|t| t.contains(needle));
            async move { hit.then_some(()) }
        })
        .await;
        assert!(
            found.is_some(),
            "no output {needle:?}: {:#?}\n{}",
            self.texts(OWNER),
            self.logs()
        );
    }

    /// Waits until the agent is online and runs nothing.
    async fn wait_idle(&self) {
        let idle = wait_for(WAIT, || {
            let out = self.home.ctl(&["--json", "list"]).unwrap();
            let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let idle = list[0]["running_session"].is_null() && list[0]["online"] == true;
            async move { idle.then_some(()) }
        })
        .await;
        assert!(idle.is_some(), "the agent stayed busy\n{}", self.logs());
    }

    /// The agent's session logs as `remoteagentctl logs` prints them.
    fn session_logs(&self) -> String {
        let out = tokio::task::block_in_place(|| self.home.ctl(&["logs", "app"]).unwrap());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// (text, callback data) of every inline button of `message`.
fn buttons(message: &FakeMessage) -> Vec<(String, String)> {
    let Some(rows) = message
        .reply_markup
        .as_ref()
        .and_then(|k| k.get("inline_keyboard"))
        .and_then(|k| k.as_array())
    else {
        return Vec::new();
    };
    rows.iter()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .filter_map(|b| {
            Some((
                b.get("text")?.as_str()?.to_string(),
                b.get("callback_data")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

fn has_button(message: &FakeMessage, text: &str) -> bool {
    buttons(message).iter().any(|(t, _)| t == text)
}

/// "This session": the next matching command runs unasked, the chained
/// one is asked again (and denied: it never runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_rule_allows_matching_commands_and_asks_for_others() {
    let w = World::start().await;
    w.cloud
        .say(
            OWNER,
            "Bash cargo test -p x\nBash cargo test --lib\nBash cargo test; rm -rf ~",
        )
        .await;
    let first = w.request_for("cargo test -p x").await;
    assert!(
        first.text.contains("Rule offered: Bash(cargo test *)"),
        "{first:#?}"
    );
    assert!(has_button(&first, "✅ Once"), "{first:#?}");
    assert!(
        has_button(&first, "✅ cargo test * always here"),
        "{first:#?}"
    );
    let toast = w.press(&first, "✅ cargo test * this session").await;
    assert_eq!(toast, "Saved: Bash(cargo test *) for app, this session");

    // The chained command is asked again, with no rule to offer.
    let chained = w.request_for("cargo test; rm -rf ~").await;
    assert_eq!(
        buttons(&chained)
            .iter()
            .filter(|(t, _)| t.starts_with('✅'))
            .count(),
        1,
        "only ✅ Once: {chained:#?}"
    );
    w.press(&chained, "⛔ Deny").await;
    w.wait_output("ran: cargo test -p x").await;
    w.wait_output("ran: cargo test --lib").await;
    w.wait_output("denied: denied by the user on their phone")
        .await;
    w.wait_idle().await;
    assert_eq!(
        w.requests_for("cargo test --lib"),
        0,
        "asked although a rule allows it"
    );
    assert!(
        !w.texts(OWNER)
            .iter()
            .any(|t| t.contains("ran: cargo test; rm")),
        "{:#?}",
        w.texts(OWNER)
    );
    let first = w.tg.message(OWNER, first.message_id).unwrap();
    assert!(
        first
            .text
            .contains("saved rule 1: Bash(cargo test *), this session"),
        "{first:#?}"
    );
    let logs = w.session_logs();
    assert!(
        logs.contains("auto-allowed by rule 1: Bash(cargo test *)"),
        "{logs}"
    );
    assert!(
        logs.contains("approval") && logs.contains("cargo test; rm -rf ~"),
        "{logs}"
    );
}

/// "Always here": kept in the daemon's config directory (0600, not in the
/// project), used after a daemon restart, listed and revoked by `/rules`,
/// and asked again once revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_always_rule_survives_a_restart_and_is_revoked_from_rules() {
    let mut w = World::start().await;
    w.cloud.say(OWNER, "Bash cargo build --release").await;
    let first = w.request_for("cargo build --release").await;
    let toast = w.press(&first, "✅ cargo build * always here").await;
    assert_eq!(toast, "Saved: Bash(cargo build *) for app, always here");
    w.wait_output("ran: cargo build --release").await;
    w.wait_idle().await;

    let rules_dir = w.home.path().join("config/remoteagent/rules");
    let files: Vec<_> = std::fs::read_dir(&rules_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        std::fs::read_to_string(&files[0])
            .unwrap()
            .contains("Bash(cargo build *)")
    );

    // A restart: the rule is read back from the file.
    let code = w.stack.daemon.proc.stop().await.unwrap();
    assert_eq!(code, Some(0));
    w.stack.daemon = Daemon::start(&w.home).await.unwrap();
    w.wait_idle().await;
    w.cloud.say(OWNER, "Bash cargo build --lib").await;
    w.wait_output("ran: cargo build --lib").await;
    w.wait_idle().await;
    assert_eq!(w.requests_for("cargo build --lib"), 0);
    assert!(
        w.session_logs()
            .contains("auto-allowed by rule 1: Bash(cargo build *)"),
        "{}",
        w.session_logs()
    );

    // The computer sees the same rule, and counts what it allowed.
    let local = tokio::task::block_in_place(|| w.home.ctl(&["rules", "app"]).unwrap());
    let local = String::from_utf8_lossy(&local.stdout).into_owned();
    assert!(
        local.contains("1  Bash(cargo build *)  (always here, 1 use)"),
        "{local}"
    );
    let status = tokio::task::block_in_place(|| w.home.ctl(&["status"]).unwrap());
    assert!(
        String::from_utf8_lossy(&status.stdout)
            .contains("rules:    1 tool use allowed without asking"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );

    // /rules lists it; 🗑 Revoke removes it.
    w.cloud.say(OWNER, "/rules").await;
    let list = w
        .wait_message("listing the rules", |m| {
            m.text.contains("Approval rules of app") && has_button(m, "🗑 Revoke 1")
        })
        .await;
    assert!(
        list.text
            .contains("1. Bash(cargo build *) · always here · 1 use allowed"),
        "{list:#?}"
    );
    w.press(&list, "🗑 Revoke 1").await;
    w.wait_message("saying it was revoked", |m| {
        m.text.contains("Revoked rule 1: Bash(cargo build *)")
            && m.text.contains("has no approval rules")
    })
    .await;
    assert!(
        !std::fs::read_to_string(&files[0])
            .unwrap()
            .contains("cargo build")
    );

    // Asked again; saved for this session, then revoked from the computer.
    w.cloud.say(OWNER, "Bash cargo build --lib").await;
    let again = w.request_for("cargo build --lib").await;
    w.press(&again, "✅ cargo build * this session").await;
    w.wait_output("ran: cargo build --lib").await;
    w.wait_idle().await;
    let revoked =
        tokio::task::block_in_place(|| w.home.ctl(&["rules", "app", "--revoke", "2"]).unwrap());
    let revoked = String::from_utf8_lossy(&revoked.stdout).into_owned();
    assert!(
        revoked.contains("Revoked rule 2: Bash(cargo build *)")
            && revoked.contains("app has no approval rules."),
        "{revoked}"
    );
}
