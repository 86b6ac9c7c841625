//! Test fixtures: a temporary home per test with the real `remoteagentd`
//! and `remoteagentctl` binaries (`remoteagent_testkit::home`, shared with
//! the end-to-end suite), a private Redis, and a fake cloud (axum on
//! 127.0.0.1:0) that answers the pairing API and records unpair calls.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, post};
use axum::{Json, Router};
use remoteagent_proto::api::{ErrorBody, ErrorDetail, PairRequest, PairResponse, RedisCredentials};
use remoteagent_proto::events::{PairEvent, PairFailedPayload, PairedPayload};
use remoteagent_proto::keys::CloudSigningKey;
use remoteagent_proto::{AgentId, PairingId, names, now_ms, token};

pub mod paired;

pub use paired::Paired;
pub use remoteagent_testkit::home::{Daemon, Home, PATIENCE, ctl_bin, daemon_bin};

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Whether `text` is a span of time as the CLI writes one everywhere
/// (`remoteagent_proto::elapsed`): `5s`, `1m 5s`, `1h 1m`, `1d 1h`.
pub fn is_span(text: &str) -> bool {
    let parts: Vec<&str> = text.split(' ').collect();
    let units: String = parts
        .iter()
        .map(|p| p.trim_start_matches(|c: char| c.is_ascii_digit()))
        .collect();
    let numbers = parts.iter().all(|p| {
        let digits = p.len() - p.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        digits > 0 && p.len() == digits + 1
    });
    numbers && ["s", "ms", "hm", "dh"].contains(&units.as_str())
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// What the fake cloud does on `POST /api/pair`.
#[derive(Clone)]
pub enum PairMode {
    /// Hand out a code valid for this long.
    Code(Duration),
    /// Answer this status with an error body.
    Refuse(u16, String),
}

pub struct CloudState {
    pub key: CloudSigningKey,
    pub redis_url: String,
    pub mode: Mutex<PairMode>,
    pub pairings: Mutex<Vec<(PairingId, PairRequest)>>,
    /// `(agent id, bearer)` of every DELETE /api/agents/{id}.
    pub deletes: Mutex<Vec<(String, String)>>,
    /// `(agent id, old bearer, new token)` of every token refresh.
    pub refreshes: Mutex<Vec<(String, String, String)>>,
}

/// The fake cloud.
pub struct FakeCloud {
    pub url: String,
    pub state: Arc<CloudState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeCloud {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pair_handler(
    State(state): State<Arc<CloudState>>,
    Json(body): Json<PairRequest>,
) -> Result<Json<PairResponse>, (StatusCode, Json<ErrorBody>)> {
    let mode = state.mode.lock().unwrap().clone();
    match mode {
        PairMode::Refuse(status, message) => Err((
            StatusCode::from_u16(status).unwrap(),
            Json(ErrorBody {
                error: ErrorDetail {
                    code: "plan_limit".into(),
                    message,
                },
            }),
        )),
        PairMode::Code(ttl) => {
            let pairing_id = PairingId::generate();
            state
                .pairings
                .lock()
                .unwrap()
                .push((pairing_id.clone(), body));
            Ok(Json(PairResponse {
                code: "XK9-4TZ".into(),
                pairing_id,
                expires_at_ms: now_ms() + ttl.as_millis() as u64,
                connect_url: "http://cloud.test/connect?code=XK9-4TZ".into(),
                bot_username: Some("RemoteAgentTestBot".into()),
                redis: RedisCredentials {
                    url: state.redis_url.clone(),
                    username: String::new(),
                    password: String::new(),
                },
                cloud_public_key: state.key.public_key().to_base64(),
            }))
        }
    }
}

async fn delete_handler(
    State(state): State<Arc<CloudState>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> StatusCode {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    state.deletes.lock().unwrap().push((id, bearer));
    StatusCode::NO_CONTENT
}

/// Renews a token when the Bearer is a valid one for this agent.
async fn token_handler(
    State(state): State<Arc<CloudState>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Json<remoteagent_proto::api::TokenResponse>, StatusCode> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    let claims =
        token::verify(&state.key.public_key(), &bearer).map_err(|_| StatusCode::UNAUTHORIZED)?;
    if claims.sub.as_str() != id {
        return Err(StatusCode::FORBIDDEN);
    }
    let (jwt, new_claims) =
        token::issue(&state.key, &claims.sub, claims.owner, 30 * 24 * 3600).unwrap();
    state
        .refreshes
        .lock()
        .unwrap()
        .push((id, bearer, jwt.clone()));
    Ok(Json(remoteagent_proto::api::TokenResponse {
        jwt,
        expires_at: new_claims.exp,
    }))
}

impl FakeCloud {
    pub async fn start(redis_url: String) -> Self {
        let state = Arc::new(CloudState {
            key: CloudSigningKey::generate(),
            redis_url,
            mode: Mutex::new(PairMode::Code(Duration::from_secs(600))),
            pairings: Mutex::new(Vec::new()),
            deletes: Mutex::new(Vec::new()),
            refreshes: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/api/pair", post(pair_handler))
            .route("/api/agents/{id}", delete(delete_handler))
            .route("/api/agents/{id}/token", post(token_handler))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeCloud { url, state, task }
    }

    pub fn set_mode(&self, mode: PairMode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn last_pairing(&self) -> PairingId {
        self.state
            .pairings
            .lock()
            .unwrap()
            .last()
            .unwrap()
            .0
            .clone()
    }

    pub fn deletes(&self) -> Vec<(String, String)> {
        self.state.deletes.lock().unwrap().clone()
    }

    /// A `paired` event for a new agent, signed by this cloud, with a
    /// 30-day token.
    pub fn paired_event(&self, name: &str) -> (AgentId, String, String) {
        self.paired_event_with_ttl(name, 30 * 24 * 3600)
    }

    pub fn paired_event_with_ttl(&self, name: &str, ttl_secs: u64) -> (AgentId, String, String) {
        let agent = AgentId::generate();
        let (jwt, _) = token::issue(&self.state.key, &agent, 42, ttl_secs).unwrap();
        let event = PairEvent::Paired(PairedPayload {
            jwt: jwt.clone(),
            agent_id: agent.clone(),
            name: name.into(),
            redis_username: String::new(),
            cloud_public_key: self.state.key.public_key().to_base64(),
        });
        (agent, jwt, serde_json::to_string(&event).unwrap())
    }

    pub fn failed_event(reason: &str, message: &str) -> String {
        serde_json::to_string(&PairEvent::PairFailed(PairFailedPayload {
            reason: reason.into(),
            message: message.into(),
        }))
        .unwrap()
    }

    /// How many listen on the last pairing's channel (`PUBSUB NUMSUB`).
    pub async fn pair_listeners(&self) -> i64 {
        let mut conn = remoteagent_testkit::redis_conn(&self.state.redis_url).await;
        let channel = names::pair_channel(&self.last_pairing());
        let (_, count): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(&mut conn)
            .await
            .unwrap();
        count
    }

    /// Publishes on the last pairing's channel; returns the receiver count.
    pub async fn publish_pair(&self, payload: &str) -> i64 {
        let client = redis::Client::open(self.state.redis_url.as_str()).unwrap();
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&remoteagent_testkit::conn_config())
            .await
            .unwrap();
        let channel = names::pair_channel(&self.last_pairing());
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async(&mut conn)
            .await
            .unwrap()
    }
}

/// A child's stdout, read line by line on a thread.
pub struct Lines {
    rx: std::sync::mpsc::Receiver<String>,
}

impl Lines {
    pub fn of(child: &mut Child) -> Self {
        use std::io::BufRead;
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { rx }
    }

    /// Lines up to and including the first that contains `needle`.
    pub fn until(&self, needle: &str) -> String {
        let mut seen = String::new();
        loop {
            match self.rx.recv_timeout(PATIENCE) {
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                    if line.contains(needle) {
                        return seen;
                    }
                }
                Err(e) => panic!("no line containing {needle:?} ({e}); got:\n{seen}"),
            }
        }
    }

    /// Everything until the child closes its stdout.
    pub fn rest(&self) -> String {
        let mut seen = String::new();
        while let Ok(line) = self.rx.recv_timeout(PATIENCE) {
            seen.push_str(&line);
            seen.push('\n');
        }
        seen
    }
}

/// Waits for a child to exit and returns its output (stdout read so far is
/// not included if it was taken by `read_until`).
pub fn finish(child: Child) -> Output {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(PATIENCE)
        .expect("the CLI did not exit")
        .unwrap()
}

/// Runs a blocking closure off the async runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Pairs `project` end to end through the CLI; returns the agent id and JWT.
pub async fn pair_project(
    home: &Arc<Home>,
    cloud: &FakeCloud,
    project: &Path,
    name: &str,
    extra: &[&str],
) -> (AgentId, String) {
    pair_project_with_ttl(home, cloud, project, name, extra, 30 * 24 * 3600).await
}

/// [`pair_project`] with a token of the given lifetime.
pub async fn pair_project_with_ttl(
    home: &Arc<Home>,
    cloud: &FakeCloud,
    project: &Path,
    name: &str,
    extra: &[&str],
    ttl_secs: u64,
) -> (AgentId, String) {
    let mut args: Vec<String> = vec!["pair".into(), project.to_string_lossy().into_owned()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let h = home.clone();
    let mut child = blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        h.spawn_ctl(&args)
    })
    .await;
    let (agent, jwt, event) = cloud.paired_event_with_ttl(name, ttl_secs);
    let lines = Lines::of(&mut child);
    let (first, lines) = blocking(move || (lines.until("Pairing code:"), lines)).await;
    assert!(first.contains("XK9-4TZ"), "no code printed: {first}");
    assert_eq!(
        cloud.publish_pair(&event).await,
        1,
        "the daemon is not listening"
    );
    let (rest, out) = blocking(move || (lines.rest(), finish(child))).await;
    assert!(
        out.status.success(),
        "pair failed: {rest}\n{}",
        stderr(&out)
    );
    assert!(rest.contains("Paired '"), "no success line: {rest}");
    (agent, jwt)
}

/// Polls a blocking check every 20 ms until it returns `Some` (hang guard:
/// `timeout`).
pub fn poll<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
