//! Claude's questions and plans in the chat: the message and buttons of an
//! `approval_request` that carries a `kind` (see `forwarder::questions`).
//! They are remembered, resolved and closed like any approval message
//! (`approvals.rs`).

use remoteagent_proto::events::ApprovalRequestPayload;
use remoteagent_proto::questions::AskKind;

use super::{Io, Pager};
use crate::forwarder::questions;
use crate::telegram::{Document, DocumentSource, InlineKeyboard};

impl<I: Io> Pager<I> {
    /// The message (HTML, buttons) of a question or a plan. A plan too long
    /// for the message is sent whole as `plan.md` first, just above it.
    pub(super) async fn question_message(
        &mut self,
        chat: i64,
        a: &ApprovalRequestPayload,
        kind: &AskKind,
    ) -> (String, Option<InlineKeyboard>) {
        let session = &self.saved.session_id;
        let agent = &self.saved.agent_name;
        match kind {
            AskKind::Question(q) => {
                let labels: Vec<String> = q.options.iter().map(|o| o.label.clone()).collect();
                (
                    questions::question_html(agent, q, a.timeout_secs),
                    questions::question_keyboard(
                        session,
                        &a.request_id,
                        &labels,
                        q.multi_select,
                        0,
                    ),
                )
            }
            AskKind::Plan(plan) => {
                let keyboard = questions::plan_keyboard(session, &a.request_id);
                let mut html = questions::plan_html(agent, plan, a.timeout_secs);
                if questions::plan_is_cut(plan) && !self.muted {
                    let mut text = plan.plan.clone();
                    if plan.cut_chars > 0 {
                        text.push_str(&format!(
                            "\n\n[{} more characters of the plan were left out: RemoteAgent carries at most {} characters]\n",
                            plan.cut_chars,
                            remoteagent_proto::questions::MAX_PLAN_CHARS
                        ));
                    }
                    let document = Document {
                        file_name: "plan.md".into(),
                        caption: None,
                        source: DocumentSource::Bytes(text.into_bytes()),
                    };
                    // One attempt: the message below says when it failed.
                    if let Err(e) = self.io.send_document(chat, document).await {
                        tracing::warn!(session = %self.saved.session_id, request = %a.request_id, error = %e, "the whole plan could not be sent as a file");
                        html = html.replace(
                            "the whole plan is in plan.md above.",
                            "the whole plan could not be attached.",
                        );
                    }
                }
                (html, keyboard)
            }
        }
    }
}
