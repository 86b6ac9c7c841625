//! Codex's approvals from the phone, the whole way: the daemon runs `codex
//! app-server` (a fake, `remoteagentd/tests/fixtures/fake-codex/codex`,
//! speaking the protocol of the recorded schema), answers its
//! `item/commandExecution/requestApproval` through the same session
//! approvals as Claude Code's hook, and the fake runs a command only when
//! the answer was `accept`. What ran is checked on disk (the commands write
//! files in the project), on the phone and in the session log.
//!
//! [`World::start`] and [`World::ask`] are meant for more Codex tests
//! (rules, dangerous commands): a world with the fake codex paired as
//! `app`, and a prompt sent up to its first approval request.

use std::path::PathBuf;
use std::time::Duration;

use remoteagent_e2e::Stack;
use remoteagent_testkit::telegram::{FakeMessage, updates};
use remoteagent_testkit::{RedisServer, wait_for};

pub(crate) const OWNER: i64 = 1001;
const WAIT: Duration = Duration::from_secs(30);

pub(crate) struct World {
    stack: Stack,
    /// The project folder of `app`, where the fake runs its commands.
    pub(crate) project: PathBuf,
}

remoteagent_e2e::derefs_to_stack!(World);

impl World {
    /// The stack (its daemon reading `config` besides the defaults), with
    /// the fake `codex` installed and a project `app` paired with
    /// `--runner codex`.
    pub(crate) async fn start(config: &str) -> World {
        let stack = Stack::start_on(RedisServer::start().unwrap(), None, config)
            .await
            .unwrap();
        let fake_codex = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../remoteagentd/tests/fixtures/fake-codex/codex");
        stack.home.install_tool("codex", &fake_codex).unwrap();
        let project = stack.home.project("app").unwrap();
        let (mut ctl, code) = stack
            .home
            .start_pairing("pair-app", &project, &["--runner", "codex"])
            .await;
        stack.cloud.say(OWNER, &format!("/pair {code}")).await;
        let exit = ctl.wait(WAIT).await.unwrap();
        assert_eq!(exit, Some(0), "pair failed:\n{}", ctl.output());
        World { stack, project }
    }

    /// Sends `prompt` (the fake's actions, one a line: `Bash <command>`,
    /// `Write <path> <text>`, `Say <text>`) and waits for the approval
    /// request whose text contains `what`.
    pub(crate) async fn ask(&self, prompt: &str, what: &str) -> FakeMessage {
        self.cloud.say(OWNER, prompt).await;
        self.wait_request(what).await
    }

    /// The approval request (a message with Approve and Deny buttons) that
    /// shows `what`.
    pub(crate) async fn wait_request(&self, what: &str) -> FakeMessage {
        self.wait_message(&format!("asking about {what:?}"), |m| {
            m.text.contains(what) && button(m, "approve:").is_some() && button(m, "deny:").is_some()
        })
        .await
    }

