//! `Request::Doctor`: the checks only the daemon can make, each with the
//! fix for a problem. `remoteagentctl doctor` adds its own (the daemon
//! answers at all, the cloud, the service, versions) around these.
//!
//! The config file is read again from disk: a file broken since the daemon
//! started would break its next start, which is what the user wants to
//! know. Each agent's Redis login is tried for real with its own
//! credentials, because an agent whose ACL user is gone (a Redis restart
//! the cloud has not repaired, an unpair elsewhere) looks fine locally.

use std::sync::Arc;
use std::time::Duration;

use remoteagent_proto::control::{Check, Response};
use remoteagent_proto::names;
use secrecy::ExposeSecret;

use crate::config::{Config, SecretStoreKind};
use crate::paths::Paths;
use crate::redis_conn::{agent_target, is_auth_error};
use crate::secrets::SecretError;
use crate::state::AgentMeta;
use crate::supervisor::Supervisor;

/// Longest wait for one agent's Redis login: a doctor answers in seconds.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn handle(supervisor: &Arc<Supervisor>) -> Response {
    let mut checks = vec![config_file(supervisor)];
    checks.push(secret_store(supervisor).await);
    let mut clouds = vec![supervisor.config().cloud_url.clone()];
    for (meta, _) in supervisor.metas() {
        if !clouds.contains(&meta.cloud_url) {
            clouds.push(meta.cloud_url);
        }
    }
    for url in clouds {
        checks.push(cloud(supervisor, &url).await);
    }
    for (meta, problem) in supervisor.metas() {
        checks.push(redis_login(supervisor, &meta, problem).await);
        checks.push(runner(&meta));
    }
    Response::Doctor { checks }
}

fn config_file(supervisor: &Supervisor) -> Check {
    const NAME: &str = "daemon config";
    let paths = match Paths::from_env() {
        Ok(paths) => paths,
        Err(e) => {
            return Check::fail(
                NAME,
                e.to_string(),
                "set HOME (or the XDG_* variables) for the service",
            );
        }
    };
    let path = paths.config_file.display().to_string();
    let reload = supervisor.reload_state().clone();
    const RELOAD: &str = "`remoteagentctl reload` (or `systemctl --user reload remoteagentd`)";
    match Config::load(&paths.config_file) {
        // Fixed on disk since, but the daemon still runs the old config.
        Ok(_) if reload.failure.is_some() => Check::warn(
            NAME,
            format!("{}; {path} parses now", reload.failure.unwrap_or_default()),
            format!("run {RELOAD}"),
        ),
        Ok(_) if !reload.restart_needed.is_empty() => Check::warn(
            NAME,
            format!(
                "{} changed; takes effect after a restart",
                reload.restart_needed.join(", ")
            ),
            "restart the daemon (`systemctl --user restart remoteagentd`)",
        ),
        Ok(_) if paths.config_file.exists() => Check::ok(NAME, format!("{path} parses")),
        Ok(_) => Check::ok(NAME, format!("no {path}: defaults")),
        Err(e) => Check::fail(
            NAME,
            match reload.failure {
                Some(failure) => format!("{failure}; the daemon keeps its previous config"),
                None => e.to_string(),
            },
            format!("fix {path} (the daemon would not start with it), then run {RELOAD}"),
        ),
    }
}

/// The cloud answers `/healthz` as a RemoteAgent cloud, soon enough.
async fn cloud(supervisor: &Supervisor, url: &str) -> Check {
    let name = format!("cloud {url}");
    let fix_url =
        "set cloud_url in the daemon config (or REMOTEAGENT_CLOUD_URL) to your cloud's address";
    let response = supervisor
        .http
        .get(format!("{url}/healthz"))
        .timeout(LOGIN_TIMEOUT)
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Check::fail(
                name,
                format!("no answer within {} s", LOGIN_TIMEOUT.as_secs()),
                "check that the cloud runs and that this machine reaches it",
            );
        }
        Err(e) => {
            return Check::fail(
                name,
                format!("cannot reach it: {e}"),
                format!(
                    "start the cloud (your own, set up by `remoteagentctl setup`: run `remoteagentctl setup` again, or `remoteagentctl service start --cloud`), or {fix_url}"
                ),
            );
        }
    };
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if body["service"] != "remoteagent-cloud" {
        return Check::fail(
            name,
            format!("it answers /healthz with {status}, but not as a RemoteAgent cloud"),
            fix_url,
        );
    }
    let version = body["version"].as_str().unwrap_or("?");
    if !status.is_success() {
        return Check::fail(
            name,
            format!(
                "RemoteAgent cloud {version} is unhealthy: database {}, redis {}",
                body["database"], body["redis"]
            ),
            "see the cloud's log; it needs its database and Redis",
        );
    }
    if version != env!("CARGO_PKG_VERSION") {
        return Check::warn(
            name,
            format!(
                "RemoteAgent cloud {version}, this daemon is {}",
                env!("CARGO_PKG_VERSION")
            ),
            "install the same version of the cloud and the daemon",
        );
    }
    Check::ok(name, format!("RemoteAgent cloud {version}, healthy"))
}

