//! Old checkpoints removed: refs of runs older than the retention, or
//! beyond the newest `max_runs` of an agent. Their commits then become
//! unreachable and git's own gc collects them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use remoteagent_proto::AgentId;

use super::git::Repo;
use super::{CheckpointError, agent_prefix};

#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_age: Duration,
    pub max_runs: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: Duration::from_secs(30 * 24 * 3600),
            max_runs: 200,
        }
    }
}

/// Deletes the agent's checkpoint refs past the retention; how many runs.
pub async fn prune(dir: &Path, agent: &AgentId, keep: Retention) -> Result<usize, CheckpointError> {
    let Some(repo) = Repo::find(dir).await? else {
        return Ok(0);
    };
    let prefix = agent_prefix(agent);
    let list = repo
        .git()
        .args([
            "for-each-ref",
            "--format=%(creatordate:unix) %(refname)",
            &prefix,
        ])
        .text()
        .await?;
    // Run → (newest time, its refs).
    let mut runs: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
    for line in list.lines() {
        let Some((time, name)) = line.split_once(' ') else {
            continue;
        };
        let Some(run) = name.strip_prefix(&prefix).and_then(|r| r.split('/').next()) else {
            continue;
        };
        let e = runs.entry(run.to_string()).or_default();
        e.0 = e.0.max(time.parse().unwrap_or(0));
        e.1.push(name.to_string());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let oldest = now.saturating_sub(keep.max_age.as_secs());
    let mut ordered: Vec<(u64, Vec<String>)> = runs.into_values().collect();
    ordered.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut script = String::new();
    let mut pruned = 0;
    for (i, (time, refs)) in ordered.into_iter().enumerate() {
        if i >= keep.max_runs || time < oldest {
            pruned += 1;
            for r in refs {
                script.push_str(&format!("delete {r}\n"));
            }
        }
    }
    if pruned > 0 {
        repo.git()
            .args(["update-ref", "--stdin"])
            .stdin(script.into_bytes())
            .output()
            .await?;
    }
    Ok(pruned)
}
