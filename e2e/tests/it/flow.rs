//! The whole path on one machine, the way a user meets it: the real cloud,
//! daemon and CLI, real Redis (a private server with ACL users, as in
//! production), the cloud on SQLite and on PostgreSQL, and a fake Telegram
//! Bot API receiving what the bot sends. Updates are shaped exactly like
//! Telegram's webhook deliveries.

use std::time::Duration;

use nix::sys::signal::Signal;
use remoteagent_e2e::{Daemon, PgDatabase, Stack, fixture};
use remoteagent_testkit::telegram::updates;
use remoteagent_testkit::{RedisServer, wait_for};

const OWNER: i64 = 1001;
const STRANGER: i64 = 2002;
const WAIT: Duration = Duration::from_secs(30);
/// How `/agents` marks an agent whose presence key lives, and one whose does not.
const ONLINE: &str = "🟢";
const OFFLINE: &str = "⚪";

struct World {
    // Field order is drop order: the stack before its database.
    stack: Stack,
    _pg: Option<PgDatabase>,
}

remoteagent_e2e::derefs_to_stack!(World);

impl World {
    async fn start(postgres: bool) -> World {
        World::start_with(postgres, "").await
    }

    /// A world whose daemon reads `config` (TOML) besides the defaults.
    async fn start_with(postgres: bool, config: &str) -> World {
        let pg = if postgres {
            Some(PgDatabase::create().unwrap())
        } else {
            None
        };
        let stack = Stack::start_on(
            RedisServer::start().unwrap(),
            pg.as_ref().map(|p| p.url.as_str()),
            config,
        )
        .await
        .unwrap();
        World { stack, _pg: pg }
    }

    fn update_id(&self) -> i64 {
        self.cloud.update_id()
    }

    /// The user `user` types `text` in their private chat with the bot.
    async fn say(&self, user: i64, text: &str) {
        self.cloud.say(user, text).await;
    }

    /// Waits until some message in `chat` satisfies `pred`; returns it.
    async fn wait_text(&self, chat: i64, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let found = wait_for(WAIT, || {
            let texts = self.texts(chat);
            let hit = texts.into_iter().find(|t| pred(t));
            async move { hit }
        })
        .await;
        match found {
            Some(t) => t,
            None => panic!(
                "no message in chat {chat} {what}; messages: {:#?}\ncloud:\n{}\ndaemon:\n{}",
                self.texts(chat),
                self.cloud.proc.tail(40),
                self.daemon.proc.tail(40)
            ),
        }
    }

    /// `remoteagentctl pair` a new project with `runner`, confirmed by
    /// `user` sending `/pair CODE` to the bot. Returns the project's name.
    async fn pair(&self, name: &str, runner: &str, user: i64) -> String {
        let runner = fixture(runner);
        self.pair_with(name, &["--command", runner.to_str().unwrap()], user)
            .await
    }

    /// Like [`World::pair`], with `remoteagentctl pair` options of its own
    /// (`--runner claude`).
    async fn pair_with(&self, name: &str, options: &[&str], user: i64) -> String {
        let project = self.home.project(name).unwrap();
        let (mut ctl, code) = self
            .home
            .start_pairing(&format!("pair-{name}"), &project, options)
            .await;
        // Typed the way people type: lower case, with a stray space.
        self.say(user, &format!("/pair  {}", code.to_lowercase()))
            .await;
        let exit = ctl.wait(WAIT).await.unwrap();
        assert_eq!(exit, Some(0), "pair failed:\n{}", ctl.output());
        assert!(
            ctl.output().to_lowercase().contains("paired"),
            "{}",
            ctl.output()
        );
        name.to_string()
    }

    fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.home.ctl(args).unwrap();
        assert!(
            out.status.success(),
            "remoteagentctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn agents_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.ctl_ok(&["list", "--json"])).unwrap()
    }

