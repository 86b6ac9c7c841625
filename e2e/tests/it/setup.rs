//! `remoteagentctl setup` on a machine that has only the programs and a
//! Redis: the bot token in, a cloud in poll mode and the daemon out, then
//! pairing through the deep link's `/start CODE`, a prompt answered, and
//! `doctor` telling each part's state — and the fix when one breaks.
//!
//! The programs are the workspace's, or, when `REMOTEAGENT_E2E_BIN_DIR` is
//! set (`scripts/test` sets it to the `usr/bin` of the freshly built .deb),
//! the packaged ones: PATH holds that folder, the runner's and the system's
//! `/usr/bin:/bin`, nothing of the developer's machine.
//!
//! This machine has no systemd user session, so setup takes its "no
//! service manager" way: it starts the cloud and the daemon itself. The
//! login-service checks of `doctor` are warnings there, by design.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use remoteagent_e2e::doctor::{check, delete_agent_acl_user, report};
use remoteagent_e2e::{fixture, pairing_code};
use remoteagent_testkit::telegram::{BOT_USERNAME, FakeTelegram, updates};
use remoteagent_testkit::{RedisServer, free_port, wait_for};

const OWNER: i64 = 5005;
const WAIT: Duration = Duration::from_secs(60);

/// The folder the programs under test come from.
fn programs() -> PathBuf {
    match std::env::var_os("REMOTEAGENT_E2E_BIN_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => remoteagent_e2e::bin("remoteagentctl")
            .parent()
            .expect("the target dir")
            .to_path_buf(),
    }
}

/// A user's machine: a temporary HOME and a PATH of only the programs, a
/// `bin` for the runner, and the system's.
struct Machine {
    home: remoteagent_testkit::home::Home,
    programs: PathBuf,
    telegram_api: String,
}

impl Machine {
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.programs.join(program));
        cmd.env_clear();
        self.home.apply(&mut cmd);
        cmd.env(
            "PATH",
            format!(
                "{}:{}:/usr/bin:/bin",
                self.programs.display(),
                self.home.path().join("bin").display()
            ),
        );
        cmd.env("TELEGRAM_API_BASE", &self.telegram_api);
        cmd
    }

    fn ctl(&self, args: &[&str]) -> Output {
        self.command("remoteagentctl")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `remoteagentctl setup ARGS` with `stdin` piped in, as a user would
    /// (`remoteagentctl setup < token.txt`).
    fn setup(&self, stdin: &str, args: &[&str]) -> (Option<i32>, String) {
        use std::io::Write;
        let mut child = self
            .command("remoteagentctl")
            .arg("setup")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    }

    fn config(&self, name: &str) -> PathBuf {
        self.home.path().join("config/remoteagent").join(name)
    }

    fn cloud_pid(&self) -> Option<Pid> {
        let text =
            std::fs::read_to_string(self.home.path().join("state/remoteagent/cloud.pid")).ok()?;
        Some(Pid::from_raw(text.trim().parse().ok()?))
    }

    fn daemon_pid(&self) -> Option<Pid> {
        let text =
            std::fs::read_to_string(self.home.path().join("run/remoteagent/remoteagentd.pid"))
                .ok()?;
        Some(Pid::from_raw(text.trim().parse().ok()?))
    }

    fn logs(&self) -> String {
        let read = |p: &str| std::fs::read_to_string(self.home.path().join(p)).unwrap_or_default();
        format!(
            "--- cloud.log\n{}\n--- remoteagentd.log\n{}",
            read("state/remoteagent/cloud.log"),
            read("state/remoteagent/remoteagentd.log")
        )
    }

    /// `doctor --json`: its exit code and its checks.
    fn doctor(&self) -> (Option<i32>, serde_json::Value) {
        report(&self.ctl(&["--json", "doctor"]))
    }
}

