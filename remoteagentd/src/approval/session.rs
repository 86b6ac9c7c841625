//! The session's side of tool approval: questions from the hook come in,
//! the project's policy answers them or the phone is asked
//! (`approval_request`), and every request asked ends with exactly one
//! `approval_resolved`: the phone's answer, the computer's, the timeout, or
//! the session's end. Each request is pinned on the daemon's [`Board`] while
//! it waits, so `remoteagentctl` can list and answer it.
//!
//! The session's pump loop awaits [`SessionApprovals::next`] in its
//! `select!` next to the runner's pipes and calls
//! [`SessionApprovals::handle`] with what it got; before its `done` it calls
//! [`SessionApprovals::end`]. Everything is written through the session's
//! own `OutputWriter`, so stream entry ids and order stay right.

use std::time::Duration;

use remoteagent_proto::events::{
    ApprovalRequestPayload, ApprovalResolvedPayload, NoticePayload, OutputEvent,
};
use tokio::time::Instant;

use super::board::{Board, Pin, SessionSeat};
use super::policy::{ProjectPolicy, Verdict};
use super::questions::{Outcome, Special};
use super::{ApprovalAnswer, ApprovalAsk, ApprovalInbox, Decision, new_request_id, short_summary};
use crate::output::{OutputError, OutputWriter};
use crate::session_log::SessionLog;

/// Requests waiting for the phone at once; more are denied at once.
pub const MAX_PENDING: usize = 8;
/// The reason given for requests still open when the session ends.
pub const SESSION_ENDED: &str = "the run ended";

/// A request the phone has not answered yet.
struct Pending {
    id: String,
    /// `Bash cargo test`, for logs.
    label: String,
    reply: tokio::sync::oneshot::Sender<Decision>,
    deadline: Instant,
    /// A question or a plan rather than a tool use.
    special: Option<Special>,
    /// The rule the request offered, saved when the answer is scoped.
    rule: Option<String>,
}

/// What [`SessionApprovals::next`] found to do.
#[derive(Debug)]
pub enum Step {
    Ask(ApprovalAsk),
    Answer(ApprovalAnswer),
    /// A pending request's deadline has passed.
    Expired,
}

pub struct SessionApprovals {
    policy: ProjectPolicy,
    inbox: ApprovalInbox,
    asks_open: bool,
    answers_open: bool,
    pending: Vec<Pending>,
    /// Where waiting requests are pinned; `None` in unit tests of the loop.
    board: Option<(Board, SessionSeat)>,
    /// Rules saved from scoped answers; `None`: none are offered or used.
    rules: Option<super::rules::SessionRules>,
}

impl Drop for SessionApprovals {
    /// A session that never reached [`SessionApprovals::end`] (its task
    /// panicked) takes its requests off the board.
    fn drop(&mut self) {
        if let Some((board, _)) = &self.board {
            let ids: Vec<String> = self.pending.iter().map(|p| p.id.clone()).collect();
            board.withdraw(&ids, SESSION_ENDED);
        }
    }
}

impl SessionApprovals {
    pub fn new(policy: ProjectPolicy, inbox: ApprovalInbox) -> Self {
        SessionApprovals {
            policy,
            inbox,
            asks_open: true,
            answers_open: true,
            pending: Vec::new(),
            board: None,
            rules: None,
        }
    }

    /// Offers, saves and applies rules from scoped answers.
    pub fn with_rules(mut self, rules: super::rules::SessionRules) -> Self {
        self.rules = Some(rules);
        self
    }

    /// Pins this session's waiting requests on `board`, for the computer.
    pub fn on_board(mut self, board: Board, seat: SessionSeat) -> Self {
        self.board = Some((board, seat));
        self
    }

    /// What the project's policy does with a tool no entry allows.
    pub fn policy_kind(&self) -> super::policy::PolicyKind {
        self.policy.policy
    }

    /// The approval timeout of this session's project, in seconds.
    pub fn timeout_secs(&self) -> u64 {
        self.policy.timeout_secs
    }

