//! The git side of worktrees: make one for a run, list an agent's, and
//! clean the finished ones. Every git command runs with the user's config
//! but with hooks disabled (`core.hooksPath=/dev/null`): a checkout or
//! commit hook of the project must not run on the phone's behalf. These
//! functions block; callers run them on a blocking thread.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use remoteagent_proto::worktrees::{CleanedWorktree, WorktreeInfo};

use super::Running;

/// A worktree made for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub dir: PathBuf,
    pub branch: String,
}

/// `git -c core.hooksPath=/dev/null -C dir ARGS`, without the daemon's own
/// `GIT_*` variables (a `GIT_DIR` would point every command elsewhere).
fn git(dir: &Path, args: &[&str]) -> std::io::Result<Output> {
    let mut cmd = Command::new("git");
    cmd.arg("-c")
        .arg("core.hooksPath=/dev/null")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(std::process::Stdio::null());
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
    ] {
        cmd.env_remove(var);
    }
    cmd.output()
}

/// Runs git and returns its stdout, or its first line of complaint.
fn git_ok(dir: &Path, args: &[&str]) -> Result<String, String> {
    match git(dir, args) {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            let line = err
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("failed");
            Err(format!("git: {}", line.trim()))
        }
        Err(e) => Err(format!("git could not be run: {e}")),
    }
}

/// The agent's name as one branch-name component: letters, digits, `-`
/// and `_` kept, anything else `-`.
pub fn branch_component(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() { "agent".into() } else { s }
}

/// Why `project` cannot hold worktrees, in words for the owner; `None`
/// when it can (a git work tree with at least one commit).
pub fn unusable(project: &Path) -> Option<String> {
    match git(project, &["rev-parse", "--is-inside-work-tree"]) {
        Ok(out) if out.status.success() => {}
        Ok(_) => return Some("the project folder is not a git repository".into()),
        Err(e) => return Some(format!("git could not be run ({e})")),
    }
    if git_ok(
        project,
        &["rev-parse", "--verify", "--quiet", "HEAD^{commit}"],
    )
    .is_err()
    {
        return Some("the project's git repository has no commit yet".into());
    }
    None
}

/// Makes a fresh worktree of `project`'s HEAD for the run `short` (a few
/// characters of its id) in `agent_root/<short>`, on a new branch
/// `ra/<agent>/<short>`; a taken name gets a `-2`, `-3`… suffix.
pub fn create(
    project: &Path,
    agent_root: &Path,
    agent_name: &str,
    short: &str,
) -> Result<Made, String> {
    if let Some(why) = unusable(project) {
        return Err(why);
    }
    crate::paths::ensure_private_dir(agent_root).map_err(|e| e.to_string())?;
    let component = branch_component(agent_name);
    for n in 1..100 {
        let leaf = if n == 1 {
            short.to_string()
        } else {
            format!("{short}-{n}")
        };
        let dir = agent_root.join(&leaf);
        let branch = format!("ra/{component}/{leaf}");
        let taken = dir.exists()
            || git_ok(
                project,
                &[
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    &format!("refs/heads/{branch}"),
                ],
            )
            .is_ok();
        if taken {
            continue;
        }
        let dir_text = dir.to_string_lossy().into_owned();
        git_ok(
            project,
            &[
                "worktree", "add", "--quiet", "-b", &branch, &dir_text, "HEAD",
            ],
        )?;
        return Ok(Made { dir, branch });
    }
    Err("no free worktree name".into())
}

/// The worktrees of `project` that live under `agent_root`, oldest first.
pub fn list(
    project: &Path,
    agent_root: &Path,
    running: &Running,
) -> Result<Vec<WorktreeInfo>, String> {
    let text = git_ok(project, &["worktree", "list", "--porcelain"])?;
    let root = std::fs::canonicalize(agent_root).unwrap_or_else(|_| agent_root.to_path_buf());
    let mut found = Vec::new();
    for block in text.split("\n\n") {
        let mut dir = None;
        let mut branch = String::new();
        for line in block.lines() {
            if let Some(p) = line.strip_prefix("worktree ") {
                dir = Some(PathBuf::from(p));
            } else if let Some(b) = line.strip_prefix("branch ") {
                branch = b.strip_prefix("refs/heads/").unwrap_or(b).to_string();
            }
        }
        let Some(dir) = dir else { continue };
        if !(dir.starts_with(&root) || dir.starts_with(agent_root)) {
            continue;
        }
        let meta = std::fs::metadata(&dir).ok();
        let created_ms = meta
            .and_then(|m| m.created().or_else(|_| m.modified()).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as u64);
        let changed_files = git_ok(&dir, &["status", "--porcelain"])
            .ok()
            .map(|s| s.lines().filter(|l| !l.is_empty()).count() as u64);
        let is_running = running.contains(&dir)
            || running.contains(&agent_root.join(dir.file_name().unwrap_or_default()));
        found.push(WorktreeInfo {
            branch,
            dir: dir.to_string_lossy().into_owned(),
            running: is_running,
            created_ms,
            changed_files,
        });
    }
    found.sort_by_key(|w| w.created_ms);
    Ok(found)
}

/// Removes the finished worktrees among `listed`: what a run left
/// uncommitted is first committed on its branch (so nothing is lost), then
/// `git worktree remove`; the branch stays.
pub fn clean(project: &Path, listed: &[WorktreeInfo]) -> Vec<CleanedWorktree> {
    let mut cleaned = Vec::new();
    for w in listed.iter().filter(|w| !w.running) {
        let dir = Path::new(&w.dir);
        let mut done = CleanedWorktree {
            branch: w.branch.clone(),
            committed_files: 0,
            error: None,
        };
        if dir.exists() {
            match commit_leftovers(dir) {
                Ok(n) => done.committed_files = n,
                Err(e) => {
                    done.error = Some(format!("its changes could not be committed ({e})"));
                    cleaned.push(done);
                    continue;
                }
            }
        }
        if let Err(e) = git_ok(project, &["worktree", "remove", &w.dir]) {
            done.error = Some(e);
        }
        cleaned.push(done);
    }
    // Worktrees whose folder was deleted by hand.
    let _ = git_ok(project, &["worktree", "prune"]);
    cleaned
}

/// Commits everything uncommitted in the worktree `dir` on its branch;
/// how many files that was.
fn commit_leftovers(dir: &Path) -> Result<u64, String> {
    let status = git_ok(dir, &["status", "--porcelain"])?;
    let n = status.lines().filter(|l| !l.is_empty()).count() as u64;
    if n == 0 {
        return Ok(0);
    }
    git_ok(dir, &["add", "-A"])?;
    git_ok(
        dir,
        &[
            "commit",
            "--quiet",
            "--no-verify",
            "-m",
            "remoteagent: what a run left in its worktree",
        ],
    )?;
    Ok(n)
}