/// The background processes setup started die with the test, pass or fail.
impl Drop for Machine {
    fn drop(&mut self) {
        for pid in [self.daemon_pid(), self.cloud_pid()].into_iter().flatten() {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_then_pair_by_deep_link_then_a_prompt_and_doctor_sees_every_part() {
    let telegram = FakeTelegram::start().await;
    let mut redis = RedisServer::start().unwrap();
    let machine = Machine {
        // The file secret store: this test is about setup, not the keyring
        // (which has its own tests).
        home: remoteagent_testkit::home::Home::with_config("secret_store = \"file\"\n"),
        programs: programs(),
        telegram_api: telegram.api_base(),
    };
    machine
        .home
        .install_tool("answer-agent", &fixture("answer.sh"));
    let bind = format!("127.0.0.1:{}", free_port());
    let redis_url = redis.url();
    let args = ["--redis-url", redis_url.as_str(), "--bind", bind.as_str()];

    // Refusals first, each with its fix, and nothing written.
    let (exit, out) = machine.setup("", &["--redis-url", "redis://127.0.0.1:1", "--bind", &bind]);
    assert_eq!(exit, Some(1), "{out}");
    assert!(
        out.contains("Redis is not reachable at redis://127.0.0.1:1")
            && out.contains("apt install redis-server"),
        "{out}"
    );
    let (exit, out) = machine.setup("", &args);
    assert_eq!(exit, Some(1), "{out}");
    assert!(
        out.contains("no bot token was given") && out.contains("@BotFather"),
        "{out}"
    );
    let (exit, out) = machine.setup("999:WRONG-token\n", &args);
    assert_eq!(exit, Some(1), "{out}");
    assert!(out.contains("Telegram refused the token"), "{out}");
    assert!(!out.contains("WRONG-token"), "the token was echoed: {out}");
    assert!(!machine.config("bot-token").exists());

    // `--print` shows the plan and does nothing.
    let (exit, out) = machine.setup("", &[&args[..], &["--print"]].concat());
    assert_eq!(exit, Some(0), "{out}");
    assert!(
        out.contains("# would write") && out.contains("TELEGRAM_MODE = \"poll\""),
        "{out}"
    );
    assert!(!machine.config("cloud.toml").exists());

    // The real run: the token on stdin.
    let token = format!("{}\n", telegram.token());
    let (exit, out) = machine.setup(&token, &args);
    assert_eq!(exit, Some(0), "{out}\n{}", machine.logs());
    assert!(out.contains(&format!("@{BOT_USERNAME}")), "{out}");
    assert!(out.contains("remoteagentctl pair"), "{out}");
    assert!(
        !out.contains(&telegram.token()),
        "the token was echoed: {out}"
    );
    assert_eq!(mode(&machine.config("bot-token")), 0o600);
    assert_eq!(mode(&machine.config("cloud.toml")), 0o600);
    let cloud_toml = std::fs::read_to_string(machine.config("cloud.toml")).unwrap();
    assert!(
        cloud_toml.contains("TELEGRAM_MODE = \"poll\""),
        "{cloud_toml}"
    );
    assert!(!cloud_toml.contains(&telegram.token()), "{cloud_toml}");
    let daemon_toml = std::fs::read_to_string(machine.config("config.toml")).unwrap();
    assert!(
        daemon_toml.contains(&format!("cloud_url = \"http://{bind}\""))
            && daemon_toml.contains("secret_store = \"file\""),
        "{daemon_toml}"
    );
    let cloud_log =
        std::fs::read_to_string(machine.home.path().join("state/remoteagent/cloud.log")).unwrap();
    assert!(
        !cloud_log.contains('\u{1b}'),
        "colour codes in a log file: {cloud_log}"
    );
    let cloud_pid = machine.cloud_pid().expect("cloud.pid");
    let daemon_pid = machine.daemon_pid().expect("remoteagentd.pid");

    // Again, with the same token: nothing changes, nothing restarts.
    let (exit, again) = machine.setup(&token, &args);
    assert_eq!(exit, Some(0), "{again}");
    assert_eq!(again.matches(": unchanged").count(), 3, "{again}");
    assert!(
        again.contains("already runs on") && again.contains("remoteagentd"),
        "{again}"
    );
    assert_eq!(machine.cloud_pid(), Some(cloud_pid));
    assert_eq!(machine.daemon_pid(), Some(daemon_pid));
    assert!(kill(cloud_pid, None).is_ok() && kill(daemon_pid, None).is_ok());

    // Pair through the deep link: the phone opens it and Telegram sends
    // `/start CODE`, which the cloud gets by polling.
    let project = machine.home.project("app");
    let mut pair = machine
        .command("remoteagentctl")
        .args([
            "pair",
            project.to_str().unwrap(),
            "--command",
            "answer-agent",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read all it prints, as a terminal would, until it ends.
    let printed = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut stdout = pair.stdout.take().unwrap();
    let sink = printed.clone();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let code = wait_for(WAIT, || {
        let text = printed.lock().unwrap().clone();
        async move { pairing_code(&text).filter(|_| text.contains("?start=")) }
    })
    .await
    .unwrap_or_else(|| panic!("pair printed no deep link: {}", printed.lock().unwrap()));
    let printed = printed.lock().unwrap().clone();
    assert!(
        printed.contains(&format!("https://t.me/{BOT_USERNAME}?start={code}")),
        "{printed}"
    );
    telegram.push_update(updates::text(0, OWNER, OWNER, &format!("/start {code}")));
    let paired = tokio::task::spawn_blocking(move || pair.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        paired.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&paired.stderr),
        machine.logs()
    );

    // A prompt from the phone, answered on the phone.
    telegram.push_update(updates::text(0, OWNER, OWNER, "fix the tests"));
    let answered = telegram
        .wait_for_messages(
            OWNER,
            |m| {
                m.iter().any(|m| {
                    m.text.contains("Looking at the project for: fix the tests")
                        && m.text.contains("Finished.")
                })
            },
            WAIT,
        )
        .await;
    assert!(
        answered,
        "{:#?}\n{}",
        telegram.messages(OWNER),
        machine.logs()
    );

    // Every part ✔; the login services are warnings here (no systemd user
    // session on this machine), never failures.
    let (exit, report) = machine.doctor();
    assert_eq!(exit, Some(0), "{report:#}");
    for c in report["checks"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        if name.starts_with("login service") {
            assert_eq!(c["status"], "warn", "{c:#}");
        } else {
            assert_eq!(c["status"], "ok", "{c:#}");
        }
    }
    for name in [
        "daemon",
        "daemon config",
        "secret store",
        "cloud ",
        "redis login of app",
        "runner of app",
    ] {
        assert_eq!(check(&report, name).0, "ok", "{name}: {report:#}");
    }

    // The cloud stopped: ✖ with how to start it again.
    kill(cloud_pid, Signal::SIGKILL).unwrap();
    let stopped = wait_for(WAIT, || {
        let (exit, report) = machine.doctor();
        async move { (check(&report, "cloud ").0 == "fail").then_some((exit, report)) }
    })
    .await;
    let (exit, report) = stopped.unwrap_or_else(|| panic!("doctor never saw the cloud stop"));
    assert_eq!(exit, Some(1), "{report:#}");
    let (_, detail, fix) = check(&report, "cloud ");
    assert!(detail.contains("cannot reach it"), "{detail}");
    assert!(fix.contains("remoteagentctl setup"), "{fix}");

    // The agent's Redis user deleted (no cloud to re-create it): the login
    // is refused, and the fix is to pair again.
    delete_agent_acl_user(&redis.url()).await;
    let refused = wait_for(WAIT, || {
        let (_, report) = machine.doctor();
        let c = check(&report, "redis login of app");
        async move { (c.0 == "fail").then_some(c) }
    })
    .await;
    let (_, detail, fix) = refused.unwrap_or_else(|| panic!("never refused\n{}", machine.logs()));
    assert!(detail.contains("refuses its login"), "{detail}");
    assert!(
        fix.contains("remoteagentctl unpair app") && fix.contains("remoteagentctl pair"),
        "{fix}"
    );

    // Redis stopped: the fix is Redis.
    redis.stop();
    let (exit, report) = machine.doctor();
    assert_eq!(exit, Some(1));
    let (status, _, fix) = check(&report, "redis login of app");
    assert_eq!(status, "fail");
    assert!(fix.contains("Redis"), "{fix}");
}

/// Where a service manager answers (a stand-in `systemctl`, since this
/// machine has no systemd user session): both units are written and
/// enabled, a second run does nothing, and a changed cloud config restarts
/// the cloud alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_service_manager_setup_installs_both_units_once() {
    let telegram = FakeTelegram::start().await;
    let redis = RedisServer::start().unwrap();
    let machine = Machine {
        home: remoteagent_testkit::home::Home::with_config("secret_store = \"file\"\n"),
        programs: programs(),
        telegram_api: telegram.api_base(),
    };
    let fake = machine.home.with_user_session();
    let calls = || std::fs::read_to_string(fake.join("calls")).unwrap_or_default();
    let bind = format!("127.0.0.1:{}", free_port());
    let redis_url = redis.url();
    let token = format!("{}\n", telegram.token());

    let (exit, out) = machine.setup(&token, &["--redis-url", &redis_url, "--bind", &bind]);
    assert_eq!(exit, Some(0), "{out}");
    for unit in ["remoteagent-cloud.service", "remoteagentd.service"] {
        assert!(
            out.contains(&format!("{unit} installed and started via systemd")),
            "{out}"
        );
        assert!(
            calls().contains(&format!("--user enable --now {unit}\n")),
            "{}",
            calls()
        );
    }
    assert!(!out.contains("no service manager"), "{out}");
    let unit = std::fs::read_to_string(
        machine
            .home
            .path()
            .join("config/systemd/user/remoteagent-cloud.service"),
    )
    .unwrap();
    let exec = format!(
        "ExecStart=\"{}\" --config \"{}\" serve",
        machine.programs.join("remoteagent-cloud").display(),
        machine.config("cloud.toml").display()
    );
    assert!(unit.lines().any(|l| l == exec), "{exec}\n{unit}");
    assert!(
        machine.cloud_pid().is_none(),
        "started in the background too"
    );

    // Again: every unit is right and active, so nothing is run.
    let before = calls().len();
    let (exit, out) = machine.setup(&token, &["--redis-url", &redis_url, "--bind", &bind]);
    assert_eq!(exit, Some(0), "{out}");
    for unit in ["remoteagent-cloud.service", "remoteagentd.service"] {
        assert!(
            out.contains(&format!("{unit} is active (unchanged)")),
            "{out}"
        );
    }
    let since = calls()[before..].to_string();
    for verb in ["enable", "start", "restart", "stop"] {
        assert!(!since.contains(&format!("--user {verb} ")), "{since}");
    }

    // The cloud's config changes (another spelling of the same Redis): the
    // cloud restarts, the daemon, whose config did not change, does not.
    let before = calls().len();
    let same_redis = format!("{redis_url}/0");
    let (exit, out) = machine.setup(&token, &["--redis-url", &same_redis, "--bind", &bind]);
    assert_eq!(exit, Some(0), "{out}");
    let since = calls()[before..].to_string();
    assert!(
        since.contains("--user restart remoteagent-cloud.service\n"),
        "{since}"
    );
    assert!(!since.contains("restart remoteagentd.service"), "{since}");
    assert!(
        out.contains("remoteagentd.service is active (unchanged)"),
        "{out}"
    );
}
