//! `/mode` the whole way: the phone's choice is stored by the real cloud,
//! sent in the signed command, clamped by the real daemon to this
//! computer's approval policy and rendered into Claude Code's argv (a
//! fixture `claude` records its arguments in the project); the run's mode
//! ends the output's status line, and a clamp is said in words.

use std::path::{Path, PathBuf};
use std::time::Duration;

use remoteagent_e2e::{Stack, fixture};
use remoteagent_testkit::{RedisServer, wait_for};

const OWNER: i64 = 1001;
const WAIT: Duration = Duration::from_secs(30);
const CLAMPED: &str = "app runs in ask mode: this computer's policy does not allow auto from the phone (allow_remote_loosen)";

struct World {
    stack: Stack,
    project: PathBuf,
}

remoteagent_e2e::derefs_to_stack!(World);

impl World {
    /// The default policy (`ask`), and the project `app` run by the
    /// fixture `claude` (`--runner claude`).
    async fn start() -> World {
        let stack = Stack::start_on(RedisServer::start().unwrap(), None, "")
            .await
            .unwrap();
        stack
            .home
            .install_tool("claude", &fixture("claude-argv"))
            .unwrap();
        let project = stack.home.project("app").unwrap();
        let (mut ctl, code) = stack
            .home
            .start_pairing("pair-app", &project, &["--runner", "claude"])
            .await;
        stack.cloud.say(OWNER, &format!("/pair {code}")).await;
        let exit = ctl.wait(WAIT).await.unwrap();
        assert_eq!(exit, Some(0), "pair failed:\n{}", ctl.output());
        World { stack, project }
    }

    /// Waits until some message of the owner's chat satisfies `pred`.
    async fn wait_text(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let found = wait_for(WAIT, || {
            let hit = self.texts(OWNER).into_iter().find(|t| pred(t));
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

    /// Sends `prompt` and waits for its run to end with a status line
    /// that ends in `footer`, and for the agent to be idle again; returns
    /// the output message and the argv the runner got.
    async fn run(&self, prompt: &str, footer: &str) -> (String, Vec<String>) {
        let runs = argv_lines(&self.project).len();
        self.cloud.say(OWNER, prompt).await;
        let output = self
            .wait_text(&format!("ending with {footer:?}"), |t| {
                t.contains("permission mode: ") && t.ends_with(footer) && self.runs() > runs
            })
            .await;
        let idle = wait_for(WAIT, || {
            let out = self.home.ctl(&["--json", "list"]).unwrap();
            let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let idle = list[0]["running_session"].is_null() && list[0]["online"] == true;
            async move { idle.then_some(()) }
        })
        .await;
        assert!(idle.is_some(), "the agent stayed busy\n{}", self.logs());
        let argv = argv_lines(&self.project);
        assert_eq!(argv.len(), runs + 1, "one run, one argv: {argv:#?}");
        (output, argv[runs].clone())
    }

    fn runs(&self) -> usize {
        argv_lines(&self.project).len()
    }

    async fn say_and_wait(&self, text: &str, answer: &str) {
        self.cloud.say(OWNER, text).await;
        self.wait_text(&format!("answering {text:?}"), |t| t.contains(answer))
            .await;
    }
}

/// Each run's arguments, as the fixture recorded them.
fn argv_lines(project: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(project.join("argv.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `flag value` appear in `argv` one after the other.
fn has_pair(argv: &[String], flag: &str, value: &str) -> bool {
    argv.windows(2).any(|w| w[0] == flag && w[1] == value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mode_plan_reaches_the_argv_and_a_looser_mode_is_clamped() {
    let w = World::start().await;

    // `/mode plan`, then a prompt: Claude Code is started in plan mode,
    // still with the approval hook, and the status line says so.
    w.say_and_wait(
        "/mode plan",
        "app runs in plan mode from the next prompt on",
    )
    .await;
    let (output, argv) = w.run("make a plan", " · plan mode").await;
    assert!(has_pair(&argv, "--permission-mode", "plan"), "{argv:?}");
    assert!(
        argv.iter().any(|a| a == "--settings"),
        "the hook is kept: {argv:?}"
    );
    assert!(output.contains("permission mode: plan"), "{output}");
    assert!(!output.contains(CLAMPED), "{output}");

    // `auto` is looser than this computer's policy (`ask`) and the config
    // does not allow loosening: the run is in ask mode and says why.
    w.say_and_wait(
        "/mode auto",
        "app runs in auto mode from the next prompt on",
    )
    .await;
    let (output, argv) = w.run("do it all", " · ask mode").await;
    assert!(output.contains(CLAMPED), "{output}");
    assert!(
        !argv.iter().any(|a| a == "--permission-mode"),
        "ask mode takes the policy's hook alone: {argv:?}"
    );
    assert!(argv.iter().any(|a| a == "--settings"), "{argv:?}");
    // The local log says it too.
    let logs = tokio::task::block_in_place(|| w.home.ctl(&["logs", "app"]).unwrap());
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains(CLAMPED),
        "{}",
        String::from_utf8_lossy(&logs.stdout)
    );

    // The computer allows loosening for this project: `edits` is taken as
    // it is, with no notice.
    w.home
        .add_config(&format!(
            "[[project]]\npath = \"{}\"\napproval = {{ allow_remote_loosen = true }}\n",
            w.project.display()
        ))
        .unwrap();
    let reload = tokio::task::block_in_place(|| w.home.ctl(&["reload"]).unwrap());
    assert!(
        reload.status.success(),
        "{}",
        String::from_utf8_lossy(&reload.stderr)
    );
    w.say_and_wait(
        "/mode edits",
        "app runs in edits mode from the next prompt on",
    )
    .await;
    let (output, argv) = w.run("fix the typo", " · edits mode").await;
    assert!(
        has_pair(&argv, "--permission-mode", "acceptEdits"),
        "{argv:?}"
    );
    assert!(output.contains("permission mode: acceptEdits"), "{output}");
    assert!(!output.contains("runs in ask mode"), "{output}");

    // A custom command takes no modes: its daemon says so in its
    // presence, and `/mode` says so once.
    w.pair_project(OWNER, "plain", "answer.sh", WAIT).await;
    w.say_and_wait(
        "/mode",
        "plain runs a custom command (or Aider or Gemini): modes have no effect on it",
    )
    .await;
}
