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
    remoteagent_proto::rfc3339::format(remoteagent_proto::now_ms(), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_an_rfc3339_time() {
        let now = rfc3339_now();
        assert_eq!(now.len(), 20, "{now}");
        assert!(remoteagent_proto::rfc3339::parse(&now).is_some(), "{now}");
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
