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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

/// How long an empty lane's task waits for more before it ends.
const IDLE: Duration = Duration::from_secs(30);

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;
type Map = Arc<Mutex<HashMap<i64, Lane>>>;

/// A lane's queue, and how many of its jobs wait there (not yet started).
struct Lane {
    tx: mpsc::UnboundedSender<Job>,
    waiting: Arc<AtomicUsize>,
}

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
            Some(lane) => {
                // Counted before it can be taken, so the count never drops
                // below zero.
                lane.waiting.fetch_add(1, Ordering::SeqCst);
                match lane.tx.send(job) {
                    Ok(()) => return,
                    Err(mpsc::error::SendError(job)) => {
                        lane.waiting.fetch_sub(1, Ordering::SeqCst);
                        job
                    }
                }
            }
            None => job,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let waiting = Arc::new(AtomicUsize::new(1));
        // The receiver is alive (held by the task about to start).
        let _ = tx.send(job);
        lanes.insert(
            key,
            Lane {
                tx,
                waiting: waiting.clone(),
            },
        );
        drop(lanes);
        tokio::spawn(drain(self.lanes.clone(), key, rx, waiting));
    }

    /// Number of lanes with a task (for tests and metrics).
    pub fn active(&self) -> usize {
        self.lanes.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// Number of `key`'s jobs queued and not yet started (for tests: a job
    /// waiting behind a slow one shows that it is not run beside it).
    pub fn waiting(&self, key: i64) -> usize {
        self.lanes
            .lock()
            .ok()
            .and_then(|l| l.get(&key).map(|lane| lane.waiting.load(Ordering::SeqCst)))
            .unwrap_or(0)
    }
}

async fn drain(
    lanes: Map,
    key: i64,
    mut rx: mpsc::UnboundedReceiver<Job>,
    waiting: Arc<AtomicUsize>,
) {
    let started = |job: Job| {
        waiting.fetch_sub(1, Ordering::SeqCst);
        job
    };
    loop {
        match tokio::time::timeout(IDLE, rx.recv()).await {
            Ok(Some(job)) => started(job).await,
            // Every sender is gone: cannot happen while the lane is in the
            // map, but ending is the right answer anyway.
            Ok(None) => return,
            Err(_) => {
                let mut map = lanes.lock().unwrap_or_else(|p| p.into_inner());
                match rx.try_recv() {
                    // Arrived just as the wait ended: keep going.
                    Ok(job) => {
                        drop(map);
                        started(job).await;
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
    async fn jobs_behind_a_running_one_are_counted_as_waiting() {
        let lanes = Lanes::default();
        let (release, stuck) = tokio::sync::oneshot::channel::<()>();
        lanes.run(5, async move {
            let _ = stuck.await;
        });
        let (done_tx, done) = tokio::sync::oneshot::channel();
        lanes.run(5, async {});
        lanes.run(5, async move {
            let _ = done_tx.send(());
        });
        settle().await;
        assert_eq!(lanes.waiting(5), 2, "the first runs, two wait");
        assert_eq!(lanes.waiting(6), 0);
        let _ = release.send(());
        assert!(done.await.is_ok());
        assert_eq!(lanes.waiting(5), 0);
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
