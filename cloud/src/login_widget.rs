//! Checking the Telegram Login Widget's signature, exactly as Telegram
//! documents it (core.telegram.org/widgets/login#checking-authorization):
//! the data-check-string is every received field except `hash`, sorted by
//! key, as `key=value` lines joined by `\n`; the key is SHA-256 of the bot
//! token; the hash is the hex HMAC-SHA256 of the string. `auth_date` must
//! be recent, or an old login could be replayed.

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// How old a login may be.
pub const MAX_AGE_SECS: i64 = 24 * 3600;
/// Clock difference tolerated for logins "from the future".
const FUTURE_LEEWAY_SECS: i64 = 300;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WidgetError {
    #[error("the Telegram login has no hash")]
    MissingHash,
    #[error("the Telegram login has no valid auth_date")]
    MissingDate,
    #[error("the Telegram login field {0} has an unexpected type")]
    BadField(String),
    #[error("the Telegram login signature is invalid")]
    BadSignature,
    #[error("the Telegram login is too old; log in again")]
    Stale,
    #[error(
        "the Telegram login is dated in the future: check this device's clock, then log in again"
    )]
    FromTheFuture,
}

fn field_text(key: &str, value: &Value) -> Result<Option<String>, WidgetError> {
    match value {
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Null => Ok(None),
        _ => Err(WidgetError::BadField(key.to_string())),
    }
}

/// The data-check-string of `fields`.
pub fn check_string(fields: &Map<String, Value>) -> Result<String, WidgetError> {
    let mut pairs = Vec::new();
    for (key, value) in fields {
        if key == "hash" {
            continue;
        }
        if let Some(text) = field_text(key, value)? {
            pairs.push(format!("{key}={text}"));
        }
    }
    pairs.sort();
    Ok(pairs.join("\n"))
}

/// The hex signature of `fields` for `bot_token` (tests use it to sign).
pub fn sign(fields: &Map<String, Value>, bot_token: &str) -> Result<String, WidgetError> {
    let mac = mac(fields, bot_token)?;
    Ok(hex::encode(mac.finalize().into_bytes()))
}

fn mac(fields: &Map<String, Value>, bot_token: &str) -> Result<Hmac<Sha256>, WidgetError> {
    let secret = Sha256::digest(bot_token.as_bytes());
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret).map_err(|_| WidgetError::BadSignature)?;
    mac.update(check_string(fields)?.as_bytes());
    Ok(mac)
}

/// Verifies the signature and freshness of a widget login at `now_secs`.
pub fn verify(
    fields: &Map<String, Value>,
    bot_token: &str,
    now_secs: i64,
) -> Result<(), WidgetError> {
    let hash = fields
        .get("hash")
        .and_then(Value::as_str)
        .ok_or(WidgetError::MissingHash)?;
    let expected = hex::decode(hash.trim()).map_err(|_| WidgetError::BadSignature)?;
    // `verify_slice` compares in constant time.
    mac(fields, bot_token)?
        .verify_slice(&expected)
        .map_err(|_| WidgetError::BadSignature)?;
    let auth_date = match fields.get("auth_date") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .ok_or(WidgetError::MissingDate)?;
    if auth_date - now_secs > FUTURE_LEEWAY_SECS {
        return Err(WidgetError::FromTheFuture);
    }
    if now_secs - auth_date > MAX_AGE_SECS {
        return Err(WidgetError::Stale);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn check_string_is_sorted_and_skips_hash() {
        let f = fields(
            json!({"username": "u", "id": 5, "auth_date": 10, "hash": "x", "first_name": "A"}),
        );
        assert_eq!(
            check_string(&f).unwrap(),
            "auth_date=10\nfirst_name=A\nid=5\nusername=u"
        );
    }

    #[test]
    fn matches_an_independent_hmac() {
        // The expected value was computed with Python:
        // hmac.new(sha256(b"123:abc").digest(), b"auth_date=10\nid=5", sha256).hexdigest()
        let f = fields(json!({"id": 5, "auth_date": 10}));
        assert_eq!(
            sign(&f, "123:abc").unwrap(),
            "c11bbb599f876444ea9adb4ab8d66094290be5b8c8a519c5987e2a3007309e2d"
        );
    }

    #[test]
    fn valid_forged_and_stale() {
        let now = 1_700_000_000;
        let mut f = fields(json!({"id": 5, "first_name": "A", "auth_date": now - 60}));
        let hash = sign(&f, "tok").unwrap();
        f.insert("hash".into(), json!(hash));
        assert_eq!(verify(&f, "tok", now), Ok(()));
        assert_eq!(
            verify(&f, "other-token", now),
            Err(WidgetError::BadSignature)
        );
        let mut forged = f.clone();
        forged.insert("id".into(), json!(6));
        assert_eq!(verify(&forged, "tok", now), Err(WidgetError::BadSignature));
        assert_eq!(
            verify(&f, "tok", now + MAX_AGE_SECS + 61),
            Err(WidgetError::Stale)
        );
        assert_eq!(
            verify(&f, "tok", now - 60 - FUTURE_LEEWAY_SECS - 1),
            Err(WidgetError::FromTheFuture)
        );
        assert_eq!(verify(&f, "tok", now - 60 - FUTURE_LEEWAY_SECS), Ok(()));
        let mut nohash = f.clone();
        nohash.remove("hash");
        assert_eq!(verify(&nohash, "tok", now), Err(WidgetError::MissingHash));
    }
}
