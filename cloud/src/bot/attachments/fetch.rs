//! A file from Telegram into a blob: `getFile`, the download (at most
//! [`MAX_DOWNLOAD_BYTES`], counted as it arrives), then `SET
//! blob:{agentId}:{blobId} … EX` on a connection of its own: a 20 MB write
//! must not hold up the short commands of every other user on the shared
//! one. Telegram's rate limits and network failures are retried a few
//! times; what still fails is said to the user by the caller.

use std::time::Duration;

use remoteagent_proto::AgentId;
use remoteagent_proto::backoff::Backoff;
use remoteagent_proto::files::{BLOB_TTL_SECS, MAX_DOWNLOAD_BYTES};
use remoteagent_proto::names;

use crate::state::AppState;
use crate::telegram::TelegramError;

/// Tries of one Telegram call before the user is told.
const TELEGRAM_TRIES: u32 = 3;
/// Longest wait for the blob to be written.
const STORE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a file could not be fetched.
#[derive(Debug)]
pub enum FetchError {
    /// Over the Bot API's download limit (`getFile`'s "file is too big",
    /// or more bytes arrived than allowed).
    TooBig,
    /// Anything else Telegram or the network said (for the user, without
    /// the URL, which holds the token).
    Failed(String),
}

/// The bytes of the file `file_id`.
pub async fn download(state: &AppState, file_id: &str) -> Result<Vec<u8>, FetchError> {
    let info = retried(state, || state.telegram.get_file(file_id)).await?;
    let Some(path) = info.file_path else {
        return Err(FetchError::Failed("Telegram has no download for it".into()));
    };
    retried(state, || {
        state.telegram.download_file(&path, MAX_DOWNLOAD_BYTES)
    })
    .await
}

/// Runs `call` up to [`TELEGRAM_TRIES`] times while Telegram asks to wait
/// or cannot be reached; its refusals are final.
async fn retried<T, F, Fut>(state: &AppState, mut call: F) -> Result<T, FetchError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, TelegramError>>,
{
    let mut backoff =
        Backoff::new(Duration::from_millis(500), Duration::from_secs(5)).attempts(TELEGRAM_TRIES);
    loop {
        let wait = match call().await {
            Ok(v) => return Ok(v),
            Err(TelegramError::Api { description, .. }) if description.contains("too big") => {
                return Err(FetchError::TooBig);
            }
            Err(TelegramError::Api { code: 413, .. }) => return Err(FetchError::TooBig),
            Err(TelegramError::Api { code, description }) => {
                return Err(FetchError::Failed(format!("{code}: {description}")));
            }
            Err(TelegramError::RetryAfter(secs)) => match backoff.next_delay() {
                Some(_) => Duration::from_secs(secs.min(30)),
                None => {
                    return Err(FetchError::Failed(
                        "Telegram asked to wait; try again in a minute".into(),
                    ));
                }
            },
            Err(TelegramError::Transport(text)) => match backoff.next_delay() {
                Some(delay) => delay,
                None => return Err(FetchError::Failed(text)),
            },
        };
        tokio::select! {
            () = state.shutdown.cancelled() => {
                return Err(FetchError::Failed("the bot is shutting down".into()));
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Writes `bytes` as a new blob of `agent`; returns its key.
pub async fn store_blob(
    state: &AppState,
    agent: &AgentId,
    bytes: &[u8],
) -> Result<String, redis::RedisError> {
    let key = names::blob_key(agent, &blob_id());
    // A connection of its own: a 20 MB write on the shared one would hold
    // up every other command behind it.
    // redis-rs's own timeouts, as ever; STORE_TIMEOUT bounds the whole.
    let target = state.config.redis_target();
    let options = remoteagent_rediskit::Options {
        connection_timeout: Some(Duration::from_secs(1)),
        response_timeout: Some(Duration::from_millis(500)),
        ..Default::default()
    };
    let write = async {
        let mut conn = remoteagent_rediskit::conn::dedicated(&target, &options).await?;
        redis::cmd("SET")
            .arg(&key)
            .arg(bytes)
            .arg("EX")
            .arg(BLOB_TTL_SECS)
            .query_async::<()>(&mut conn)
            .await
    };
    match tokio::time::timeout(STORE_TIMEOUT, write).await {
        Ok(result) => result.map(|()| key),
        Err(_) => Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "writing a blob timed out",
        ))),
    }
}

/// 16 random bytes in hex.
fn blob_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}
