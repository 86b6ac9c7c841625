//! Counters for `/metrics` (Prometheus text format).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    pub updates_received: AtomicU64,
    pub updates_rejected: AtomicU64,
    pub updates_duplicate: AtomicU64,
    pub prompts_published: AtomicU64,
    pub offline_answers: AtomicU64,
    pub pairings_requested: AtomicU64,
    pub pairings_completed: AtomicU64,
    pub pairings_failed: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Renders the counters plus `sessions` (count per status).
    pub fn render(&self, sessions: &[(String, i64)]) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, &AtomicU64); 8] = [
            (
                "remoteagent_updates_received_total",
                "Webhook updates accepted.",
                &self.updates_received,
            ),
            (
                "remoteagent_updates_rejected_total",
                "Webhook requests refused (bad secret or body).",
                &self.updates_rejected,
            ),
            (
                "remoteagent_updates_duplicate_total",
                "Webhook updates seen before and skipped.",
                &self.updates_duplicate,
            ),
            (
                "remoteagent_prompts_published_total",
                "Prompts published to an agent.",
                &self.prompts_published,
            ),
            (
                "remoteagent_offline_answers_total",
                "Prompts answered with 'agent is offline'.",
                &self.offline_answers,
            ),
            (
                "remoteagent_pairings_requested_total",
                "Pairing codes handed out.",
                &self.pairings_requested,
            ),
            (
                "remoteagent_pairings_completed_total",
                "Pairings completed.",
                &self.pairings_completed,
            ),
            (
                "remoteagent_pairings_failed_total",
                "Pairing confirmations refused.",
                &self.pairings_failed,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let _ = writeln!(out, "# HELP remoteagent_sessions Sessions by status.");
        let _ = writeln!(out, "# TYPE remoteagent_sessions gauge");
        for (status, n) in sessions {
            // Statuses are our own fixed words; escaping keeps the format
            // valid even if one ever carried a quote.
            let status = status.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(out, "remoteagent_sessions{{status=\"{status}\"}} {n}");
        }
        out
    }
}
