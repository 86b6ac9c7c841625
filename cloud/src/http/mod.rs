//! The HTTP surface: one router per area, merged here. Every body is capped
//! at [`BODY_LIMIT`] bytes (413 beyond) and parsed by hand so that malformed
//! input gets a JSON 400, never a panic or a plain-text rejection.

pub mod agents;
pub mod connect;
pub mod health;
pub mod pair;
pub mod webhook;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::state::AppState;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(webhook::router())
        .merge(pair::router())
        .merge(connect::router())
        .merge(agents::router())
        .merge(health::router())
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// The body's bytes, or the error to answer.
pub fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Error> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::PayloadTooLarge(BODY_LIMIT)
        } else {
            Error::BadRequest(format!("could not read the request body: {rejection}"))
        }
    })
}

/// Parses a JSON body into `T`, answering 400 with the reason otherwise.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::BadRequest(format!("invalid JSON body: {e}")))
}
