//! How long something has lasted, written for people: one format for every
//! place that shows a span of time to a person at a terminal, so that
//! `remoteagentctl status` ("uptime: 1m 5s") and `remoteagentctl stop`
//! ("started 1m 5s ago") say the same span the same way.
//!
//! The two largest non-zero units are shown, whole (truncated, never
//! rounded up: "59s" stays "59s" until a full minute has passed).

/// `5s`, `1m 5s`, `1h 1m`, `1d 1h`.
pub fn elapsed(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// How long ago something happened, `ms` milliseconds back: `just now`
/// under a second, else [`elapsed`] and `ago` (`1m 5s ago`).
pub fn ago(ms: u64) -> String {
    match ms / 1000 {
        0 => "just now".to_string(),
        secs => format!("{} ago", elapsed(secs)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_shows_the_two_largest_units() {
        assert_eq!(elapsed(0), "0s");
        assert_eq!(elapsed(5), "5s");
        assert_eq!(elapsed(59), "59s");
        assert_eq!(elapsed(60), "1m 0s");
        assert_eq!(elapsed(65), "1m 5s");
        assert_eq!(elapsed(3_599), "59m 59s");
        assert_eq!(elapsed(3_600), "1h 0m");
        assert_eq!(elapsed(3_700), "1h 1m");
        assert_eq!(elapsed(86_399), "23h 59m");
        assert_eq!(elapsed(90_000), "1d 1h");
        assert_eq!(elapsed(40 * 86_400), "40d 0h");
    }

    #[test]
    fn ago_is_elapsed_ago() {
        assert_eq!(ago(0), "just now");
        assert_eq!(ago(999), "just now");
        assert_eq!(ago(1_000), "1s ago");
        assert_eq!(ago(42_900), "42s ago");
        assert_eq!(ago(65_000), "1m 5s ago");
        assert_eq!(ago(150_000), "2m 30s ago");
        assert_eq!(ago(3 * 3_600_000 + 5), "3h 0m ago");
        // Whatever the span, `ago` and `elapsed` agree on it.
        for secs in [1, 61, 3_601, 86_401, 1_000_000] {
            assert_eq!(ago(secs * 1000), format!("{} ago", elapsed(secs)));
        }
    }
}