    /// Waits for the ping that starts with `start`: the run's end sent as
    /// a new message (Telegram notifies on it, not on edits), a reply to
    /// the output message, which shows the status and has no Stop button
    /// left. Returns (the ping, the output message). The ping is checked
    /// to be the only one of its run: sent once.
    async fn wait_ping(
        &self,
        chat: i64,
        start: &str,
    ) -> (
        remoteagent_testkit::telegram::FakeMessage,
        remoteagent_testkit::telegram::FakeMessage,
    ) {
        self.wait_text(chat, &format!("starting {start:?}"), |t| {
            t.starts_with(start)
        })
        .await;
        let messages = self.tg.messages(chat);
        let pings: Vec<_> = messages
            .iter()
            .filter(|m| m.text.starts_with(start))
            .collect();
        assert_eq!(pings.len(), 1, "{messages:#?}");
        let ping = pings[0].clone();
        let output_id = ping.reply_to.expect("the ping is not a reply");
        let output = self
            .tg
            .message(chat, output_id)
            .expect("its output message");
        assert_eq!(
            output.reply_markup, None,
            "a Stop button is left: {output:#?}"
        );
        let sent = self
            .tg
            .calls_of("sendMessage")
            .into_iter()
            .filter(|c| c.ok() && c.response["result"]["message_id"] == ping.message_id)
            .collect::<Vec<_>>();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].reply_to_message_id(), Some(output_id));
        (ping, output)
    }
}

fn expected_answer(prompt: &str) -> String {
    format!(
        "Looking at the project for: {prompt}\nFound 3 files.\nPlan:\n  1. read <main.rs> & tests\n  2. fix — done ✓\nFinished.\n"
    )
}

async fn prompt_streams_back(w: &World, agent: &str) {
    let prompt = "fix the failing test; don't touch $(HOME)";
    w.say(OWNER, prompt).await;
    let final_text = w
        .wait_text(OWNER, "with the finished answer", |t| {
            t.contains("Finished.") && t.contains("done")
        })
        .await;
    // The whole answer, exactly, with the HTML-sensitive characters intact.
    assert!(
        final_text.contains(expected_answer(prompt).trim_end()),
        "answer not delivered whole: {final_text:?}"
    );
    // It arrived as edits of the placeholder, not as one message per line.
    assert!(
        !w.tg.calls_of("editMessageText").is_empty(),
        "no edits were made"
    );
    // Then the end came as a new message, so that the phone notifies.
    let (ping, output) = w.wait_ping(OWNER, &format!("✅ {agent} finished in")).await;
    assert!(output.text.contains("Finished."), "{output:#?}");
    assert!(output.text.contains("✅ done in"), "{output:#?}");
    assert!(
        ping.text
            .strip_prefix(&format!("✅ {agent} finished in "))
            .is_some_and(|t| t.ends_with('s')),
        "{ping:#?}"
    );
}

