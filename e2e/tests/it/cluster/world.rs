//! The world of the cluster suite: a private Redis Cluster (3 primaries, 3
//! replicas), one PostgreSQL database, the fake Bot API, three cloud
//! replicas sharing all of them, and agents each in a home of its own with
//! its own daemon, paired through a replica picked at random.

use super::*;

/// One paired project: its daemon, its home, who owns it.
pub(super) struct Agent {
    // Field order is drop order: the daemon before its home.
    pub(super) daemon: Daemon,
    pub(super) home: Home,
    pub(super) name: String,
    /// The Telegram user who paired it; their private chat has the same id.
    pub(super) user: i64,
    pub(super) id: String,
}

impl Agent {
    /// The local logs of the agent's sessions (one `{sid}.log` per run).
    pub(super) fn session_ids(&self) -> Vec<String> {
        let dir = self
            .home
            .path()
            .join("state/remoteagent/logs")
            .join(&self.id);
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
            .collect()
    }
}

pub(super) struct ClusterWorld {
    // Field order is drop order: the processes before the servers they use.
    pub(super) agents: Vec<Agent>,
    /// The cloud replicas; a killed one stays here (its `proc` has no pid).
    pub(super) replicas: Vec<Cloud>,
    pub(super) tg: FakeTelegram,
    pub(super) _pg: PgDatabase,
    pub(super) cluster: RedisCluster,
    /// Update ids shared by every replica: each `Cloud` counts its own from
    /// 1, and the replicas claim update ids in Redis, so two replicas'
    /// "update 1" would be taken as one.
    next_update: AtomicI64,
    rng: Mutex<u64>,
}

