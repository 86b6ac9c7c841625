//! Bodies of the cloud's HTTP API (camelCase JSON).
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /api/pair` | [`PairRequest`] | [`PairResponse`] |
//! | `POST /api/pair/confirm` | [`PairConfirmRequest`] | [`PairConfirmResponse`] |
//! | `POST /api/agents/{id}/token` (Bearer) | — | [`TokenResponse`] |
//! | `DELETE /api/agents/{id}` (Bearer) | — | 204 |
//!
//! Errors answer [`ErrorBody`] with a 4xx/5xx status.

use serde::{Deserialize, Serialize};

use crate::{AgentId, PairingId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairRequest {
    /// Suggested agent name (the folder name unless `--name` was given).
    pub project_name: String,
    pub hostname: String,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairResponse {
    /// What the user types: `/pair XK9-4TZ`.
    pub code: String,
    pub pairing_id: PairingId,
    pub expires_at_ms: u64,
    /// The `/connect` page, for pairing in a browser.
    pub connect_url: String,
    /// The bot's @username when the cloud knows it, for the hint line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_username: Option<String>,
    /// Credentials that may only SUBSCRIBE to `pair:{pairingId}`.
    pub redis: RedisCredentials,
    /// base64url Ed25519 public key of the cloud. The daemon pins this one
    /// (it arrived over the authenticated HTTPS channel) and refuses a
    /// `paired` event that names another.
    pub cloud_public_key: String,
}

impl std::fmt::Debug for PairResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairResponse")
            .field("code", &self.code)
            .field("pairing_id", &self.pairing_id)
            .field("expires_at_ms", &self.expires_at_ms)
            .field("connect_url", &self.connect_url)
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedisCredentials {
    /// `redis://host:port` (or `rediss://`), without credentials.
    pub url: String,
    /// Empty when the server has no ACL users (the cloud's no-ACL switch).
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
}

impl std::fmt::Debug for RedisCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCredentials")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &"hidden")
            .finish()
    }
}

/// Sent by the `/connect` page: the Telegram Login Widget's fields plus the code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairConfirmRequest {
    pub code: String,
    pub telegram: TelegramLogin,
}

/// The Telegram Login Widget's fields, exactly as Telegram names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelegramLogin {
    pub id: i64,
    pub first_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo_url: Option<String>,
    pub auth_date: i64,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairConfirmResponse {
    pub agent_id: AgentId,
    pub name: String,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    pub jwt: String,
    pub expires_at: u64,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("jwt", &"hidden")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Machine-readable: `bad_request`, `unauthorized`, `not_found`,
    /// `rate_limited`, `plan_limit`, `internal`, …
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_response_shape_and_hidden_password() {
        let r = PairResponse {
            code: "XK9-4TZ".into(),
            pairing_id: PairingId::parse("p1").unwrap(),
            expires_at_ms: 1,
            connect_url: "http://x/connect".into(),
            bot_username: None,
            redis: RedisCredentials {
                url: "redis://127.0.0.1:6379".into(),
                username: "ra-pair-p1".into(),
                password: "s3cret".into(),
            },
            cloud_public_key: "k".into(),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["pairingId"], "p1");
        assert_eq!(v["redis"]["password"], "s3cret");
        assert!(!format!("{r:?}").contains("s3cret"));
        let back: PairResponse = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }
}