async fn secret_store(supervisor: &Supervisor) -> Check {
    const NAME: &str = "secret store";
    let kind = match supervisor.config().secret_store {
        SecretStoreKind::Keyring => "the OS keyring",
        SecretStoreKind::File => "the 0600 file store",
    };
    // The same probe pairing makes: reading an entry that never exists.
    match supervisor.secrets.get(&crate::pairing::probe_id()).await {
        Ok(_) => Check::ok(NAME, format!("{kind} answers")),
        Err(e @ SecretError::Unavailable { .. }) => Check::fail(
            NAME,
            e.to_string(),
            "start a Secret Service (e.g. gnome-keyring) in the login session, or set secret_store = \"file\" in the daemon config",
        ),
        Err(e) => Check::fail(NAME, e.to_string(), "unlock the keyring, then try again"),
    }
}

async fn redis_login(supervisor: &Supervisor, meta: &AgentMeta, problem: Option<String>) -> Check {
    let name = format!("redis login of {}", meta.name);
    let repair = format!(
        "pair it again: `remoteagentctl unpair {0}` then `remoteagentctl pair {1}`",
        meta.name,
        meta.path.display()
    );
    if let Some(problem) = problem {
        return Check::fail(name, problem, repair);
    }
    let jwt = match supervisor.secrets.get(&meta.id).await {
        Ok(Some(jwt)) => jwt,
        Ok(None) => return Check::fail(name, "its token is missing from the secret store", repair),
        Err(e) => {
            return Check::fail(
                name,
                format!("its token could not be read: {e}"),
                "unlock the keyring, then try again",
            );
        }
    };
    match tokio::time::timeout(LOGIN_TIMEOUT, ping_as(meta, jwt.expose_secret())).await {
        Ok(Ok(())) => Check::ok(
            name,
            format!("logged in to {} as its ACL user", meta.redis_url),
        ),
        Ok(Err(e)) if is_refused_login(&e) => Check::fail(
            name,
            format!(
                "Redis at {} refuses its login ({})",
                meta.redis_url,
                e.code().unwrap_or("auth")
            ),
            repair,
        ),
        Ok(Err(e)) => Check::fail(
            name,
            format!("Redis at {} cannot be reached: {e}", meta.redis_url),
            "start Redis (`sudo systemctl start redis-server`), or check the cloud's REDIS_URL",
        ),
        Err(_) => Check::fail(
            name,
            format!(
                "Redis at {} did not answer within {} s",
                meta.redis_url,
                LOGIN_TIMEOUT.as_secs()
            ),
            "check that Redis runs and that this machine reaches it",
        ),
    }
}

/// A fresh connection with the agent's credentials (never the agent task's
/// own, which would hide a refused login behind its reconnect loop).
async fn ping_as(meta: &AgentMeta, jwt: &str) -> redis::RedisResult<()> {
    let target = agent_target(&meta.redis_url, &meta.redis_username, jwt)?;
    let options = remoteagent_rediskit::Options {
        connection_timeout: Some(LOGIN_TIMEOUT),
        response_timeout: Some(LOGIN_TIMEOUT),
        ..Default::default()
    };
    // On a cluster: a connection to its nodes, logged in on each it uses.
    let mut conn = remoteagent_rediskit::conn::dedicated(&target, &options).await?;
    // The heartbeat's own command, so a user without that right fails too.
    redis::cmd("EXISTS")
        .arg(names::presence_key(&meta.id))
        .query_async::<()>(&mut conn)
        .await
}

/// Refused credentials, or a login whose ACL user lacks the heartbeat's
/// right (`NOPERM`): either way the agent must pair again.
fn is_refused_login(e: &redis::RedisError) -> bool {
    is_auth_error(e) || e.code() == Some("NOPERM")
}

fn runner(meta: &AgentMeta) -> Check {
    let name = format!("runner of {}", meta.name);
    match crate::runner_check::missing_program(
        &meta.runner,
        &meta.path,
        std::env::var_os("PATH").as_deref(),
    ) {
        None => Check::ok(name, format!("{} found", meta.runner.display_name())),
        Some(problem) => Check::fail(
            name,
            problem,
            "install it, or pair again with `--command /full/path/to/it`, or reinstall the service from a shell whose PATH has it (`remoteagentctl service install`)",
        ),
    }
}
