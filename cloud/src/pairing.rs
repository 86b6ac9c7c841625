//! Pairing, shared by the bot's `/pair CODE` and `POST /api/pair/confirm`.
//!
//! A daemon asks for a code (`request`); the user confirms it from Telegram
//! (`confirm`). Confirming consumes the code atomically, enforces the plan,
//! creates the agent, its JWT and its Redis user, and tells the waiting
//! daemon on `pair:{pairingId}`.

use remoteagent_proto::text::plural::count;
use std::time::Duration;

use rand::Rng;
use remoteagent_proto::api::{PairRequest, PairResponse, RedisCredentials};
use remoteagent_proto::events::{PairEvent, PairFailedPayload, PairedPayload};
use remoteagent_proto::{AgentId, PairingId, names, token};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::db::{self, agents, pairing as codes, users};
use crate::metrics::Metrics;
use crate::plans;
use crate::state::AppState;
use remoteagent_proto::text;

/// Letters and digits nobody confuses: no 0/O, 1/I/L.
pub const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// How long a code may be used.
pub const CODE_TTL: Duration = Duration::from_secs(10 * 60);
/// Wrong codes a Telegram user may enter per [`ATTEMPT_WINDOW`].
pub const MAX_WRONG_ATTEMPTS: i64 = 5;
pub const ATTEMPT_WINDOW: Duration = Duration::from_secs(10 * 60);

/// A new random code, formatted `XK9-4TZ`.
pub fn generate_code() -> String {
    let mut rng = rand::rngs::OsRng;
    let mut code = String::with_capacity(7);
    for i in 0..6 {
        if i == 3 {
            code.push('-');
        }
        code.push(char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]));
    }
    code
}

/// Accepts what users type (`xk9 4tz`, `XK94TZ`, ` xk9-4tz `) and returns
/// the canonical `XK9-4TZ`, or `None` if it cannot be a code.
pub fn normalize(input: &str) -> Option<String> {
    let chars: Vec<char> = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if chars.len() != 6
        || !chars
            .iter()
            .all(|c| c.is_ascii() && ALPHABET.contains(&(*c as u8)))
    {
        return None;
    }
    let mut out: String = chars[..3].iter().collect();
    out.push('-');
    out.extend(&chars[3..]);
    Some(out)
}

/// SHA-256 hex of a JWT: the only form of it the database keeps.
pub fn token_hash(jwt: &str) -> String {
    hex::encode(Sha256::digest(jwt.as_bytes()))
}

/// Cleans a suggested agent name: visible characters only (see
/// [`remoteagent_proto::text`]), trimmed, at most 40 characters; never empty.
pub fn clean_name(name: &str) -> String {
    let cleaned = text::clean_name(name, text::MAX_NAME_CHARS);
    if cleaned.is_empty() {
        "project".into()
    } else {
        cleaned
    }
}

/// Cleans a daemon's hostname the same way (it is shown next to the name).
pub fn clean_hostname(hostname: &str) -> String {
    // Shown next to the name: a DNS label is at most 63 characters.
    text::clean_name(hostname, 64)
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    Invalid(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

impl From<RequestError> for crate::error::Error {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Invalid(m) => crate::error::Error::BadRequest(m),
            RequestError::Db(e) => e.into(),
            RequestError::Redis(e) => e.into(),
        }
    }
}

