//! A user's rights compared as sets: what `ACL GETUSER` answers against
//! the rules the cloud wants ([`remoteagent_proto::names::agent_acl_rules`]).

use std::collections::HashSet;

/// A user's rights as sets of rules, in a form `ACL GETUSER` (Redis 6.2 or
/// 7) and a rule list can both be read into: key patterns, channels,
/// command rules, and whether the user is on.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct RuleSets {
    on: bool,
    keys: HashSet<String>,
    channels: HashSet<String>,
    commands: HashSet<String>,
}

impl RuleSets {
    pub(super) fn of_rules(rules: &[String]) -> RuleSets {
        let mut sets = RuleSets::default();
        for rule in rules {
            if rule == "on" {
                sets.on = true;
            } else if let Some(key) = rule.strip_prefix('~') {
                sets.keys.insert(key.to_string());
            } else if let Some(channel) = rule.strip_prefix('&') {
                sets.channels.insert(channel.to_string());
            } else if rule.starts_with('+') || rule.starts_with('-') {
                sets.commands.insert(rule.clone());
            }
        }
        sets
    }

    /// From `ACL GETUSER`'s answer: field names and values alternating
    /// (RESP2) or a map (RESP3); values are strings of space-separated
    /// rules (7.x) or arrays (6.2, without the `~`/`&` prefixes).
    pub(super) fn of_user(described: &redis::Value) -> RuleSets {
        let pairs: Vec<(String, &redis::Value)> = match described {
            redis::Value::Map(map) => map
                .iter()
                .map(|(k, v)| (value_tokens(k).join(" "), v))
                .collect(),
            redis::Value::Array(items) => items
                .chunks(2)
                .filter_map(|kv| match kv {
                    [k, v] => Some((value_tokens(k).join(" "), v)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut sets = RuleSets::default();
        for (field, value) in pairs {
            let tokens = value_tokens(value);
            match field.as_str() {
                "flags" => sets.on = tokens.iter().any(|t| t == "on"),
                "keys" => {
                    sets.keys = tokens
                        .into_iter()
                        .map(|t| t.trim_start_matches('~').to_string())
                        .collect()
                }
                "channels" => {
                    sets.channels = tokens
                        .into_iter()
                        .map(|t| t.trim_start_matches('&').to_string())
                        .collect()
                }
                "commands" => sets.commands = tokens.into_iter().collect(),
                _ => {}
            }
        }
        sets
    }
}

/// The words of a reply value: a string split at spaces, an array's
/// members' words.
fn value_tokens(value: &redis::Value) -> Vec<String> {
    match value {
        redis::Value::BulkString(bytes) => String::from_utf8_lossy(bytes)
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        redis::Value::SimpleString(s) | redis::Value::VerbatimString { text: s, .. } => {
            s.split_whitespace().map(str::to_string).collect()
        }
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.iter().flat_map(value_tokens).collect()
        }
        _ => Vec::new(),
    }
}
