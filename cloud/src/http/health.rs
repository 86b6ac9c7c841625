//! `GET /healthz` (database and Redis reachable) and `GET /metrics`.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::db::sessions;
use crate::error::Result;
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
            json!({"status": if healthy { "ok" } else { "unavailable" }, "database": db, "redis": redis}),
        ),
    )
}

async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse> {
    let by_status = sessions::count_by_status(&state.db).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&by_status),
    ))
}