/// Hands out a code and the pairing attempt's Redis credentials.
pub async fn request(state: &AppState, req: &PairRequest) -> Result<PairResponse, RequestError> {
    let project = clean_name(&req.project_name);
    let hostname = clean_hostname(&req.hostname);
    if req.project_name.len() > 1024 || req.hostname.len() > 1024 {
        return Err(RequestError::Invalid(
            "projectName or hostname is too long".into(),
        ));
    }
    let pairing_id = PairingId::generate();
    let created = db::now();
    let expires = created + CODE_TTL.as_millis() as i64;
    let mut code = String::new();
    for _ in 0..10 {
        let candidate = generate_code();
        let row = codes::PairingCode {
            code: candidate.clone(),
            pairing_id: pairing_id.clone(),
            project_name: project.clone(),
            hostname: hostname.clone(),
            created_at: created,
            expires_at: expires,
            used_at: None,
            used_by: None,
        };
        if codes::insert(&state.db, &row).await? {
            code = candidate;
            break;
        }
    }
    if code.is_empty() {
        return Err(RequestError::Db(sqlx::Error::Protocol(
            "could not draw an unused pairing code".into(),
        )));
    }
    let (username, password) = state.acl.create_pairing_user(&pairing_id).await?;
    Metrics::inc(&state.metrics.pairings_requested);
    tracing::info!(pairing = %pairing_id, project = %project, "pairing code issued");
    Ok(PairResponse {
        connect_url: connect_url(state, &code),
        code,
        pairing_id,
        expires_at_ms: expires as u64,
        bot_username: state.bot_username.clone(),
        redis: RedisCredentials {
            url: state.config.public_redis_url.clone(),
            username,
            // Handed to the daemon over HTTPS, its only copy.
            password: password.expose_secret().to_owned(),
        },
        cloud_public_key: state.key.public_key().to_base64(),
    })
}

/// Where to finish pairing in a browser: the `/connect` page when the cloud
/// has a public URL; otherwise (poll mode) the bot's deep link, whose
/// `/start CODE` pairs; empty when the bot's name is unknown too (`getMe`
/// failed at start-up), leaving `/pair CODE`.
fn connect_url(state: &AppState, code: &str) -> String {
    match (&state.config.public_url, &state.bot_username) {
        // The page fills the code in from the link.
        (Some(url), _) => format!("{url}/connect?code={code}"),
        (None, Some(bot)) => format!("https://t.me/{}?start={code}", bot.trim_start_matches('@')),
        (None, None) => String::new(),
    }
}

/// A completed pairing.
#[derive(Debug, Clone)]
pub struct Paired {
    pub agent_id: AgentId,
    pub name: String,
    pub hostname: String,
}

/// "1 agent", "3 agents", for the plan limit's message.
fn agents(n: impl std::borrow::Borrow<i64>) -> String {
    count((*n.borrow()).max(0) as u64, "agent", "agents")
}

#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    #[error("Too many wrong codes. Try again in {0} minutes.")]
    RateLimited(u64),
    #[error("That is not a pairing code. Codes look like XK9-4TZ.")]
    Malformed,
    #[error("Unknown code. Check the code shown by remoteagentctl pair.")]
    Unknown,
    #[error("This code has expired. Run remoteagentctl pair again for a new one.")]
    Expired,
    #[error("This code was already used. Run remoteagentctl pair again for a new one.")]
    Used,
    #[error(
        "Your plan allows {} and you have reached it. Unpair one with /unpair NAME, or upgrade.",
        agents(.0)
    )]
    PlanLimit(i64),
    #[error(
        "The daemon that asked for this code is no longer waiting. Run remoteagentctl pair again."
    )]
    NotListening,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ConfirmError {
    /// Whether this outcome counts towards the wrong-attempt limit.
    fn is_wrong_code(&self) -> bool {
        matches!(
            self,
            ConfirmError::Malformed
                | ConfirmError::Unknown
                | ConfirmError::Expired
                | ConfirmError::Used
        )
    }

    /// The message for the Telegram user.
    pub fn user_message(&self) -> String {
        match self {
            ConfirmError::Internal(_) => {
                "Something went wrong while pairing. Please try again.".into()
            }
            other => other.to_string(),
        }
    }
}

impl From<sqlx::Error> for ConfirmError {
    fn from(e: sqlx::Error) -> Self {
        ConfirmError::Internal(format!("database: {e}"))
    }
}

impl From<redis::RedisError> for ConfirmError {
    fn from(e: redis::RedisError) -> Self {
        ConfirmError::Internal(format!("redis: {e}"))
    }
}

impl From<ConfirmError> for crate::error::Error {
    fn from(e: ConfirmError) -> Self {
        use crate::error::Error;
        match e {
            ConfirmError::RateLimited(_) => Error::RateLimited(e.to_string()),
            ConfirmError::PlanLimit(_) => Error::PlanLimit(e.to_string()),
            ConfirmError::Internal(m) => Error::Internal(m),
            ConfirmError::Unknown => Error::NotFound(e.to_string()),
            other => Error::BadRequest(other.to_string()),
        }
    }
}

