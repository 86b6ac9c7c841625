//! The output stream's entry contract, written once for the daemon (which
//! appends), the cloud's forwarder (which reads) and whoever writes a `done`
//! for a session whose writer is gone (the cloud's `/stop` and liveness, the
//! daemon's orphan sweep).
//!
//! An entry of `output:{agentId}:{sessionId}` has one field,
//! [`FIELD`], whose value is the JSON of an [`OutputEvent`]. Streams are
//! capped (`MAXLEN ~`) on every append and expire a day after their `done`.
//! Here only the shapes are built: the argument lists of the Redis commands
//! are plain data, and each side turns them into its own pipeline, so
//! `proto` stays free of I/O and of a Redis client.

use std::collections::HashMap;
use std::hash::BuildHasher;

use crate::events::{DonePayload, OutputEvent};
use crate::names;

/// The field of an entry that carries the JSON event.
pub const FIELD: &str = names::STREAM_FIELD;

/// The value of an entry's [`FIELD`] for `event`.
pub fn encode(event: &OutputEvent) -> Result<String, serde_json::Error> {
    serde_json::to_string(event)
}

/// Why an entry does not hold an event.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("no '{FIELD}' field")]
    NoField,
    #[error("'{FIELD}' is not an output event: {0}")]
    Json(#[from] serde_json::Error),
}

/// The event of an entry, given the value of its [`FIELD`] (if it has one).
pub fn parse(value: Option<&str>) -> Result<OutputEvent, EntryError> {
    let raw = value.ok_or(EntryError::NoField)?;
    Ok(serde_json::from_str(raw)?)
}

/// The event of an entry given as a field → string map.
pub fn parse_fields<S: BuildHasher>(
    fields: &HashMap<String, String, S>,
) -> Result<OutputEvent, EntryError> {
    parse(fields.get(FIELD).map(String::as_str))
}

/// One Redis command as its name followed by its arguments.
pub type Command = Vec<String>;

/// `XADD key MAXLEN ~ N id FIELD json`: one capped append. `id` is `*` for
/// "after whatever is there", or an explicit `ms-seq` the writer chose.
pub fn xadd(key: &str, id: &str, json: String) -> Command {
    vec![
        "XADD".to_string(),
        key.to_string(),
        "MAXLEN".to_string(),
        "~".to_string(),
        names::OUTPUT_STREAM_MAXLEN.to_string(),
        id.to_string(),
        FIELD.to_string(),
        json,
    ]
}

/// The commands that end the stream `key` with `done`, in order: the
/// capped `XADD … *` of the event, then `EXPIRE key ttl`, so a stream whose
/// writer died still goes away like one that ended normally. Whether a
/// `done` is due at all is the caller's decision.
pub fn done_commands(key: &str, done: &DonePayload) -> Result<[Command; 2], serde_json::Error> {
    let json = encode(&OutputEvent::Done(done.clone()))?;
    Ok([
        xadd(key, "*", json),
        vec![
            "EXPIRE".to_string(),
            key.to_string(),
            names::OUTPUT_STREAM_TTL_SECS.to_string(),
        ],
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ChunkPayload, DoneStatus, NoticePayload, StreamKind};

    fn done() -> DonePayload {
        DonePayload {
            status: DoneStatus::Error,
            exit_code: None,
            duration_ms: 0,
            message: Some("the agent went offline".into()),
            chunks: 3,
            withheld_bytes: 0,
            stopped_by: None,
            turns: None,
            cost_usd: None,
        }
    }

    #[test]
    fn events_round_trip_through_an_entry() {
        let events = [
            OutputEvent::Chunk(ChunkPayload {
                seq: 7,
                stream: StreamKind::Stdout,
                text: "héllo\n".into(),
            }),
            OutputEvent::Notice(NoticePayload {
                text: "withheld".into(),
            }),
            OutputEvent::Done(done()),
        ];
        for event in events {
            let json = encode(&event).unwrap();
            assert_eq!(parse(Some(&json)).unwrap(), event);
            let fields = HashMap::from([(FIELD.to_string(), json)]);
            assert_eq!(parse_fields(&fields).unwrap(), event);
        }
    }

    #[test]
    fn an_entry_without_the_field_or_with_bad_json_is_refused() {
        assert!(matches!(parse(None), Err(EntryError::NoField)));
        let other = HashMap::from([("other".to_string(), "{}".to_string())]);
        let e = parse_fields(&other).unwrap_err();
        assert!(matches!(e, EntryError::NoField));
        assert_eq!(e.to_string(), "no 'event' field");
        assert!(matches!(parse(Some("not json")), Err(EntryError::Json(_))));
    }

    #[test]
    fn done_is_a_capped_append_then_an_expiry() {
        let [xadd, expire] = done_commands("output:a:s", &done()).unwrap();
        let json = encode(&OutputEvent::Done(done())).unwrap();
        assert_eq!(
            xadd,
            [
                "XADD",
                "output:a:s",
                "MAXLEN",
                "~",
                "10000",
                "*",
                "event",
                json.as_str()
            ]
        );
        assert_eq!(expire, ["EXPIRE", "output:a:s", "86400"]);
        assert_eq!(
            parse(xadd.last().map(String::as_str)).unwrap(),
            OutputEvent::Done(done())
        );
    }

    #[test]
    fn an_append_carries_the_chosen_id() {
        let cmd = xadd("k", "12-3", "{}".into());
        assert_eq!(cmd[5], "12-3");
        assert_eq!(cmd[4], names::OUTPUT_STREAM_MAXLEN.to_string());
    }
}
