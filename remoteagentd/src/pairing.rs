//! Pairing a project folder (ARCHITECTURE.md, Contracts: "Pairing"), for
//! `Request::Pair {path, name, runner}`:
//!
//! 1. canonicalize the folder and make sure it is not paired already;
//! 2. `POST {cloud}/api/pair` → a code, a pairing id and Redis credentials
//!    that may only SUBSCRIBE to `pair:{pairingId}`;
//! 3. subscribe BEFORE telling the user the code, so a fast confirmation
//!    cannot be missed;
//! 4. wait for `paired` / `pair_failed` until the code expires; the client
//!    hanging up cancels (the caller drops this future);
//! 5. on `paired`: check the cloud key against the one pinned from the HTTPS
//!    answer, verify the JWT, store it, write the metadata, start the agent.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use redis::{PushInfo, PushKind};
use remoteagent_proto::api::{ErrorBody, PairRequest, PairResponse};
use remoteagent_proto::control::{AgentInfo, ErrorCode, Response};
use remoteagent_proto::events::{PairEvent, PairedPayload};
use remoteagent_proto::keys::CloudPublicKey;
use remoteagent_proto::runner::RunnerSpec;
use remoteagent_proto::{names, now_ms, text, token};
use remoteagent_rediskit::{self as rediskit, Conn, Options, Target};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::mpsc;

use crate::request_error::ControlError;
use crate::secrets::SecretError;
use crate::state::AgentMeta;
use crate::supervisor::Supervisor;
use crate::util::names::{clean_agent_name, clean_hostname};

/// What the client asked for.
#[derive(Debug, Clone)]
pub struct PairParams {
    pub path: PathBuf,
    pub name: Option<String>,
    pub runner: Option<RunnerSpec>,
}

fn unreachable(message: impl Into<String>) -> ControlError {
    ControlError::new(ErrorCode::CloudUnreachable, message)
}

fn refused(message: impl Into<String>) -> ControlError {
    ControlError::new(ErrorCode::PairRefused, message)
}

/// The folder to pair: absolute, symlinks resolved, and a directory.
fn project_folder(path: &Path) -> Result<PathBuf, ControlError> {
    let canonical = std::fs::canonicalize(path).map_err(|e| {
        ControlError::new(
            ErrorCode::NotFound,
            format!("cannot use {}: {e}", path.display()),
        )
    })?;
    if !canonical.is_dir() {
        return Err(ControlError::new(
            ErrorCode::BadRequest,
            format!("{} is not a directory", canonical.display()),
        ));
    }
    Ok(canonical)
}

fn default_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "project".into())
}

/// Longest wait for the cloud's answer to `POST /api/pair`: a cloud that
/// says nothing is reported within 5 s, not after 30 s of silence.
const PAIR_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the cloud for a pairing code.
async fn request_code(supervisor: &Supervisor, name: &str) -> Result<PairResponse, ControlError> {
    let config = supervisor.config();
    let cloud = &config.cloud_url;
    let url = format!("{cloud}/api/pair");
    let body = PairRequest {
        project_name: name.to_string(),
        hostname: clean_hostname(),
    };
    // A user waits at the terminal: say within seconds what is wrong, not
    // after the client's general 30 s.
    let response = supervisor
        .http
        .post(&url)
        .json(&body)
        .timeout(PAIR_REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                unreachable(format!(
                    "the cloud at {cloud} did not answer within {} s; check that it runs and that cloud_url is right",
                    PAIR_REQUEST_TIMEOUT.as_secs()
                ))
            } else {
                unreachable(format!(
                    "cannot reach the cloud at {cloud} ({e}). RemoteAgent needs a cloud (the Telegram bot's service) \
                     running first: start your own `remoteagent-cloud` (see the README), or set cloud_url in the \
                     daemon config (or REMOTEAGENT_CLOUD_URL) to the one you use"
                ))
            }
        })?;
    let status = response.status();
    if status.is_success() {
        return response.json::<PairResponse>().await.map_err(|e| {
            unreachable(format!(
                "the server at {cloud} is not a RemoteAgent cloud, or not this version: its answer to /api/pair is unreadable ({e})"
            ))
        });
    }
    let message = match response.json::<ErrorBody>().await {
        Ok(body) => body.error.message,
        // Not our error body: whatever answers there is not a RemoteAgent
        // cloud (a wrong port, another web server).
        Err(_) => {
            return Err(unreachable(format!(
                "the server at {cloud} is not a RemoteAgent cloud (it answered /api/pair with {status}); check cloud_url"
            )));
        }
    };
    if status.is_client_error() {
        Err(refused(format!("the cloud refused to pair: {message}")))
    } else {
        Err(unreachable(format!(
            "the cloud at {cloud} failed ({status}): {message}"
        )))
    }
}

