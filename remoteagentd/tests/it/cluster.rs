//! The agent on a Redis Cluster (issue 19): the URL stored at pairing is
//! the list of the cluster's nodes, the agent logs in as its ACL user (set
//! on every node, as the cloud does), takes commands published with
//! `SPUBLISH` on its channel's shard, and writes its output and presence
//! through the cluster — across a failover of its channel's primary, and a
//! crashed node replaced by a fresh replica.

use std::sync::Arc;

use redis::Value;
use remoteagent_proto::events::{CommandEvent, DoneStatus, OutputEvent};
use remoteagent_proto::keys::CloudSigningKey;
use remoteagent_proto::{AgentId, SessionId, envelope, names, token};
use remoteagent_rediskit::{Conn, Options, Target, conn};
use remoteagent_testkit::{RedisCluster, wait_for};
use remoteagentd::agent::{AgentHandle, AgentNotice, AgentSettings, AgentSpec};
use remoteagentd::redis_conn::{agent_target, is_auth_error};
use tokio::sync::mpsc;

use crate::execution_support::{WAIT, agent_settings, chunk_text, done_of, fixture};

/// A cluster, an admin connection to it (the cloud's side), and one agent
/// whose ACL user exists on every node.
struct ClusterSetup {
    cluster: RedisCluster,
    admin: Conn,
    key: CloudSigningKey,
    agent: AgentId,
    user: String,
    jwt: String,
    project: tempfile::TempDir,
    _logs: tempfile::TempDir,
    settings: Arc<AgentSettings>,
    notices_tx: mpsc::Sender<AgentNotice>,
    _notices: mpsc::Receiver<AgentNotice>,
}

/// Admin connections that hold on a busy machine.
fn admin_options() -> Options {
    Options {
        connection_timeout: Some(std::time::Duration::from_secs(15)),
        response_timeout: Some(std::time::Duration::from_secs(15)),
        ..Options::default()
    }
}

/// The cluster's own helpers block (processes, sync connections): off the
/// async workers, so the agent keeps running meanwhile.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

impl ClusterSetup {
    async fn new() -> ClusterSetup {
        let cluster = blocking(RedisCluster::start).unwrap();
        let target = Target::parse(&cluster.urls(), false).unwrap();
        let admin = conn::managed(&target, &admin_options()).await.unwrap();
        let key = CloudSigningKey::generate();
        let agent = AgentId::generate();
        let (jwt, _) = token::issue(&key, &agent, 42, 3600).unwrap();
        let logs = tempfile::tempdir().unwrap();
        let (notices_tx, notices) = mpsc::channel(8);
        let mut s = ClusterSetup {
            user: names::agent_redis_user(&agent),
            settings: agent_settings(logs.path()),
            cluster,
            admin,
            key,
            agent,
            jwt,
            project: tempfile::tempdir().unwrap(),
            _logs: logs,
            notices_tx,
            _notices: notices,
        };
        s.set_agent_user().await;
        s
    }

    /// `ACL SETUSER` of the agent on every node, replicas included (Redis
    /// Cluster does not replicate it), as the cloud does. Node by node:
    /// `rediskit::nodes::each_node` reaches only the primaries.
    async fn set_agent_user(&mut self) {
        let mut acl = redis::cmd("ACL");
        acl.arg("SETUSER").arg(&self.user);
        for rule in names::agent_acl_rules(&self.agent) {
            acl.arg(rule);
        }
        acl.arg(format!(">{}", self.jwt));
        for port in self.cluster.ports() {
            let target = Target::parse(&format!("redis://127.0.0.1:{port}"), false).unwrap();
            let mut node = conn::dedicated(&target, &admin_options()).await.unwrap();
            let () = acl.query_async(&mut node).await.unwrap();
        }
    }

