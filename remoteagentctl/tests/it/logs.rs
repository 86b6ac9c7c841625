//! `remoteagentctl logs` like journalctl, against the real daemon and a
//! script runner: `-f` follows an agent into a session that starts after it
//! began, `--run PREFIX -f` ends at that run's done, `--since`
//! picks lines by the time they were written, `--list` lists the sessions,
//! and session id prefixes resolve like agent ones (ambiguous or unknown:
//! exit 4); a bad `--since` is a usage error (exit 2).

use crate::common;

use common::*;
use remoteagent_proto::SessionId;
use remoteagent_testkit::wait_for;

/// Prints `out: PROMPT`; a prompt starting with `wait` then waits for the
/// file `go` in the project; then prints `end: PROMPT`.
const SCRIPT: &str = "echo \"out: $1\"\ncase \"$1\" in wait*) while [ ! -f go ]; do sleep 0.05; done;; esac\necho \"end: $1\"\n";

async fn setup() -> Paired {
    Paired::start("web", SCRIPT, 30 * 24 * 3600, |_| {}).await
}

impl Paired {
    /// Runs a command with the given session id; returns once its log has
    /// its end record (the stream's `done` comes a moment before it).
    async fn run_to_end(&self, id: &str, prompt: &str) -> SessionId {
        let session = SessionId::parse(id).unwrap();
        self.publish(&self.sign(&session, prompt, 30)).await;
        self.wait_done(&session).await;
        let file = self
            .home
            .log_root()
            .join(self.agent.as_str())
            .join(format!("{session}.log"));
        let logged = wait_for(PATIENCE, || async {
            std::fs::read_to_string(&file)
                .ok()
                .filter(|t| t.contains("\n# done "))
                .map(|_| ())
        })
        .await;
        assert!(logged.is_some(), "no end record in {}", file.display());
        session
    }

    fn ctl_out(&self, args: &[&str]) -> std::process::Output {
        self.home.ctl(args)
    }
}

