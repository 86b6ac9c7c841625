//! `POST /api/pair` (a daemon asks for a code) and `POST /api/pair/confirm`
//! (the `/connect` page confirms one after the Telegram Login Widget).

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use remoteagent_proto::api::{PairConfirmResponse, PairRequest, PairResponse, TelegramLogin};
use serde_json::{Map, Value};

use super::{body_bytes, parse_json};
use crate::client_ip::{client_ip, limit_key};
use crate::error::{Error, Result};
use crate::rate_limit::RedisLimit;
use crate::state::AppState;
use crate::telegram::escape_html;
use crate::{login_widget, pairing};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/pair", post(request))
        .route("/api/pair/confirm", post(confirm))
}

async fn request(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PairResponse>> {
    let req: PairRequest = parse_json(&body_bytes(body)?)?;
    // Counted in Redis, so that replicas share the limit; per client behind
    // the trusted proxies (see `client_ip`).
    let client = client_ip(peer.ip(), &headers, &state.config.trusted_proxies);
    if !RedisLimit::PAIR
        .allow(&state.redis, &limit_key(client))
        .await?
    {
        tracing::info!(client = %client, "pairing requests rate-limited");
        return Err(Error::RateLimited(
            "too many pairing requests from this address; wait a minute".into(),
        ));
    }
    Ok(Json(pairing::request(&state, &req).await?))
}

/// The confirm body, read loosely first: the widget's signature covers every
/// field it sent, including ones this build does not know.
#[derive(serde::Deserialize)]
struct RawConfirm {
    code: String,
    telegram: Map<String, Value>,
}

async fn confirm(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PairConfirmResponse>> {
    let raw: RawConfirm = parse_json(&body_bytes(body)?)?;
    login_widget::verify(
        &raw.telegram,
        state.config.bot_token(),
        remoteagent_proto::now_secs() as i64,
    )
    .map_err(|e| Error::Unauthorized(e.to_string()))?;
    let login: TelegramLogin = serde_json::from_value(Value::Object(raw.telegram))
        .map_err(|e| Error::BadRequest(format!("invalid Telegram login: {e}")))?;
    let paired = pairing::confirm(&state, login.id, &raw.code).await?;
    let text = format!(
        "✅ Paired <b>{}</b> on {}.\nIt is now your current agent: send a message to give it a prompt.",
        escape_html(&paired.name),
        escape_html(&paired.hostname)
    );
    // A user who logged in with the widget may never have opened the bot;
    // then Telegram refuses the message, which changes nothing here.
    if let Err(e) = state.outbox.send(login.id, text, None).await {
        tracing::info!(user = login.id, error = %e, "could not tell the user about the pairing");
    }
    Ok(Json(PairConfirmResponse {
        agent_id: paired.agent_id,
        name: paired.name,
    }))
}
