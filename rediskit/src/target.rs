//! What a Redis URL setting names.
//!
//! One `redis://` (or `rediss://`) URL is a standalone server. Several,
//! separated by commas (spaces allowed around them), are the seed nodes of
//! a Redis Cluster; so is one URL with the query parameter `cluster=true`
//! (the form the cloud hands a daemon when it was given a single seed with
//! `REDIS_CLUSTER=true`), or any list when the caller says so. The
//! `cluster` parameter is ours: it is taken out before redis-rs sees the
//! URL.

use redis::{ConnectionInfo, IntoConnectionInfo};

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("no Redis URL given")]
    Empty,
    #[error("the Redis URL {url} is not valid: {reason}")]
    Invalid { url: String, reason: String },
}

/// A standalone server or a cluster's seed nodes.
#[derive(Clone, Debug)]
pub enum Target {
    Standalone(ConnectionInfo),
    Cluster(Vec<ConnectionInfo>),
}

impl Target {
    /// Parses a setting: one URL or a comma-separated list. `cluster`
    /// forces cluster mode for a single URL (`REDIS_CLUSTER=true`).
    pub fn parse(text: &str, cluster: bool) -> Result<Target, TargetError> {
        let mut infos = Vec::new();
        let mut marked = cluster;
        for part in split(text) {
            let (url, flag) = take_cluster_flag(part);
            marked |= flag;
            let info = url
                .as_str()
                .into_connection_info()
                .map_err(|e| TargetError::Invalid {
                    url: redact(part),
                    reason: e.to_string(),
                })?;
            infos.push(info);
        }
        match infos.len() {
            0 => Err(TargetError::Empty),
            1 if !marked => Ok(Target::Standalone(infos.remove(0))),
            _ => Ok(Target::Cluster(infos)),
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Target::Cluster(_))
    }

    /// The same nodes logged in as `username` with `password` (an agent's
    /// ACL user and its JWT); an empty `username` keeps the default user.
    pub fn with_login(&self, username: &str, password: &str) -> Target {
        let login = |info: &ConnectionInfo| {
            if username.is_empty() {
                return info.clone();
            }
            let settings = info
                .redis_settings()
                .clone()
                .set_username(username)
                .set_password(password);
            info.clone().set_redis_settings(settings)
        };
        match self {
            Target::Standalone(info) => Target::Standalone(login(info)),
            Target::Cluster(infos) => Target::Cluster(infos.iter().map(login).collect()),
        }
    }

    /// The same nodes speaking RESP3 (pushes: pub/sub messages on a
    /// connection that also sends commands).
    pub fn resp3(&self) -> Target {
        let set = |info: &ConnectionInfo| {
            let settings = info
                .redis_settings()
                .clone()
                .set_protocol(redis::ProtocolVersion::RESP3);
            info.clone().set_redis_settings(settings)
        };
        match self {
            Target::Standalone(info) => Target::Standalone(set(info)),
            Target::Cluster(infos) => Target::Cluster(infos.iter().map(set).collect()),
        }
    }

    /// The connection details of one node (the first seed of a cluster),
    /// for what needs a single server's address.
    pub fn first(&self) -> &ConnectionInfo {
        match self {
            Target::Standalone(info) => info,
            Target::Cluster(infos) => &infos[0],
        }
    }
}

/// The form of `text` to hand to a daemon: every URL without its
/// credentials, and a single URL of a cluster marked `cluster=true` so the
/// daemon knows.
pub fn public_form(text: &str, cluster: bool) -> String {
    let parts: Vec<String> = split(text).map(strip_credentials).collect();
    if parts.len() == 1 && cluster && !take_cluster_flag(&parts[0]).1 {
        let sep = if parts[0].contains('?') { '&' } else { '?' };
        return format!("{}{sep}cluster=true", parts[0]);
    }
    parts.join(",")
}

/// `text` with every URL's password replaced, for logs and errors.
pub fn redact(text: &str) -> String {
    split(text)
        .map(|url| match credentials_span(url) {
            Some((start, end)) => {
                let user_pass = &url[start..end];
                match user_pass.split_once(':') {
                    Some((user, _)) => format!("{}{user}:***{}", &url[..start], &url[end..]),
                    None => url.to_string(),
                }
            }
            None => url.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn split(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// `url` without `user:password@`.
fn strip_credentials(url: &str) -> String {
    match credentials_span(url) {
        Some((start, end)) => format!("{}{}", &url[..start], &url[end + 1..]),
        None => url.to_string(),
    }
}

/// The byte range of `user:password` in `scheme://user:password@host…`
/// (excluding the `@`).
fn credentials_span(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let host_end = url[start..]
        .find(['/', '?'])
        .map_or(url.len(), |i| start + i);
    let at = url[start..host_end].rfind('@')? + start;
    Some((start, at))
}

/// `url` without our `cluster=…` query parameter, and whether it said true.
fn take_cluster_flag(url: &str) -> (String, bool) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), false);
    };
    let mut flag = false;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.split_once('=') {
            Some(("cluster", value)) => {
                flag = matches!(value, "true" | "yes" | "1");
                false
            }
            _ => !pair.is_empty(),
        })
        .collect();
    if kept.is_empty() {
        (base.to_string(), flag)
    } else {
        (format!("{base}?{}", kept.join("&")), flag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_url_is_standalone_and_a_list_is_a_cluster() {
        assert!(
            !Target::parse("redis://127.0.0.1:6379", false)
                .unwrap()
                .is_cluster()
        );
        let t = Target::parse("redis://a:1, redis://b:2,redis://c:3", false).unwrap();
        match t {
            Target::Cluster(nodes) => assert_eq!(nodes.len(), 3),
            other => panic!("expected a cluster, got {other:?}"),
        }
        assert!(Target::parse("redis://a:1", true).unwrap().is_cluster());
        assert!(
            Target::parse("redis://a:1?cluster=true", false)
                .unwrap()
                .is_cluster()
        );
        assert!(
            !Target::parse("redis://a:1?cluster=false", false)
                .unwrap()
                .is_cluster()
        );
    }

    #[test]
    fn bad_input_is_refused_with_the_password_hidden() {
        assert!(matches!(
            Target::parse(" , ", false),
            Err(TargetError::Empty)
        ));
        let err = Target::parse("redis://u:hunter2@a:1,nope://u:hunter2@b", false).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("nope://u:***@b"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn the_public_form_drops_credentials_and_marks_a_single_seed() {
        assert_eq!(
            public_form("redis://admin:pw@a:1,redis://admin:pw@b:2", false),
            "redis://a:1,redis://b:2"
        );
        assert_eq!(
            public_form("redis://admin:pw@a:1", true),
            "redis://a:1?cluster=true"
        );
        assert_eq!(
            public_form("redis://a:1/?protocol=resp3", true),
            "redis://a:1/?protocol=resp3&cluster=true"
        );
        assert_eq!(public_form("redis://a:1", false), "redis://a:1");
        assert_eq!(redact("redis://:pw@a:1"), "redis://:***@a:1");
    }

    #[test]
    fn the_cluster_flag_never_reaches_redis_rs() {
        let t = Target::parse("redis://a:1/?protocol=resp3&cluster=true", false).unwrap();
        assert!(t.is_cluster());
        assert_eq!(
            t.first().redis_settings().protocol(),
            redis::ProtocolVersion::RESP3
        );
    }
}
