//! The cloud's Ed25519 key pair. The cloud signs command envelopes and agent
//! JWTs with the private half; a daemon pins the public half at pairing and
//! verifies every envelope with it.
//!
//! Text forms: the private key is the base64url (no padding) of its 32-byte
//! seed, the public key the base64url of its raw 32 bytes (JWK `x`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::{SigningKey, VerifyingKey};
use jsonwebtoken::{DecodingKey, EncodingKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the key is not valid base64url")]
    Base64,
    #[error("an Ed25519 key is 32 bytes, this one is {0}")]
    Length(usize),
    #[error("not a valid Ed25519 public key")]
    InvalidPoint,
    #[error("encoding the key failed: {0}")]
    Encoding(String),
}

fn decode32(text: &str) -> Result<[u8; 32], KeyError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim().trim_end_matches('='))
        .map_err(|_| KeyError::Base64)?;
    let len = bytes.len();
    bytes.try_into().map_err(|_| KeyError::Length(len))
}

/// The cloud's private signing key. `Debug` never prints it.
#[derive(Clone)]
pub struct CloudSigningKey {
    seed: SigningKey,
    encoding: EncodingKey,
}

impl CloudSigningKey {
    /// A new random key.
    pub fn generate() -> Self {
        let seed: [u8; 32] = rand::random();
        Self::from_seed(seed).expect("a 32-byte seed always encodes")
    }

    fn from_seed(seed: [u8; 32]) -> Result<Self, KeyError> {
        let signing = SigningKey::from_bytes(&seed);
        let der = signing
            .to_pkcs8_der()
            .map_err(|e| KeyError::Encoding(e.to_string()))?;
        Ok(Self {
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            seed: signing,
        })
    }

    /// Parses the base64url seed form (as written to the data dir or env).
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        Self::from_seed(decode32(text)?)
    }

    /// The base64url seed form. This is the secret: store it 0600.
    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.seed.to_bytes())
    }

    pub fn public_key(&self) -> CloudPublicKey {
        CloudPublicKey::from_verifying(self.seed.verifying_key())
    }

    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }
}

impl std::fmt::Debug for CloudSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CloudSigningKey(hidden)")
    }
}

/// The cloud's public key, as pinned by a daemon.
#[derive(Clone)]
pub struct CloudPublicKey {
    raw: [u8; 32],
    decoding: DecodingKey,
}

impl CloudPublicKey {
    fn from_verifying(key: VerifyingKey) -> Self {
        let raw = key.to_bytes();
        Self {
            raw,
            decoding: DecodingKey::from_ed_der(&raw),
        }
    }

    /// Parses the base64url form and checks that it is a curve point.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let raw = decode32(text)?;
        let key = VerifyingKey::from_bytes(&raw).map_err(|_| KeyError::InvalidPoint)?;
        Ok(Self::from_verifying(key))
    }

    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.raw)
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }
}

impl PartialEq for CloudPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}
impl Eq for CloudPublicKey {}

impl std::fmt::Debug for CloudPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CloudPublicKey({})", self.to_base64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        let key = CloudSigningKey::generate();
        let again = CloudSigningKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(key.public_key(), again.public_key());
        let public = CloudPublicKey::from_base64(&key.public_key().to_base64()).unwrap();
        assert_eq!(public, key.public_key());
        assert!(!format!("{key:?}").contains(&key.to_base64()));
    }

    #[test]
    fn bad_text_is_rejected() {
        assert!(matches!(
            CloudPublicKey::from_base64("not base64!"),
            Err(KeyError::Base64)
        ));
        assert!(matches!(
            CloudPublicKey::from_base64("AAAA"),
            Err(KeyError::Length(3))
        ));
    }
}