/// The pairing channel's subscription: the connection (kept open while
/// waiting) and the messages it pushes.
struct PairSubscription {
    conn: Conn,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
}

/// Subscribes to `pair:{pairingId}` with the pairing's own credentials:
/// `SUBSCRIBE` on a standalone server, `SSUBSCRIBE` on a Redis Cluster (the
/// URL the cloud sent is then a list of nodes, or marked `cluster=true`,
/// and the cloud `SPUBLISH`es the outcome to the channel's shard).
async fn subscribe(pair: &PairResponse) -> Result<PairSubscription, ControlError> {
    let url = &pair.redis.url;
    let shown = rediskit::target::redact(url);
    let bad = |e: redis::RedisError| {
        unreachable(format!("cannot reach the cloud's Redis at {shown}: {e}"))
    };
    let target = Target::parse(url, false)
        .map_err(|e| {
            unreachable(format!(
                "the cloud sent a Redis address that cannot be used: {e}"
            ))
        })?
        .with_login(&pair.redis.username, &pair.redis.password);
    let (tx, pushes) = mpsc::unbounded_channel();
    let options = Options {
        push: Some(tx),
        resp3: true,
        connection_timeout: Some(PAIR_REDIS_TIMEOUT),
        ..Default::default()
    };
    let channel = names::pair_channel(&pair.pairing_id);
    let subscribed = async {
        let mut conn = rediskit::conn::dedicated(&target, &options).await?;
        conn.subscribe(&channel).await?;
        Ok::<_, redis::RedisError>(conn)
    };
    let conn = tokio::time::timeout(PAIR_REDIS_TIMEOUT, subscribed)
        .await
        .map_err(|_| {
            unreachable(format!(
                "connecting to the cloud's Redis at {shown} timed out"
            ))
        })?
        .map_err(bad)?;
    Ok(PairSubscription { conn, pushes })
}

/// Longest wait for the connection to the cloud's Redis and the subscription.
const PAIR_REDIS_TIMEOUT: Duration = Duration::from_secs(15);

impl PairSubscription {
    /// The next message's payload on the pairing channel; `None` when the
    /// connection closed for good.
    async fn next(&mut self) -> Option<redis::Msg> {
        while let Some(push) = self.pushes.recv().await {
            match push.kind {
                // `SMessage`: the sharded kind, on a cluster.
                PushKind::Message | PushKind::SMessage => {
                    if let Some(msg) = redis::Msg::from_push_info(push) {
                        return Some(msg);
                    }
                }
                // A cluster connection reconnects that node and subscribes
                // again by itself; a standalone connection is gone.
                PushKind::Disconnection if !self.conn.is_cluster() => return None,
                _ => {}
            }
        }
        None
    }
}