/// Confirms `raw_code` for Telegram user `user`.
pub async fn confirm(state: &AppState, user: i64, raw_code: &str) -> Result<Paired, ConfirmError> {
    let result = confirm_inner(state, user, raw_code).await;
    match &result {
        Ok(p) => {
            Metrics::inc(&state.metrics.pairings_completed);
            tracing::info!(agent = %p.agent_id, user, name = %p.name, "paired");
        }
        Err(e) => {
            Metrics::inc(&state.metrics.pairings_failed);
            if e.is_wrong_code() {
                codes::record_wrong_attempt(&state.db, user).await?;
            }
            tracing::info!(user, error = %e, "pairing refused");
        }
    }
    result
}

async fn confirm_inner(
    state: &AppState,
    user: i64,
    raw_code: &str,
) -> Result<Paired, ConfirmError> {
    let window = ATTEMPT_WINDOW.as_millis() as i64;
    let now = db::now();
    let (wrong, oldest) = codes::wrong_attempts_since(&state.db, user, now - window).await?;
    if wrong >= MAX_WRONG_ATTEMPTS {
        let free_at = oldest.unwrap_or(now) + window;
        let minutes = ((free_at - now).max(0) as u64).div_ceil(60_000).max(1);
        return Err(ConfirmError::RateLimited(minutes));
    }
    let code = normalize(raw_code).ok_or(ConfirmError::Malformed)?;
    let row = codes::get(&state.db, &code)
        .await?
        .ok_or(ConfirmError::Unknown)?;
    if !codes::consume(&state.db, &code, user).await? {
        return Err(if row.used_at.is_some() {
            ConfirmError::Used
        } else {
            ConfirmError::Expired
        });
    }
    let pairing = row.pairing_id.clone();
    let result = create_agent(state, user, &row, &pairing).await;
    if let Err(e) = &result {
        let reason = match e {
            ConfirmError::PlanLimit(_) => "plan_limit",
            _ => "refused",
        };
        let event = PairEvent::PairFailed(PairFailedPayload {
            reason: reason.into(),
            message: e.user_message(),
        });
        if let Err(pe) = publish_pair_event(state, &pairing, &event).await {
            tracing::warn!(pairing = %pairing, error = %pe, "telling the daemon that pairing failed");
        }
    }
    // The pairing user's only purpose is over either way.
    if let Err(e) = state.acl.delete_pairing_user(&pairing).await {
        tracing::warn!(pairing = %pairing, error = %e, "deleting the pairing's Redis user");
    }
    result
}

async fn create_agent(
    state: &AppState,
    user: i64,
    row: &codes::PairingCode,
    pairing: &PairingId,
) -> Result<Paired, ConfirmError> {
    let owner = users::get_or_create(&state.db, user, state.config.trial_days).await?;
    state.unknown_users.forget(user);
    let limit = plans::agent_limit(&owner, state.config.free_plan_agents, db::now());
    if let Some(limit) = limit {
        let count = agents::count_active(&state.db, user).await?;
        if count >= limit {
            return Err(ConfirmError::PlanLimit(limit));
        }
    }
    let agent_id = AgentId::generate();
    let (jwt, _claims) = token::issue(&state.key, &agent_id, user, token::AGENT_TOKEN_TTL_SECS)
        .map_err(|e| ConfirmError::Internal(e.to_string()))?;
    let hash = token_hash(&jwt);
    // Cleaned again: a code issued by an older build may hold anything.
    let name = agents::insert(
        &state.db,
        &agent_id,
        user,
        &clean_name(&row.project_name),
        &clean_hostname(&row.hostname),
        &hash,
    )
    .await?;
    // Check again now that the row exists: two pairings confirmed at the same
    // moment could both have passed the check above. Then both back out, and
    // the limit is never exceeded.
    if let Some(limit) = limit
        && agents::count_active(&state.db, user).await? > limit
    {
        agents::revoke(&state.db, &agent_id).await?;
        return Err(ConfirmError::PlanLimit(limit));
    }
    let redis_username = match state.acl.create_agent_user(&agent_id, &hash).await {
        Ok(u) => u,
        Err(e) => {
            agents::revoke(&state.db, &agent_id).await?;
            return Err(e.into());
        }
    };
    // Make it current before the daemon hears of it, so the user's first
    // prompt after `remoteagentctl pair` reports success goes to it.
    users::set_current_agent(&state.db, user, Some(&agent_id)).await?;
    let undo = |state: &AppState| {
        let previous = owner.current_agent.clone();
        let agent_id = agent_id.clone();
        let state = state.clone();
        async move {
            undo_agent(&state, &agent_id).await;
            if let Err(e) = users::set_current_agent(&state.db, user, previous.as_ref()).await {
                tracing::warn!(user, error = %e, "restoring the current agent");
            }
        }
    };
    let event = PairEvent::Paired(PairedPayload {
        jwt,
        agent_id: agent_id.clone(),
        name: name.clone(),
        redis_username,
        cloud_public_key: state.key.public_key().to_base64(),
    });
    let receivers = match publish_pair_event(state, pairing, &event).await {
        Ok(n) => n,
        Err(e) => {
            undo(state).await;
            return Err(e);
        }
    };
    if receivers == 0 {
        // Nobody will ever store this agent's token: do not leave a live
        // credential behind.
        undo(state).await;
        return Err(ConfirmError::NotListening);
    }
    codes::set_agent(&state.db, &row.code, &agent_id).await?;
    Ok(Paired {
        agent_id,
        name,
        hostname: clean_hostname(&row.hostname),
    })
}

