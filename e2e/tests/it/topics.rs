//! Forum topics end to end: the real cloud and daemon, two paired projects,
//! and the strict fake Bot API with the bot's topic mode on in private
//! chats. Each agent's topic is opened on its first use; then a prompt sent
//! in each topic runs both runners at once (the fixture makes each wait for
//! the other), and every message of each run is in its own topic, with only
//! its own text. Unpairing closes the agent's topic.

use std::time::Duration;

use remoteagent_e2e::Stack;
use remoteagent_testkit::telegram::{FakeMessage, FakeTelegram, updates};
use remoteagent_testkit::{RedisServer, wait_for};

const OWNER: i64 = 5005;
const WAIT: Duration = Duration::from_secs(60);
/// Lines each concurrent run prints.
const LINES: usize = 40;

struct World {
    stack: Stack,
}

remoteagent_e2e::derefs_to_stack!(World);

impl World {
    async fn start() -> World {
        let tg = FakeTelegram::start().await;
        tg.enable_private_topics();
        let stack = Stack::start_with_fake(RedisServer::start().unwrap(), None, "", &[], tg)
            .await
            .unwrap();
        World { stack }
    }

    /// The live topic named `name` once it exists.
    async fn topic(&self, name: &str) -> i64 {
        let found = wait_for(WAIT, || {
            let t = self
                .tg
                .topics(OWNER)
                .into_iter()
                .find(|t| t.name == name && !t.deleted);
            async move { t }
        })
        .await;
        found
            .unwrap_or_else(|| {
                panic!(
                    "no topic {name}: {:#?}\n{}",
                    self.tg.topics(OWNER),
                    self.logs()
                )
            })
            .message_thread_id
    }

    /// The messages of topic `thread`.
    fn in_topic(&self, thread: i64) -> Vec<FakeMessage> {
        self.tg.messages_in_topic(OWNER, thread)
    }

    /// Waits until topic `thread` holds `n` run-end pings (new messages
    /// replying to the output: "✅ NAME finished …").
    async fn wait_pings(&self, thread: i64, n: usize) {
        let done = wait_for(WAIT, || {
            let pings = self
                .in_topic(thread)
                .into_iter()
                .filter(|m| m.reply_to.is_some() && m.text.contains("finished"))
                .count();
            async move { (pings >= n).then_some(()) }
        })
        .await;
        assert!(
            done.is_some(),
            "topic {thread} has fewer than {n} pings: {:#?}\n{}",
            self.in_topic(thread),
            self.logs()
        );
    }

    /// The user writes `text` in topic `thread`.
    async fn say_in_topic(&self, thread: i64, text: &str) {
        let update = updates::in_topic(
            updates::text(self.cloud.update_id(), OWNER, OWNER, text),
            thread,
            "topic",
        );
        self.cloud.deliver(&update).await;
    }
}

fn line(tag: &str, i: usize) -> String {
    format!("{tag}-{i:04} <{tag}> & ✓")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_in_two_topics_stream_at_once_without_mixing() {
    let w = World::start().await;
    w.pair_project(OWNER, "alpha", "tagged.sh", WAIT).await;
    w.pair_project(OWNER, "beta", "tagged.sh", WAIT).await;

    // First use, from the chat itself: each agent's topic is opened then,
    // named after it, and its run shows there.
    w.cloud.say(OWNER, "/use alpha").await;
    w.cloud.say(OWNER, "alpha 1 none").await;
    let alpha = w.topic("alpha").await;
    w.wait_pings(alpha, 1).await;
    w.cloud.say(OWNER, "/use beta").await;
    w.cloud.say(OWNER, "beta 1 none").await;
    let beta = w.topic("beta").await;
    assert_ne!(alpha, beta);
    w.wait_pings(beta, 1).await;
    assert_eq!(w.tg.calls_of("createForumTopic").len(), 2);

    // One prompt in each topic, no /use (beta is the current agent): the
    // runners wait for each other, so both stream at the same time.
    let sync = tempfile::tempdir().unwrap();
    let sync = sync.path().to_str().unwrap().to_string();
    w.say_in_topic(alpha, &format!("alpha {LINES} {sync}"))
        .await;
    w.say_in_topic(beta, &format!("beta {LINES} {sync}")).await;
    w.wait_pings(alpha, 2).await;
    w.wait_pings(beta, 2).await;

    for (tag, other, thread) in [("alpha", "beta", alpha), ("beta", "alpha", beta)] {
        let shown: String = w
            .in_topic(thread)
            .iter()
            .map(|m| m.text.clone())
            .collect::<Vec<_>>()
            .join("\n");
        // All of its own output, in order, and none of the other's.
        let mut at = 0;
        for i in 1..=LINES {
            let l = line(tag, i);
            let found = shown[at..].find(&l);
            assert!(found.is_some(), "{l} missing in topic {tag}:\n{shown}");
            at += found.unwrap() + l.len();
        }
        assert!(
            !shown.contains(&format!("{other}-0")),
            "{other}'s output in topic {tag}:\n{shown}"
        );
        assert!(
            !shown.contains("alone"),
            "the runs did not overlap:\n{shown}"
        );
    }
    // Every message of a run is in its topic: none of the output outside.
    for m in w.tg.messages(OWNER) {
        if m.text.contains("alpha-0") || m.text.contains("beta-0") {
            assert!(m.thread == Some(alpha) || m.thread == Some(beta), "{m:#?}");
        }
    }
    // Every send of the runs carried its topic's message_thread_id.
    for call in w.tg.calls_of("sendMessage") {
        let text = call.text().unwrap_or_default();
        for (tag, thread) in [("alpha", alpha), ("beta", beta)] {
            if text.contains(&format!("{tag}-0"))
                || text.contains(&format!("<b>{tag}</b> is working"))
            {
                assert_eq!(call.thread(), Some(thread), "{:?}", call.body);
            }
        }
    }
    assert!(
        w.tg.refused_calls().is_empty(),
        "{:#?}",
        w.tg.refused_calls()
    );

    // Unpairing alpha tells its topic and closes it; beta's stays open.
    w.cloud.say(OWNER, "/unpair alpha").await;
    let closed = wait_for(WAIT, || {
        let t = w.tg.topics(OWNER);
        async move {
            t.iter()
                .any(|t| t.message_thread_id == alpha && t.closed)
                .then_some(())
        }
    })
    .await;
    assert!(closed.is_some(), "{:#?}\n{}", w.tg.topics(OWNER), w.logs());
    assert!(
        w.in_topic(alpha)
            .iter()
            .any(|m| m.text.contains("alpha was unpaired: this topic is closed"))
    );
    assert!(
        w.tg.topics(OWNER)
            .iter()
            .any(|t| t.message_thread_id == beta && !t.closed)
    );
}
