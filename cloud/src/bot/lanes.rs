//! One lane per Telegram user: a user's updates are handled one after
//! another, in the order the webhook received them; different users' updates
//! run concurrently.
//!
//! The webhook answers Telegram at once and handles the update in the
//! background, so without lanes `/use beta` followed quickly by a prompt
//! could be overtaken by it, and the prompt would run in the previous
//! project. Each lane is a queue drained by a task of its own, which ends
//! once the lane has been idle for [`IDLE`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::mpsc;

use super::update::Update;
use crate::state::AppState;

/// How long an empty lane's task waits for more before it ends.
const IDLE: Duration = Duration::from_secs(30);

type Lane = mpsc::UnboundedSender<Update>;

#[derive(Default)]
pub struct Lanes {
    lanes: Mutex<HashMap<i64, Lane>>,
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes").finish_non_exhaustive()
    }
}

/// Whose lane an update belongs to: the user who sent it or pressed the
/// button. `None` for updates without a user (handled at once).
fn lane_of(update: &Update) -> Option<i64> {
    if let Some(q) = &update.callback_query {
        return Some(q.from.id);
    }
    update.message.as_ref()?.from.as_ref().map(|u| u.id)
}

impl Lanes {
    /// Queues `update` behind the earlier updates of its user and returns at
    /// once.
    pub fn dispatch(&self, state: &AppState, update: Update) {
        let Some(user) = lane_of(&update) else {
            let state = state.clone();
            tokio::spawn(handle(state, update));
            return;
        };
        // Sending happens under the map's lock, and a lane's task removes
        // itself under the same lock only after finding its queue empty, so
        // an update can never land in a queue nobody drains.
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        let update = match lanes.get(&user) {
            Some(lane) => match lane.send(update) {
                Ok(()) => return,
                Err(mpsc::error::SendError(update)) => update,
            },
            None => update,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        // The receiver is alive (held by the task about to start).
        let _ = tx.send(update);
        lanes.insert(user, tx);
        drop(lanes);
        tokio::spawn(drain(state.clone(), user, rx));
    }

    /// Number of lanes with a task (for tests and metrics).
    pub fn active(&self) -> usize {
        self.lanes.lock().map(|l| l.len()).unwrap_or(0)
    }
}

async fn handle(state: AppState, update: Update) {
    let update_id = update.update_id;
    super::handle(state, update).await;
    tracing::debug!(update = update_id, "update processed");
}

async fn drain(state: AppState, user: i64, mut rx: mpsc::UnboundedReceiver<Update>) {
    loop {
        match tokio::time::timeout(IDLE, rx.recv()).await {
            Ok(Some(update)) => handle(state.clone(), update).await,
            // Every sender is gone: cannot happen while the lane is in the
            // map, but ending is the right answer anyway.
            Ok(None) => return,
            Err(_) => {
                let mut lanes = state.lanes.lanes.lock().unwrap_or_else(|p| p.into_inner());
                match rx.try_recv() {
                    // Arrived just as the wait ended: keep going.
                    Ok(update) => {
                        drop(lanes);
                        handle(state.clone(), update).await;
                    }
                    Err(_) => {
                        lanes.remove(&user);
                        return;
                    }
                }
            }
        }
    }
}
