//! Approval requests in the chat: a message with [✅ Approve | ⛔ Deny] for
//! each request, its verdict shown in place, and requests still open at
//! the end of the session closed, so that no button outlives it.

use remoteagent_proto::events::{ApprovalRequestPayload, ApprovalResolvedPayload};

use super::delivery::Shown;
use super::{Io, Pager, Stop};
use crate::forwarder::page::{self, Line};
use crate::forwarder::questions::Asked;
use crate::forwarder::scoped;
use crate::forwarder::store::ApprovalMessage;

impl<I: Io> Pager<I> {
    /// An approval request: a new message (so the phone notifies) with
    /// [✅ Approve | ⛔ Deny], remembered by request id so that its verdict,
    /// or a button press on any replica, finds it.
    pub(super) async fn show_approval(&mut self, a: &ApprovalRequestPayload) -> Result<(), Stop> {
        if self
            .saved
            .more
            .approvals
            .iter()
            .any(|m| m.rid == a.request_id)
        {
            // Applied again after a restart: it is already shown.
            return Ok(());
        }
        let chat = self.approval_chat();
        if chat == self.chat() {
            self.break_page().await?;
        }
        let (html, keyboard) = match &a.kind {
            Some(kind) => self.question_message(chat, a, kind).await,
            None => (
                self.tool_message(chat, a).await
                    + &a.rule.as_deref().map(scoped::rule_line).unwrap_or_default(),
                scoped::keyboard(&self.saved.session_id, &a.request_id, a.rule.as_deref()),
            ),
        };
        if keyboard.is_none() {
            tracing::warn!(agent = %self.saved.agent_id, session = %self.saved.session_id, request = %a.request_id, "approval request id does not fit a button: shown without buttons");
        }
        let msg = self
            .send_now(chat, html.clone(), keyboard)
            .await
            .unwrap_or(0);
        if msg == 0 && !self.muted {
            // The runner waits for an answer nobody can give: say so where
            // the output goes; the request is denied when it times out.
            self.append_line(Line::notice(&format!(
                "⚠️ An approval request ({}) could not be shown; it is denied when it times out.",
                a.tool
            )))
            .await?;
        }
        tracing::info!(agent = %self.saved.agent_id, session = %self.saved.session_id, request = %a.request_id, message = msg, "approval request shown");
        self.saved.more.add_approval(ApprovalMessage {
            rid: a.request_id.clone(),
            msg,
            html,
            resolved: None,
            ask: a.kind.as_ref().map(Asked::of),
            rule: a.rule.clone(),
        });
        self.save(true).await
    }

    /// An approval's verdict: its message shows it, and loses its buttons.
    pub(super) async fn resolve_approval(
        &mut self,
        r: &ApprovalResolvedPayload,
    ) -> Result<(), Stop> {
        let Some(entry) = self.saved.more.approval_mut(&r.request_id) else {
            tracing::warn!(agent = %self.saved.agent_id, session = %self.saved.session_id, request = %r.request_id, "verdict for an approval request never shown");
            let line = Line::unknown_verdict(&r.request_id, r.allow, &r.reason);
            return self.append_line(line).await;
        };
        let html = page::approval_resolved_html(&entry.html, r.allow, &r.reason);
        let msg = entry.msg;
        let first = entry.resolved.is_none();
        entry.resolved = Some(html.clone());
        if first {
            // Stored before the edit: the button handler looks here to tell
            // whether its "⏳" edit may have overtaken this one, and a replica
            // that resumes before the edit was made applies this entry again.
            self.save(true).await?;
        }
        if msg != 0 {
            let chat = self.approval_chat();
            if let Shown::No = self.edit_now(chat, msg, html, None).await {
                tracing::warn!(session = %self.saved.session_id, request = %r.request_id, "an approval's verdict could not be shown");
            }
        }
        tracing::info!(agent = %self.saved.agent_id, session = %self.saved.session_id, request = %r.request_id, allow = r.allow, "approval resolved");
        Ok(())
    }

    /// Approval messages still showing their buttons when the session ends
    /// (their verdict never arrived): they lose them and say why.
    pub(super) async fn close_open_approvals(&mut self) {
        let chat = self.approval_chat();
        let open: Vec<(String, i64, String)> = self
            .saved
            .more
            .approvals
            .iter()
            .filter(|a| a.resolved.is_none() && a.msg != 0)
            .map(|a| (a.rid.clone(), a.msg, a.html.clone()))
            .collect();
        for (rid, msg, html) in open {
            let closed = page::approval_resolved_html(&html, false, "the run ended");
            let _ = self.edit_now(chat, msg, closed.clone(), None).await;
            if let Some(a) = self.saved.more.approval_mut(&rid) {
                a.resolved = Some(closed);
            }
        }
    }
}
