//! Section "first text": webhook update → the runner's first text visible
//! at (the fake) Telegram, with `STREAM_MODE=edit` and `STREAM_MODE=draft`
//! measured in the same run, on the same Redis, machine and runner. The
//! runner prints a line, then works for a second: the text is shown while
//! the run streams (an edit of the placeholder, paced about once a second
//! per chat, or a draft, not paced). One prompt at a time (the next after
//! the run's `done` is in Redis), and each chat left idle between its
//! prompts (its previous run's last messages sent), so that both modes
//! start from a chat the outbox may write to at once.

use std::time::Duration;

use anyhow::Result;
use remoteagent_testkit::telegram::{Call, FakeTelegram};
use tokio::time::Instant;

use crate::report::Row;
use crate::stats::{ms, quantile};
use crate::world::{self, Cloud, Machine, Redis, WAIT};

pub struct Config {
    /// Prompts per mode.
    pub prompts: usize,
    /// Telegram users (each with its own agent) taking turns.
    pub users: usize,
    /// Least time between two prompts of one chat.
    pub chat_gap: Duration,
}

/// The methods that make a text visible.
const SHOWN_BY: [&str; 3] = ["sendMessage", "editMessageText", "sendMessageDraft"];

/// The samples of one mode: (first text visible, failures).
async fn measure(
    mode: &str,
    runner: &std::path::Path,
    cfg: &Config,
    first_user: i64,
) -> Result<(Vec<Duration>, Vec<Duration>, Vec<Duration>, usize)> {
    // A Redis of its own: the cloud's pairing rate limit (10 a minute per
    // address) lives there.
    let redis = Redis::start()?;
    let tg = FakeTelegram::start().await;
    let cloud = Cloud::start_binary_env(
        &world::bin("remoteagent-cloud")?,
        "warn",
        &redis.url(),
        &tg.api_base(),
        &tg.token(),
        None,
        &[("STREAM_MODE", mode)],
    )
    .await?;
    let machine = Machine::start(&cloud.url).await?;
    let http = reqwest::Client::new();
    let users: Vec<i64> = (0..cfg.users as i64).map(|i| first_user + i).collect();
    for (i, user) in users.iter().enumerate() {
        machine
            .pair(&http, &cloud.url, &format!("{mode}{i}"), runner, *user)
            .await?;
    }
    let mut xadds = crate::latency::watch_xadds(&redis.url()).await?;
    let mut conn = redis::Client::open(redis.url())?
        .get_multiplexed_async_connection()
        .await?;
    let mut seen = std::collections::HashSet::new();
    let mut to_chunk = Vec::with_capacity(cfg.prompts);
    // Let the pairing confirmations drain from the paced outbox.
    tokio::time::sleep(cfg.chat_gap).await;
    eprintln!("first text ({mode}): {} prompts", cfg.prompts);
    let mut posted: Vec<(i64, String, Instant)> = Vec::with_capacity(cfg.prompts);
    let mut last: std::collections::HashMap<i64, Instant> = Default::default();
    let mut failures = 0;
    for i in 0..cfg.prompts {
        let user = users[i % users.len()];
        if let Some(t) = last.get(&user) {
            tokio::time::sleep_until(*t + cfg.chat_gap).await;
        }
        let prompt = format!("{mode}{i}x");
        while xadds.try_recv().is_ok() {}
        let t0 = Instant::now();
        last.insert(user, t0);
        let status =
            world::post_update(&http, &cloud.url, &world::text_update(user, &prompt)).await?;
        if status == 200 {
            posted.push((user, prompt, t0));
            if let Ok((_, chunk)) =
                crate::latency::first_chunk(&mut xadds, &mut conn, &mut seen, t0).await
            {
                to_chunk.push(chunk);
            }
        } else {
            failures += 1;
        }
        // Spread the chats' prompts out, as users would.
        tokio::time::sleep(cfg.chat_gap / cfg.users.max(1) as u32).await;
    }
    let shown = |calls: &[Call], user: i64, prompt: &str, t0: Instant| -> Option<Duration> {
        let marker = format!("pong {prompt}");
        calls
            .iter()
            .find(|c| {
                c.chat_id() == Some(user)
                    && c.ok()
                    && c.at >= t0
                    && SHOWN_BY.contains(&c.method.as_str())
                    && c.text().is_some_and(|t| t.contains(&marker))
            })
            .map(|c| c.at.saturating_duration_since(t0))
    };
    let all_shown = |calls: &[Call]| {
        posted
            .iter()
            .all(|(u, p, t0)| shown(calls, *u, p, *t0).is_some())
    };
    tg.wait_for(all_shown, WAIT).await;
    let calls = tg.calls();
    let mut samples = Vec::with_capacity(posted.len());
    let mut placeholders = Vec::with_capacity(posted.len());
    for (user, prompt, t0) in &posted {
        match shown(&calls, *user, prompt, *t0) {
            Some(d) => samples.push(d),
            None => failures += 1,
        }
        if let Some(c) = calls
            .iter()
            .find(|c| c.chat_id() == Some(*user) && c.method == "sendMessage" && c.at >= *t0)
        {
            placeholders.push(c.at.saturating_duration_since(*t0));
        }
    }
    drop(machine);
    drop(cloud);
    Ok((samples, placeholders, to_chunk, failures))
}

