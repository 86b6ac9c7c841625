//! Signed command envelopes (ARCHITECTURE.md, Contracts: "Envelopes").
//!
//! A message on `agent:{agentId}` is a compact JWT signed with the cloud's
//! Ed25519 key. Its claims are `aud = agentId`, `iat`, `exp` (at most
//! [`MAX_LIFETIME_SECS`] after `iat`), a unique `jti`, and the flattened
//! [`CommandEvent`] (`event`, `payload`). The daemon accepts an envelope only
//! if the signature checks out against the key it pinned, the audience is the
//! agent it is listening for, it has not expired, and its `jti` has not been
//! seen before ([`ReplayGuard`]). Anyone able to write to Redis therefore
//! still cannot make a daemon run anything.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::events::CommandEvent;
use crate::keys::{CloudPublicKey, CloudSigningKey};
use crate::{AgentId, now_secs};

/// The longest an envelope may be valid.
pub const MAX_LIFETIME_SECS: u64 = 60;
/// Clock difference tolerated between cloud and daemon.
pub const CLOCK_LEEWAY_SECS: u64 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeClaims {
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    #[serde(flatten)]
    pub command: CommandEvent,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("not a well-formed envelope: {0}")]
    Malformed(String),
    #[error("bad signature or algorithm")]
    BadSignature,
    #[error("expired")]
    Expired,
    #[error("issued in the future")]
    NotYetValid,
    #[error("valid for longer than {MAX_LIFETIME_SECS} s")]
    TooLongLived,
    #[error("for another agent")]
    WrongAudience,
    #[error("replayed (jti seen before)")]
    Replayed,
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Signs `command` for `agent`, valid for `ttl_secs` (capped at [`MAX_LIFETIME_SECS`]).
pub fn sign(
    key: &CloudSigningKey,
    agent: &AgentId,
    command: CommandEvent,
    ttl_secs: u64,
) -> Result<String, EnvelopeError> {
    let iat = now_secs();
    let claims = EnvelopeClaims {
        aud: agent.to_string(),
        iat,
        exp: iat + ttl_secs.min(MAX_LIFETIME_SECS),
        jti: uuid::Uuid::new_v4().simple().to_string(),
        command,
    };
    sign_claims(key, &claims)
}

/// Signs arbitrary claims; tests use it to build expired or foreign envelopes.
pub fn sign_claims(
    key: &CloudSigningKey,
    claims: &EnvelopeClaims,
) -> Result<String, EnvelopeError> {
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, key.encoding_key())
        .map_err(|e| EnvelopeError::Signing(e.to_string()))
}

/// Verifies signature, audience and lifetime. Replay is checked separately by
/// [`ReplayGuard`], which keeps state.
pub fn verify(
    key: &CloudPublicKey,
    agent: &AgentId,
    token: &str,
) -> Result<EnvelopeClaims, EnvelopeError> {
    verify_at(key, agent, token, now_secs())
}

pub fn verify_at(
    key: &CloudPublicKey,
    agent: &AgentId,
    token: &str,
    now: u64,
) -> Result<EnvelopeClaims, EnvelopeError> {
    // Only EdDSA: `Validation::new` restricts the accepted algorithms, so an
    // `alg: none` or HMAC token is refused before anything else is looked at.
    let mut validation = Validation::new(Algorithm::EdDSA);
    // Expiry and audience are checked below against our own clock so that the
    // error says which rule failed.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<EnvelopeClaims>(token, key.decoding_key(), &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature
            | jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
            | jsonwebtoken::errors::ErrorKind::InvalidAlgorithmName
            | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat => EnvelopeError::BadSignature,
            _ => EnvelopeError::Malformed(e.to_string()),
        })?;
    let claims = data.claims;
    if claims.aud != agent.as_str() {
        return Err(EnvelopeError::WrongAudience);
    }
    if claims.exp + CLOCK_LEEWAY_SECS < now {
        return Err(EnvelopeError::Expired);
    }
    if claims.iat > now + CLOCK_LEEWAY_SECS {
        return Err(EnvelopeError::NotYetValid);
    }
    if claims.exp.saturating_sub(claims.iat) > MAX_LIFETIME_SECS {
        return Err(EnvelopeError::TooLongLived);
    }
    Ok(claims)
}

/// Remembers the `jti` of every accepted envelope until it could no longer
/// pass the expiry check, so each envelope is acted on at most once.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: HashMap<String, u64>,
}

impl ReplayGuard {
    /// Upper bound on remembered ids; only the cloud can mint valid
    /// envelopes, so reaching it means something is badly wrong upstream.
    const MAX_ENTRIES: usize = 100_000;

    pub fn new() -> Self {
        Self::default()
    }

    /// Records `claims.jti`; fails if it was already recorded.
    pub fn check(&mut self, claims: &EnvelopeClaims, now: u64) -> Result<(), EnvelopeError> {
        if self.seen.len() >= Self::MAX_ENTRIES / 2 {
            self.prune(now);
        }
        if self.seen.len() >= Self::MAX_ENTRIES {
            // Refuse rather than forget: forgetting would reopen replays.
            return Err(EnvelopeError::Replayed);
        }
        if self.seen.contains_key(&claims.jti) {
            return Err(EnvelopeError::Replayed);
        }
        self.seen.insert(claims.jti.clone(), claims.exp);
        Ok(())
    }