/// Pairs a folder. `progress` receives the [`Response::PairCode`] once the
/// daemon listens for the confirmation.
pub async fn pair<F>(
    supervisor: &Arc<Supervisor>,
    params: PairParams,
    progress: F,
) -> Result<AgentInfo, ControlError>
where
    F: FnOnce(Response),
{
    let path = project_folder(&params.path)?;
    let guard = supervisor.begin_pairing(&path)?;
    let name = params
        .name
        .clone()
        .map(|n| text::clean_name(&n, text::MAX_NAME_CHARS))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| clean_agent_name(&default_name(&path), "project"));
    let runner = params.runner.clone().unwrap_or_default();
    if let RunnerSpec::Command(argv) = &runner
        && argv.first().is_none_or(|p| p.is_empty())
    {
        return Err(ControlError::new(
            ErrorCode::BadRequest,
            "a custom runner needs a command",
        ));
    }
    // Refuse early when the secret store cannot work: better now than after
    // the user typed the code.
    if let Err(e @ SecretError::Unavailable { .. }) = supervisor.secrets.get(&probe_id()).await {
        return Err(ControlError::new(
            ErrorCode::KeyringUnavailable,
            e.to_string(),
        ));
    }

    let pair = request_code(supervisor, &name).await?;
    let pinned = CloudPublicKey::from_base64(&pair.cloud_public_key)
        .map_err(|e| refused(format!("the cloud sent an invalid public key: {e}")))?;
    let mut subscription = subscribe(&pair).await?;
    tracing::info!(pairing = %pair.pairing_id, path = %path.display(), "waiting for the pairing code to be entered");
    let warnings =
        crate::runner_check::missing_program(&runner, &path, std::env::var_os("PATH").as_deref())
            .into_iter()
            .collect();
    progress(Response::PairCode {
        code: pair.code.clone(),
        connect_url: pair.connect_url.clone(),
        expires_at_ms: pair.expires_at_ms,
        bot_username: pair.bot_username.clone(),
        warnings,
    });

    let remaining = Duration::from_millis(pair.expires_at_ms.saturating_sub(now_ms()));
    let deadline = tokio::time::Instant::now() + remaining;
    let paired = {
        loop {
            let msg = match tokio::time::timeout_at(deadline, subscription.next()).await {
                Err(_) => {
                    return Err(ControlError::new(
                        ErrorCode::PairExpired,
                        format!(
                            "the pairing code {} expired before it was entered; run pair again",
                            pair.code
                        ),
                    ));
                }
                Ok(None) => {
                    return Err(unreachable(
                        "the connection to the cloud's Redis closed while waiting for the confirmation",
                    ));
                }
                Ok(Some(msg)) => msg,
            };
            let payload: String = match msg.get_payload() {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a non-text message on the pairing channel");
                    continue;
                }
            };
            match serde_json::from_str::<PairEvent>(&payload) {
                Ok(PairEvent::Paired(p)) => break p,
                Ok(PairEvent::PairFailed(f)) => {
                    let code = if f.reason == "expired" {
                        ErrorCode::PairExpired
                    } else {
                        ErrorCode::PairRefused
                    };
                    let text = if f.message.is_empty() {
                        f.reason
                    } else {
                        f.message
                    };
                    return Err(ControlError::new(
                        code,
                        format!("the cloud refused the pairing: {text}"),
                    ));
                }
                Ok(PairEvent::Unknown) => {
                    tracing::debug!("skipping an unknown event on the pairing channel");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a malformed event on the pairing channel");
                }
            }
        }
    };
    drop(subscription);

    // From here on the pairing is finished in its own task, so that a client
    // hanging up in the middle cannot leave a secret without metadata.
    let supervisor = supervisor.clone();
    let cloud_url = supervisor.config().cloud_url.clone();
    let redis_url = pair.redis.url.clone();
    let task = tokio::spawn(async move {
        complete(
            &supervisor,
            paired,
            pinned,
            path,
            runner,
            cloud_url,
            redis_url,
        )
        .await
    });
    let result = task
        .await
        .map_err(|e| ControlError::internal(format!("the pairing task failed: {e}")))?;
    drop(guard);
    result
}

/// An id no agent has, used to check that the secret store answers.
pub(crate) fn probe_id() -> remoteagent_proto::AgentId {
    remoteagent_proto::AgentId::parse("remoteagent-probe")
        .unwrap_or_else(|_| remoteagent_proto::AgentId::generate())
}

