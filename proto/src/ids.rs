//! Identifiers. Every id ends up inside a Redis key and, for sessions, inside
//! a file name on the user's disk, so each is validated on the way in: at most
//! 64 characters of `[A-Za-z0-9_-]`. A session id sent by a compromised cloud
//! can therefore never become `../../.bashrc`.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("an id may not be empty")]
    Empty,
    #[error("an id may be at most 64 characters long")]
    TooLong,
    #[error("an id may contain only letters, digits, '-' and '_'")]
    BadChar,
}

fn validate(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > 64 {
        return Err(IdError::TooLong);
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(IdError::BadChar);
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// A fresh random id (UUID v4, 32 hex digits).
            pub fn generate() -> Self {
                Self(uuid::Uuid::new_v4().simple().to_string())
            }

            /// Parses and validates an id.
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                validate(&s)?;
                Ok(Self(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

id_type!(
    /// A paired project folder (one agent per folder).
    AgentId
);
id_type!(
    /// One prompt and the run it starts.
    SessionId
);
id_type!(
    /// One pairing attempt, from `POST /api/pair` until confirmed or expired.
    PairingId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = AgentId::generate();
        let b = AgentId::generate();
        assert_ne!(a, b);
        assert_eq!(AgentId::parse(a.as_str()).unwrap(), a);
        assert_eq!(a.as_str().len(), 32);
    }

    #[test]
    fn path_tricks_are_rejected() {
        assert_eq!(SessionId::parse("../../etc"), Err(IdError::BadChar));
        assert_eq!(SessionId::parse("a/b"), Err(IdError::BadChar));
        assert_eq!(SessionId::parse(""), Err(IdError::Empty));
        assert_eq!(SessionId::parse("x".repeat(65)), Err(IdError::TooLong));
        assert!(SessionId::parse("Ab-9_z").is_ok());
    }

    #[test]
    fn serde_validates() {
        let ok: SessionId = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(ok.as_str(), "abc");
        assert!(serde_json::from_str::<SessionId>("\"a b\"").is_err());
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"abc\"");
    }
}
