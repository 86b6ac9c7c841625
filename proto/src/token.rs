//! The agent JWT: issued by the cloud at pairing, stored in the OS keyring by
//! the daemon, sent as `Authorization: Bearer` to the cloud's agent API, and
//! used as the password of the agent's Redis ACL user. The cloud keeps only a
//! hash of it.

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::keys::{CloudPublicKey, CloudSigningKey};
use crate::{AgentId, now_secs};

/// `aud` of every agent token, so a token can never pass as a command
/// envelope (whose `aud` is an agent id) or the other way round.
pub const AGENT_TOKEN_AUDIENCE: &str = "remoteagent-agent";

/// Default lifetime of an agent token; the daemon refreshes well before.
pub const AGENT_TOKEN_TTL_SECS: u64 = 30 * 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentClaims {
    /// The agent id.
    pub sub: AgentId,
    /// Telegram user id of the owner.
    pub owner: i64,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("invalid agent token: {0}")]
    Invalid(String),
    #[error("agent token expired")]
    Expired,
    #[error("signing failed: {0}")]
    Signing(String),
}

pub fn issue(
    key: &CloudSigningKey,
    agent: &AgentId,
    owner: i64,
    ttl_secs: u64,
) -> Result<(String, AgentClaims), TokenError> {
    let iat = now_secs();
    let claims = AgentClaims {
        sub: agent.clone(),
        owner,
        aud: AGENT_TOKEN_AUDIENCE.into(),
        iat,
        exp: iat + ttl_secs,
        jti: uuid::Uuid::new_v4().simple().to_string(),
    };
    let jwt = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, key.encoding_key())
        .map_err(|e| TokenError::Signing(e.to_string()))?;
    Ok((jwt, claims))
}

pub fn verify(key: &CloudPublicKey, token: &str) -> Result<AgentClaims, TokenError> {
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[AGENT_TOKEN_AUDIENCE]);
    validation.leeway = 5;
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    jsonwebtoken::decode::<AgentClaims>(token, key.decoding_key(), &validation)
        .map(|d| d.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid(e.to_string()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope;
    use crate::events::{CommandEvent, UnpairedPayload};

    #[test]
    fn issue_and_verify() {
        let key = CloudSigningKey::generate();
        let agent = AgentId::generate();
        let (jwt, claims) = issue(&key, &agent, 42, 3600).unwrap();
        assert_eq!(verify(&key.public_key(), &jwt).unwrap(), claims);
        assert!(verify(&CloudSigningKey::generate().public_key(), &jwt).is_err());
    }

    #[test]
    fn tokens_and_envelopes_do_not_mix() {
        let key = CloudSigningKey::generate();
        let agent = AgentId::generate();
        let (jwt, _) = issue(&key, &agent, 42, 3600).unwrap();
        assert!(envelope::verify(&key.public_key(), &agent, &jwt).is_err());
        let env =
            envelope::sign(&key, &agent, CommandEvent::Unpaired(UnpairedPayload {}), 30).unwrap();
        assert!(verify(&key.public_key(), &env).is_err());
    }
}
