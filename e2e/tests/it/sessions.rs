//! Sessions, end to end (issue 16, item 2): a Claude Code stand-in that
//! reports session ids like Claude's stream-json (and records its argv)
//! runs two prompts in two sessions; `/sessions` lists both from the
//! daemon, newest first, without ids; ▶ Resume on the older one makes the
//! next prompt continue it — its id is in the runner's argv — and
//! `remoteagentctl sessions` shows the same list with the command that
//! continues each session in a terminal.

use std::path::{Path, PathBuf};
use std::time::Duration;

use remoteagent_e2e::Stack;
use remoteagent_testkit::telegram::{FakeMessage, updates};
use remoteagent_testkit::{RedisServer, wait_for};

const OWNER: i64 = 4004;
const STRANGER: i64 = 4005;
const WAIT: Duration = Duration::from_secs(30);

struct World {
    stack: Stack,
}

remoteagent_e2e::derefs_to_stack!(World);

impl World {
    async fn start() -> World {
        let stack = Stack::start_on(RedisServer::start().unwrap(), None, "")
            .await
            .unwrap();
        World { stack }
    }

    /// Pairs project `name` run by Claude Code (the stand-in); its folder.
    async fn pair_claude(&self, name: &str) -> PathBuf {
        let fake =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sessions-claude/claude");
        self.home.install_tool("claude", &fake).unwrap();
        let project = self.home.project(name).unwrap();
        let (mut ctl, code) = self
            .home
            .start_pairing(&format!("pair-{name}"), &project, &["--runner", "claude"])
            .await;
        self.cloud.say(OWNER, &format!("/pair {code}")).await;
        let exit = ctl.wait(WAIT).await.unwrap();
        assert_eq!(exit, Some(0), "pair failed:\n{}", ctl.output());
        project
    }

    /// Waits for a message in the owner's chat that `pred` accepts.
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

    /// Sends a prompt and waits for its run's end (the `n`th ping).
    async fn run(&self, prompt: &str, n: usize) {
        self.cloud.say(OWNER, prompt).await;
        let ended = wait_for(WAIT, || {
            let pings = self
                .texts(OWNER)
                .into_iter()
                .filter(|t| t.starts_with("✅ hello finished"))
                .count();
            async move { (pings >= n).then_some(()) }
        })
        .await;
        assert!(
            ended.is_some(),
            "run {n} did not end; messages: {:#?}\n{}",
            self.texts(OWNER),
            self.logs()
        );
    }

    async fn press(&self, user: i64, message: i64, data: &str) {
        let update = updates::callback(self.cloud.update_id(), user, OWNER, message, data);
        assert_eq!(self.cloud.update(&update).await.unwrap(), 200);
    }