async fn complete(
    supervisor: &Arc<Supervisor>,
    mut paired: PairedPayload,
    pinned: CloudPublicKey,
    path: PathBuf,
    runner: RunnerSpec,
    cloud_url: String,
    redis_url: String,
) -> Result<AgentInfo, ControlError> {
    // The key in the Redis message must be the one that came over HTTPS:
    // whoever can publish on Redis must not be able to swap in their own key
    // and then sign commands with it.
    let named = CloudPublicKey::from_base64(&paired.cloud_public_key).ok();
    if named.as_ref() != Some(&pinned) {
        tracing::warn!(
            agent = %paired.agent_id,
            "SECURITY: the pairing confirmation names a different cloud key than the cloud's HTTPS answer; refusing it"
        );
        return Err(refused(
            "the pairing confirmation was signed for a different cloud key than the cloud announced; refusing it (someone may be tampering with Redis)",
        ));
    }
    let jwt = SecretString::from(std::mem::take(&mut paired.jwt));
    let claims = token::verify(&pinned, jwt.expose_secret()).map_err(|e| {
        tracing::warn!(agent = %paired.agent_id, error = %e, "SECURITY: the pairing confirmation carries an invalid token");
        refused(format!("the pairing confirmation carries an invalid token: {e}"))
    })?;
    if claims.sub != paired.agent_id {
        tracing::warn!(agent = %paired.agent_id, "SECURITY: the token was issued for another agent");
        return Err(refused("the pairing token was issued for another agent"));
    }
    if supervisor.meta(&paired.agent_id).is_some() {
        return Err(ControlError::new(
            ErrorCode::Conflict,
            format!("agent {} is already paired", paired.agent_id),
        ));
    }
    supervisor
        .secrets
        .set(&paired.agent_id, jwt.expose_secret())
        .await
        .map_err(|e| match e {
            SecretError::Unavailable { .. } => {
                ControlError::new(ErrorCode::KeyringUnavailable, e.to_string())
            }
            other => ControlError::internal(format!("storing the agent's token failed: {other}")),
        })?;
    let meta = AgentMeta {
        id: paired.agent_id.clone(),
        // The cloud cleans it too; this daemon does not rely on that.
        name: clean_agent_name(&paired.name, &default_name(&path)),
        path,
        runner,
        cloud_url,
        redis_url,
        redis_username: paired.redis_username.clone(),
        cloud_public_key: pinned.to_base64(),
        paired_at_ms: now_ms(),
        conversation: None,
    };
    if let Err(e) = supervisor.state.save(&meta) {
        // Leave no orphaned secret behind.
        if let Err(e) = supervisor.secrets.delete(&meta.id).await {
            tracing::warn!(agent = %meta.id, error = %e, "could not remove the secret of a failed pairing");
        }
        return Err(ControlError::internal(format!(
            "saving the agent failed: {e}"
        )));
    }
    tracing::info!(agent = %meta.id, name = %meta.name, path = %meta.path.display(), "paired");
    let id = meta.id.clone();
    supervisor.start(meta, jwt);
    supervisor
        .agent_info(&id)
        .ok_or_else(|| ControlError::internal("the agent vanished right after pairing"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use remoteagent_proto::PairingId;
    use remoteagent_proto::api::RedisCredentials;
    use remoteagent_testkit::{RedisCluster, RedisServer};

    /// A pairing answer naming `url`, with the pairing's ACL user set on
    /// every node of `nodes` (as the cloud does).
    async fn pair_response(url: String, nodes: &[String]) -> PairResponse {
        let pairing_id = PairingId::generate();
        let username = names::pairing_redis_user(&pairing_id);
        let mut acl = redis::cmd("ACL");
        acl.arg("SETUSER").arg(&username);
        for rule in names::pairing_acl_rules(&pairing_id) {
            acl.arg(rule);
        }
        acl.arg(">pairing-secret");
        for node in nodes {
            let target = Target::parse(node, false).unwrap();
            let mut c = rediskit::conn::dedicated(&target, &Options::default())
                .await
                .unwrap();
            let () = acl.query_async(&mut c).await.unwrap();
        }
        PairResponse {
            code: "ABC-123".into(),
            pairing_id,
            expires_at_ms: now_ms() + 600_000,
            connect_url: String::new(),
            bot_username: None,
            redis: RedisCredentials {
                url,
                username,
                password: "pairing-secret".into(),
            },
            cloud_public_key: String::new(),
        }
    }

    /// Publishes (as the cloud: `SPUBLISH` on a cluster) until the daemon's
    /// subscription receives it.
    async fn delivered(pair: &PairResponse, admin_url: &str) {
        let mut sub = subscribe(pair).await.unwrap();
        let target = Target::parse(admin_url, false).unwrap();
        let mut admin = rediskit::conn::managed(&target, &Options::default())
            .await
            .unwrap();
        let channel = names::pair_channel(&pair.pairing_id);
        let receivers: i64 = admin
            .publish_cmd(&channel, b"{\"event\":\"pair_failed\"}")
            .query_async(&mut admin)
            .await
            .unwrap();
        assert_eq!(receivers, 1);
        let msg = tokio::time::timeout(Duration::from_secs(30), sub.next())
            .await
            .expect("no message within 30 s")
            .expect("the subscription closed");
        assert_eq!(msg.get_channel_name(), channel);
        assert_eq!(msg.get_payload_bytes(), b"{\"event\":\"pair_failed\"}");
    }

    #[tokio::test]
    async fn the_pairing_channel_is_subscribed_on_a_standalone_server() {
        let server = RedisServer::start().unwrap();
        let pair = pair_response(server.url(), &[server.url()]).await;
        delivered(&pair, &server.url()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pairing_channel_is_subscribed_sharded_on_a_cluster() {
        let cluster = tokio::task::block_in_place(RedisCluster::start).unwrap();
        let pair = pair_response(cluster.urls(), &cluster.node_urls()).await;
        delivered(&pair, &cluster.urls()).await;
    }

    #[tokio::test]
    async fn a_refused_pairing_login_is_said() {
        let server = RedisServer::start().unwrap();
        let mut pair = pair_response(server.url(), &[server.url()]).await;
        pair.redis.password = "wrong".into();
        let err = subscribe(&pair).await.err().expect("refused");
        assert!(
            err.to_string().contains("cannot reach the cloud's Redis"),
            "{err}"
        );
    }
}
