//! Recovery from a Redis restart that loses the agents' ACL users (a Redis
//! without an ACL file, as most are): the real cloud must re-create the user
//! of the agent it paired, and the real daemon must log in with it again,
//! resubscribe and answer prompts, without anyone pairing again.

use std::time::Duration;

use remoteagent_e2e::Stack;
use remoteagent_testkit::wait_for;

const OWNER: i64 = 3003;
const WAIT: Duration = Duration::from_secs(30);
/// Hang guard for the way back after the restart: the cloud checks its
/// users every few seconds and the daemon retries at most 5 s apart, so
/// this is generous; before the fix it took minutes or never happened.
const RECOVERY: Duration = Duration::from_secs(60);

struct World {
    stack: Stack,
}

remoteagent_e2e::derefs_to_stack!(World);

impl World {
    async fn start() -> World {
        World {
            stack: Stack::start().await.unwrap(),
        }
    }

    async fn say(&self, text: &str) {
        self.cloud.say(OWNER, text).await;
    }

    async fn pair(&self, name: &str, runner: &str) {
        self.pair_project(OWNER, name, runner, WAIT).await;
    }

    /// The Redis ACL user of the (only) paired agent.
    fn agent_redis_user(&self) -> String {
        let out = self.home.ctl(&["list", "--json"]).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let id =
            remoteagent_proto::AgentId::parse(v[0]["id"].as_str().unwrap().to_string()).unwrap();
        remoteagent_proto::names::agent_redis_user(&id)
    }

    fn agent_online(&self) -> Option<bool> {
        let out = self.home.ctl(&["list", "--json"]).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v[0]["online"].as_bool()
    }

    /// Sends `prompt` and waits for the runner's finished answer to it.
    async fn prompt_is_answered(&self, prompt: &str, guard: Duration) {
        self.say(prompt).await;
        let answered = wait_for(guard, || {
            let hit = self
                .texts(OWNER)
                .into_iter()
                .any(|t| t.contains(&format!("for: {prompt}")) && t.contains("Finished."));
            async move { hit.then_some(()) }
        })
        .await;
        assert!(
            answered.is_some(),
            "prompt {prompt:?} not answered; messages: {:#?}\n{}",
            self.texts(OWNER),
            self.logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paired_agent_comes_back_after_redis_loses_its_acl_user() {
    let mut w = World::start().await;
    w.pair("survivor", "answer.sh").await;
    w.prompt_is_answered("before the restart", WAIT).await;
    let acl_user = w.agent_redis_user();

    // SIGKILL and start again on the same port: streams and presence keys
    // come back from the AOF, the ACL users created at runtime do not.
    w.redis.restart().unwrap();
    let restarted = std::time::Instant::now();

    // The cloud notices the missing user and re-creates it (the daemon
    // has long seen its connection dropped by then: the restart itself
    // takes longer than that)...
    let admin = redis::Client::open(w.redis.url()).unwrap();
    let restored = wait_for(RECOVERY, || {
        let admin = admin.clone();
        let acl_user = acl_user.clone();
        async move {
            let mut conn = admin
                .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
                .await
                .ok()?;
            let users: Vec<String> = redis::cmd("ACL")
                .arg("USERS")
                .query_async(&mut conn)
                .await
                .ok()?;
            users.contains(&acl_user).then_some(())
        }
    })
    .await;
    assert!(
        restored.is_some(),
        "the cloud did not re-create the agent's Redis user\n{}",
        w.logs()
    );
    eprintln!("user restored {:?} after the restart", restarted.elapsed());
    // ...and the daemon logs in with it again and resubscribes.
    let back = wait_for(RECOVERY, || {
        let online = w.agent_online() == Some(true);
        async move { online.then_some(()) }
    })
    .await;
    assert!(
        back.is_some(),
        "the agent is not back online after the Redis restart\n{}",
        w.logs()
    );
    eprintln!("agent online {:?} after the restart", restarted.elapsed());
    // And it does what it is for.
    w.prompt_is_answered("after the restart", WAIT).await;
}