    fn spec(&self, runner: Vec<String>) -> AgentSpec {
        AgentSpec {
            id: self.agent.clone(),
            name: "proj".into(),
            path: self.project.path().to_path_buf(),
            runner: remoteagent_proto::runner::RunnerSpec::Command(runner),
            // What the cloud hands a daemon at pairing: every node, no
            // credentials.
            redis_url: self.cluster.urls(),
            redis_username: self.user.clone(),
            jwt: self.jwt.clone().into(),
            cloud_public_key: self.key.public_key(),
            conversation: None,
        }
    }

    async fn spawn(&self) -> AgentHandle {
        let spec = self.spec(vec![fixture("stream.sh"), "{prompt}".into(), "2".into()]);
        let handle = AgentHandle::spawn(spec, self.settings.clone(), self.notices_tx.clone());
        let online = wait_for(WAIT, || {
            let ok = handle.online();
            async move { ok.then_some(()) }
        })
        .await;
        assert!(online.is_some(), "agent never came online on the cluster");
        handle
    }

    fn command(&self, session: &SessionId, prompt: &str) -> String {
        let event = CommandEvent::Command(remoteagent_proto::events::CommandPayload {
            session_id: session.clone(),
            prompt: prompt.into(),
            r#continue: false,
            attachments: Vec::new(),
            mode: None,
            resume: None,
        });
        envelope::sign(&self.key, &self.agent, event, 30).unwrap()
    }

    /// `SPUBLISH` on the agent's channel, as the cloud does; the receivers.
    /// On a fresh connection: one whose slot map is stale after a failover
    /// publishes at the old primary, now a replica, which takes a sharded
    /// publish too but counts only its own subscribers.
    async fn publish(&self, message: &str) -> redis::RedisResult<i64> {
        let target = Target::parse(&self.cluster.urls(), false).unwrap();
        let mut admin = conn::dedicated(&target, &admin_options()).await?;
        admin
            .publish_cmd(&names::agent_channel(&self.agent), message.as_bytes())
            .query_async(&mut admin)
            .await
    }

    /// Publishes a command until the agent receives it (a subscription
    /// moving to a new primary takes a moment), then waits for its `done`.
    async fn run(&self, prompt: &str) -> Vec<OutputEvent> {
        let sid = SessionId::generate();
        let received = wait_for(WAIT, || async {
            // A fresh envelope each time: one the agent took is not taken
            // twice, and one it never saw would expire.
            let token = self.command(&sid, prompt);
            (self.publish(&token).await.ok() == Some(1)).then_some(())
        })
        .await;
        if received.is_none() {
            panic!(
                "the agent never received {prompt:?}; subscribers by node: {:?}",
                self.subscribers_by_node().await
            );
        }
        self.wait_done(&sid).await
    }

    /// Each node's role and count of subscribers to the agent's channel,
    /// for a failure's message.
    async fn subscribers_by_node(&self) -> Vec<(u16, String, i64)> {
        let mut found = Vec::new();
        for port in self.cluster.ports() {
            let target = Target::parse(&format!("redis://127.0.0.1:{port}"), false).unwrap();
            let Ok(mut node) = conn::dedicated(&target, &admin_options()).await else {
                continue;
            };
            let counts: Vec<(String, i64)> = redis::cmd("PUBSUB")
                .arg("SHARDNUMSUB")
                .arg(names::agent_channel(&self.agent))
                .query_async(&mut node)
                .await
                .unwrap_or_default();
            let role: Vec<Value> = redis::cmd("ROLE")
                .query_async(&mut node)
                .await
                .unwrap_or_default();
            let role = match role.first() {
                Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                _ => "?".into(),
            };
            found.push((port, role, counts.first().map_or(-1, |c| c.1)));
        }
        found
    }

    async fn events(&self, sid: &SessionId) -> redis::RedisResult<Vec<OutputEvent>> {
        let mut admin = self.admin.clone();
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(names::output_stream(&self.agent, sid))
            .arg("-")
            .arg("+")
            .query_async(&mut admin)
            .await?;
        Ok(reply
            .ids
            .iter()
            .map(|e| {
                let json: String = e.get(names::STREAM_FIELD).expect("event field");
                serde_json::from_str(&json).expect("valid event")
            })
            .collect())
    }