    /// Whether `jti` was recorded (and not yet forgotten).
    pub fn contains(&self, jti: &str) -> bool {
        self.seen.contains_key(jti)
    }

    /// Records an id seen earlier, as read back from a daemon's record of
    /// seen envelopes (the guard itself keeps no files: proto does no I/O).
    pub fn remember(&mut self, jti: String, exp: u64) {
        self.seen.insert(jti, exp);
    }

    /// Forgets the ids whose envelopes can no longer pass the expiry check.
    pub fn prune(&mut self, now: u64) {
        self.seen.retain(|_, exp| *exp + CLOCK_LEEWAY_SECS >= now);
    }

    /// Every remembered `(jti, exp)`, to write them down.
    pub fn entries(&self) -> impl Iterator<Item = (&str, u64)> {
        self.seen.iter().map(|(j, e)| (j.as_str(), *e))
    }

    /// Whether the guard would remember `exp` at `now` (an expired
    /// envelope's id need not be kept).
    pub fn still_valid(exp: u64, now: u64) -> bool {
        exp + CLOCK_LEEWAY_SECS >= now
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SessionId;
    use crate::events::AbortPayload;

    fn abort() -> CommandEvent {
        CommandEvent::Abort(AbortPayload {
            session_id: SessionId::parse("s1").unwrap(),
        })
    }

    #[test]
    fn signed_envelope_verifies_once() {
        let key = CloudSigningKey::generate();
        let agent = AgentId::generate();
        let token = sign(&key, &agent, abort(), 30).unwrap();
        let claims = verify(&key.public_key(), &agent, &token).unwrap();
        assert_eq!(claims.command, abort());
        let mut guard = ReplayGuard::new();
        guard.check(&claims, now_secs()).unwrap();
        assert_eq!(
            guard.check(&claims, now_secs()),
            Err(EnvelopeError::Replayed)
        );
    }

    #[test]
    fn forged_foreign_and_expired_envelopes_fail() {
        let key = CloudSigningKey::generate();
        let other = CloudSigningKey::generate();
        let agent = AgentId::generate();
        let forged = sign(&other, &agent, abort(), 30).unwrap();
        assert_eq!(
            verify(&key.public_key(), &agent, &forged),
            Err(EnvelopeError::BadSignature)
        );
        let foreign = sign(&key, &AgentId::generate(), abort(), 30).unwrap();
        assert_eq!(
            verify(&key.public_key(), &agent, &foreign),
            Err(EnvelopeError::WrongAudience)
        );
        let now = now_secs();
        let old = sign_claims(
            &key,
            &EnvelopeClaims {
                aud: agent.to_string(),
                iat: now - 120,
                exp: now - 60,
                jti: "j".into(),
                command: abort(),
            },
        )
        .unwrap();
        assert_eq!(
            verify(&key.public_key(), &agent, &old),
            Err(EnvelopeError::Expired)
        );
        let long = sign_claims(
            &key,
            &EnvelopeClaims {
                aud: agent.to_string(),
                iat: now,
                exp: now + 3600,
                jti: "j2".into(),
                command: abort(),
            },
        )
        .unwrap();
        assert_eq!(
            verify(&key.public_key(), &agent, &long),
            Err(EnvelopeError::TooLongLived)
        );
    }

    #[test]
    fn unsigned_and_garbage_tokens_fail() {
        let key = CloudSigningKey::generate();
        let agent = AgentId::generate();
        // alg: none with the same claims.
        let header = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            r#"{"alg":"none","typ":"JWT"}"#,
        );
        let token = sign(&key, &agent, abort(), 30).unwrap();
        let body = token.split('.').nth(1).unwrap();
        let unsigned = format!("{header}.{body}.");
        assert!(verify(&key.public_key(), &agent, &unsigned).is_err());
        assert!(matches!(
            verify(&key.public_key(), &agent, "{\"event\":\"command\"}"),
            Err(EnvelopeError::Malformed(_))
        ));
        // Tampered payload with the original signature.
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        parts[1].insert(5, 'A');
        assert!(verify(&key.public_key(), &agent, &parts.join(".")).is_err());
    }

    #[test]
    fn unknown_command_inside_a_valid_envelope_decodes_as_unknown() {
        let key = CloudSigningKey::generate();
        let agent = AgentId::generate();
        #[derive(Serialize)]
        struct Future {
            aud: String,
            iat: u64,
            exp: u64,
            jti: String,
            event: String,
            payload: serde_json::Value,
        }
        let now = now_secs();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &Future {
                aud: agent.to_string(),
                iat: now,
                exp: now + 10,
                jti: "x".into(),
                event: "dance".into(),
                payload: serde_json::json!({"style": "tango"}),
            },
            key.encoding_key(),
        )
        .unwrap();
        let claims = verify(&key.public_key(), &agent, &token).unwrap();
        assert_eq!(claims.command, CommandEvent::Unknown);
    }
}
