//! Approval rules: what a scoped answer saves ("this session", "always
//! here"), and `/rules` / `remoteagentctl rules`, which list and revoke
//! them.
//!
//! The daemon derives a rule's pattern itself when it asks
//! (`ApprovalRequestPayload::rule`); the phone's signed answer only picks a
//! [`Scope`], so a rule can only ever narrow what a human approved once.

use serde::{Deserialize, Deserializer, Serialize};

use crate::SessionId;

/// How long an approval holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// This one tool use.
    Once,
    /// Every matching use in this conversation with the AI.
    Session,
    /// Every matching use by this agent, kept across restarts.
    Always,
}

impl Scope {
    /// `this session`, `always here`: how a saved rule's scope is said.
    pub fn words(self) -> &'static str {
        match self {
            Scope::Once => "once",
            Scope::Session => "this session",
            Scope::Always => "always here",
        }
    }

    /// One letter for callback data (`o`, `s`, `a`).
    pub fn letter(self) -> char {
        match self {
            Scope::Once => 'o',
            Scope::Session => 's',
            Scope::Always => 'a',
        }
    }

    pub fn from_letter(c: &str) -> Option<Scope> {
        match c {
            "o" => Some(Scope::Once),
            "s" => Some(Scope::Session),
            "a" => Some(Scope::Always),
            _ => None,
        }
    }
}

/// An optional scope read leniently: absent, `null` or unknown is `None`
/// (the answer then counts for this one use).
pub fn lenient_scope<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Scope>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(value.and_then(|v| serde_json::from_value(v).ok()))
}

/// One saved rule as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleInfo {
    /// Its number ("rule 3"), stable while it exists.
    pub id: u32,
    /// `Bash(cargo test *)`.
    pub pattern: String,
    pub scope: Scope,
    /// Automatic allows it gave since the daemon started.
    #[serde(default)]
    pub uses: u64,
}

/// `list_rules`: list the agent's rules, or revoke one first (answered on
/// the output stream of `session_id` with `rules`, then `done`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRulesPayload {
    pub session_id: SessionId,
    /// Revoke this rule before listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke: Option<u32>,
}

/// The `rules` output event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RulesPayload {
    #[serde(default)]
    pub rules: Vec<RuleInfo>,
    /// What a revoke did, in words ("Revoked rule 3: Bash(cargo test *)").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_read_leniently_and_round_trip_letters() {
        #[derive(Deserialize)]
        struct P {
            #[serde(default, deserialize_with = "lenient_scope")]
            scope: Option<Scope>,
        }
        let read = |j: &str| serde_json::from_str::<P>(j).unwrap().scope;
        assert_eq!(read(r#"{"scope":"session"}"#), Some(Scope::Session));
        assert_eq!(read(r#"{"scope":"forever"}"#), None);
        assert_eq!(read(r#"{}"#), None);
        for s in [Scope::Once, Scope::Session, Scope::Always] {
            assert_eq!(Scope::from_letter(&s.letter().to_string()), Some(s));
        }
    }
}
