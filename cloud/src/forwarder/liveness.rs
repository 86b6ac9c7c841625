//! Whether a silent session's daemon is still there. A daemon that died
//! mid-session never writes `done`; without one the session would be shown
//! "working…" with its Stop button until its state expires. The agent's
//! presence key (refreshed by its daemon's heartbeat, gone
//! `PRESENCE_TTL_SECS` after the last one) tells a dead daemon from one
//! that is only quiet (a long tool call).

use std::time::Duration;

use remoteagent_proto::events::{DonePayload, DoneStatus};
use tokio::time::Instant;

/// Longest time between two looks at the presence key of a silent
/// session's agent.
const CHECK_EVERY_MAX: Duration = Duration::from_secs(5);

/// The status message of a session ended because its agent went away.
pub(super) const OFFLINE_MESSAGE: &str = "the agent went offline before the run finished";

pub(super) struct Liveness {
    /// How long the agent must have been seen offline, and the stream
    /// silent, before the session is ended.
    grace: Duration,
    /// When the last stream entry arrived (or the task started).
    last_entry: Instant,
    /// When the presence key was last looked at.
    checked: Option<Instant>,
    /// Since when the presence key has been seen missing, without being
    /// seen back since.
    offline_since: Option<Instant>,
    /// The `done` was written; it is being read back.
    ended: bool,
}

impl Liveness {
    pub fn new(grace: Duration) -> Self {
        Liveness {
            grace,
            last_entry: Instant::now(),
            checked: None,
            offline_since: None,
            ended: false,
        }
    }

    pub fn entry_arrived(&mut self) {
        self.last_entry = Instant::now();
    }

    /// Whether it is time to look at the presence key again.
    pub fn due(&mut self) -> bool {
        let every = (self.grace / 2).min(CHECK_EVERY_MAX);
        if self.ended || self.checked.is_some_and(|at| at.elapsed() < every) {
            return false;
        }
        self.checked = Some(Instant::now());
        true
    }

    /// Records what the presence key showed; the `done` to write when the
    /// session is to be ended now.
    pub fn observe(&mut self, online: bool) -> Option<DonePayload> {
        if online {
            self.offline_since = None;
            return None;
        }
        let since = *self.offline_since.get_or_insert_with(Instant::now);
        if since.elapsed() < self.grace || self.last_entry.elapsed() < self.grace {
            return None;
        }
        Some(DonePayload {
            status: DoneStatus::Error,
            exit_code: None,
            duration_ms: 0,
            message: Some(OFFLINE_MESSAGE.to_string()),
            // Nothing is known to be lost: what the daemon wrote is read.
            chunks: 0,
            withheld_bytes: 0,
            stopped_by: None,
            turns: None,
            cost_usd: None,
        })
    }

    pub fn ended(&mut self) {
        self.ended = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_quiet_agent_stays_and_a_gone_one_ends_after_the_grace() {
        let grace = Duration::from_secs(45);
        let mut live = Liveness::new(grace);
        // Online all along, silent for an hour: never ended.
        for _ in 0..720 {
            tokio::time::advance(Duration::from_secs(5)).await;
            if live.due() {
                assert!(live.observe(true).is_none());
            }
        }
        // Gone: ended once the grace has passed since it was first missed.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(live.due());
        assert!(live.observe(false).is_none());
        let mut waited = Duration::ZERO;
        let done = loop {
            tokio::time::advance(Duration::from_secs(1)).await;
            waited += Duration::from_secs(1);
            if live.due()
                && let Some(done) = live.observe(false)
            {
                break done;
            }
        };
        assert!(
            waited >= grace && waited <= grace + CHECK_EVERY_MAX,
            "{waited:?}"
        );
        assert_eq!(done.status, DoneStatus::Error);
        live.ended();
        assert!(!live.due());
    }

    #[tokio::test(start_paused = true)]
    async fn an_agent_back_in_time_is_not_ended() {
        let mut live = Liveness::new(Duration::from_secs(45));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(live.due());
        assert!(live.observe(false).is_none());
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(live.due());
        assert!(live.observe(true).is_none());
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(live.due());
        assert!(live.observe(false).is_none(), "the grace starts again");
    }

    #[tokio::test(start_paused = true)]
    async fn output_keeps_a_session_alive_even_without_presence() {
        let mut live = Liveness::new(Duration::from_secs(45));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(live.due());
        assert!(live.observe(false).is_none());
        tokio::time::advance(Duration::from_secs(44)).await;
        live.entry_arrived();
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(live.due());
        assert!(live.observe(false).is_none(), "output arrived 10 s ago");
    }
}
