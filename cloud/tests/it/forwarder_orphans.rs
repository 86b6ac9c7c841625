//! Sessions whose daemon died in their middle: the whole cloud (webhook,
//! bot, forwarder, the session rows on SQLite and PostgreSQL) with a short
//! `FORWARDER_ORPHAN_SECS`, a private Redis and the fake Telegram. The
//! test plays the daemons: it subscribes to their channels, keeps their
//! presence keys and writes their output.

use crate::support;

use redis::aio::PubSub;
use redis::streams::StreamRangeReply;
use remoteagent_cloud::db::sessions;
use remoteagent_proto::events::{
    ChunkPayload, CommandEvent, DonePayload, DoneStatus, OutputEvent, StreamKind,
};
use remoteagent_proto::{AgentId, SessionId, envelope, names};
use remoteagent_testkit::telegram::FakeMessage;
use remoteagent_testkit::wait_for;
use support::{Backend, TIMEOUT, TestApp, next_message, user_id};

const GRACE: &str = "1";
const OFFLINE_STATUS: &str = "❌ error: the agent went offline before the run finished";

/// An agent of its own user, online, with a session running on it.
struct Running {
    user: i64,
    agent: AgentId,
    session: SessionId,
    /// The "daemon"'s subscription to its command channel.
    sub: Option<PubSub>,
}

impl Running {
    async fn start(app: &TestApp, name: &str, output: &str) -> Running {
        let user = user_id();
        let (_, paired) = app.pair_agent(user, name).await;
        let agent = paired.agent_id;
        app.set_presence(&agent).await;
        let mut sub = app.agent_subscriber(&agent).await;
        app.say(user, "refactor the parser").await;
        let token = next_message(&mut sub).await;
        let claims = envelope::verify(&app.state.key.public_key(), &agent, &token).unwrap();
        let CommandEvent::Command(cmd) = claims.command else {
            panic!("expected a command, got {:?}", claims.command);
        };
        let running = Running {
            user,
            agent,
            session: cmd.session_id,
            sub: Some(sub),
        };
        running
            .write(
                app,
                &OutputEvent::Chunk(ChunkPayload {
                    seq: 0,
                    stream: StreamKind::Stdout,
                    text: output.into(),
                }),
            )
            .await;
        app.expect_message(user, output.trim()).await;
        running
    }

    fn stream(&self) -> String {
        names::output_stream(&self.agent, &self.session)
    }

    async fn write(&self, app: &TestApp, event: &OutputEvent) {
        let mut conn = app
            .redis
            .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
            .await
            .unwrap();
        redis::cmd("XADD")
            .arg(self.stream())
            .arg("*")
            .arg(names::STREAM_FIELD)
            .arg(serde_json::to_string(event).unwrap())
            .query_async::<String>(&mut conn)
            .await
            .unwrap();
    }

    async fn events(&self, app: &TestApp) -> Vec<OutputEvent> {
        let mut conn = app
            .redis
            .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
            .await
            .unwrap();
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.stream())
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        reply
            .ids
            .iter()
            .map(|e| serde_json::from_str(&e.get::<String>(names::STREAM_FIELD).unwrap()).unwrap())
            .collect()
    }

    async fn status(&self, app: &TestApp) -> String {
        sessions::get(&app.state.db, &self.session)
            .await
            .unwrap()
            .expect("the session has a row")
            .status
    }

    /// Waits until the session's row leaves `running`; returns its status.
    async fn finished_status(&self, app: &TestApp) -> String {
        let status = wait_for(TIMEOUT, || async {
            let status = self.status(app).await;
            (status != "running").then_some(status)
        })
        .await;
        status.expect("the session row stayed running")
    }

    /// The message showing the session's output.
    fn page(&self, app: &TestApp, output: &str) -> FakeMessage {
        app.tg
            .messages(self.user)
            .into_iter()
            .rev()
            .find(|m| m.text.contains(output))
            .expect("the output is shown")
    }

    /// The daemon dies: its subscription and presence key go, and nothing
    /// more is written to the stream.
    async fn kill_daemon(&mut self, app: &TestApp) {
        drop(self.sub.take());
        let mut conn = app
            .redis
            .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
            .await
            .unwrap();
        redis::cmd("DEL")
            .arg(names::presence_key(&self.agent))
            .query_async::<i64>(&mut conn)
            .await
            .unwrap();
    }
}

fn dones(events: &[OutputEvent]) -> Vec<DonePayload> {
    events
        .iter()
        .filter_map(|e| match e {
            OutputEvent::Done(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

async fn a_session_of_a_vanished_daemon_ends_and_a_silent_one_does_not(backend: Backend) {
    let app = TestApp::start_with(backend, &[("FORWARDER_ORPHAN_SECS", GRACE)]).await;
    // Three users, started side by side (each has a lane of its own).
    let (mut gone, silent, mut later) = tokio::join!(
        Running::start(&app, "gone", "halfway there\n"),
        Running::start(&app, "silent", "thinking hard\n"),
        Running::start(&app, "later", "still going\n"),
    );

    gone.kill_daemon(&app).await;
    assert_eq!(gone.finished_status(&app).await, "error");
    // The end is in the stream, after what the daemon wrote, once.
    let events = gone.events(&app).await;
    assert!(
        matches!(events.first(), Some(OutputEvent::Chunk(_))),
        "{events:?}"
    );
    let done = dones(&events);
    assert_eq!(done.len(), 1, "{events:?}");
    assert!(matches!(events.last(), Some(OutputEvent::Done(_))));
    assert_eq!(done[0].status, DoneStatus::Error);
    assert_eq!(
        done[0].message.as_deref(),
        Some("the agent went offline before the run finished")
    );
    // The page shows the output and the error, without its Stop button.
    let shown = wait_for(TIMEOUT, || async {
        let page = gone.page(&app, "halfway there");
        (page.text.ends_with(OFFLINE_STATUS) && page.reply_markup.is_none()).then_some(())
    })
    .await;
    assert!(
        shown.is_some(),
        "the page was not finished: {:?}",
        gone.page(&app, "halfway there")
    );

    // The other daemon is alive (its presence key is there) but its runner
    // is silent: it was left alone as long as the vanished one, and longer.
    // "Longer" is measured by a third session whose daemon vanishes only
    // now: by the time it is ended (the grace after now, at the earliest),
    // the silent session has been silent for twice the grace and more, and
    // is looked at on the same schedule, so it would have been ended first.
    later.kill_daemon(&app).await;
    assert_eq!(later.finished_status(&app).await, "error");
    assert_eq!(silent.status(&app).await, "running");
    assert!(dones(&silent.events(&app).await).is_empty());
    assert!(silent.page(&app, "thinking hard").reply_markup.is_some());
    // It ends when its daemon says so.
    silent
        .write(
            &app,
            &OutputEvent::Done(DonePayload {
                status: DoneStatus::Ok,
                exit_code: Some(0),
                duration_ms: 9000,
                message: None,
                chunks: 1,
                withheld_bytes: 0,
                stopped_by: None,
                turns: None,
                cost_usd: None,
            }),
        )
        .await;
    assert_eq!(silent.finished_status(&app).await, "ok");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    a_session_of_a_vanished_daemon_ends_and_a_silent_one_does_not(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    a_session_of_a_vanished_daemon_ends_and_a_silent_one_does_not(Backend::Postgres).await;
}
