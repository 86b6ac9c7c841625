//! How agent names and this machine's hostname look wherever they are
//! stored, shown or sent (metadata, presence, pairing): cleaned with
//! [`remoteagent_proto::text::clean_name`], so a name looks like what it is.

use remoteagent_proto::text;

/// An agent name as it is stored and shown: no escape sequences, control,
/// bidi or invisible format characters (a name must look like what it is),
/// at most [`text::MAX_NAME_CHARS`]; `fallback` when nothing is left.
pub fn clean_agent_name(name: &str, fallback: &str) -> String {
    let cleaned = text::clean_name(name, text::MAX_NAME_CHARS);
    if cleaned.is_empty() {
        text::clean_name(fallback, text::MAX_NAME_CHARS)
    } else {
        cleaned
    }
}

/// This machine's hostname, cleaned like a name (the cloud shows it).
pub fn clean_hostname() -> String {
    let raw = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cleaned = text::clean_name(&raw, text::MAX_HOSTNAME_CHARS);
    if cleaned.is_empty() {
        "unknown".into()
    } else {
        cleaned
    }
}