    fn ctl(&self, args: &[&str]) -> String {
        let out = tokio::task::block_in_place(|| self.home.ctl(args).unwrap());
        assert!(
            out.status.success(),
            "remoteagentctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The runs the stand-in recorded: (argv, the session it reported).
fn runs(project: &Path) -> Vec<(Vec<String>, String)> {
    std::fs::read_to_string(project.join("argv.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let argv = v["argv"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect();
            (argv, v["session"].as_str().unwrap().to_string())
        })
        .collect()
}

/// The callback data of the buttons of `m`, in order.
fn buttons(m: &FakeMessage) -> Vec<(String, String)> {
    let Some(rows) = m
        .reply_markup
        .as_ref()
        .and_then(|k| k.get("inline_keyboard"))
        .and_then(|k| k.as_array())
    else {
        return Vec::new();
    };
    rows.iter()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .map(|b| {
            (
                b["text"].as_str().unwrap_or_default().to_string(),
                b["callback_data"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_picks_the_older_session() {
    let w = World::start().await;
    let project = w.pair_claude("hello").await;

    // Two runs in two sessions.
    w.run("first prompt alpha", 1).await;
    w.cloud.say(OWNER, "/new").await;
    w.wait_message("confirming /new", |m| {
        m.text.contains("next prompt to hello starts a new session")
    })
    .await;
    w.run("second prompt beta", 2).await;
    let recorded = runs(&project);
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    let (older, newer) = (recorded[0].1.clone(), recorded[1].1.clone());
    assert_ne!(older, newer);
    assert!(
        !recorded[1].0.contains(&"--resume".to_string()),
        "{recorded:?}"
    );

    // `/sessions` lists both, newest first, with a Resume button each.
    w.cloud.say(OWNER, "/sessions").await;
    let list = w
        .wait_message("listing the sessions", |m| {
            m.text.starts_with("🗂 Sessions of hello")
        })
        .await;
    let text = &list.text;
    let (alpha, beta) = (
        text.find("first prompt alpha").expect(text),
        text.find("second prompt beta").expect(text),
    );
    assert!(beta < alpha, "not newest first: {text}");
    assert!(text.contains("1 run · 2 turns · $0.05"), "{text}");
    assert!(
        !text.contains(&older) && !text.contains(&newer),
        "raw ids shown: {text}"
    );
    let keys = buttons(&list);
    assert_eq!(
        keys.iter().map(|b| b.0.as_str()).collect::<Vec<_>>(),
        ["▶ Resume 1", "▶ Resume 2"],
        "{list:#?}"
    );
    let resume_older = &keys[1].1;
    assert!(
        resume_older.len() <= 64 && !resume_older.contains(&older),
        "{resume_older}"
    );

    // A stranger's press chooses nothing.
    w.press(STRANGER, list.message_id, resume_older).await;
    let refused = wait_for(WAIT, || {
        let hit = w.tg.calls_of("answerCallbackQuery").into_iter().find(|c| {
            c.body["text"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Only the account")
        });
        async move { hit }
    })
    .await;
    assert!(
        refused.is_some(),
        "{:#?}",
        w.tg.calls_of("answerCallbackQuery")
    );

    // The owner resumes the older session: said in the chat, by name.
    w.press(OWNER, list.message_id, resume_older).await;
    w.wait_message("confirming the resume", |m| {
        m.text
            .starts_with("▶ Next prompt to hello continues the session from ")
            && m.text.ends_with(": “first prompt alpha”")
    })
    .await;

    // The next prompt continues it: its id is in the runner's argv.
    w.run("third prompt gamma", 3).await;
    let recorded = runs(&project);
    assert_eq!(recorded.len(), 3, "{recorded:?}");
    let argv = &recorded[2].0;
    let at = argv
        .iter()
        .position(|a| a == "--resume")
        .expect("no --resume");
    assert_eq!(argv[at + 1], older, "{argv:?}");
    assert!(!argv.contains(&"--continue".to_string()), "{argv:?}");

    // On the computer: the same sessions, the resumed one first now with
    // its two runs, and the commands that continue each in a terminal.
    let shown = w.ctl(&["sessions", "hello"]);
    let folder = std::fs::canonicalize(&project).unwrap();
    let folder = folder.to_str().unwrap();
    assert!(shown.starts_with("Sessions of hello in "), "{shown}");
    assert!(
        shown.contains("2 runs") && shown.contains("$0.10"),
        "{shown}"
    );
    assert!(shown.contains("“first prompt alpha”"), "{shown}");
    let first = format!("  #1  cd {folder} && claude --resume {older}");
    let second = format!("  #2  cd {folder} && claude --resume {newer}");
    assert!(shown.contains(&first), "{shown}\nwanted {first}");
    assert!(shown.contains(&second), "{shown}\nwanted {second}");
    let json: serde_json::Value =
        serde_json::from_str(&w.ctl(&["--json", "sessions", "hello"])).unwrap();
    assert_eq!(json["agent_name"], "hello", "{json}");
    assert_eq!(json["sessions"][0]["id"], older.as_str(), "{json}");
    assert_eq!(json["sessions"][0]["runs"], 2, "{json}");
    assert_eq!(
        json["sessions"][1]["firstPrompt"], "second prompt beta",
        "{json}"
    );

    // A later prompt simply continues the agent's last session; `/new`
    // after a Resume forgets the choice.
    w.cloud.say(OWNER, "/sessions").await;
    let again = wait_for(WAIT, || {
        let lists: Vec<_> =
            w.tg.messages(OWNER)
                .into_iter()
                .filter(|m| m.text.starts_with("🗂 Sessions of hello"))
                .collect();
        async move { lists.get(1).cloned() }
    })
    .await
    .expect("a second list");
    let newer_button = buttons(&again)[1].1.clone();
    w.press(OWNER, again.message_id, &newer_button).await;
    wait_for(WAIT, || {
        let n = w
            .texts(OWNER)
            .iter()
            .filter(|t| t.starts_with("▶ Next prompt to hello"))
            .count();
        async move { (n >= 2).then_some(()) }
    })
    .await
    .expect("the second resume was not confirmed");
    w.cloud.say(OWNER, "/new").await;
    w.run("fourth prompt delta", 4).await;
    let recorded = runs(&project);
    assert!(
        !recorded[3].0.contains(&"--resume".to_string()),
        "{recorded:?}"
    );
}