impl ClusterWorld {
    /// The cluster, `REPLICAS` cloud replicas, and one agent per
    /// `(name, runner fixture)`, the n-th owned by user `USERS[n]`.
    pub(super) async fn start(agents: &[(&str, &str)]) -> ClusterWorld {
        let cluster = block_in_place(RedisCluster::start).expect("a Redis Cluster");
        // The clouds connect at once, while the replicas may still be
        // missing from `CLUSTER SLOTS` (a replica is listed once its
        // primary's gossip reports a replication offset, seconds later):
        // their ACL users must reach nodes redis-rs's view lacks.
        let pg = PgDatabase::create().expect("a PostgreSQL database");
        let tg = FakeTelegram::start().await;
        let signing_key = CloudSigningKey::generate().to_base64();
        let redis_url = cluster.urls();
        // The first replica migrates the database alone; the others start
        // together once the schema is there.
        let first = start_replica(&cluster, &tg, &pg, &signing_key, 0).await;
        let (second, third) = tokio::join!(
            start_replica(&cluster, &tg, &pg, &signing_key, 1),
            start_replica(&cluster, &tg, &pg, &signing_key, 2),
        );
        // REMOTEAGENT_E2E_SEED replays a run's choice of replicas.
        let seed = std::env::var("REMOTEAGENT_E2E_SEED")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(7)
            })
            | 1;
        eprintln!("[cluster] REDIS_URL={redis_url} REMOTEAGENT_E2E_SEED={seed}");
        let mut w = ClusterWorld {
            agents: Vec::new(),
            replicas: vec![first, second, third],
            tg,
            _pg: pg,
            cluster,
            next_update: AtomicI64::new(1),
            rng: Mutex::new(seed),
        };
        for (n, (name, runner)) in agents.iter().enumerate() {
            let agent = w.pair(name, runner, USERS[n]).await;
            w.agents.push(agent);
        }
        w
    }

    /// A number in `0..n` (xorshift: the seed is printed at start).
    pub(super) fn random(&self, n: usize) -> usize {
        let mut s = self.rng.lock().unwrap();
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        (*s % n as u64) as usize
    }

    /// The replicas still running.
    pub(super) fn live_replicas(&self) -> Vec<usize> {
        (0..self.replicas.len())
            .filter(|i| self.replicas[*i].proc.pid().is_some())
            .collect()
    }

    /// A running replica picked at random.
    pub(super) fn any_replica(&self) -> usize {
        let live = self.live_replicas();
        live[self.random(live.len())]
    }

    /// `user` types `text` in their private chat; the update is delivered
    /// to replica `replica`'s webhook, which must accept it.
    pub(super) async fn say_to(&self, replica: usize, user: i64, text: &str) {
        let id = self.next_update.fetch_add(1, Ordering::SeqCst);
        let update = updates::text(id, user, user, text);
        self.replicas[replica].deliver(&update).await;
    }

    /// Like [`ClusterWorld::say_to`], to a random running replica; returns
    /// which.
    pub(super) async fn say(&self, user: i64, text: &str) -> usize {
        let replica = self.any_replica();
        self.say_to(replica, user, text).await;
        replica
    }

    /// `remoteagentctl pair` of project `name` run by fixture `runner` in a
    /// new home whose daemon talks to a random replica, confirmed by `user`
    /// sending `/pair CODE` to another random replica; returns once the
    /// cloud can see the agent online (its presence key).
    async fn pair(&self, name: &str, runner: &str, user: i64) -> Agent {
        let via = self.any_replica();
        let home = Home::new(&self.replicas[via].url).unwrap();
        let daemon = Daemon::start(&home).await.unwrap();
        let project = home.project(name).unwrap();
        let runner = fixture(runner);
        let (mut ctl, code) = home
            .start_pairing(
                &format!("pair-{name}"),
                &project,
                &["--command", runner.to_str().unwrap()],
            )
            .await;
        let confirmed_on = self.say(user, &format!("/pair {code}")).await;
        let exit = ctl.wait(WAIT * 2).await.unwrap();
        assert_eq!(
            exit,
            Some(0),
            "pair of {name} (code from replica {via}, /pair to replica {confirmed_on}) failed:\n{}\ndaemon:\n{}\n{}",
            ctl.output(),
            daemon.proc.tail(40),
            self.logs()
        );
        let out = home.ctl(&["list", "--json"]).unwrap();
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let id = list[0]["id"].as_str().expect("an agent id").to_string();
        let agent = Agent {
            daemon,
            home,
            name: name.to_string(),
            user,
            id,
        };
        self.wait_online(&agent).await;
        agent
    }

    /// Waits until the agent's presence key exists (its daemon's first
    /// heartbeat): a prompt sent before would be answered "offline".
    pub(super) async fn wait_online(&self, agent: &Agent) {
        let key = format!("presence:{}", agent.id);
        let admin = self.admin().await;
        let online = wait_for(WAIT * 2, || {
            let key = key.clone();
            let mut admin = admin.clone();
            async move {
                let n: i64 = redis::cmd("EXISTS")
                    .arg(&key)
                    .query_async(&mut admin)
                    .await
                    .ok()?;
                (n > 0).then_some(())
            }
        })
        .await;
        assert!(
            online.is_some(),
            "{} never came online:\n{}\n{}",
            agent.name,
            agent.daemon.proc.tail(40),
            self.logs()
        );
    }

    /// A cluster connection as the default (admin) user, for the test's own
    /// reads.
    pub(super) async fn admin(&self) -> ClusterConnection {
        ClusterClient::builder(self.cluster.node_urls())
            .connection_timeout(Duration::from_secs(5))
            .response_timeout(Duration::from_secs(10))
            .build()
            .unwrap()
            .get_async_connection()
            .await
            .unwrap()
    }

    /// The replica (index) holding the forwarder's lock of `session`: the
    /// lock's value is `{REMOTEAGENT_REPLICA_ID}:{uuid}`.
    pub(super) async fn forwarding_replica(&self, session: &str) -> Option<usize> {
        let mut admin = self.admin().await;
        let value: Option<String> = redis::cmd("GET")
            .arg(fwd_lock_key(session))
            .query_async(&mut admin)
            .await
            .ok()?;
        let owner = value?.split(':').next()?.to_string();
        (0..self.replicas.len()).find(|i| replica_id(*i) == owner)
    }

    /// Waits for the forwarder lock of `session` and returns its holder.
    pub(super) async fn wait_forwarding_replica(&self, session: &str) -> usize {
        let found = wait_for(WAIT, || self.forwarding_replica(session)).await;
        found.unwrap_or_else(|| {
            panic!(
                "no replica holds {} (is the cloud's forwarder on the sharded keys?)\n{}",
                fwd_lock_key(session),
                self.logs()
            )
        })
    }

    /// Waits until `agent` has run its first session; returns its id.
    pub(super) async fn wait_session(&self, agent: &Agent) -> String {
        let sid = wait_for(WAIT, || {
            let ids = agent.session_ids();
            async move { ids.into_iter().next() }
        })
        .await;
        sid.unwrap_or_else(|| {
            panic!(
                "{} never started a session:\n{}\n{}",
                agent.name,
                agent.daemon.proc.tail(40),
                self.logs()
            )
        })
    }

    /// Blocking cluster management (redis-cli, polling) off the async
    /// workers' backs.
    pub(super) fn manage<T>(&mut self, f: impl FnOnce(&mut RedisCluster) -> T) -> T {
        block_in_place(|| f(&mut self.cluster))
    }

    /// Every message text in `chat` as the user sees it now.
    pub(super) fn texts(&self, chat: i64) -> Vec<String> {
        self.tg.messages(chat).into_iter().map(|m| m.text).collect()
    }

    /// Waits until `pred` holds for the messages of `chat` (hang guard
    /// `guard`), failing with what the chat shows and the logs.
    pub(super) async fn wait_chat(
        &self,
        chat: i64,
        guard: Duration,
        what: &str,
        pred: impl Fn(&[FakeMessage]) -> bool,
    ) {
        let hit = wait_for(guard, || {
            let ok = pred(&self.tg.messages(chat));
            async move { ok.then_some(()) }
        })
        .await;
        assert!(
            hit.is_some(),
            "chat {chat}: nothing {what} within {guard:?}; messages: {:#?}\n{}",
            self.texts(chat),
            self.logs()
        );
    }

    /// The last lines each replica and daemon logged, for a failing test.
    pub(super) fn logs(&self) -> String {
        let mut out = String::new();
        for (i, r) in self.replicas.iter().enumerate() {
            let state = if r.proc.pid().is_some() {
                "running"
            } else {
                "killed"
            };
            out.push_str(&format!(
                "---- cloud replica {i} ({state}, {}) ----\n{}\n",
                r.url,
                r.proc.tail(30)
            ));
        }
        for a in &self.agents {
            out.push_str(&format!(
                "---- daemon of {} ----\n{}\n",
                a.name,
                a.daemon.proc.tail(30)
            ));
        }
        out
    }
}