    /// Waits for a message that satisfies `pred`.
    pub(crate) async fn wait_message(
        &self,
        what: &str,
        pred: impl Fn(&FakeMessage) -> bool,
    ) -> FakeMessage {
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

    /// The owner presses the button of `message` whose callback data
    /// starts with `prefix` (`approve:`, `deny:`).
    pub(crate) async fn press(&self, message: &FakeMessage, prefix: &str) {
        let data =
            button(message, prefix).unwrap_or_else(|| panic!("no {prefix} button on {message:#?}"));
        let update = updates::callback(
            self.cloud.update_id(),
            OWNER,
            OWNER,
            message.message_id,
            &data,
        );
        self.cloud.deliver(&update).await;
    }

    /// Waits until `n` runs of `app` have ended well.
    pub(crate) async fn wait_runs_finished(&self, n: usize) {
        let found = wait_for(WAIT, || {
            let done = self
                .texts(OWNER)
                .iter()
                .filter(|t| t.starts_with("✅ app finished"))
                .count();
            async move { (done >= n).then_some(()) }
        })
        .await;
        assert!(
            found.is_some(),
            "{n} runs did not finish: {:#?}\n{}",
            self.texts(OWNER),
            self.logs()
        );
    }

    /// `remoteagentctl logs app`: the last run's session log.
    pub(crate) fn session_log(&self) -> String {
        let out = tokio::task::block_in_place(|| self.home.ctl(&["logs", "app"]).unwrap());
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The callback data of `message`'s button that starts with `prefix`.
fn button(message: &FakeMessage, prefix: &str) -> Option<String> {
    message
        .reply_markup
        .as_ref()?
        .get("inline_keyboard")?
        .as_array()?
        .iter()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .filter_map(|b| b.get("callback_data")?.as_str().map(str::to_string))
        .find(|d| d.starts_with(prefix))
}

/// A Codex command approval reaches the phone as a request; ✅ runs it
/// (its output streams back), ⛔ keeps it from running; the session log
/// shows both; the next prompt resumes the same Codex thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_asks_the_phone_before_running_a_command() {
    let w = World::start("").await;
    let request = w
        .ask(
            "Bash echo approved-output | tee approved.txt\nBash touch denied.txt",
            "echo approved-output",
        )
        .await;
    assert!(
        request.text.starts_with("🔐 app asks to run:"),
        "{request:#?}"
    );
    assert!(
        !w.project.join("approved.txt").exists(),
        "ran before it was approved"
    );
    w.press(&request, "approve:").await;

    // Approved: it ran, and its output is on the phone.
    // The output may land on the next page: the second request can break
    // the page before the command's output arrives.
    w.wait_message("with the approved command's output", |m| {
        m.text.lines().any(|l| l.trim() == "approved-output")
    })
    .await;
    let shown = w.texts(OWNER).join("\n");
    assert!(shown.contains("▸ $ echo approved-output"), "{shown}");
    assert_eq!(
        std::fs::read_to_string(w.project.join("approved.txt")).unwrap(),
        "approved-output\n"
    );

    // Denied: it did not run, and the output says so.
    let second = w.wait_request("touch denied.txt").await;
    w.press(&second, "deny:").await;
    w.wait_runs_finished(1).await;
    assert!(
        !w.project.join("denied.txt").exists(),
        "a denied command ran"
    );
    let texts = w.texts(OWNER).join("\n");
    assert!(
        texts.contains("▸ $ touch denied.txt\n  ✖ declined"),
        "{texts}"
    );

    // The session log shows both answers.
    let log = w.session_log();
    assert!(
        log.contains("allowed: Bash echo approved-output"),
        "no approval in the log:\n{log}"
    );
    assert!(
        log.contains("denied: Bash touch denied.txt"),
        "no denial in the log:\n{log}"
    );

    // The next prompt continues the same Codex thread.
    let started = texts
        .lines()
        .find_map(|l| l.trim().strip_prefix("new thread "))
        .unwrap_or_else(|| panic!("no thread announced: {texts}"))
        .to_string();
    w.cloud.say(OWNER, "Say once more").await;
    w.wait_runs_finished(2).await;
    w.wait_message("continuing the first thread", |m| {
        m.text.contains(&format!("continuing thread {started}")) && m.text.contains("once more")
    })
    .await;
}

/// /stop while Codex waits for an answer: the app-server's process group is
/// ended, the request is withdrawn, nothing of the prompt ran, and the run
/// ends as stopped from the phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_codex_while_it_waits_for_an_answer() {
    let w = World::start("").await;
    let request = w.ask("Bash touch never.txt", "touch never.txt").await;
    w.cloud.say(OWNER, "/stop").await;
    w.wait_message("saying the run was stopped", |m| {
        m.text.starts_with("⏹ app stopped by you (from the phone)")
    })
    .await;
    let withdrawn = w
        .wait_message("without the request's buttons", |m| {
            m.message_id == request.message_id && button(m, "approve:").is_none()
        })
        .await;
    assert!(withdrawn.text.contains("the run ended"), "{withdrawn:#?}");
    assert!(
        !w.project.join("never.txt").exists(),
        "a stopped run's command ran"
    );
    let log = w.session_log();
    assert!(
        log.contains("denied: Bash touch never.txt (the run ended)"),
        "{log}"
    );
}

/// A Codex file change is asked as a `Write` of the file: ✅ writes it, and
/// the output names it relative to the project.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_asks_the_phone_before_changing_a_file() {
    let w = World::start("").await;
    let request = w.ask("Write notes.txt hello there", "notes.txt").await;
    assert!(
        !w.project.join("notes.txt").exists(),
        "written before it was approved"
    );
    w.press(&request, "approve:").await;
    w.wait_runs_finished(1).await;
    assert_eq!(
        std::fs::read_to_string(w.project.join("notes.txt")).unwrap(),
        "hello there\n"
    );
    let texts = w.texts(OWNER).join("\n");
    assert!(texts.contains("▸ Add notes.txt"), "{texts}");
    let log = w.session_log();
    assert!(log.contains("allowed: Write "), "{log}");
}