async fn full_flow(postgres: bool) {
    let w = World::start(postgres).await;
    let name = w.pair("webapp", "answer.sh", OWNER).await;

    // remoteagentctl sees the paired agent online.
    let agents = w.agents_json();
    let agent = &agents.as_array().unwrap()[0];
    assert_eq!(agent["name"], name);
    assert_eq!(agent["online"], true);

    // The bot confirmed the pairing to the user.
    w.wait_text(OWNER, "confirming the pairing", |t| t.contains(&name))
        .await;

    prompt_streams_back(&w, &name).await;

    // /agents shows it online.
    w.say(OWNER, "/agents").await;
    w.wait_text(OWNER, "listing the agent online", |t| {
        t.lines()
            .any(|l| l.contains(&name) && l.starts_with(ONLINE))
    })
    .await;

    // Someone else cannot command it: they are told how to pair their own
    // machine, and nothing reaches the owner's agent. The owner's next
    // prompt, answered in full, comes after anything the stranger's could
    // have started: then exactly two sessions ran, both the owner's.
    w.say(STRANGER, "rm -rf /").await;
    w.wait_text(STRANGER, "guiding the stranger to pairing", |t| {
        t.contains("/pair") || t.to_lowercase().contains("pair")
    })
    .await;
    w.say(OWNER, "a second question").await;
    w.wait_text(OWNER, "answering the owner's second prompt", |t| {
        t.contains("Looking at the project for: a second question") && t.contains("Finished.")
    })
    .await;
    assert!(
        !w.texts(OWNER).iter().any(|t| t.contains("rm -rf /")),
        "the stranger's prompt reached the owner's chat: {:#?}",
        w.texts(OWNER)
    );
    let sessions_dir = w
        .home
        .path()
        .join("state/remoteagent/logs")
        .join(agent["id"].as_str().unwrap());
    let logs = std::fs::read_dir(&sessions_dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))
        })
        .count();
    assert_eq!(
        logs, 2,
        "a session of the stranger's ran on the owner's machine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_on_sqlite() {
    full_flow(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_on_postgres() {
    full_flow(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_aborts_a_long_run() {
    let w = World::start(false).await;
    w.pair("slow", "long.sh", OWNER).await;
    w.say(OWNER, "run the long job").await;
    w.wait_text(OWNER, "showing the job running", |t| t.contains("tick 3"))
        .await;
    w.say(OWNER, "/stop").await;
    let text = w
        .wait_text(OWNER, "with the aborted status", |t| {
            t.contains("tick") && t.to_lowercase().contains("aborted")
        })
        .await;
    assert!(!text.contains("long job finished"), "{text}");
    // The end comes as a new message too, saying who stopped the run.
    let (_, output) = w
        .wait_ping(OWNER, "⏹ slow stopped by you (from the phone)")
        .await;
    assert!(output.text.contains("⏹ aborted"), "{output:#?}");
    // The agent is free again for the next prompt.
    let agents = w.agents_json();
    assert!(agents[0]["running_session"].is_null(), "{agents}");

    // Stopped from the computer this time.
    w.say(OWNER, "run the long job again").await;
    let second = wait_for(WAIT, || {
        let runs: Vec<String> = w
            .texts(OWNER)
            .into_iter()
            .filter(|t| t.starts_with("starting a long job"))
            .collect();
        async move { (runs.len() == 2 && runs[1].contains("tick 3")).then_some(()) }
    })
    .await;
    assert!(
        second.is_some(),
        "the second job never ran: {:#?}",
        w.texts(OWNER)
    );
    let out = w.ctl_ok(&["stop", "slow"]);
    assert!(!out.is_empty());
    let (_, output) = w
        .wait_ping(OWNER, "⏹ slow stopped by you (from your computer)")
        .await;
    assert!(output.text.contains("⏹ aborted"), "{output:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projects_run_at_once_without_mixing() {
    let w = World::start(false).await;
    w.pair("alpha", "answer.sh", OWNER).await;
    w.pair("beta", "answer.sh", OWNER).await;
    w.say(OWNER, "/use alpha").await;
    w.say(OWNER, "question for alpha").await;
    w.say(OWNER, "/use beta").await;
    w.say(OWNER, "question for beta").await;
    for project in ["alpha", "beta"] {
        let text = w
            .wait_text(OWNER, &format!("with {project}'s answer"), |t| {
                t.contains(&format!("question for {project}")) && t.contains("Finished.")
            })
            .await;
        let other = if project == "alpha" { "beta" } else { "alpha" };
        assert!(
            !text.contains(&format!("question for {other}")),
            "outputs mixed: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpair_from_telegram_revokes_redis_access() {
    let w = World::start(false).await;
    let name = w.pair("gone", "answer.sh", OWNER).await;
    let agents = w.agents_json();
    let id = agents[0]["id"].as_str().unwrap().to_string();
    let acl_user = remoteagent_proto::names::agent_redis_user(
        &remoteagent_proto::AgentId::parse(id.clone()).unwrap(),
    );
    let mut admin = remoteagent_testkit::redis_conn(&w.redis.url()).await;
    let users: Vec<String> = redis::cmd("ACL")
        .arg("USERS")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(users.contains(&acl_user), "{users:?}");

    w.say(OWNER, &format!("/unpair {name}")).await;
    let gone = wait_for(WAIT, || {
        let mut admin = admin.clone();
        let acl_user = acl_user.clone();
        async move {
            let users: Vec<String> = redis::cmd("ACL")
                .arg("USERS")
                .query_async(&mut admin)
                .await
                .ok()?;
            (!users.contains(&acl_user)).then_some(())
        }
    })
    .await;
    assert!(gone.is_some(), "ACL user still exists");
    // The daemon forgot the agent too.
    let forgotten = wait_for(WAIT, || {
        let n = w.agents_json().as_array().map(|a| a.len());
        async move { (n == Some(0)).then_some(()) }
    })
    .await;
    assert!(
        forgotten.is_some(),
        "daemon still lists {}",
        w.agents_json()
    );
    // A prompt now gets told there is no agent, not a silent nothing.
    w.say(OWNER, "are you there?").await;
    w.wait_text(OWNER, "saying there is no agent", |t| {
        t.to_lowercase().contains("pair")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_goes_offline_when_the_daemon_stops_and_returns_after_sigkill_restart() {
    let mut w = World::start(false).await;
    let name = w.pair("svc", "answer.sh", OWNER).await;

    // SIGKILL: no clean-up at all. A new daemon picks the agent up again.
    w.daemon.proc.signal(Signal::SIGKILL);
    w.daemon.proc.wait(WAIT).await.unwrap();
    w.daemon = Daemon::start(&w.home).await.unwrap();
    let online = wait_for(WAIT, || {
        let agents = w.agents_json();
        async move { (agents[0]["online"] == true).then_some(()) }
    })
    .await;
    assert!(
        online.is_some(),
        "agent not back online: {}",
        w.agents_json()
    );
    prompt_streams_back(&w, &name).await;

    // A clean stop: /agents reports it offline (within the presence TTL).
    let code = w.daemon.proc.stop().await.unwrap();
    assert_eq!(code, Some(0));
    let offline = wait_for(WAIT, || async {
        // Each try waits for the bot's answer to it, not for a while.
        let before = w.tg.messages(OWNER).len();
        w.say(OWNER, "/agents").await;
        w.tg.wait_for_messages(OWNER, |m| m.len() > before, WAIT)
            .await;
        w.texts(OWNER)
            .iter()
            .any(|t| {
                t.lines()
                    .any(|l| l.contains(&name) && l.starts_with(OFFLINE))
            })
            .then_some(())
    })
    .await;
    assert!(
        offline.is_some(),
        "never shown offline: {:#?}",
        w.texts(OWNER)
    );
    // And a prompt to an offline agent is answered at once.
    let before = w.tg.messages(OWNER).len();
    w.say(OWNER, "hello?").await;
    let answered = wait_for(WAIT, || {
        let texts = w.texts(OWNER);
        async move {
            texts
                .get(before..)
                .and_then(|new| new.iter().find(|t| t.contains("is offline")).cloned())
        }
    })
    .await;
    assert!(
        answered.is_some(),
        "no offline answer: {:#?}",
        w.texts(OWNER)
    );
}

/// The inline button of a message whose callback data starts with `prefix`.
fn button(message: &remoteagent_testkit::telegram::FakeMessage, prefix: &str) -> Option<String> {
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

impl World {
    /// Waits for a message in `chat` that shows an approval request whose
    /// text contains `what`, with its Approve button; returns (message id,
    /// approve data, deny data).
    async fn wait_approval(&self, chat: i64, what: &str) -> (i64, String, String) {
        let found = wait_for(WAIT, || {
            let hit = self.tg.messages(chat).into_iter().find_map(|m| {
                let approve = button(&m, "approve:")?;
                let deny = button(&m, "deny:")?;
                m.text
                    .contains(what)
                    .then_some((m.message_id, approve, deny))
            });
            async move { hit }
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "no approval request for {what:?} with buttons; messages: {:#?}\ndaemon:\n{}",
                self.tg.messages(chat),
                self.daemon.proc.tail(40)
            )
        })
    }

    async fn press(&self, user: i64, chat: i64, message_id: i64, data: &str) {
        let update = updates::callback(self.update_id(), user, chat, message_id, data);
        let status = self.cloud.update(&update).await.unwrap();
        assert_eq!(status, 200, "webhook answered {status}");
    }
}

/// Tool approval from the phone, the whole way: Claude Code (a fake that
/// speaks its stream-json and runs its PreToolUse hook) asks to run two
/// commands; the request shows up with Approve / Deny buttons; a stranger's
/// press is refused; the owner's Approve reaches the runner, which runs the
/// command; the second request is left unanswered and denied when the
/// configured timeout passes, and the session still finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_approval_from_the_phone() {
    let w = World::start_with(false, "[approval]\ntimeout_secs = 4\n").await;
    let fake_claude = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../remoteagentd/tests/fixtures/fake-claude/claude");
    w.home.install_tool("claude", &fake_claude).unwrap();
    w.pair_with("app", &["--runner", "claude"], OWNER).await;

    w.say(OWNER, "Bash cargo test\nBash rm -rf build").await;
    let (message, approve, deny) = w.wait_approval(OWNER, "cargo test").await;
    assert!(approve.len() <= 64 && deny.len() <= 64, "{approve} {deny}");
    // The request names the agent that asks.
    let request = w.tg.message(OWNER, message).unwrap();
    assert!(
        request.text.starts_with("🔐 app asks to run:\ncargo test"),
        "{request:#?}"
    );

    // Someone else's press (a forwarded message, a guessed callback) does
    // nothing: the runner is still waiting.
    let answered = w.tg.calls_of("answerCallbackQuery").len();
    w.press(STRANGER, OWNER, message, &approve).await;
    // The bot answers the press once it has decided; wait for that answer.
    let decided = wait_for(WAIT, || {
        let n = w.tg.calls_of("answerCallbackQuery").len();
        async move { (n > answered).then_some(()) }
    })
    .await;
    assert!(decided.is_some(), "the stranger's press was never answered");
    assert!(
        !w.texts(OWNER).iter().any(|t| t.contains("ran: cargo test")),
        "a stranger's press ran the command: {:#?}",
        w.texts(OWNER)
    );

    // The owner approves: the runner gets "allow" and runs it.
    w.press(OWNER, OWNER, message, &approve).await;
    w.wait_text(OWNER, "showing the approved command ran", |t| {
        t.contains("ran: cargo test")
    })
    .await;
    // The request's buttons are gone, so it cannot be answered twice.
    let shown = w.tg.message(OWNER, message).unwrap();
    assert!(button(&shown, "approve:").is_none(), "{shown:#?}");
    assert!(shown.text.to_lowercase().contains("approved"), "{shown:#?}");
    // Once resolved, it says who answered.
    let verdict = wait_for(WAIT, || {
        let m = w.tg.message(OWNER, message);
        async move { m.filter(|m| m.text.ends_with("✅ approved from the phone")) }
    })
    .await;
    assert!(verdict.is_some(), "{:#?}", w.tg.message(OWNER, message));

    // The second request is not answered: denied after 4 s, and said so.
    let (second, _, _) = w.wait_approval(OWNER, "rm -rf build").await;
    let finished = w
        .wait_text(OWNER, "with the timed-out denial and the end", |t| {
            t.contains("denied:") && t.contains("done")
        })
        .await;
    assert!(
        finished.contains("no answer in 4 s"),
        "the runner was not told why: {finished}"
    );
    assert!(!finished.contains("ran: rm -rf build"), "{finished}");
    let resolved = wait_for(WAIT, || {
        let m = w.tg.message(OWNER, second);
        async move { m.filter(|m| button(m, "deny:").is_none()) }
    })
    .await
    .expect("the timed-out request kept its buttons");
    assert!(resolved.text.contains("no answer in 4 s"), "{resolved:#?}");
    // The end, with the turns and cost Claude Code reported.
    let (ping, _) = w.wait_ping(OWNER, "✅ app finished in").await;
    assert!(ping.text.ends_with(" · 1 turn · $0.00"), "{ping:#?}");
}

/// Tool approval answered from the computer: the request the phone shows is
/// listed by `remoteagentctl approvals` and approved there; the runner runs
/// the command, and the phone's approval message loses its buttons and says
/// who answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_approval_from_the_computer() {
    let w = World::start_with(false, "").await;
    let fake_claude = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../remoteagentd/tests/fixtures/fake-claude/claude");
    w.home.install_tool("claude", &fake_claude).unwrap();
    w.pair_with("app", &["--runner", "claude"], OWNER).await;

    w.say(OWNER, "Bash make deploy").await;
    let (message, _, deny) = w.wait_approval(OWNER, "make deploy").await;
    let listed: serde_json::Value = serde_json::from_str(&tokio::task::block_in_place(|| {
        w.ctl_ok(&["approvals", "--json"])
    }))
    .unwrap();
    assert_eq!(listed[0]["tool"], "Bash", "{listed}");
    let id = listed[0]["request_id"].as_str().unwrap().to_string();
    let approved = tokio::task::block_in_place(|| w.ctl_ok(&["approve", &id]));
    assert!(approved.starts_with("Approved request"), "{approved}");

    w.wait_text(OWNER, "showing the approved command ran", |t| {
        t.contains("ran: make deploy")
    })
    .await;
    let shown = wait_for(WAIT, || {
        let m = w.tg.message(OWNER, message);
        async move { m.filter(|m| m.text.ends_with("✅ approved from your computer")) }
    })
    .await;
    let shown = shown.unwrap_or_else(|| panic!("{:#?}", w.tg.message(OWNER, message)));
    assert!(button(&shown, "approve:").is_none(), "{shown:#?}");

    // The first answer won: a later press of the phone's Deny (a stale
    // button, as a slow phone sends it) is told so and changes nothing.
    let before = w.tg.calls_of("answerCallbackQuery").len();
    w.press(OWNER, OWNER, message, &deny).await;
    let toast = wait_for(WAIT, || {
        let calls = w.tg.calls_of("answerCallbackQuery");
        async move {
            calls
                .get(before)
                .map(|c| c.body["text"].as_str().unwrap_or("").to_string())
        }
    })
    .await
    .unwrap_or_else(|| panic!("the late press was never answered"));
    assert_eq!(toast, "That request is unknown or was already answered.");
    let after = w.tg.message(OWNER, message).unwrap();
    assert!(
        after.text.ends_with("✅ approved from your computer"),
        "{after:#?}"
    );
    let log = tokio::task::block_in_place(|| w.ctl_ok(&["logs", "app"]));
    assert!(!log.contains("denied: Bash make deploy"), "{log}");
}

/// `git` in `dir`, which must succeed; returns its stdout, trimmed.
fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Dangerous uses always ask (issue 17): under `policy = "allow"` a
/// harmless command runs without asking, while `git push --force` is asked
/// on the phone, marked ⚠️ with the reason, even though the policy allows
/// everything. Denied, it does not run: the real remote keeps its commit.
/// The session log says why it asked and how it ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_force_push_asks_even_under_allow() {
    let w = World::start_with(false, "[approval]\npolicy = \"allow\"\n").await;
    let fake_claude = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../remoteagentd/tests/fixtures/fake-claude/claude");
    w.home.install_tool("claude", &fake_claude).unwrap();
    w.pair_with("app", &["--runner", "claude"], OWNER).await;

    // A real repository with a real remote, whose history the push would
    // rewrite: the local commit was amended after it was pushed.
    let project = w.home.project("app").unwrap();
    let remote = project.parent().unwrap().join("remote.git");
    git(
        project.parent().unwrap(),
        &["init", "-q", "--bare", "remote.git"],
    );
    git(&project, &["init", "-q", "-b", "main"]);
    std::fs::write(project.join("a.txt"), "one\n").unwrap();
    git(&project, &["add", "a.txt"]);
    git(&project, &["commit", "-q", "-m", "one"]);
    git(
        &project,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    git(&project, &["push", "-q", "origin", "main"]);
    let pushed = git(&remote, &["rev-parse", "main"]);
    git(&project, &["commit", "-q", "--amend", "-m", "rewritten"]);
    std::fs::write(project.join(".fake-claude-exec"), "").unwrap();

    w.say(
        OWNER,
        "Bash touch harmless.txt\nBash git push --force origin main",
    )
    .await;
    let (message, _, deny) = w.wait_approval(OWNER, "git push --force").await;
    let request = w.tg.message(OWNER, message).unwrap();
    assert!(
        request.text.starts_with(
            "⚠️ Dangerous: force-pushes with git, which can overwrite commits on the remote\n🔐 app asks to run:\ngit push --force origin main\nin the project folder\n"
        ),
        "{request:#?}"
    );
    // The harmless command ran under `allow` without asking.
    assert!(project.join("harmless.txt").exists());
    assert!(
        !w.texts(OWNER)
            .iter()
            .any(|t| t.contains("asks to run:\ntouch")),
        "{:#?}",
        w.texts(OWNER)
    );

    w.press(OWNER, OWNER, message, &deny).await;
    let finished = w
        .wait_text(OWNER, "with the denial and the end", |t| {
            t.contains("denied:") && t.contains("done")
        })
        .await;
    assert!(!finished.contains("ran: git push"), "{finished}");
    let (_, _) = w.wait_ping(OWNER, "✅ app finished in").await;
    // From the runner's side: the remote still has the commit it had.
    assert_eq!(git(&remote, &["rev-parse", "main"]), pushed);

    let log = w.ctl_ok(&["logs", "app"]);
    assert!(
        log.contains("approval: Bash touch harmless.txt: allowed by this project's policy"),
        "{log}"
    );
    assert!(
        log.contains(
            "asked: Bash git push --force origin main (⚠️ force-pushes with git, which can overwrite commits on the remote)"
        ),
        "{log}"
    );
    assert!(
        log.contains("denied: Bash git push --force origin main (denied from the phone)"),
        "{log}"
    );
}