pub async fn run(cfg: &Config) -> Result<Vec<Row>> {
    let tmp = tempfile::tempdir()?;
    let runner = world::script(tmp.path(), "pong.sh", "echo \"pong $1\"\nsleep 1")?;
    let (mut edit, mut edit_ph, mut edit_ch, edit_failed) =
        measure("edit", &runner, cfg, 20_000).await?;
    let (mut draft, mut draft_ph, mut draft_ch, draft_failed) =
        measure("draft", &runner, cfg, 30_000).await?;
    let (ep50, dp50) = (quantile(&mut edit_ph, 0.5), quantile(&mut draft_ph, 0.5));
    let (ec50, dc50) = (quantile(&mut edit_ch, 0.5), quantile(&mut draft_ch, 0.5));
    let (e50, e99) = (quantile(&mut edit, 0.5), quantile(&mut edit, 0.99));
    let (d50, d99) = (quantile(&mut draft, 0.5), quantile(&mut draft, 0.99));
    let edit_base = format!("edit p50 {:.0} ms", ms(e50));
    Ok(vec![
        Row::new(
            format!(
                "first text: webhook → runner text visible at Telegram, STREAM_MODE=edit, p50 / p99 (n={})",
                edit.len()
            ),
            format!("{:.0} / {:.0} ms", ms(e50), ms(e99)),
        )
        .baseline("outbox pacing 1 req/s/chat", None),
        Row::new(
            format!(
                "first text: webhook → runner text visible at Telegram, STREAM_MODE=draft, p50 (n={})",
                draft.len()
            ),
            format!("{:.0} ms", ms(d50)),
        )
        .baseline(edit_base.clone(), Some(ms(d50) / ms(e50).max(1e-6)))
        .goal("≤ 100 ms", ms(d50) <= 100.0),
        Row::new(
            "first text: STREAM_MODE=draft, p99",
            format!("{:.0} ms", ms(d99)),
        )
        .baseline(
            format!("edit p99 {:.0} ms", ms(e99)),
            Some(ms(d99) / ms(e99).max(1e-6)),
        ),
        Row::new(
            "first text: breakdown p50: webhook → placeholder sent (edit / draft)",
            format!("{:.1} / {:.1} ms", ms(ep50), ms(dp50)),
        ),
        Row::new(
            "first text: breakdown p50: webhook → first chunk XADDed (edit / draft)",
            format!("{:.1} / {:.1} ms", ms(ec50), ms(dc50)),
        ),
        Row::new(
            "first text: prompts not shown (edit / draft)",
            format!("{edit_failed} / {draft_failed}"),
        )
        .goal("0", edit_failed + draft_failed == 0),
    ])
}
