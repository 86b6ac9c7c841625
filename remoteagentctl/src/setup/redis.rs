//! Redis is the one thing setup cannot install: it checks that one answers
//! at the URL the local cloud will use, new enough for per-agent users
//! (ACLs came in Redis 6), and says exactly what to install when not.

use std::time::Duration;

use anyhow::{Result, bail};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What to run to get a Redis on this machine.
pub fn install_hint() -> &'static str {
    if cfg!(target_os = "macos") {
        "`brew install redis && brew services start redis`"
    } else {
        "`sudo apt install redis-server` (Debian and Ubuntu; it starts by itself), or your \
         distribution's redis package, started with `sudo systemctl enable --now redis-server`"
    }
}

/// The server's version, once it answered a PING.
pub async fn check(url: &str) -> Result<String> {
    let shown = remoteagent_proto::url::redact_url(url);
    let unreachable = |why: String| {
        anyhow::anyhow!(
            "Redis is not reachable at {shown} ({why}). RemoteAgent needs Redis 6 or newer on \
             this machine: install it with {}, then run `remoteagentctl setup` again",
            install_hint()
        )
    };
    // One URL, or a Redis Cluster's nodes (a comma-separated list, or one
    // URL with `?cluster=true`), as the cloud's REDIS_URL takes them.
    let target = remoteagent_rediskit::Target::parse(url, false)
        .map_err(|e| anyhow::anyhow!("--redis-url {shown} is not a Redis URL: {e}"))?;
    let options = remoteagent_rediskit::Options {
        connection_timeout: Some(CONNECT_TIMEOUT),
        response_timeout: Some(CONNECT_TIMEOUT),
        ..Default::default()
    };
    let mut conn = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        remoteagent_rediskit::conn::dedicated(&target, &options),
    )
    .await
    {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) if is_auth_error(&e) => bail!(
            "Redis at {shown} refused the login ({e}): put its password in --redis-url, as redis://:PASSWORD@HOST:PORT"
        ),
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Err(_) => return Err(unreachable("no answer within 5 s".into())),
    };
    // A cluster answers per primary: the oldest one counts.
    let info: redis::Value = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let version = info_texts(info)
        .iter()
        .map(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("redis_version:"))
                .unwrap_or("unknown")
                .trim()
                .to_string()
        })
        .min_by_key(|v| major_of(v))
        .unwrap_or_else(|| "unknown".into());
    let major = major_of(&version);
    if major < 6 {
        bail!(
            "Redis at {shown} is version {version}; RemoteAgent needs 6 or newer (per-agent users): upgrade it with {}",
            install_hint()
        );
    }
    Ok(version)
}

fn major_of(version: &str) -> u32 {
    version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// The text of `INFO`'s answer: one server's, or each node's of a cluster
/// (a map of node to text).
fn info_texts(value: redis::Value) -> Vec<String> {
    match value {
        redis::Value::Map(pairs) => pairs.into_iter().flat_map(|(_, v)| info_texts(v)).collect(),
        other => redis::from_redis_value::<String>(other)
            .into_iter()
            .collect(),
    }
}

/// A refused login; a cluster connection reports it inside "Failed to
/// create initial connections", in the error's detail.
fn is_auth_error(e: &redis::RedisError) -> bool {
    matches!(e.kind(), redis::ErrorKind::AuthenticationFailed)
        || e.code().is_some_and(|c| c == "NOAUTH" || c == "WRONGPASS")
        || e.detail()
            .is_some_and(|d| d.contains("NOAUTH") || d.contains("WRONGPASS"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use remoteagent_testkit::{RedisCluster, RedisServer};

    #[tokio::test]
    async fn a_standalone_server_answers_with_its_version() {
        let server = RedisServer::start().unwrap();
        let version = check(&server.url()).await.unwrap();
        assert!(major_of(&version) >= 6, "{version}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cluster_given_as_its_nodes_answers_with_its_version() {
        let cluster = tokio::task::block_in_place(RedisCluster::start).unwrap();
        let version = check(&cluster.urls()).await.unwrap();
        assert!(major_of(&version) >= 6, "{version}");
        // One seed marked as a cluster works too.
        let one = format!("{}?cluster=true", cluster.node_urls()[0]);
        check(&one).await.unwrap();
    }

    #[tokio::test]
    async fn nothing_listening_is_said_with_the_install_hint_and_no_password() {
        let err = check("redis://:secret@127.0.0.1:1,redis://:secret2@127.0.0.1:2")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not reachable"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }
}
