//! The daemon's end of a run, played by a test: `done` in the session's
//! stream, then waiting until the cloud has recorded the end. A busy agent's
//! prompts wait in the queue, so a test that sends one prompt after another
//! ends each run first, as a daemon would.

use remoteagent_cloud::db::sessions;
use remoteagent_proto::events::{DonePayload, DoneStatus, OutputEvent};
use remoteagent_proto::{AgentId, SessionId, names};

use super::{TIMEOUT, TestApp};

impl TestApp {
    /// Ends `session` of `agent` with `done {ok}` and waits until its row
    /// no longer says running (the agent is free for the next prompt).
    pub async fn end_run(&self, agent: &AgentId, session: &SessionId) {
        let done = OutputEvent::Done(DonePayload {
            status: DoneStatus::Ok,
            exit_code: Some(0),
            duration_ms: 1_000,
            message: None,
            chunks: 0,
            withheld_bytes: 0,
            stopped_by: None,
            turns: None,
            cost_usd: None,
        });
        self.xadd(agent, session, &done).await;
        self.wait_run_ended(session).await;
    }

    /// Appends `event` to the output stream of `session`, as its daemon
    /// would.
    pub async fn xadd(&self, agent: &AgentId, session: &SessionId, event: &OutputEvent) {
        let mut conn = self
            .redis
            .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
            .await
            .unwrap();
        redis::cmd("XADD")
            .arg(names::output_stream(agent, session))
            .arg("*")
            .arg(names::STREAM_FIELD)
            .arg(serde_json::to_string(event).unwrap())
            .query_async::<String>(&mut conn)
            .await
            .unwrap();
    }

    /// Waits until the cloud has recorded the end of `session` (its `done`
    /// is in the stream already).
    pub async fn wait_run_ended(&self, session: &SessionId) {
        let ended = remoteagent_testkit::wait_for(TIMEOUT, || async {
            let row = sessions::get(&self.state.db, session).await.unwrap();
            row.filter(|r| r.status != sessions::RUNNING).map(|_| ())
        })
        .await;
        assert!(
            ended.is_some(),
            "the run of {session} was not recorded as ended"
        );
    }
}