fn sigint(child: &std::process::Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn follow_goes_on_into_a_later_session_and_a_followed_session_ends_at_done() {
    let s = setup().await;
    let first = s
        .run_to_end(&SessionId::generate().to_string(), "one")
        .await;

    // `logs web -f` shows the first session, done included, and waits.
    let h = s.home.clone();
    let mut follower = blocking(move || h.spawn_ctl(&["logs", "web", "-f"])).await;
    let lines = Lines::of(&mut follower);
    let (seen, lines) = blocking(move || (lines.until("# done ok"), lines)).await;
    assert!(
        seen.starts_with(&format!("-- run {} of web, started ", &first.as_str()[..8])),
        "{seen}"
    );
    assert!(
        seen.contains(": one --\n") && seen.contains("end: one"),
        "{seen}"
    );

    // A session that starts now is shown under its own header.
    let second = SessionId::generate();
    s.publish(&s.sign(&second, "wait for it", 30)).await;
    let (seen, lines) = blocking(move || (lines.until("out: wait for it"), lines)).await;
    let header = format!("-- run {} of web, started ", &second.as_str()[..8]);
    assert!(seen.starts_with(&header), "{seen}");
    assert!(seen.contains(": wait for it --\n"), "{seen}");

    // `--run PREFIX -f` follows that run alone and exits 0 after
    // its done line.
    let h = s.home.clone();
    let prefix = second.as_str()[..6].to_string();
    let mut one = blocking(move || h.spawn_ctl(&["logs", "--run", &prefix, "-f", "-t"])).await;
    let one_lines = Lines::of(&mut one);
    let (head, one_lines) =
        blocking(move || (one_lines.until("out: wait for it"), one_lines)).await;
    // `-t`: each line starts with the time it was written.
    let out_line = head.lines().last().unwrap();
    let (time, rest) = out_line.split_once(' ').unwrap();
    assert!(
        remoteagent_proto::rfc3339::parse(time).is_some() && rest == "out: wait for it",
        "{out_line}"
    );
    std::fs::write(s.project.join("go"), "").unwrap();
    let (rest, out) = blocking(move || (one_lines.rest(), finish(one))).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(rest.contains("end: wait for it"), "{rest}");
    assert!(
        rest.trim_end()
            .lines()
            .last()
            .unwrap()
            .contains(" # done ok exit 0 in "),
        "it ends with the done line: {rest}"
    );

    // The agent follower saw the second session to its end too, and is
    // still there: Ctrl-C ends it.
    let (seen, lines) = blocking(move || (lines.until("# done ok"), lines)).await;
    assert!(seen.contains("end: wait for it"), "{seen}");
    sigint(&follower);
    let (_, out) = blocking(move || (lines.rest(), finish(follower))).await;
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn since_list_and_session_prefixes() {
    let s = setup().await;
    let old = s.run_to_end("feed01-old", "the old one").await;
    // Everything the old session wrote is before `cut`.
    let cut = remoteagent_proto::now_ms() + 1;
    let passed = wait_for(PATIENCE, || async {
        (remoteagent_proto::now_ms() > cut).then_some(())
    })
    .await;
    assert!(passed.is_some());
    let new = s.run_to_end("feed02-new", "the new one").await;

    // `--since` a time: only the new session's lines, under its header.
    let since = remoteagent_proto::rfc3339::format(cut, true);
    let out = s.ctl_out(&["logs", "web", "--since", &since]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("-- run feed02-n of web, started ")
            && text.contains("out: the new one")
            && !text.contains("the old one"),
        "{text}"
    );
    // `--since` a duration ago: both, oldest first; without an agent each
    // line says whose it is.
    let out = s.ctl_out(&["logs", "--since", "1h"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let at_old = text.find("web: out: the old one").expect(&text);
    let at_new = text.find("web: out: the new one").expect(&text);
    assert!(at_old < at_new, "{text}");
    assert!(text.contains("-- run feed01-o of web"), "{text}");
    // `-n` counts lines across sessions, from the end.
    let out = s.ctl_out(&["logs", "web", "--since", "1d", "-n", "1"]);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.lines().nth(1).unwrap().starts_with("# done ok"),
        "{text}"
    );

    // `--list`: tab-separated off a terminal, newest last.
    let out = s.ctl_out(&["logs", "--list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(
        rows[0],
        vec!["AGENT", "RUN", "STARTED", "DURATION", "OUTCOME", "PROMPT"]
    );
    assert_eq!(rows.len(), 3, "{text}");
    assert_eq!(&rows[1][..2], &["web", "feed01-o"]);
    assert_eq!(&rows[2][..2], &["web", "feed02-n"]);
    assert_eq!(rows[2][4], "ok");
    assert_eq!(rows[2][5], "the new one");
    assert!(rows[2][3].ends_with('s'), "{text}");
    assert!(
        remoteagent_proto::rfc3339::parse(rows[2][2]).is_some(),
        "{text}"
    );
    // … filtered by --since and -n, and as JSON.
    let out = s.ctl_out(&["logs", "web", "--list", "--since", &since, "--no-headers"]);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("web\tfeed02-n\t"), "{text}");
    let out = s.ctl_out(&["--json", "logs", "--list", "-n", "1"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["session_id"], new.as_str());
    assert_eq!(list[0]["agent_name"], "web");
    assert_eq!(list[0]["outcome"], "ok");
    assert_eq!(list[0]["running"], false);
    assert_eq!(list[0]["prompt"], "the new one");

    // Session prefixes: unique works, shared is ambiguous, none is unknown.
    let out = s.ctl_out(&["logs", "--run", "feed01", "-n", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("end: the old one"),
        "{}",
        stdout(&out)
    );
    let out = s.ctl_out(&["logs", "--session", "feed0"]);
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    let said = stderr(&out);
    assert!(
        said.contains("several runs") && said.contains(old.as_str()) && said.contains(new.as_str()),
        "{said}"
    );
    let out = s.ctl_out(&["logs", "web", "--session", "cafe"]);
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    assert!(stderr(&out).contains("no run 'cafe'"), "{}", stderr(&out));
}

#[test]
fn a_bad_since_is_a_usage_error() {
    let home = Home::with_file_store("http://127.0.0.1:9");
    for bad in ["yesterday", "10x", "2026-13-01T00:00:00Z"] {
        let out = home.ctl(&["logs", "--since", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("RFC 3339"), "{}", stderr(&out));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn follow_without_an_agent_follows_every_agent_and_names_each_line() {
    use remoteagent_proto::events::{CommandEvent, CommandPayload};
    use remoteagent_proto::{envelope, names};

    let s = setup().await;
    let api = s.home.project("api");
    std::fs::write(api.join("run.sh"), SCRIPT).unwrap();
    let command = format!("/bin/sh {}", api.join("run.sh").display());
    let (api_agent, _) =
        pair_project(&s.home, &s.cloud, &api, "api", &["--command", &command]).await;
    s.run_to_end("web001-first", "from web").await;

    let h = s.home.clone();
    let mut follower = blocking(move || h.spawn_ctl(&["logs", "-f"])).await;
    let lines = Lines::of(&mut follower);
    // Its answer so far (the newest session) shows it is following.
    let (seen, lines) = blocking(move || (lines.until("web: # done ok"), lines)).await;
    assert!(seen.contains("web: out: from web"), "{seen}");

    // The other agent's session: its header and its lines, named.
    let session = SessionId::parse("api001-second").unwrap();
    let env = envelope::sign(
        &s.cloud.state.key,
        &api_agent,
        CommandEvent::Command(CommandPayload {
            session_id: session.clone(),
            prompt: "from api".into(),
            r#continue: false,
            attachments: Vec::new(),
            mode: None,
            resume: None,
        }),
        30,
    )
    .unwrap();
    let mut conn = s.conn().await;
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg(names::agent_channel(&api_agent))
        .arg(env)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(receivers, 1);
    let (seen, lines) = blocking(move || (lines.until("api: # done ok"), lines)).await;
    assert!(
        seen.contains("-- run api001-s of api, started ")
            && seen.contains("api: out: from api")
            && seen.contains("api: end: from api"),
        "{seen}"
    );
    // And the first agent's next session.
    let again = SessionId::parse("web002-again").unwrap();
    s.publish(&s.sign(&again, "web again", 30)).await;
    let (seen, lines) = blocking(move || (lines.until("web: end: web again"), lines)).await;
    assert!(seen.contains("-- run web002-a of web"), "{seen}");
    sigint(&follower);
    let (_, out) = blocking(move || (lines.rest(), finish(follower))).await;
    assert!(out.status.success(), "{}", stderr(&out));
}
