//! Section 4, the cloud: webhook requests per second and p99 at saturation, on
//! SQLite and on PostgreSQL. Baselines from the same generator in the same
//! run: a trivial in-process axum handler taking the same JSON, and the
//! cloud's own `/healthz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use remoteagent_testkit::telegram::{FakeTelegram, updates};
use tokio::time::Instant;

use crate::report::Row;
use crate::stats::{ms, quantile};
use crate::world::{self, Redis, WEBHOOK_SECRET};

pub struct Config {
    pub connections: usize,
    pub duration: Duration,
}

pub(crate) struct Load {
    pub rps: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub errors: u64,
    /// Requests answered with a success.
    pub ok: u64,
    /// Their latencies (sorted) and the load's length.
    pub lat: Vec<Duration>,
    pub secs: f64,
}

/// The request bodies of a load: `body(i)` is the JSON of request `i`
/// (None: a GET).
pub(crate) type Bodies = Arc<dyn Fn(u64) -> Option<serde_json::Value> + Send + Sync>;

/// `connections` workers sending back to back for `duration` to `url`.
async fn generate(url: String, cfg: &Config, body: Bodies) -> Load {
    generate_spread(vec![url], cfg, body).await
}

/// Like [`generate`], request `i` going to `urls[i % urls.len()]` (cloud
/// replicas behind a round-robin balancer).
pub(crate) async fn generate_spread(urls: Vec<String>, cfg: &Config, body: Bodies) -> Load {
    let urls = Arc::new(urls);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(cfg.connections)
        .build()
        .unwrap_or_default();
    let counter = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + cfg.duration;
    let mut tasks = Vec::new();
    for _ in 0..cfg.connections {
        let (http, urls, counter, errors, body) = (
            http.clone(),
            urls.clone(),
            counter.clone(),
            errors.clone(),
            body.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < end {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let url = &urls[i as usize % urls.len().max(1)];
                let req = match body(i) {
                    Some(b) => http
                        .post(url.as_str())
                        .header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
                        .json(&b),
                    None => http.get(url.as_str()),
                };
                let t0 = Instant::now();
                // A hang guard per request; a timeout counts as an error.
                let res = tokio::time::timeout(Duration::from_secs(10), req.send()).await;
                match res {
                    Ok(Ok(r)) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t0.elapsed());
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        if let Ok(v) = t.await {
            all.extend(v);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Load {
        ok: all.len() as u64,
        rps: all.len() as f64 / secs,
        p50: quantile(&mut all, 0.5),
        p99: quantile(&mut all, 0.99),
        errors: errors.load(Ordering::Relaxed),
        lat: all,
        secs,
    }
}

/// A trivial axum app: POST / parses the JSON and answers 200.
async fn trivial_server() -> Result<String> {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/",
        post(|axum::Json(v): axum::Json<serde_json::Value>| async move {
            std::hint::black_box(v);
            "ok"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/"))
}

/// Plain text from users nobody paired: the cloud claims the update id (in
/// Redis), answers 200 and, in the background, tells the user how to pair.
pub(crate) fn webhook_body(base: u64) -> Bodies {
    Arc::new(move |i| {
        let id = (base + i) as i64;
        Some(updates::text(
            id,
            900_000 + (id % 5_000),
            900_000 + (id % 5_000),
            "hello",
        ))
    })
}

fn row(name: &str, l: &Load, base: &Load, base_name: &str, goal: bool) -> Vec<Row> {
    let mut r = Row::new(format!("cloud: {name} req/s"), format!("{:.0}", l.rps)).baseline(
        format!("{base_name} {:.0}", base.rps),
        Some(l.rps / base.rps.max(1e-6)),
    );
    if goal {
        r = r.goal("≥ 10,000 req/s", l.rps >= 10_000.0);
    }
    vec![
        r,
        Row::new(
            format!("cloud: {name} p50 / p99"),
            format!(
                "{:.2} / {:.2} ms (errors {})",
                ms(l.p50),
                ms(l.p99),
                l.errors
            ),
        )
        .baseline(
            format!("{base_name} {:.2} / {:.2} ms", ms(base.p50), ms(base.p99)),
            None,
        ),
    ]
}

pub async fn run(cfg: &Config) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    eprintln!("cloud: trivial axum baseline");
    let trivial_url = trivial_server().await?;
    let trivial = generate(trivial_url, cfg, webhook_body(1)).await;

    for postgres in [false, true] {
        let db_name = if postgres { "PostgreSQL" } else { "SQLite" };
        let redis = Redis::start()?;
        let tg = FakeTelegram::start().await;
        let pg = if postgres {
            Some(remoteagent_e2e::PgDatabase::create()?)
        } else {
            None
        };
        let cloud =
            world::start_cloud(&redis.url(), &tg, pg.as_ref().map(|p| p.url.as_str())).await?;
        eprintln!("cloud: /healthz on {db_name}");
        let health = generate(format!("{}/healthz", cloud.url), cfg, Arc::new(|_| None)).await;
        // Every update a duplicate of one already claimed: the handler stops
        // after the claim (a refused `SET NX` in Redis), so this isolates
        // the per-request claim.
        eprintln!("cloud: duplicate webhook updates on {db_name}");
        let dup = generate(
            format!("{}/api/telegram", cloud.url),
            cfg,
            Arc::new(|_| Some(updates::text(1, 900_000, 900_000, "hello"))),
        )
        .await;
        // New update ids the bot has nothing to do with (no message): the
        // claim succeeds, the handler returns at once.
        eprintln!("cloud: empty webhook updates on {db_name}");
        let empty = generate(
            format!("{}/api/telegram", cloud.url),
            cfg,
            Arc::new(|i| Some(serde_json::json!({"update_id": 5_000_000 + i as i64}))),
        )
        .await;
        eprintln!("cloud: webhook on {db_name}");
        let hook = generate(
            format!("{}/api/telegram", cloud.url),
            cfg,
            webhook_body(10_000_000),
        )
        .await;
        rows.push(
            Row::new(
                format!("cloud: duplicate updates (claim only) on {db_name} req/s"),
                format!("{:.0} (p99 {:.2} ms)", dup.rps, ms(dup.p99)),
            )
            .baseline(
                format!("trivial axum {:.0}", trivial.rps),
                Some(dup.rps / trivial.rps.max(1e-6)),
            ),
        );
        rows.push(
            Row::new(
                format!("cloud: empty updates (new claim, no handler work) on {db_name} req/s"),
                format!(
                    "{:.0} (p99 {:.2} ms, errors {})",
                    empty.rps,
                    ms(empty.p99),
                    empty.errors
                ),
            )
            .baseline(
                format!("trivial axum {:.0}", trivial.rps),
                Some(empty.rps / trivial.rps.max(1e-6)),
            ),
        );
        rows.extend(row(
            &format!("webhook on {db_name}"),
            &hook,
            &trivial,
            "trivial axum",
            true,
        ));
        rows.extend(row(
            &format!("/healthz on {db_name}"),
            &health,
            &trivial,
            "trivial axum",
            false,
        ));
        drop(cloud);
        drop(pg);
    }
    Ok(rows)
}
