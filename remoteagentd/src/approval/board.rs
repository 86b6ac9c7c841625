//! The daemon-wide board of approval requests, so they can be answered from
//! the computer too (`remoteagentctl approvals|approve|deny`).
//!
//! Each session's [`super::session::SessionApprovals`] pins a request on
//! the board when it asks the phone and takes it down when it resolves it
//! (the phone's answer, the computer's, the timeout or the session's end),
//! keeping a short record of how recent requests ended. The session stays
//! the only one that decides: the control request only hands it an answer
//! through the session's answer channel, then waits on [`Board::changes`]
//! until the request is resolved, and reports whose answer won.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use remoteagent_proto::control::{ErrorCode, PendingApproval};
use remoteagent_proto::{AgentId, SessionId};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::ApprovalAnswer;
use crate::request_error::ControlError;

/// How many resolved requests are remembered, to tell a late `approve`
/// who answered first.
const RESOLVED_KEPT: usize = 64;

/// The board, shared by every agent (it lives in the agent settings, which
/// a config reload copies, so it stays the same board).
#[derive(Clone)]
pub struct Board {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Bumped at every change, for waiters.
    changes: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    pending: Vec<Entry>,
    /// Newest last.
    resolved: VecDeque<Resolved>,
}

/// The session a request belongs to, and where its answers go.
#[derive(Clone)]
pub struct SessionSeat {
    pub agent_id: AgentId,
    pub agent_name: String,
    pub session_id: SessionId,
    pub answers: mpsc::Sender<ApprovalAnswer>,
}

struct Entry {
    seat: SessionSeat,
    request_id: String,
    tool: String,
    summary: String,
    label: String,
    asked: Instant,
    deadline: Instant,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub request_id: String,
    pub agent_name: String,
    pub label: String,
    pub allow: bool,
    /// The reason `approval_resolved` carried.
    pub reason: String,
}

impl Resolved {
    /// `approved from the phone`, `denied, no answer in 300 s`.
    pub fn outcome(&self) -> String {
        let word = if self.allow { "approved" } else { "denied" };
        // Questions and plans say what happened in their own words.
        let own = ["answered ", "declined ", "plan ", "revision "];
        if self.reason.starts_with(word) || own.iter().any(|w| self.reason.starts_with(w)) {
            self.reason.clone()
        } else {
            format!("{word}, {}", self.reason)
        }
    }
}

/// A waiting request found by its id: where to send the answer.
pub struct Found {
    pub request_id: String,
    /// The runner's tool ("AskUserQuestion" is answered with a text).
    pub tool: String,
    pub answers: mpsc::Sender<ApprovalAnswer>,
}

/// A request pinned on the board.
pub struct Pin<'a> {
    pub request_id: &'a str,
    pub tool: &'a str,
    pub summary: &'a str,
    pub label: &'a str,
    pub deadline: Instant,
}

impl Default for Board {
    fn default() -> Self {
        Board {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                changes: watch::Sender::new(0),
            }),
        }
    }
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board").finish_non_exhaustive()
    }
}

impl Board {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every
        // change is one push or remove): go on with it.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn bump(&self) {
        self.inner.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees every later change.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// The session asked the phone about `pin`.
    pub fn pin(&self, seat: &SessionSeat, pin: Pin<'_>) {
        self.state().pending.push(Entry {
            seat: seat.clone(),
            request_id: pin.request_id.to_string(),
            tool: pin.tool.to_string(),
            summary: pin.summary.to_string(),
            label: pin.label.to_string(),
            asked: Instant::now(),
            deadline: pin.deadline,
        });
        self.bump();
    }

    /// The session resolved `request_id`: it leaves the board, and how it
    /// ended is remembered for a while.
    pub fn resolved(&self, request_id: &str, allow: bool, reason: &str) {
        {
            let mut state = self.state();
            let Some(at) = state
                .pending
                .iter()
                .position(|e| e.request_id == request_id)
            else {
                return;
            };
            let entry = state.pending.remove(at);
            if state.resolved.len() >= RESOLVED_KEPT {
                state.resolved.pop_front();
            }
            state.resolved.push_back(Resolved {
                request_id: entry.request_id,
                agent_name: entry.seat.agent_name,
                label: entry.label,
                allow,
                reason: reason.to_string(),
            });
        }
        self.bump();
    }

    /// How `request_id` ended, once it did.
    pub fn outcome(&self, request_id: &str) -> Option<Resolved> {
        self.state()
            .resolved
            .iter()
            .rev()
            .find(|r| r.request_id == request_id)
            .cloned()
    }

    /// The waiting requests, oldest first.
    pub fn list(&self) -> Vec<PendingApproval> {
        let now = Instant::now();
        self.state()
            .pending
            .iter()
            .map(|e| PendingApproval {
                agent_id: e.seat.agent_id.clone(),
                agent_name: e.seat.agent_name.clone(),
                session_id: e.seat.session_id.clone(),
                request_id: e.request_id.clone(),
                tool: e.tool.clone(),
                summary: e.summary.clone(),
                waiting_secs: now.saturating_duration_since(e.asked).as_secs(),
                left_secs: e.deadline.saturating_duration_since(now).as_secs(),
            })
            .collect()
    }

