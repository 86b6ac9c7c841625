//! Lanes: jobs with the same key run one after another, in the order they
//! were queued; jobs of different keys run concurrently.
//!
//! The webhook answers Telegram at once and handles the update in the
//! background, keyed by the Telegram user (see `bot::dispatch`), so without
//! lanes `/use beta` followed quickly by a prompt could be overtaken by it,
//! and the prompt would run in the previous project. Each lane is a queue
//! drained by a task of its own, which ends once the lane has been idle for
//! [`IDLE`]. A lane knows nothing of what its jobs do: it takes futures.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

/// How long an empty lane's task waits for more before it ends.
const IDLE: Duration = Duration::from_secs(30);

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;
type Lane = mpsc::UnboundedSender<Job>;
type Map = Arc<Mutex<HashMap<i64, Lane>>>;

#[derive(Default)]
pub struct Lanes {
    lanes: Map,
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes").finish_non_exhaustive()
    }
}

impl Lanes {
    /// Queues `job` behind the earlier jobs of `key` and returns at once.
    pub fn run<F>(&self, key: i64, job: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let job: Job = Box::pin(job);
        // Sending happens under the map's lock, and a lane's task removes
        // itself under the same lock only after finding its queue empty, so
        // a job can never land in a queue nobody drains.
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        let job = match lanes.get(&key) {
            Some(lane) => match lane.send(job) {
                Ok(()) => return,
                Err(mpsc::error::SendError(job)) => job,
            },
            None => job,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        // The receiver is alive (held by the task about to start).
        let _ = tx.send(job);
        lanes.insert(key, tx);
        drop(lanes);
        tokio::spawn(drain(self.lanes.clone(), key, rx));
    }

    /// Number of lanes with a task (for tests and metrics).
    pub fn active(&self) -> usize {
        self.lanes.lock().map(|l| l.len()).unwrap_or(0)
    }
}

async fn drain(lanes: Map, key: i64, mut rx: mpsc::UnboundedReceiver<Job>) {
    loop {
        match tokio::time::timeout(IDLE, rx.recv()).await {
            Ok(Some(job)) => job.await,
            // Every sender is gone: cannot happen while the lane is in the
            // map, but ending is the right answer anyway.
            Ok(None) => return,
            Err(_) => {
                let mut map = lanes.lock().unwrap_or_else(|p| p.into_inner());
                match rx.try_recv() {
                    // Arrived just as the wait ended: keep going.
                    Ok(job) => {
                        drop(map);
                        job.await;
                    }
                    Err(_) => {
                        map.remove(&key);
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Lets every task that can run, run (the clock is paused: nothing
    /// waits on real time).
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_keys_jobs_run_in_order_even_when_the_first_is_slow() {
        let lanes = Lanes::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        for (i, wait) in [(1, 300), (2, 0), (3, 100)] {
            let log = log.clone();
            lanes.run(7, async move {
                tokio::time::sleep(Duration::from_millis(wait)).await;
                log.lock().unwrap().push(i);
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(*log.lock().unwrap(), [1, 2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn other_keys_do_not_wait_for_a_stuck_lane() {
        let lanes = Lanes::default();
        let (_never_tx, never) = tokio::sync::oneshot::channel::<()>();
        lanes.run(1, async move {
            let _ = never.await;
        });
        let (done_tx, done) = tokio::sync::oneshot::channel();
        lanes.run(2, async move {
            let _ = done_tx.send(());
        });
        settle().await;
        assert!(done.await.is_ok());
        assert_eq!(lanes.active(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_lane_ends_after_idle_and_not_before() {
        let lanes = Lanes::default();
        lanes.run(3, async {});
        settle().await;
        tokio::time::advance(IDLE - Duration::from_millis(1)).await;
        settle().await;
        assert_eq!(lanes.active(), 1, "ended before it was idle for IDLE");
        // A job queued now goes to the same lane and restarts its wait.
        let (tx, rx) = tokio::sync::oneshot::channel();
        lanes.run(3, async move {
            let _ = tx.send(());
        });
        assert!(rx.await.is_ok());
        tokio::time::advance(IDLE - Duration::from_millis(1)).await;
        settle().await;
        assert_eq!(lanes.active(), 1);
        tokio::time::advance(Duration::from_millis(2)).await;
        settle().await;
        assert_eq!(lanes.active(), 0, "an idle lane's task ends");
        // And a later job starts a new one.
        let (tx, rx) = tokio::sync::oneshot::channel();
        lanes.run(3, async move {
            let _ = tx.send(());
        });
        assert!(rx.await.is_ok());
        assert_eq!(lanes.active(), 1);
    }
}