async fn undo_agent(state: &AppState, agent: &AgentId) {
    if let Err(e) = state.acl.delete_agent_user(agent).await {
        tracing::warn!(agent = %agent, error = %e, "deleting the Redis user of an unfinished pairing");
    }
    if let Err(e) = agents::revoke(&state.db, agent).await {
        tracing::warn!(agent = %agent, error = %e, "revoking an unfinished pairing's agent");
    }
}

async fn publish_pair_event(
    state: &AppState,
    pairing: &PairingId,
    event: &PairEvent,
) -> Result<usize, ConfirmError> {
    let json = serde_json::to_string(event).map_err(|e| ConfirmError::Internal(e.to_string()))?;
    let mut conn = state.redis.clone();
    // `SPUBLISH` on a cluster, where the daemon waits with `SSUBSCRIBE`.
    let n = remoteagent_rediskit::pubsub::publish(
        &mut conn,
        &names::pair_channel(pairing),
        json.as_bytes(),
    )
    .await?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Deletes the Redis users of codes that expired unused since `since`.
pub async fn sweep_expired(state: &AppState, since: i64) -> Result<usize, ConfirmError> {
    let ids = codes::expired_unused_since(&state.db, since).await?;
    let mut n = 0;
    for pairing in ids {
        state.acl.delete_pairing_user(&pairing).await?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_the_unambiguous_alphabet() {
        for _ in 0..200 {
            let code = generate_code();
            assert_eq!(code.len(), 7);
            assert_eq!(&code[3..4], "-");
            assert!(!code.contains(['0', 'O', '1', 'I', 'L']), "{code}");
            assert_eq!(normalize(&code).as_deref(), Some(code.as_str()));
        }
    }

    #[test]
    fn normalization_accepts_what_people_type() {
        assert_eq!(normalize("xk9 4tz").as_deref(), Some("XK9-4TZ"));
        assert_eq!(normalize(" XK94TZ ").as_deref(), Some("XK9-4TZ"));
        assert_eq!(normalize("xk9-4tz").as_deref(), Some("XK9-4TZ"));
        assert_eq!(normalize("XK9-4T"), None);
        assert_eq!(normalize("XK0-4TZ"), None);
        assert_eq!(normalize("XK9-4TZÉ"), None);
        assert_eq!(normalize(""), None);
    }

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name("  my\u{7}proj "), "myproj");
        assert_eq!(clean_name(""), "project");
        assert_eq!(clean_name(&"x".repeat(100)).len(), 40);
        assert_eq!(clean_name("\u{202E}\u{200B}"), "project");
        assert_eq!(clean_name("evil\u{202E}txt.exe"), "eviltxt.exe");
        assert_eq!(clean_hostname("dev\u{2067}box\u{2069}"), "devbox");
        assert_eq!(clean_hostname(&"h".repeat(300)).len(), 64);
    }
}
