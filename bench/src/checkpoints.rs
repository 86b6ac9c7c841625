//! A run's checkpoint on a 10,000-file repository when little changed
//! (`remoteagentd::checkpoint::snapshot`, as a run takes it before and
//! after), beside `git status` on the same repository in the same run.
//! Goal (issue 18): ≤ 300 ms per checkpoint.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use remoteagent_proto::{AgentId, SessionId};

use crate::report::Row;
use crate::stats::{ms, quantile};

pub struct Config {
    pub files: usize,
    pub rounds: usize,
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("git").current_dir(dir).args(args).output()?;
    if !out.status.success() {
        bail!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

pub async fn run(cfg: &Config) -> Result<Vec<Row>> {
    let tmp = tempfile::tempdir()?;
    let d = tmp.path();
    git(d, &["init", "-q", "-b", "main"])?;
    git(d, &["config", "user.name", "Bench"])?;
    git(d, &["config", "user.email", "bench@example.com"])?;
    for i in 0..cfg.files {
        let dir = d.join(format!("src/m{:03}", i / 100));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join(format!("f{i}.rs")),
            format!("// file {i}\nfn f{i}() {{}}\n"),
        )?;
    }
    git(d, &["add", "-A"])?;
    git(d, &["commit", "-q", "-m", "bench"])?;
    git(d, &["status", "--porcelain"])?;
    let agent = AgentId::parse("bench")?;
    let mut checkpoints = Vec::new();
    let mut statuses = Vec::new();
    for round in 0..cfg.rounds {
        // A run that changed three files and added one.
        for k in 0..3 {
            let f = d.join(format!("src/m{:03}/f{}.rs", k, k * 100));
            std::fs::write(f, format!("// round {round}\n"))?;
        }
        std::fs::write(d.join(format!("new{round}.txt")), "new\n")?;
        let t = Instant::now();
        git(d, &["status", "--porcelain"])?;
        statuses.push(t.elapsed());
        let session = SessionId::parse(format!("r{round}"))?;
        let t = Instant::now();
        remoteagentd::checkpoint::snapshot(
            d,
            &agent,
            &session,
            remoteagentd::checkpoint::Side::After,
        )
        .await?;
        checkpoints.push(t.elapsed());
    }
    let p50 = quantile(&mut checkpoints, 0.5);
    let base = quantile(&mut statuses, 0.5);
    let ratio = ms(p50) / ms(base).max(0.001);
    let goal = Duration::from_millis(300);
    Ok(vec![
        Row::new(
            format!("checkpoint, {} files, 4 changed (p50)", cfg.files),
            format!("{:.0} ms", ms(p50)),
        )
        .baseline(format!("git status {:.0} ms", ms(base)), Some(ratio))
        .goal("≤ 300 ms", p50 <= goal),
    ])
}