/// A Codex command answered "this session" on the phone saves the rule the
/// daemon offered (`Bash(touch marker *)`): the next matching command runs
/// without a request (the session log says which rule allowed it), and a
/// chained one (`…; touch bad.txt`) is asked again — `*` never matches
/// `;` — and, denied, does not run. The same rules as Claude's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_rule_answers_codex_too_but_never_for_a_chained_command() {
    let w = World::start("").await;
    let first = w
        .ask(
            "Bash touch marker one.txt\nBash touch marker two.txt\nBash touch marker three.txt; touch bad.txt",
            "touch marker one.txt",
        )
        .await;
    assert!(
        first.text.contains("Bash(touch marker *)"),
        "no rule offered: {first:#?}"
    );
    let session_scope = scoped_button(&first, ":s")
        .unwrap_or_else(|| panic!("no 'this session' button: {first:#?}"));
    let update = updates::callback(
        w.cloud.update_id(),
        OWNER,
        OWNER,
        first.message_id,
        &session_scope,
    );
    w.cloud.deliver(&update).await;

    // The chained command is asked; the matching one before it was not.
    let chained = w.wait_request("touch bad.txt").await;
    assert!(
        w.project.join("one.txt").exists(),
        "the approved command did not run"
    );
    assert!(
        w.project.join("two.txt").exists(),
        "the command the rule allows did not run"
    );
    let asked_for_two =
        w.tg.messages(OWNER)
            .iter()
            .any(|m| m.text.contains("touch marker two.txt") && button(m, "approve:").is_some());
    assert!(!asked_for_two, "a command the rule allows was asked about");
    assert!(
        scoped_button(&chained, ":s").is_none(),
        "a rule was offered for a chained command: {chained:#?}"
    );
    w.press(&chained, "deny:").await;
    w.wait_runs_finished(1).await;
    assert!(
        !w.project.join("bad.txt").exists(),
        "a denied chained command ran"
    );
    let log = w.session_log();
    assert!(
        log.contains("auto-allowed by rule 1: Bash(touch marker *)"),
        "no auto-allow in the log:\n{log}"
    );
    assert!(
        log.contains("denied: Bash touch marker three.txt; touch bad.txt"),
        "no denial in the log:\n{log}"
    );
}

/// The callback data of `message`'s approve button whose data ends with
/// `scope` (`:s` this session, `:a` always here).
fn scoped_button(message: &FakeMessage, scope: &str) -> Option<String> {
    message
        .reply_markup
        .as_ref()?
        .get("inline_keyboard")?
        .as_array()?
        .iter()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .filter_map(|b| b.get("callback_data")?.as_str().map(str::to_string))
        .find(|d| d.starts_with("approve:") && d.ends_with(scope))
}
