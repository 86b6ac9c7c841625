//! A tool's approval message with what is approved (`forwarder::shown`):
//! a diff too long for the message is first sent whole as a file, just
//! above it, so the message with its buttons stays the newest.

use remoteagent_proto::events::ApprovalRequestPayload;

use super::{Io, Pager};
use crate::forwarder::shown::{self, DiffNote};
use crate::telegram::{Document, DocumentSource};

impl<I: Io> Pager<I> {
    /// The HTML of a plain tool's approval request in `chat`.
    pub(super) async fn tool_message(&mut self, chat: i64, a: &ApprovalRequestPayload) -> String {
        let agent = self.saved.agent_name.clone();
        let diff = match a.diff.as_deref() {
            Some(diff) if shown::diff_is_cut(&agent, a) => diff,
            _ => return shown::tool_html(&agent, a, DiffNote::Whole),
        };
        let name = shown::diff_file_name(a);
        if self.muted {
            return shown::tool_html(&agent, a, DiffNote::NotAttached);
        }
        let document = Document {
            file_name: name.clone(),
            caption: None,
            source: DocumentSource::Bytes(diff.as_bytes().to_vec()),
        };
        // One attempt: the message below says when it failed.
        match self.io.send_document(chat, document).await {
            Ok(_) => shown::tool_html(&agent, a, DiffNote::Attached(&name)),
            Err(e) => {
                tracing::warn!(session = %self.saved.session_id, request = %a.request_id, error = %e, "the whole diff could not be sent as a file");
                shown::tool_html(&agent, a, DiffNote::NotAttached)
            }
        }
    }
}
