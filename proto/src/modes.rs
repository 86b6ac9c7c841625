//! Modes: how freely an agent's runner may act in a run, chosen per agent
//! with `/mode` on the phone, sent in each `command` and clamped by the
//! daemon to what the computer's approval policy allows.
//!
//! Ordered by strictness: `plan` (strictest: the runner only plans) <
//! `ask` (the approval policy asks the phone) < `edits` (file edits are
//! accepted, the rest is asked) < `auto` (everything allowed). `a < b`
//! means `a` is stricter than `b`.
//!
//! On the wire a mode is its lower-case name; the optional `mode` fields of
//! `command` and `started` read leniently ([`lenient`]): a name this build
//! does not know reads as absent, never as a failed event.

use serde::{Deserialize, Deserializer, Serialize};

/// One mode, ordered from strictest to loosest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The runner plans and changes nothing (Claude Code's plan mode,
    /// Codex's read-only sandbox).
    Plan,
    /// The computer's approval policy: tool uses it does not allow are
    /// asked on the phone.
    Ask,
    /// File edits are accepted at once; the rest is asked.
    Edits,
    /// Everything is allowed.
    Auto,
}

impl Mode {
    /// Every mode, strictest first.
    pub const ALL: [Mode; 4] = [Mode::Plan, Mode::Ask, Mode::Edits, Mode::Auto];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Plan => "plan",
            Mode::Ask => "ask",
            Mode::Edits => "edits",
            Mode::Auto => "auto",
        }
    }

    /// What the mode does, in a few words for people.
    pub fn description(self) -> &'static str {
        match self {
            Mode::Plan => "plans only, changes nothing",
            Mode::Ask => "asks you before tool uses its computer's policy does not allow",
            Mode::Edits => "accepts file edits, asks for the rest",
            Mode::Auto => "everything allowed",
        }
    }

    /// The stricter of two modes.
    pub fn stricter(self, other: Mode) -> Mode {
        self.min(other)
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that names no mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a mode; the modes are plan, ask, edits and auto")]
pub struct UnknownMode(pub String);

impl std::str::FromStr for Mode {
    type Err = UnknownMode;

    /// A mode's name, in any case, surrounding spaces ignored.
    fn from_str(s: &str) -> Result<Mode, UnknownMode> {
        let word = s.trim().to_ascii_lowercase();
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == word)
            .ok_or_else(|| UnknownMode(s.trim().to_string()))
    }
}

/// An optional mode read leniently: absent, `null`, or a value this build
/// does not know (a newer peer's mode) reads as `None`, so that the event
/// around it is still read.
pub fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Mode>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(value.and_then(|v| serde_json::from_value(v).ok()))
}

/// The part of an agent's presence value (the JSON its daemon refreshes in
/// `presence:{agentId}`) that says whether its runner takes modes, so that
/// `/mode` can tell the owner when it has no effect. Absent (an older
/// daemon, or a value that is not JSON): unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceModes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modes: Option<bool>,
}

impl PresenceModes {
    /// Read from a presence value; anything unreadable is unknown.
    pub fn of(value: &str) -> PresenceModes {
        serde_json::from_str(value).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_from_strictest_to_loosest() {
        assert!(Mode::Plan < Mode::Ask);
        assert!(Mode::Ask < Mode::Edits);
        assert!(Mode::Edits < Mode::Auto);
        assert_eq!(Mode::Auto.stricter(Mode::Ask), Mode::Ask);
        assert_eq!(Mode::Plan.stricter(Mode::Edits), Mode::Plan);
        let mut sorted = Mode::ALL;
        sorted.sort();
        assert_eq!(sorted, Mode::ALL);
    }

    #[test]
    fn parse_and_display_round_trip() {
        for mode in Mode::ALL {
            assert_eq!(mode.to_string().parse::<Mode>(), Ok(mode));
            assert_eq!(
                serde_json::to_value(mode).unwrap(),
                serde_json::json!(mode.as_str())
            );
        }
        assert_eq!(" PLAN ".parse::<Mode>(), Ok(Mode::Plan));
        let err = "yolo".parse::<Mode>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "'yolo' is not a mode; the modes are plan, ask, edits and auto"
        );
        assert!("".parse::<Mode>().is_err());
    }

    #[test]
    fn presence_says_whether_the_runner_takes_modes() {
        let of = |v: &str| PresenceModes::of(v).modes;
        assert_eq!(
            of(r#"{"hostname":"h","busy":false,"modes":false}"#),
            Some(false)
        );
        assert_eq!(of(r#"{"modes":true}"#), Some(true));
        assert_eq!(of(r#"{"hostname":"h"}"#), None);
        assert_eq!(of("1"), None);
        assert_eq!(of(r#"{"modes":"yes"}"#), None);
    }

    /// An older daemon ignores `mode`; a newer cloud's unknown mode still
    /// lets this build read the command (without a mode).
    #[test]
    fn commands_carry_the_mode_leniently() {
        use crate::events::CommandEvent;
        let read = |mode: &str| {
            let json = format!(
                r#"{{"event":"command","payload":{{"sessionId":"s1","prompt":"p"{mode}}}}}"#
            );
            match serde_json::from_str::<CommandEvent>(&json).unwrap() {
                CommandEvent::Command(c) => c.mode,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(read(r#","mode":"plan""#), Some(Mode::Plan));
        assert_eq!(read(r#","mode":"turbo""#), None);
        assert_eq!(read(""), None);
    }

    #[derive(Debug, Deserialize)]
    struct Holder {
        #[serde(default, deserialize_with = "lenient")]
        mode: Option<Mode>,
    }

    #[test]
    fn unknown_modes_read_as_absent() {
        let read = |json: &str| serde_json::from_str::<Holder>(json).unwrap().mode;
        assert_eq!(read(r#"{"mode":"plan"}"#), Some(Mode::Plan));
        assert_eq!(read(r#"{"mode":"yolo"}"#), None);
        assert_eq!(read(r#"{"mode":7}"#), None);
        assert_eq!(read(r#"{"mode":null}"#), None);
        assert_eq!(read(r#"{}"#), None);
    }
}
