//! Reading one entry of a session's output stream: both the live loop
//! (`session.rs`) and the output file (`output_file.rs`) read entries.

use redis::streams::StreamId;
use remoteagent_proto::events::OutputEvent;
use remoteagent_proto::stream;

/// The event of a stream entry (see [`stream::parse`]).
pub(super) fn parse_entry(entry: &StreamId) -> Result<OutputEvent, stream::EntryError> {
    let value = entry
        .map
        .get(stream::FIELD)
        .and_then(|v| redis::from_redis_value_ref::<String>(v).ok());
    stream::parse(value.as_deref())
}
