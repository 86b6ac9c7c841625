//! Waiting inside `select!` loops: optional deadlines and tasks, and sleeps
//! that end early on cancellation; and the UTC timestamps of the logs. Shared by the agent, its sessions and the
//! approval requests, which all wait on "this deadline, if there is one".

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Sleeps until `at`; forever when there is nothing to wait for.
pub async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The outcome of `task` once it ends; never without one.
pub async fn join_opt<T>(task: &mut Option<JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match task {
        Some(t) => t.await,
        None => std::future::pending().await,
    }
}

/// Sleeps for `delay` unless `cancel` fires first; true when the whole
/// delay passed (so the caller may try again), false when cancelled.
pub async fn sleep_unless_cancelled(delay: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = cancel.cancelled() => false,
    }
}

/// The current time in UTC, e.g. `2026-03-04T10:11:12Z`.
pub fn rfc3339_now() -> String {
    // Seconds since the epoch in UTC, formatted without a date crate.
    let secs = remoteagent_proto::now_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_516), (2026, 3, 4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_sleep_ends_at_once() {
        let cancel = CancellationToken::new();
        let start = Instant::now();
        assert!(sleep_unless_cancelled(Duration::from_secs(5), &cancel).await);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        cancel.cancel();
        let start = Instant::now();
        assert!(!sleep_unless_cancelled(Duration::from_secs(5), &cancel).await);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn no_deadline_never_fires() {
        let fired = tokio::time::timeout(Duration::from_secs(3600), sleep_until_opt(None)).await;
        assert!(fired.is_err());
        let mut none: Option<JoinHandle<()>> = None;
        let joined = tokio::time::timeout(Duration::from_secs(3600), join_opt(&mut none)).await;
        assert!(joined.is_err());
    }
}
