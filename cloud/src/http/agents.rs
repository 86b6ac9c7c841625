//! The agent API, authenticated by the agent's own JWT (`Bearer`):
//! `DELETE /api/agents/{id}` unpairs, `POST /api/agents/{id}/token` hands out
//! a fresh JWT. A token passes only if it verifies with our key, names the
//! agent of the path, is the latest one issued to it (its SHA-256 matches
//! the stored hash), and the agent is not revoked.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{delete, post};
use axum::{Json, Router};
use remoteagent_proto::api::TokenResponse;
use remoteagent_proto::token;
use subtle::ConstantTimeEq;

use crate::db::agents;
use crate::error::{Error, Result};
use crate::pairing::token_hash;
use crate::state::AppState;
use crate::unpair;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/agents/{id}", delete(remove))
        .route("/api/agents/{id}/token", post(refresh))
}

fn unauthorized() -> Error {
    Error::Unauthorized("invalid or revoked agent token".into())
}

/// The agent the request's Bearer token authenticates, if it is `path_id`.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    path_id: &str,
) -> Result<agents::Agent> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| Error::Unauthorized("missing Bearer token".into()))?;
    let claims = token::verify(&state.key.public_key(), bearer).map_err(|e| {
        tracing::info!(agent = %path_id, error = %e, "agent token refused");
        unauthorized()
    })?;
    if claims.sub.as_str() != path_id {
        return Err(unauthorized());
    }
    let agent = agents::get(&state.db, &claims.sub)
        .await?
        .ok_or_else(unauthorized)?;
    let stored = agent.token_hash.as_deref().unwrap_or("");
    let presented = token_hash(bearer);
    if !agent.is_active() || !bool::from(stored.as_bytes().ct_eq(presented.as_bytes())) {
        return Err(unauthorized());
    }
    Ok(agent)
}

async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode> {
    let agent = authenticate(&state, &headers, &id).await?;
    unpair::unpair(&state, &agent).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn refresh(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<TokenResponse>> {
    let agent = authenticate(&state, &headers, &id).await?;
    let agent_id = agent.id.clone();
    let (jwt, claims) = token::issue(
        &state.key,
        &agent_id,
        agent.owner,
        token::AGENT_TOKEN_TTL_SECS,
    )
    .map_err(Error::internal)?;
    // Redis first: if the database update then failed, the old token would
    // still authenticate here and the daemon could simply retry.
    let hash = token_hash(&jwt);
    state.acl.create_agent_user(&agent_id, &hash).await?;
    if !agents::set_token_hash(&state.db, &agent.id, &hash).await? {
        // Unpaired in the meantime: take the Redis user away again.
        state.acl.delete_agent_user(&agent_id).await?;
        return Err(unauthorized());
    }
    agents::touch(&state.db, &agent.id).await?;
    tracing::info!(agent = %agent_id, "agent token refreshed");
    Ok(Json(TokenResponse {
        jwt,
        expires_at: claims.exp,
    }))
}
