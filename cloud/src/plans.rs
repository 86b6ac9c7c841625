//! Plans: a trial of `TRIAL_DAYS` with no agent limit, then the free plan's
//! `FREE_PLAN_AGENTS`; `pro` has no limit.

use crate::db::users::{Plan, User};
use remoteagent_proto::text::plural::count;

/// The most active agents `user` may have at `now_ms`, or `None` for no limit.
pub fn agent_limit(user: &User, free_plan_agents: u32, now_ms: i64) -> Option<i64> {
    match user.plan {
        Plan::Pro => None,
        Plan::Trial if now_ms < user.trial_ends_at => None,
        Plan::Trial | Plan::Free => Some(i64::from(free_plan_agents)),
    }
}

/// A one-line description of the plan for `/status`.
pub fn describe(user: &User, free_plan_agents: u32, now_ms: i64) -> String {
    match user.plan {
        Plan::Pro => "Pro (no agent limit)".into(),
        Plan::Trial if now_ms < user.trial_ends_at => {
            let days = (user.trial_ends_at - now_ms).div_euclid(24 * 3600 * 1000);
            format!(
                "Trial, {} left (no agent limit)",
                count(days.max(0) as u64, "day", "days")
            )
        }
        _ => format!(
            "Free ({})",
            count(u64::from(free_plan_agents), "agent", "agents")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(plan: Plan, trial_ends_at: i64) -> User {
        User {
            telegram_id: 1,
            plan,
            subscription_status: "none".into(),
            trial_ends_at,
            trial_reminder_sent_at: None,
            current_agent: None,
            next_new: false,
            created_at: 0,
        }
    }

    #[test]
    fn limits_follow_the_plan() {
        assert_eq!(agent_limit(&user(Plan::Trial, 100), 1, 50), None);
        assert_eq!(agent_limit(&user(Plan::Trial, 100), 1, 150), Some(1));
        assert_eq!(agent_limit(&user(Plan::Free, 100), 2, 50), Some(2));
        assert_eq!(agent_limit(&user(Plan::Pro, 0), 1, 150), None);
    }
}