    /// The waiting request `prefix` names. A request already resolved is a
    /// [`ErrorCode::Conflict`] saying how it ended; no match at all is
    /// [`ErrorCode::NotFound`], several [`ErrorCode::Ambiguous`].
    pub fn find(&self, prefix: &str) -> Result<Found, ControlError> {
        let state = self.state();
        let pending: Vec<&Entry> = state
            .pending
            .iter()
            .filter(|e| e.request_id.starts_with(prefix))
            .collect();
        let mut resolved: Vec<&Resolved> = state
            .resolved
            .iter()
            .rev()
            .filter(|r| r.request_id.starts_with(prefix))
            .collect();
        // A request is recorded once; newest first.
        resolved.dedup_by(|a, b| a.request_id == b.request_id);
        match (pending.as_slice(), resolved.as_slice()) {
            ([entry], []) => Ok(Found {
                request_id: entry.request_id.clone(),
                tool: entry.tool.clone(),
                answers: entry.seat.answers.clone(),
            }),
            ([], [r]) => Err(already_answered(r)),
            ([], []) => Err(ControlError::new(
                ErrorCode::NotFound,
                format!("no approval request {prefix} is waiting"),
            )),
            _ => {
                let ids: Vec<&str> = pending
                    .iter()
                    .map(|e| e.request_id.as_str())
                    .chain(resolved.iter().map(|r| r.request_id.as_str()))
                    .collect();
                Err(ControlError::new(
                    ErrorCode::Ambiguous,
                    format!(
                        "{prefix} names several approval requests ({}); give more of the id",
                        ids.join(", ")
                    ),
                ))
            }
        }
    }

    /// A session that ends without resolving its requests (its task
    /// panicked, its stream could not be written) takes them down, denied
    /// for `reason`, so the board never shows a request nobody can answer.
    pub fn withdraw(&self, request_ids: &[String], reason: &str) {
        for id in request_ids {
            self.resolved(id, false, reason);
        }
    }
}

/// "request X was already answered: approved from the phone".
pub fn already_answered(r: &Resolved) -> ControlError {
    ControlError::new(
        ErrorCode::Conflict,
        format!(
            "request {} was already answered: {}",
            r.request_id,
            r.outcome()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn seat() -> (SessionSeat, mpsc::Receiver<ApprovalAnswer>) {
        let (answers, rx) = mpsc::channel(4);
        let seat = SessionSeat {
            agent_id: AgentId::parse("a").unwrap(),
            agent_name: "web".into(),
            session_id: SessionId::parse("s").unwrap(),
            answers,
        };
        (seat, rx)
    }

    fn pin<'a>(id: &'a str) -> Pin<'a> {
        Pin {
            request_id: id,
            tool: "Bash",
            summary: "ls",
            label: "Bash ls",
            deadline: Instant::now() + Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn requests_are_found_by_prefix_and_remembered_once_resolved() {
        let board = Board::default();
        let (seat, _rx) = seat();
        let mut changes = board.changes();
        board.pin(&seat, pin("Abc123"));
        board.pin(&seat, pin("Abd456"));
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        assert_eq!(board.list().len(), 2);
        assert_eq!(board.list()[0].left_secs, 59);
        assert_eq!(board.find("Abc").unwrap().request_id, "Abc123");
        assert_eq!(board.find("Ab").err().unwrap().code, ErrorCode::Ambiguous);
        let unknown = board.find("zz").err().unwrap();
        assert_eq!(unknown.code, ErrorCode::NotFound);
        assert_eq!(unknown.message, "no approval request zz is waiting");

        board.resolved("Abc123", true, "approved from the phone");
        assert!(changes.has_changed().unwrap());
        let late = board.find("Abc1").err().unwrap();
        assert_eq!(late.code, ErrorCode::Conflict);
        assert_eq!(
            late.message,
            "request Abc123 was already answered: approved from the phone"
        );
        // A resolved request and a waiting one under one prefix: ambiguous.
        assert_eq!(board.find("Ab").err().unwrap().code, ErrorCode::Ambiguous);
        board.withdraw(&["Abd456".to_string()], "the run ended");
        assert!(board.list().is_empty());
        assert_eq!(
            board.find("Abd").err().unwrap().message,
            "request Abd456 was already answered: denied, the run ended"
        );
    }

    #[test]
    fn only_the_newest_resolved_requests_are_kept() {
        let board = Board::default();
        let (seat, _rx) = seat();
        for i in 0..RESOLVED_KEPT + 5 {
            let id = format!("r{i}");
            board.pin(&seat, pin(&id));
            board.resolved(&id, false, "no answer in 1 s");
        }
        assert!(board.outcome("r0").is_none());
        let last = format!("r{}", RESOLVED_KEPT + 4);
        assert_eq!(board.outcome(&last).unwrap().reason, "no answer in 1 s");
    }
}
