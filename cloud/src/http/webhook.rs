//! `POST /api/telegram`: Telegram's webhook. The secret token header is
//! compared in constant time; each `update_id` is acted on once (claimed in
//! Redis, see [`updates::take`], the path polled updates take too); the answer
//! comes at once and the update is processed in the background, because
//! Telegram waits for the answer before sending the next update; each user's
//! updates still run in the order they came ([`crate::lanes`]).

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::{body_bytes, parse_json};
use crate::bot::update::Update;
use crate::config::ExposeSecret;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::updates;

pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

pub fn router() -> Router<AppState> {
    Router::new().route("/api/telegram", post(receive))
}

async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>> {
    // Poll mode keeps no webhook secret: nothing may post updates here.
    let Some(expected) = state.config.webhook_secret.as_ref() else {
        Metrics::inc(&state.metrics.updates_rejected);
        return Err(Error::NotFound(
            "this cloud polls Telegram for updates (TELEGRAM_MODE=poll); it takes no webhook"
                .into(),
        ));
    };
    let given = headers
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !bool::from(given.ct_eq(expected.expose_secret().as_bytes())) {
        Metrics::inc(&state.metrics.updates_rejected);
        tracing::warn!("webhook call with a missing or wrong secret token");
        return Err(Error::Unauthorized("wrong or missing secret token".into()));
    }
    let update: Update = match body_bytes(body).and_then(|b| parse_json(&b)) {
        Ok(u) => u,
        Err(e) => {
            Metrics::inc(&state.metrics.updates_rejected);
            return Err(e);
        }
    };
    // Redis unreachable: the `?` answers 500, and Telegram delivers the
    // update again later. Handled in the background, but behind the same
    // user's earlier updates.
    match updates::take(&state, update).await? {
        updates::Taken::Duplicate => Ok(Json(json!({"ok": true, "duplicate": true}))),
        updates::Taken::Queued => Ok(Json(json!({"ok": true}))),
    }
}