    async fn wait_done(&self, sid: &SessionId) -> Vec<OutputEvent> {
        let found = wait_for(WAIT, || async {
            let events = self.events(sid).await.ok()?;
            matches!(events.last(), Some(OutputEvent::Done(_))).then_some(events)
        })
        .await;
        found.unwrap_or_else(|| panic!("session {sid} never finished on the cluster"))
    }

    async fn presence(&self) -> Option<String> {
        let mut admin = self.admin.clone();
        redis::cmd("GET")
            .arg(names::presence_key(&self.agent))
            .query_async(&mut admin)
            .await
            .ok()
            .flatten()
    }

    /// A command runs to `ok` and its output is all there.
    async fn works(&self, prompt: &str) {
        let events = self.run(prompt).await;
        assert_eq!(done_of(&events).status, DoneStatus::Ok, "{events:?}");
        assert!(
            chunk_text(&events).contains(&format!("thinking about: {prompt}")),
            "{events:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_takes_sharded_commands_and_writes_through_the_cluster() {
    let s = ClusterSetup::new().await;
    let agent = s.spawn().await;
    s.works("on a cluster").await;
    let presence = s.presence().await.expect("presence key set");
    assert!(presence.contains("\"busy\""), "{presence}");
    agent.shutdown().await;
    let gone = wait_for(WAIT, || async {
        s.presence().await.is_none().then_some(())
    })
    .await;
    assert!(gone.is_some(), "presence stayed after the agent stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_of_the_channels_primary_keeps_the_agent_subscribed() {
    let s = ClusterSetup::new().await;
    let agent = s.spawn().await;
    s.works("before").await;
    let channel = names::agent_channel(&s.agent);
    let (old, new) = blocking(|| s.cluster.failover_for_key(&channel)).unwrap();
    assert_ne!(old, new);
    s.works("after the failover").await;
    // The stream's and presence's primaries too.
    let stream_probe = names::output_stream(&s.agent, &SessionId::generate());
    blocking(|| s.cluster.failover_for_key(&stream_probe)).unwrap();
    blocking(|| s.cluster.failover_for_key(&names::presence_key(&s.agent))).unwrap();
    s.works("after more failovers").await;
    assert!(agent.online());
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_node_replaced_by_a_fresh_replica_leaves_the_agent_working() {
    let mut s = ClusterSetup::new().await;
    let agent = s.spawn().await;
    s.works("before").await;
    let channel = names::agent_channel(&s.agent);
    let dead = s.cluster.primary_for_key(&channel).unwrap();
    blocking(|| s.cluster.kill(dead)).unwrap();
    // Its replica takes over by itself (no manual failover).
    let promoted = wait_for(WAIT, || async {
        blocking(|| {
            let p = s.cluster.primary_for_key(&channel).ok()?;
            (p != dead && s.cluster.wait_ok().is_ok()).then_some(p)
        })
    })
    .await
    .expect("the crashed primary's replica never took over");
    s.works("after the crash").await;

    // A new, empty node replaces it: the agent's user must be set there
    // (the cloud's housekeeping does it on a real cluster).
    blocking(|| s.cluster.forget(dead)).unwrap();
    let fresh = blocking(|| s.cluster.add_replica(promoted)).unwrap();
    s.set_agent_user().await;
    // It is a replica of the channel's shard: fail over to it, so the
    // agent's subscription and writes go to the newcomer.
    blocking(|| s.cluster.failover_for_key(&channel)).unwrap();
    assert_eq!(s.cluster.primary_for_key(&channel).unwrap(), fresh);
    s.works("on the fresh node").await;
    agent.shutdown().await;

    // A new start from the URL stored at pairing, which still names the
    // dead node: the login works from whichever nodes answer.
    let mut spec = s.spec(vec![fixture("stream.sh"), "{prompt}".into(), "2".into()]);
    spec.redis_url = format!("redis://127.0.0.1:{dead},{}", s.cluster.urls());
    let handle = AgentHandle::spawn(spec, s.settings.clone(), s.notices_tx.clone());
    let online = wait_for(WAIT, || {
        let ok = handle.online();
        async move { ok.then_some(()) }
    })
    .await;
    assert!(online.is_some(), "a restarted agent never came online");
    s.works("after a restart").await;
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_on_a_cluster_is_an_auth_error() {
    let s = ClusterSetup::new().await;
    let options = Options {
        resp3: true,
        connection_timeout: Some(std::time::Duration::from_secs(5)),
        response_timeout: Some(std::time::Duration::from_secs(10)),
        retries: Some(3),
        ..Options::default()
    };
    // A user no node knows: as after every node restarted without ACLs.
    let target = agent_target(&s.cluster.urls(), "ra-agent-gone", "secret").unwrap();
    let err = conn::managed(&target, &options)
        .await
        .err()
        .expect("refused");
    assert!(is_auth_error(&err), "{err:?}");
    // The right password on a user every node knows: fine.
    let target = agent_target(&s.cluster.urls(), &s.user, &s.jwt).unwrap();
    let mut c = conn::managed(&target, &options).await.unwrap();
    let n: i64 = redis::cmd("EXISTS")
        .arg(names::presence_key(&s.agent))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 0);
    // A wrong password.
    let target = agent_target(&s.cluster.urls(), &s.user, "wrong").unwrap();
    let err = conn::managed(&target, &options)
        .await
        .err()
        .expect("refused");
    assert!(is_auth_error(&err), "{err:?}");

    // The user gone from the node owning the presence key only: a command
    // routed there is refused.
    let owner = s
        .cluster
        .primary_for_key(&names::presence_key(&s.agent))
        .unwrap();
    let owner_target = Target::parse(&format!("redis://127.0.0.1:{owner}"), false).unwrap();
    let mut node = conn::dedicated(&owner_target, &admin_options())
        .await
        .unwrap();
    let _: Value = redis::cmd("ACL")
        .arg("DELUSER")
        .arg(&s.user)
        .query_async(&mut node)
        .await
        .unwrap();
    let target = agent_target(&s.cluster.urls(), &s.user, &s.jwt).unwrap();
    let err = match conn::managed(&target, &options).await {
        Err(e) => e,
        Ok(mut c) => redis::cmd("EXISTS")
            .arg(names::presence_key(&s.agent))
            .query_async::<i64>(&mut c)
            .await
            .expect_err("the node without the user answered"),
    };
    assert!(is_auth_error(&err), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_go_both_ways_through_the_cluster_as_the_agent() {
    let s = ClusterSetup::new().await;
    let store = remoteagentd::files::BlobStore::new(
        s.agent.clone(),
        s.cluster.urls(),
        s.user.clone(),
        s.jwt.clone().into(),
    );
    // Out (`/get`, the outbox): written as the agent, on its own connection.
    let bytes = b"hello from the project\n".repeat(1000);
    let cancel = tokio_util::sync::CancellationToken::new();
    let attachment = store.put("notes.txt", &bytes, &cancel).await.unwrap();
    let mut admin = s.admin.clone();
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(&attachment.key)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(stored, bytes);

    // In (a prompt's files): fetched, checked, saved and deleted as the agent.
    let sid = SessionId::generate();
    let mut conn = store.connection(attachment.size).await.unwrap();
    let attached = remoteagentd::inbox::receive(
        &mut conn,
        &s.settings.inbox,
        &s.agent,
        &sid,
        std::slice::from_ref(&attachment),
    )
    .await
    .unwrap();
    let saved =
        remoteagentd::inbox::session_dir(&s.settings.inbox.root, &s.agent, &sid).join("notes.txt");
    assert_eq!(std::fs::read(&saved).unwrap(), bytes, "{attached:?}");
    let left: i64 = redis::cmd("EXISTS")
        .arg(&attachment.key)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(left, 0, "the blob was not deleted");
}
