//! URLs that may carry a password (`redis://user:password@host`), made
//! safe to show or to hand on.

/// Drops a password from `scheme://user:password@host/…` for display; from
/// each URL of a comma-separated list (a Redis Cluster's nodes).
pub fn redact_url(url: &str) -> String {
    if url.contains(',') {
        return url.split(',').map(redact_url).collect::<Vec<_>>().join(",");
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((auth, host)) if auth.contains(':') => {
            let user = auth.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:hidden@{host}")
        }
        _ => url.to_string(),
    }
}

/// Drops `user:password@` from a URL.
pub fn strip_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://{host}{path}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_or_dropped() {
        assert_eq!(redact_url("redis://u:pw@h:1/0"), "redis://u:hidden@h:1/0");
        assert_eq!(redact_url("redis://:pw@h"), "redis://:hidden@h");
        assert_eq!(
            redact_url("redis://u:pw@a:1, redis://u:pw2@b:2"),
            "redis://u:hidden@a:1, redis://u:hidden@b:2"
        );
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
        assert_eq!(strip_credentials("redis://u:pw@h:1/0"), "redis://h:1/0");
        assert_eq!(strip_credentials("redis://h"), "redis://h");
    }
}
