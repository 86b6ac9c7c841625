//! `remoteagent-bench`: latency, throughput, scale, the cloud and the
//! bounds of a flood, each figure beside a baseline measured in the same
//! run, printed as one table.
//!
//! ```text
//! remoteagent-bench [--quick] [--only latency,first_text,throughput,scale,cloud,bounds,checkpoints,cluster] [--out FILE]
//! ```
//!
//! Without `--only`, every section but `cluster` runs: it starts two
//! 6-node Redis Clusters and adds about 5 minutes (2 with `--quick`) to a
//! run, for a deployment most do not use; ask for it with `--only cluster`.
//!
//! It starts the release binaries that sit next to it (or in
//! `REMOTEAGENT_BENCH_BIN_DIR`), a private `redis-server` per section,
//! PostgreSQL databases on the local server (`REMOTEAGENT_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`) and the fake Telegram Bot API.
//! All traffic stays on 127.0.0.1. Figures only: nothing here asserts speed.

mod bounds;
mod checkpoints;
mod cloud_load;
mod cluster;
mod first_text;
mod latency;
mod report;
mod scale;
mod stats;
mod throughput;
mod world;

use std::time::Duration;

use anyhow::{Result, bail};

use report::Row;

struct Args {
    quick: bool,
    only: Vec<String>,
    out: Option<String>,
}

const SECTIONS: [&str; 8] = [
    "latency",
    "first_text",
    "throughput",
    "scale",
    "cloud",
    "bounds",
    "checkpoints",
    "cluster",
];

/// Sections only `--only` runs (see the module comment).
const OPT_IN: [&str; 1] = ["cluster"];

fn parse_args() -> Result<Args> {
    let mut args = Args {
        quick: false,
        only: SECTIONS
            .iter()
            .filter(|s| !OPT_IN.contains(s))
            .map(|s| s.to_string())
            .collect(),
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => args.quick = true,
            "--only" => {
                let list = it.next().unwrap_or_default();
                args.only = list.split(',').map(str::to_string).collect();
                if let Some(bad) = args.only.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
                    bail!("unknown section {bad:?}; sections: {}", SECTIONS.join(","));
                }
            }
            "--out" => args.out = it.next(),
            "-h" | "--help" => {
                println!(
                    "remoteagent-bench [--quick] [--only {}] [--out FILE]\n\
                     Without --only: every section but {} (slow; ask with --only).",
                    SECTIONS.join(","),
                    OPT_IN.join(",")
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let q = args.quick;
    let mut rows: Vec<Row> = Vec::new();
    let wants = |s: &str| args.only.iter().any(|o| o == s);
    let mut failed = Vec::new();
    if wants("latency") {
        let cfg = latency::Config {
            prompts: if q { 40 } else { 1_000 },
            // The cloud lets one address pair at most 10 agents a minute.
            users: 10,
            baseline_rounds: if q { 300 } else { 2_000 },
            spacing: Duration::from_millis(
                std::env::var("BENCH_SPACING_MS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(150),
            ),
        };
        collect("latency", latency::run(&cfg).await, &mut rows, &mut failed);
    }
    if wants("first_text") {
        let cfg = first_text::Config {
            prompts: if q { 20 } else { 100 },
            users: 10,
            // A run's messages take about 4 s at 1 request/s per chat.
            chat_gap: Duration::from_secs(5),
        };
        collect(
            "first_text",
            first_text::run(&cfg).await,
            &mut rows,
            &mut failed,
        );
    }
    if wants("throughput") {
        let bytes = if q { 20_000_000 } else { 200_000_000 };
        let watch = Duration::from_secs(if q { 5 } else { 20 });
        collect(
            "throughput",
            throughput::run(bytes, watch).await,
            &mut rows,
            &mut failed,
        );
    }
    if wants("scale") {
        let cfg = scale::Config {
            agents: if q { 100 } else { 1_000 },
            idle: Duration::from_secs(if q { 3 } else { 60 }),
            cloud_restore_guard: Duration::from_secs(
                std::env::var("BENCH_CLOUD_RESTORE_SECS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(if q { 30 } else { 90 }),
            ),
        };
        collect("scale", scale::run(&cfg).await, &mut rows, &mut failed);
    }
    if wants("cloud") {
        let cfg = cloud_load::Config {
            connections: 64,
            duration: Duration::from_secs(if q { 2 } else { 10 }),
        };
        collect("cloud", cloud_load::run(&cfg).await, &mut rows, &mut failed);
    }
    if wants("bounds") {
        let bytes = if q { 20_000_000 } else { 200_000_000 };
        collect("bounds", bounds::run(bytes).await, &mut rows, &mut failed);
    }
    if wants("checkpoints") {
        let cfg = checkpoints::Config {
            files: 10_000,
            rounds: if q { 5 } else { 20 },
        };
        collect(
            "checkpoints",
            checkpoints::run(&cfg).await,
            &mut rows,
            &mut failed,
        );
    }
    if wants("cluster") {
        let cfg = cluster::Config {
            // 10 s of load per setup (2 s quick), in turns of 2 s.
            load: cloud_load::Config {
                connections: 64,
                duration: Duration::from_secs(2),
            },
            load_rounds: if q { 1 } else { 5 },
            prompts: if q { 20 } else { 100 },
            users: 10,
            chat_gap: Duration::from_secs(5),
            long_prompts: if q { 3 } else { 10 },
            bench_requests: if q { 20_000 } else { 100_000 },
        };
        collect("cluster", cluster::run(&cfg).await, &mut rows, &mut failed);
    }
    let table = report::table(&rows);
    println!("{table}");
    if let Some(path) = args.out {
        std::fs::write(&path, &table)?;
    }
    if !failed.is_empty() {
        bail!("sections failed: {}", failed.join(", "));
    }
    Ok(())
}

/// A failed section is reported and the others still run.
fn collect(name: &str, res: Result<Vec<Row>>, rows: &mut Vec<Row>, failed: &mut Vec<String>) {
    match res {
        Ok(r) => rows.extend(r),
        Err(e) => {
            eprintln!("{name}: FAILED: {e:#}");
            rows.push(
                Row::new(
                    format!("{name}: section failed"),
                    format!("{e:#}").replace('\n', " "),
                )
                .goal("runs", false),
            );
            failed.push(name.to_string());
        }
    }
}
