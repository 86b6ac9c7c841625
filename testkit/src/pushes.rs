//! Pub/sub messages that arrive as RESP3 pushes, for tests that subscribe.

use std::time::Duration;

use redis::{Msg, PushInfo};
use tokio::sync::mpsc::UnboundedReceiver;

/// The next pub/sub message among `rx`'s pushes (subscription
/// confirmations and other pushes are passed over), within `wait`.
/// Panics, naming what was awaited, when none comes in time or the
/// connection's pushes end.
pub async fn next_message(rx: &mut UnboundedReceiver<PushInfo>, wait: Duration) -> Msg {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let push = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no pub/sub message within {wait:?}"))
            .expect("the subscription's pushes ended");
        if let Some(msg) = Msg::from_push_info(push) {
            return msg;
        }
    }
}