/// The replica id replica `n` is started with (`REMOTEAGENT_REPLICA_ID`).
pub(super) fn replica_id(n: usize) -> String {
    format!("e2e-replica-{n}")
}

/// Every setting a replica gets besides the harness's own (`REDIS_URL`,
/// `DATABASE_URL`, `PUBLIC_URL`, bind address, data dir, bot token, webhook
/// secret, Bot API base): the reference for a multi-replica deployment.
pub(super) fn replica_env(signing_key: &str, n: usize) -> Vec<(String, String)> {
    vec![
        // Every replica signs envelopes the daemons verify with the one key
        // they pinned at pairing, whichever replica paired them.
        ("REMOTEAGENT_SIGNING_KEY".into(), signing_key.into()),
        // Names the replica in forwarder locks (the test reads them).
        ("REMOTEAGENT_REPLICA_ID".into(), replica_id(n)),
        // The test's HTTP client is the "proxy" whose X-Forwarded-For is
        // believed, so one client's /api/pair calls count as one client.
        ("TRUSTED_PROXIES".into(), "127.0.0.1/32".into()),
    ]
}

async fn start_replica(
    cluster: &RedisCluster,
    tg: &FakeTelegram,
    pg: &PgDatabase,
    signing_key: &str,
    n: usize,
) -> Cloud {
    let env = replica_env(signing_key, n);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Cloud::start_env(
        &cluster.urls(),
        &tg.api_base(),
        &tg.token(),
        Some(&pg.url),
        &env,
    )
    .await
    .unwrap_or_else(|e| panic!("cloud replica {n} did not start: {e:#}"))
}

/// The forwarder's lock of a session (`cloud/src/forwarder/keys.rs`).
pub(super) fn fwd_lock_key(session: &str) -> String {
    let session = remoteagent_proto::SessionId::parse(session).expect("a session id");
    remoteagent_cloud::forwarder::keys::lock_key(&session)
}
