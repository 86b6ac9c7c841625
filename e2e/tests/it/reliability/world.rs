//! A reliability scenario's world: the stack with one agent paired on a
//! runner from the fixtures, and what the scenarios do to it.

use super::*;

pub(super) struct World {
    pub(super) stack: Stack,
    /// The project folder of the paired agent.
    pub(super) project: PathBuf,
}

remoteagent_e2e::derefs_to_stack!(World);

impl World {
    /// A world with one agent paired, running `runner` from the fixtures,
    /// on a Redis with AOF (`persistent`) or without any persistence.
    pub(super) async fn start(runner: &str, persistent: bool) -> World {
        let redis = if persistent {
            RedisServer::start().unwrap()
        } else {
            RedisServer::start_ephemeral().unwrap()
        };
        let stack = Stack::start_on(redis, None, "").await.unwrap();
        let project = stack.home.project("app").unwrap();
        let w = World { stack, project };
        w.pair(runner).await;
        w
    }

    pub(super) async fn say(&self, text: &str) {
        self.cloud.say(OWNER, text).await;
    }

    pub(super) async fn pair(&self, runner: &str) {
        let runner = fixture(runner);
        let (mut ctl, code) = self
            .home
            .start_pairing(
                "pair-app",
                &self.project,
                &["--command", runner.to_str().unwrap()],
            )
            .await;
        self.say(&format!("/pair {code}")).await;
        let exit = ctl.wait(WAIT).await.unwrap();
        assert_eq!(exit, Some(0), "pair failed:\n{}", ctl.output());
        // A prompt is only sent once the cloud can see the agent (its
        // presence key, written by the daemon's first heartbeat): on a busy
        // machine that can come a second after `pair` returns.
        let presence = format!("presence:{}", self.agent_id());
        let admin = remoteagent_testkit::redis_conn(&self.redis.url()).await;
        let online = wait_for(WAIT, || {
            let presence = presence.clone();
            // A multiplexed connection is a cheap handle: one per poll.
            let mut admin = admin.clone();
            async move {
                let n: i64 = redis::cmd("EXISTS")
                    .arg(&presence)
                    .query_async(&mut admin)
                    .await
                    .ok()?;
                (n > 0).then_some(())
            }
        })
        .await;
        assert!(
            online.is_some(),
            "the agent never came online:\n{}",
            self.logs()
        );
    }

    pub(super) fn agent_id(&self) -> String {
        let out = self.home.ctl(&["list", "--json"]).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["id"].as_str().unwrap().to_string()
    }

    /// What the user sees now.
    pub(super) fn screen(&self) -> Screen {
        let messages = self.tg.messages(OWNER);
        // Captions from the call log: `documents_in` would copy the files'
        // bytes (up to 50 MB) on every poll.
        let captions = self
            .tg
            .calls_of("sendDocument")
            .into_iter()
            .filter(|c| c.ok() && c.chat_id() == Some(OWNER))
            .filter_map(|c| c.body.get("caption")?.as_str().map(str::to_string))
            .collect();
        Screen { messages, captions }
    }

    /// Waits until `pred` holds for what the user sees (hang guard `guard`).
    pub(super) async fn wait_screen(
        &self,
        guard: Duration,
        what: &str,
        pred: impl Fn(&Screen) -> bool,
    ) {
        let hit = wait_for(guard, || {
            let ok = pred(&self.screen());
            async move { ok.then_some(()) }
        })
        .await;
        assert!(
            hit.is_some(),
            "nothing {what} within {guard:?}; messages: {:#?}\n{}",
            self.tg.messages(OWNER),
            self.logs()
        );
    }

    /// Waits until output line `n` of `numbered.sh` is on the screen.
    pub(super) async fn wait_line(&self, n: u64) {
        let line = numbered_line(n);
        self.wait_screen(WAIT * 2, &format!("showing {line:?}"), |s| {
            s.joined().contains(&line)
        })
        .await;
    }

    /// The PID `numbered.sh` recorded, once it has.
    pub(super) async fn runner_pid(&self) -> i32 {
        let path = self.project.join("runner.pid");
        wait_for(WAIT, || {
            let pid = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok());
            async move { pid }
        })
        .await
        .expect("the runner did not record its PID")
    }

    /// Waits for the session's end as the user sees it: its status line,
    /// then no Stop button left. Problems go to `v`; returns the time the
    /// status took from `since`.
    pub(super) async fn wait_end(
        &self,
        v: &mut Verdict,
        guard: Duration,
        since: Instant,
    ) -> Duration {
        let shown = wait_for(guard, || {
            let s = self.screen().status().is_some();
            async move { s.then_some(()) }
        })
        .await;
        let took = since.elapsed();
        if shown.is_none() {
            v.problem(format!("no status line within {guard:?}"));
            let left = self.screen().stop_buttons();
            if !left.is_empty() {
                v.problem(format!("Stop button left on message(s) {left:?}"));
            }
            return took;
        }
        // The status and the button's removal normally come in one edit;
        // a button left on an earlier page may take a few more calls.
        let clear = wait_for(WAIT, || {
            let s = self.screen().stop_buttons().is_empty();
            async move { s.then_some(()) }
        })
        .await;
        if clear.is_none() {
            v.problem(format!(
                "Stop button left on message(s) {:?}",
                self.screen().stop_buttons()
            ));
        }
        took
    }

    /// The local log of the (only) session of the agent.
    pub(super) fn session_log(&self) -> Option<PathBuf> {
        let dir = self
            .home
            .path()
            .join("state/remoteagent/logs")
            .join(self.agent_id());
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "log"))
    }
}
