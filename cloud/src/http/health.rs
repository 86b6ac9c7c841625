//! `GET /healthz` (database and Redis reachable) and `GET /metrics`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::config::ExposeSecret;
use crate::db::sessions;
use crate::error::{Error, Result};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let db = match state.db.ping().await {
        Ok(()) => "ok".to_string(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database");
            "unreachable".to_string()
        }
    };
    let mut conn = state.redis.clone();
    let redis = match redis::cmd("PING").query_async::<String>(&mut conn).await {
        Ok(_) => "ok".to_string(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: redis");
            "unreachable".to_string()
        }
    };
    let healthy = db == "ok" && redis == "ok";
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(
            // `service` and `version` let `remoteagentctl doctor` tell a
            // RemoteAgent cloud from whatever else answers on that URL.
            json!({
                "service": "remoteagent-cloud",
                "version": env!("CARGO_PKG_VERSION"),
                "status": if healthy { "ok" } else { "unavailable" },
                "database": db,
                "redis": redis,
            }),
        ),
    )
}

/// The counters (see `Metrics::render`). With `METRICS_TOKEN` set, only a
/// request with `Authorization: Bearer <token>` gets them (compared in
/// constant time); anything else is 401.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<impl IntoResponse> {
    if let Some(expected) = &state.config.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(expected.expose_secret().as_bytes())) {
            return Err(Error::Unauthorized(
                "GET /metrics needs Authorization: Bearer <METRICS_TOKEN>".into(),
            ));
        }
    }
    let by_status = sessions::count_by_status(&state.db).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&by_status),
    ))
}