    /// Requests waiting for the phone.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Waits for the next thing to do. Cancel-safe: nothing is lost when
    /// another branch of the caller's `select!` wins.
    pub async fn next(&mut self) -> Step {
        loop {
            let deadline = self.pending.iter().map(|p| p.deadline).min();
            tokio::select! {
                ask = self.inbox.asks.recv(), if self.asks_open => match ask {
                    Some(ask) => return Step::Ask(ask),
                    None => self.asks_open = false,
                },
                answer = self.inbox.answers.recv(), if self.answers_open => match answer {
                    Some(answer) => return Step::Answer(answer),
                    None => self.answers_open = false,
                },
                _ = crate::util::time::sleep_until_opt(deadline) => return Step::Expired,
            }
        }
    }

    pub async fn handle(
        &mut self,
        step: Step,
        out: &mut OutputWriter,
        log: &mut SessionLog,
    ) -> Result<(), OutputError> {
        match step {
            Step::Ask(ask) => self.on_ask(ask, out, log).await,
            Step::Answer(answer) => self.on_answer(answer, out, log).await,
            Step::Expired => self.on_expired(out, log).await,
        }
    }

    async fn on_ask(
        &mut self,
        ask: ApprovalAsk,
        out: &mut OutputWriter,
        log: &mut SessionLog,
    ) -> Result<(), OutputError> {
        let ApprovalAsk {
            tool,
            input,
            cwd,
            reply,
        } = ask;
        let cwd = cwd.map(std::path::PathBuf::from);
        // Questions and plans are the user's to answer, whatever the policy.
        let special = match super::questions::classify(&tool, &input) {
            Some(Ok(special)) => Some(special),
            Some(Err(reason)) => {
                tracing::info!(tool = %tool, "question denied: it cannot be shown");
                log.note(&format!("approval: {tool}: {reason}"));
                let _ = reply.send(Decision::deny(reason));
                return Ok(());
            }
            None => None,
        };
        // Checked first: a dangerous use asks whatever the policy, the mode
        // or a rule says (where the policy denies, it stays denied).
        let danger = match &special {
            Some(_) => None,
            None => self
                .policy
                .danger
                .classify(&tool, &input, &self.policy.root, cwd.as_deref()),
        };
        let shown = match &special {
            Some(special) => super::shown::Shown {
                summary: special.summary(),
                ..Default::default()
            },
            None => super::shown::shown(
                &tool,
                &input,
                super::summary(&tool, &input),
                &self.policy.root,
                cwd.as_deref(),
            ),
        };
        let summary = shown.summary.clone();
        let label = short_summary(&tool, &summary);
        let verdict = match (&special, &danger) {
            (Some(_), _) => Verdict::Ask,
            (None, Some(_)) => super::danger::verdict(self.policy.policy),
            (None, None) => self.policy.decide(&tool, &input),
        };
        // Where the policy would ask, a rule saved from the phone may
        // answer instead (`rules`) — never for a dangerous use, which always
        // asks, and no rule is offered for one.
        let rules = self
            .rules
            .as_ref()
            .filter(|_| special.is_none() && danger.is_none());
        if verdict == Verdict::Ask
            && let Some(hit) = rules.and_then(|r| r.allows(&tool, &input))
        {
            tracing::info!(tool = %tool, summary = %label, rule = hit.id, "tool use auto-allowed by a rule");
            log.note(&format!(
                "approval: {label}: auto-allowed by rule {}: {}",
                hit.id, hit.pattern
            ));
            let _ = reply.send(Decision::allow(format!(
                "allowed by the user's rule {} ({}) saved from their phone",
                hit.id, hit.pattern
            )));
            return Ok(());
        }
        let rule = rules.and_then(|r| r.offer(&tool, &input));
        match verdict {
            Verdict::Allow => {
                tracing::info!(tool = %tool, summary = %label, "tool use allowed by the project's policy");
                log.note(&format!(
                    "approval: {label}: allowed by this project's policy"
                ));
                let _ = reply.send(Decision::allow(
                    "allowed by this project's RemoteAgent policy",
                ));
            }
            Verdict::Deny => {
                tracing::info!(tool = %tool, summary = %label, "tool use denied by the project's policy");
                let text = format!("{label}: denied by this project's policy");
                log.note(&format!("approval: {text}"));
                let _ = reply.send(Decision::deny(
                    "denied by this project's RemoteAgent policy; do not retry it, ask the user instead",
                ));
                out.event(OutputEvent::Notice(NoticePayload { text }))
                    .await?;
            }
            Verdict::Ask if self.pending.len() >= MAX_PENDING => {
                tracing::warn!(tool = %tool, summary = %label, "approval request denied: too many are waiting");
                let text =
                    format!("{label}: denied, {MAX_PENDING} approval requests are already waiting");
                log.note(&format!("approval: {text}"));
                let _ = reply.send(Decision::deny("too many approval requests are waiting"));
                out.event(OutputEvent::Notice(NoticePayload { text }))
                    .await?;
            }
            Verdict::Ask if reply.is_closed() => {
                // The hook gave up (or was killed) before the question got
                // here: asking the phone would ask about nothing.
                tracing::info!(tool = %tool, "approval request withdrawn before it was asked");
            }
            Verdict::Ask => {
                self.ask_phone(
                    Asking {
                        tool,
                        summary,
                        label,
                        special,
                        danger: danger.map(|d| d.reason),
                        diff: shown.diff,
                        cwd: shown.cwd,
                        rule,
                    },
                    reply,
                    out,
                    log,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Pins the request, writes `approval_request` and waits for it.
    async fn ask_phone(
        &mut self,
        asking: Asking,
        reply: tokio::sync::oneshot::Sender<Decision>,
        out: &mut OutputWriter,
        log: &mut SessionLog,
    ) -> Result<(), OutputError> {
        let Asking {
            tool,
            summary,
            label,
            special,
            danger,
            diff,
            cwd,
            rule,
        } = asking;
        {
            {
                let id = loop {
                    let id = new_request_id();
                    if !self.pending.iter().any(|p| p.id == id) {
                        break id;
                    }
                };
                let timeout_secs = self.policy.timeout_secs;
                tracing::info!(request = %id, tool = %tool, summary = %label, timeout_secs, "asking the phone for approval");
                match &danger {
                    Some(why) => log.note(&format!("approval {id} asked: {label} (⚠️ {why})")),
                    None => log.note(&format!("approval {id} asked: {label}")),
                }
                let deadline = Instant::now() + Duration::from_secs(timeout_secs);
                // Pinned before the phone sees it, so whoever sees the
                // request can answer it from the computer too.
                if let Some((board, seat)) = &self.board {
                    board.pin(
                        seat,
                        Pin {
                            request_id: &id,
                            tool: &tool,
                            summary: &summary,
                            label: &label,
                            deadline,
                        },
                    );
                }
                let asked = out
                    .event(OutputEvent::ApprovalRequest(ApprovalRequestPayload {
                        request_id: id.clone(),
                        tool,
                        summary,
                        timeout_secs,
                        kind: special.as_ref().map(Special::kind),
                        danger,
                        diff,
                        cwd,
                        rule: rule.clone(),
                    }))
                    .await;
                if let Err(e) = asked {
                    if let Some((board, _)) = &self.board {
                        board.withdraw(std::slice::from_ref(&id), SESSION_ENDED);
                    }
                    return Err(e);
                }
                self.pending.push(Pending {
                    id,
                    label,
                    reply,
                    deadline,
                    special,
                    rule,
                });
            }
        }
        Ok(())
    }

    async fn on_answer(
        &mut self,
        answer: ApprovalAnswer,
        out: &mut OutputWriter,
        log: &mut SessionLog,
    ) -> Result<(), OutputError> {
        let Some(at) = self.pending.iter().position(|p| p.id == answer.request_id) else {
            tracing::info!(request = %answer.request_id, "approval answer ignored: no such request is waiting");
            return Ok(());
        };
        let mut pending = self.pending.remove(at);
        let Some(special) = pending.special.take() else {
            // The reason says who answered: the phone's message shows it.
            let (decision, mut reason) = answer.texts();
            if answer.allow
                && let Some(saved) = self.save_rule(&pending, &answer, log)
            {
                reason.push_str(&saved);
            }
            return self.resolve(pending, decision, &reason, out, log).await;
        };
        match special.outcome(&answer) {
            Outcome::Done { decision, reason } => {
                self.resolve(pending, decision, &reason, out, log).await
            }
            Outcome::Next { set, reason } => {
                // This question shows its answer; the runner waits for the
                // rest, asked as a new request with a fresh timeout.
                self.announce(&pending.id, &pending.label, true, &reason, out, log)
                    .await?;
                let special = Special::Questions(set);
                let summary = special.summary();
                let asking = Asking {
                    tool: remoteagent_proto::questions::ASK_USER_QUESTION.to_string(),
                    label: short_summary(remoteagent_proto::questions::ASK_USER_QUESTION, &summary),
                    summary,
                    special: Some(special),
                    danger: None,
                    diff: None,
                    cwd: None,
                    rule: None,
                };
                self.ask_phone(asking, pending.reply, out, log).await
            }
        }
    }

    /// Saves the rule `pending` offered when `answer` scoped it beyond
    /// this use; what to add to the verdict's reason ("; saved …" or why
    /// not).
    fn save_rule(
        &self,
        pending: &Pending,
        answer: &ApprovalAnswer,
        log: &mut SessionLog,
    ) -> Option<String> {
        use remoteagent_proto::rules::Scope;
        let scope = answer.scope.filter(|s| *s != Scope::Once)?;
        let (Some(rules), Some(pattern)) = (&self.rules, &pending.rule) else {
            return Some("; no rule was saved (this request offered none)".into());
        };
        Some(match rules.save(pattern, scope) {
            Ok(id) => {
                tracing::info!(rule = id, scope = scope.words(), "approval rule saved");
                log.note(&format!("rule {id} saved, {}: {pattern}", scope.words()));
                format!("; saved rule {id}: {pattern}, {}", scope.words())
            }
            Err(e) => {
                tracing::warn!(error = %e, "an approval rule could not be saved");
                log.note(&format!("rule {pattern} not saved: {e}"));
                format!("; the rule {pattern} could not be saved: {e}")
            }
        })
    }

    async fn on_expired(
        &mut self,
        out: &mut OutputWriter,
        log: &mut SessionLog,
    ) -> Result<(), OutputError> {
        let now = Instant::now();
        let secs = self.policy.timeout_secs;
        while let Some(at) = self.pending.iter().position(|p| p.deadline <= now) {
            let pending = self.pending.remove(at);
            let reason = format!("no answer in {secs} s");
            self.resolve(pending, Decision::deny(reason.clone()), &reason, out, log)
                .await?;
        }
        Ok(())
    }

    /// Denies everything still open, writing `approval_resolved` for each
    /// request the phone was shown. Called before the session's `done`.
    pub async fn end(
        &mut self,
        out: &mut OutputWriter,
        log: &mut SessionLog,
    ) -> Result<(), OutputError> {
        // Questions that arrived but were never asked need no event.
        self.inbox.asks.close();
        while let Ok(ask) = self.inbox.asks.try_recv() {
            let _ = ask.reply.send(Decision::deny(SESSION_ENDED));
        }
        self.asks_open = false;
        for pending in std::mem::take(&mut self.pending) {
            self.resolve(
                pending,
                Decision::deny(SESSION_ENDED),
                SESSION_ENDED,
                out,
                log,
            )
            .await?;
        }
        Ok(())
    }

    /// Tells the runner and the stream.
    async fn resolve(
        &mut self,
        pending: Pending,
        decision: Decision,
        reason: &str,
        out: &mut OutputWriter,
        log: &mut SessionLog,
    ) -> Result<(), OutputError> {
        let allow = decision.allow;
        let delivered = pending.reply.send(decision).is_ok();
        tracing::info!(request = %pending.id, allow, reason, delivered, "approval request resolved");
        self.announce(&pending.id, &pending.label, allow, reason, out, log)
            .await
    }

    /// Takes a request off the board and tells the stream how it ended.
    async fn announce(
        &self,
        id: &str,
        label: &str,
        allow: bool,
        reason: &str,
        out: &mut OutputWriter,
        log: &mut SessionLog,
    ) -> Result<(), OutputError> {
        if let Some((board, _)) = &self.board {
            board.resolved(id, allow, reason);
        }
        log.note(&format!(
            "approval {id} {}: {label} ({reason})",
            if allow { "allowed" } else { "denied" },
        ));
        out.event(OutputEvent::ApprovalResolved(ApprovalResolvedPayload {
            request_id: id.to_string(),
            allow,
            reason: reason.to_string(),
        }))
        .await
    }
}

/// A request about to be asked.
struct Asking {
    tool: String,
    summary: String,
    label: String,
    special: Option<Special>,
    /// Why it always asks (⚠️), the edit's diff, the command's folder.
    danger: Option<String>,
    diff: Option<String>,
    cwd: Option<String>,
    rule: Option<String>,
}
