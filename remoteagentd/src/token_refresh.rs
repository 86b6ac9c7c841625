//! Keeps agent JWTs fresh: when one expires within [`REFRESH_BEFORE`], the
//! daemon asks the cloud for a new one (`POST /api/agents/{id}/token`, Bearer
//! the old one), stores it and restarts the agent with it (the JWT is also
//! its Redis password).

use std::sync::Arc;
use std::time::Duration;

use remoteagent_proto::api::TokenResponse;
use remoteagent_proto::keys::CloudPublicKey;
use remoteagent_proto::{AgentId, now_secs, token};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use crate::supervisor::Supervisor;

/// Tokens closer than this to their expiry are renewed.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often tokens are checked.
pub const CHECK_EVERY: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("no token stored")]
    NoToken,
    #[error("the stored token is unusable: {0}")]
    BadToken(String),
    #[error("the cloud could not be reached: {0}")]
    Unreachable(String),
    #[error("the cloud refused ({0})")]
    Refused(reqwest::StatusCode),
    #[error("the cloud sent a token that does not verify: {0}")]
    BadNewToken(String),
    #[error("storing the new token failed: {0}")]
    Store(String),
}

/// Checks every agent now and then every [`CHECK_EVERY`], until `shutdown`.
pub async fn run(supervisor: Arc<Supervisor>, shutdown: CancellationToken) {
    loop {
        for agent in supervisor.list() {
            match refresh_if_due(&supervisor, &agent.id).await {
                Ok(true) => tracing::info!(agent = %agent.id, "agent token renewed"),
                Ok(false) => {}
                Err(e) => tracing::warn!(agent = %agent.id, error = %e, "agent token not renewed"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
    }
}

/// Renews one agent's token if it is due; `Ok(true)` when it was renewed.
pub async fn refresh_if_due(supervisor: &Supervisor, id: &AgentId) -> Result<bool, RefreshError> {
    let Some(meta) = supervisor.meta(id) else {
        return Ok(false);
    };
    let jwt = supervisor
        .secrets
        .get(id)
        .await
        .map_err(|e| RefreshError::BadToken(e.to_string()))?
        .ok_or(RefreshError::NoToken)?;
    let key = CloudPublicKey::from_base64(&meta.cloud_public_key)
        .map_err(|e| RefreshError::BadToken(e.to_string()))?;
    let claims = token::verify(&key, jwt.expose_secret())
        .map_err(|e| RefreshError::BadToken(e.to_string()))?;
    if claims.exp > now_secs() + REFRESH_BEFORE.as_secs() {
        return Ok(false);
    }
    // Restarting the agent with the new token would abort its session; a
    // busy agent is renewed at a later check (the window is days long).
    if supervisor
        .agent_info(id)
        .is_some_and(|a| a.running_session.is_some())
    {
        tracing::debug!(agent = %id, "token renewal postponed: a session is running");
        return Ok(false);
    }
    let url = format!(
        "{}/api/agents/{id}/token",
        meta.cloud_url.trim_end_matches('/')
    );
    let response = supervisor
        .http
        .post(&url)
        .bearer_auth(jwt.expose_secret())
        .send()
        .await
        .map_err(|e| RefreshError::Unreachable(e.to_string()))?;
    if !response.status().is_success() {
        return Err(RefreshError::Refused(response.status()));
    }
    let fresh: TokenResponse = response
        .json()
        .await
        .map_err(|e| RefreshError::Unreachable(e.to_string()))?;
    let fresh_jwt = SecretString::from(fresh.jwt);
    let new_claims = token::verify(&key, fresh_jwt.expose_secret())
        .map_err(|e| RefreshError::BadNewToken(e.to_string()))?;
    if &new_claims.sub != id {
        return Err(RefreshError::BadNewToken("issued for another agent".into()));
    }
    supervisor
        .secrets
        .set(id, fresh_jwt.expose_secret())
        .await
        .map_err(|e| RefreshError::Store(e.to_string()))?;
    // The agent reconnects with the new token (its Redis password), unless
    // it was unpaired in the meantime.
    if supervisor.meta(id).is_some() {
        supervisor.start(meta, fresh_jwt);
    }
    Ok(true)
}
