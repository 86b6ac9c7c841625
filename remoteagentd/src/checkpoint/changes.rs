//! What a run changed: `git diff-tree` between its two checkpoint commits
//! (plumbing, so no user diff driver, external diff or colour applies),
//! renames off so each path is one entry. Ignored files are in neither
//! commit, so no diff can show them.

use std::collections::HashMap;

use remoteagent_proto::checkpoints::{ChangedFile, ChangesPayload, FileStatus, MAX_LISTED_FILES};

use super::CheckpointError;
use super::git::Repo;

/// All zeros: the id git writes for "no such file on this side".
pub(crate) const NULL_OID: &str = "0000000000000000000000000000000000000000";

/// One path the run changed, as `diff-tree --raw` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub old_mode: String,
    pub new_mode: String,
    pub old_oid: String,
    pub new_oid: String,
    pub file: ChangedFile,
}

impl Change {
    pub fn in_before(&self) -> bool {
        self.old_mode != "000000"
    }
    pub fn in_after(&self) -> bool {
        self.new_mode != "000000"
    }
}

/// Every path changed between the commits `from` and `to`, in path order,
/// with their line counts.
pub async fn run_changes(
    repo: &Repo,
    from: &str,
    to: &str,
) -> Result<Vec<Change>, CheckpointError> {
    let common = [
        "diff-tree",
        "-r",
        "-z",
        "--no-renames",
        "--no-ext-diff",
        "--no-textconv",
    ];
    let raw = repo.git().args(common).args(["--raw", from, to]).output();
    let num = repo
        .git()
        .args(common)
        .args(["--numstat", from, to])
        .output();
    let (raw, num) = tokio::try_join!(raw, num)?;
    let counts = parse_numstat(&num);
    Ok(parse_raw(&raw)
        .into_iter()
        .map(|mut c| {
            if let Some(&(added, removed, binary)) = counts.get(&c.path) {
                c.file.added = added;
                c.file.removed = removed;
                c.file.binary = binary;
            }
            c
        })
        .collect())
}

/// `:old new oldoid newoid S\0path\0` entries.
fn parse_raw(raw: &[u8]) -> Vec<Change> {
    let mut out = Vec::new();
    let mut parts = raw.split(|&b| b == 0);
    while let Some(meta) = parts.next() {
        if meta.is_empty() {
            continue;
        }
        let Some(path) = parts.next() else { break };
        let meta = String::from_utf8_lossy(meta);
        let fields: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
        if fields.len() < 5 {
            continue;
        }
        let path = String::from_utf8_lossy(path).to_string();
        let (old_mode, new_mode) = (fields[0].to_string(), fields[1].to_string());
        let status = match fields[4].chars().next() {
            Some('A') => FileStatus::Added,
            Some('D') => FileStatus::Deleted,
            Some('T') => FileStatus::TypeChanged,
            Some('M') if fields[2] == fields[3] => FileStatus::TypeChanged,
            Some('M') => FileStatus::Modified,
            _ => FileStatus::Other,
        };
        out.push(Change {
            file: ChangedFile {
                path: path.clone(),
                status,
                added: 0,
                removed: 0,
                binary: false,
            },
            path,
            old_mode,
            new_mode,
            old_oid: fields[2].to_string(),
            new_oid: fields[3].to_string(),
        });
    }
    out
}

/// `added\tremoved\tpath\0` entries (`-\t-` for a binary file).
fn parse_numstat(num: &[u8]) -> HashMap<String, (u64, u64, bool)> {
    let mut out = HashMap::new();
    for entry in num.split(|&b| b == 0) {
        let text = String::from_utf8_lossy(entry);
        let mut f = text.splitn(3, '\t');
        let (Some(a), Some(r), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let binary = a == "-";
        out.insert(
            path.to_string(),
            (a.parse().unwrap_or(0), r.parse().unwrap_or(0), binary),
        );
    }
    out
}

/// The `changes` event for these changes; `None` when nothing changed.
pub fn changes_payload(
    changes: &[Change],
    worktree_branch: Option<String>,
) -> Option<ChangesPayload> {
    if changes.is_empty() {
        return None;
    }
    Some(ChangesPayload {
        files: changes
            .iter()
            .take(MAX_LISTED_FILES)
            .map(|c| c.file.clone())
            .collect(),
        files_total: changes.len() as u64,
        added: changes.iter().map(|c| c.file.added).sum(),
        removed: changes.iter().map(|c| c.file.removed).sum(),
        worktree_branch,
    })
}

/// The unified diff `from..to`, of every file or of one path.
pub async fn diff_text(
    repo: &Repo,
    from: &str,
    to: &str,
    path: Option<&str>,
) -> Result<String, CheckpointError> {
    let mut git = repo.git().env("GIT_LITERAL_PATHSPECS", "1").args([
        "diff-tree",
        "-p",
        "-r",
        "--no-renames",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        from,
        to,
    ]);
    if let Some(p) = path {
        git = git.args(["--", p]);
    }
    let out = git.output().await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}
