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
    // The last `@` before the path: a password may contain `@` itself.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) if rest[..at].contains(':') => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{scheme}://{user}:hidden{}", &rest[at..])
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
        // TLS URLs, and a password with an `@` in it.
        assert_eq!(
            redact_url("rediss://ra-agent-x:eyJ.a@b.c@redis.example.com:6380/?cluster=true"),
            "rediss://ra-agent-x:hidden@redis.example.com:6380/?cluster=true"
        );
        assert_eq!(
            redact_url("rediss://:pw@a:1,rediss://:pw@b:2"),
            "rediss://:hidden@a:1,rediss://:hidden@b:2"
        );
        assert_eq!(strip_credentials("redis://u:pw@h:1/0"), "redis://h:1/0");
        assert_eq!(strip_credentials("redis://h"), "redis://h");
    }
}
