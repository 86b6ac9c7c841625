//! The `git` binary, run in a project: every command with hooks disabled
//! (`core.hooksPath=/dev/null`), no optional locks (a read never rewrites
//! the user's index), no pager and no terminal prompt; the environment's
//! `GIT_DIR`/`GIT_INDEX_FILE`/`GIT_WORK_TREE` are dropped so a daemon
//! started from inside a git hook still works on the project.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::CheckpointError;

/// Environment variables of the daemon's own environment that would point
/// git somewhere else than the project.
const DROPPED_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_INDEX_FILE",
    "GIT_WORK_TREE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_PREFIX",
];

/// One git invocation being built.
pub struct Git<'a> {
    dir: &'a Path,
    args: Vec<std::ffi::OsString>,
    env: Vec<(&'static str, std::ffi::OsString)>,
    stdin: Option<Vec<u8>>,
}

impl<'a> Git<'a> {
    pub fn new(dir: &'a Path) -> Self {
        Git {
            dir,
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
        }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The temporary index this command works on instead of the user's.
    pub fn index(mut self, index: &Path) -> Self {
        self.env
            .push(("GIT_INDEX_FILE", index.as_os_str().to_owned()));
        self
    }

    pub fn env(mut self, key: &'static str, value: impl Into<std::ffi::OsString>) -> Self {
        self.env.push((key, value.into()));
        self
    }

    pub fn stdin(mut self, input: Vec<u8>) -> Self {
        self.stdin = Some(input);
        self
    }

    /// Runs it; its stdout, or an error carrying git's own first lines.
    pub async fn output(self) -> Result<Vec<u8>, CheckpointError> {
        let (ok, stdout, stderr) = self.run().await?;
        if ok {
            Ok(stdout)
        } else {
            Err(CheckpointError::Git(first_lines(&stderr)))
        }
    }

    /// Runs it; whether it succeeded (a `--verify` that finds nothing).
    pub async fn succeeds(self) -> Result<bool, CheckpointError> {
        Ok(self.run().await?.0)
    }

    pub async fn text(self) -> Result<String, CheckpointError> {
        let out = self.output().await?;
        Ok(String::from_utf8_lossy(&out).trim_end().to_string())
    }

    async fn run(self) -> Result<(bool, Vec<u8>, Vec<u8>), CheckpointError> {
        let mut cmd = Command::new("git");
        cmd.current_dir(self.dir)
            .args([
                "-c",
                "core.hooksPath=/dev/null",
                "-c",
                "core.quotePath=false",
            ])
            .args(&self.args)
            .env("GIT_OPTIONAL_LOCKS", "0")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_PAGER", "cat")
            .env("LC_ALL", "C")
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for k in DROPPED_ENV {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| CheckpointError::NoGit(e.to_string()))?;
        if let Some(input) = self.stdin
            && let Some(mut pipe) = child.stdin.take()
        {
            // Written beside the reads below: a big input must not
            // block on a full stdout pipe.
            let writer = tokio::spawn(async move {
                let _ = pipe.write_all(&input).await;
                let _ = pipe.shutdown().await;
            });
            let out = child
                .wait_with_output()
                .await
                .map_err(|e| CheckpointError::Git(e.to_string()))?;
            let _ = writer.await;
            return Ok((out.status.success(), out.stdout, out.stderr));
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| CheckpointError::Git(e.to_string()))?;
        Ok((out.status.success(), out.stdout, out.stderr))
    }
}

fn first_lines(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("hint:"))
        .take(2)
        .collect();
    if lines.is_empty() {
        "git failed".into()
    } else {
        lines.join(" ")
    }
}

/// Where a repository's parts are, for a folder inside its working tree.
#[derive(Debug, Clone)]
pub struct Repo {
    /// The top of the working tree: every path is relative to it.
    pub top: PathBuf,
    /// The user's index (per worktree).
    pub index: PathBuf,
    /// The worktree's own git dir, where temporary indexes go.
    pub git_dir: PathBuf,
}

impl Repo {
    /// `None` when the folder is in no git working tree.
    pub async fn find(dir: &Path) -> Result<Option<Repo>, CheckpointError> {
        let out = Git::new(dir)
            .args([
                "rev-parse",
                "--is-inside-work-tree",
                "--show-toplevel",
                "--absolute-git-dir",
                "--git-path",
                "index",
            ])
            .run()
            .await?;
        if !out.0 {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&out.1).to_string();
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() < 4 || lines[0] != "true" {
            return Ok(None);
        }
        let top = PathBuf::from(lines[1]);
        let git_dir = PathBuf::from(lines[2]);
        let index = PathBuf::from(lines[3]);
        // `--git-path` answers relative to the folder asked from.
        let index = if index.is_absolute() {
            index
        } else {
            dir.join(index)
        };
        Ok(Some(Repo {
            top,
            index,
            git_dir,
        }))
    }

    pub fn git(&self) -> Git<'_> {
        Git::new(&self.top)
    }
}
