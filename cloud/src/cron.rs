//! Periodic work: trial reminders (also `remoteagent-cloud cron`), and
//! housekeeping (Redis users of expired pairing codes, old dedup rows).

use remoteagent_proto::text::plural::count;
use std::time::Duration;

use remoteagent_proto::AgentId;

use crate::db::{self, pairing as codes, users};
use crate::state::AppState;

/// Reminders go to users whose trial ends within this window.
pub const REMINDER_WINDOW: Duration = Duration::from_secs(48 * 3600);
const REMINDER_EVERY: Duration = Duration::from_secs(3600);
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum CronError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Sends each due trial reminder once; returns how many were sent.
pub async fn send_trial_reminders(state: &AppState) -> Result<usize, CronError> {
    let now = db::now();
    let due =
        users::due_for_reminder(&state.db, now, now + REMINDER_WINDOW.as_millis() as i64).await?;
    let mut sent = 0;
    for user in due {
        // The guarded UPDATE decides who sends: a second replica or a
        // concurrent `cron` run finds the row already claimed.
        if !users::claim_reminder(&state.db, user.telegram_id).await? {
            continue;
        }
        let hours = ((user.trial_ends_at - now).max(0) / 3_600_000).max(1);
        let text = format!(
            "⏳ Your RemoteAgent trial ends in about {}. After that the free plan \
             allows {}; agents beyond that keep working but you cannot pair new ones.",
            count(hours as u64, "hour", "hours"),
            count(u64::from(state.config.free_plan_agents), "agent", "agents"),
        );
        match state.outbox.send(user.telegram_id, text, None).await {
            Ok(_) => {
                sent += 1;
                tracing::info!(user = user.telegram_id, "trial reminder sent");
            }
            Err(e) => {
                tracing::warn!(user = user.telegram_id, error = %e, "sending a trial reminder");
                users::release_reminder(&state.db, user.telegram_id).await?;
            }
        }
    }
    Ok(sent)
}

/// Deletes leftovers: Redis users of pairing codes that expired unused, old
/// wrong-attempt records.
pub async fn housekeeping(state: &AppState) -> Result<(), CronError> {
    let now = db::now();
    let day = 24 * 3600 * 1000;
    if let Err(e) = crate::pairing::sweep_expired(state, now - day).await {
        tracing::warn!(error = %e, "removing Redis users of expired pairing codes");
    }
    // Queues whose agent is idle: after a restart, or a run's end whose
    // report was lost.
    if let Err(e) = crate::bot::dequeue::sweep(state).await {
        tracing::warn!(error = %e, "running queued prompts");
    }
    restore_redis_users(state).await?;
    codes::prune(&state.db, now - day).await?;
    Ok(())
}

/// Runs reminders hourly and housekeeping every minute until shutdown.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last_reminders: Option<tokio::time::Instant> = None;
        loop {
            if last_reminders.is_none_or(|t| t.elapsed() >= REMINDER_EVERY) {
                last_reminders = Some(tokio::time::Instant::now());
                if let Err(e) = send_trial_reminders(&state).await {
                    tracing::warn!(error = %e, "trial reminders");
                }
            }
            if let Err(e) = housekeeping(&state).await {
                tracing::warn!(error = %e, "housekeeping");
            }
            tokio::select! {
                () = state.shutdown.cancelled() => break,
                () = tokio::time::sleep(HOUSEKEEPING_EVERY) => {}
            }
        }
    })
}

/// Re-creates agents' Redis users that Redis lost (a restart without an ACL
/// file), so paired daemons can log in again without pairing anew; at the
/// first run after a start, also brings the rules of existing users up to
/// date ([`crate::redis_acl::Acl::update_agent_rules`]).
pub async fn restore_redis_users(state: &AppState) -> Result<usize, CronError> {
    let agents: Vec<(AgentId, String)> = db::agents::active_token_hashes(&state.db)
        .await?
        .into_iter()
        .map(|a| (a.id, a.token_hash))
        .collect();
    // Users made by an older cloud get today's rules (once per start).
    let ids: Vec<AgentId> = agents.iter().map(|(id, _)| id.clone()).collect();
    if let Err(e) = state.acl.update_agent_rules_once(&ids).await {
        tracing::warn!(error = %e, "bringing agent Redis users' rules up to date");
    }
    match state.acl.restore_agent_users(&state.db, &agents).await {
        Ok(0) => Ok(0),
        Ok(n) => {
            tracing::warn!(
                restored = n,
                "re-created agent Redis users that Redis had lost"
            );
            Ok(n)
        }
        Err(e) => {
            tracing::warn!(error = %e, "checking agent Redis users");
            Ok(0)
        }
    }
}
