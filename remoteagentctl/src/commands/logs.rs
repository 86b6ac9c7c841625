//! `remoteagentctl logs [AGENT] [--run ID] [-n N] [--since WHEN] [-f]
//! [-t] [--list]`: the local logs of the runs (one per prompt), as
//! `journalctl` shows a unit's.
//!
//! Each run's lines come under a header line (`-- run 1a2b3c4d of web,
//! started …: prompt… --`); without an agent, each line also starts with
//! its agent's name. `-t` puts the time each line was written in front
//! (RFC 3339, UTC; logs from before lines were timed show none). With `-f`
//! new lines follow, of the runs that start later too, until Ctrl-C; or,
//! with `--run` (older name `--session`), until that run's end. `--list`
//! lists the runs.

use std::collections::HashMap;
use std::io::IsTerminal;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use remoteagent_proto::control::{LogSessionInfo, LogsRequest, Request, Response};
use remoteagent_proto::{AgentId, now_ms, rfc3339};

use super::{print_json, print_line, short_id, shown};
use crate::client::Client;
use crate::error::CliError;

/// Lines shown by default; with `--since` or `--list`, all.
const DEFAULT_LINES: usize = 50;
/// Words of the prompt shown in headers and `--list`.
const PROMPT_WORDS: usize = 8;
const PROMPT_CHARS: usize = 60;

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Agent name or id prefix (default: all agents).
    pub agent: Option<String>,
    /// A run's id, or a unique prefix of one (see --list). `--session` is
    /// its older name.
    #[arg(long = "run", alias = "session", value_name = "ID")]
    pub session: Option<String>,
    /// How many lines from the end (default 50; with --since, all); with
    /// --list, how many runs (the newest).
    #[arg(short = 'n', long = "lines", value_name = "N")]
    pub lines: Option<usize>,
    /// Keep printing new lines, of runs that start later too, until
    /// Ctrl-C; with --run, until that run is done.
    #[arg(short, long)]
    pub follow: bool,
    /// Only what was logged since WHEN: a time ago (30s, 10m, 2h, 1d, 1w)
    /// or an RFC 3339 time (2026-03-04T10:11:12Z).
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<u64>,
    /// Show when each line was written (RFC 3339, UTC).
    #[arg(short, long)]
    pub timestamps: bool,
    /// List the runs that have a log, newest last: a table on a
    /// terminal, tab-separated lines otherwise, or JSON with --json.
    #[arg(long, conflicts_with_all = ["session", "follow", "timestamps"])]
    pub list: bool,
    /// With --list: leave out the header line.
    #[arg(long, requires = "list")]
    pub no_headers: bool,
}

/// `--since`: a duration ago (`90s`, `10m`, `2h`, `1d`, `1w`) or an RFC
/// 3339 time, as ms since the epoch.
pub fn parse_since(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if let Some(ms) = rfc3339::parse(text) {
        return Ok(ms);
    }
    let bad = || {
        format!(
            "'{text}' is neither a time ago (30s, 10m, 2h, 1d, 1w) nor an RFC 3339 time (2026-03-04T10:11:12Z)"
        )
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit_ms: u64 = match unit {
        "s" | "sec" | "secs" => 1000,
        "m" | "min" | "mins" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        "w" | "week" | "weeks" => 7 * 86_400_000,
        _ => return Err(bad()),
    };
    let ago = number.checked_mul(unit_ms).ok_or_else(bad)?;
    Ok(now_ms().saturating_sub(ago))
}

pub async fn run(client: &mut Client, args: LogsArgs, json: bool) -> Result<(), CliError> {
    let lines = args.lines.unwrap_or(if args.since.is_some() || args.list {
        usize::MAX
    } else {
        DEFAULT_LINES
    });
    let request = Request::Logs(LogsRequest {
        agent: args.agent.clone(),
        session: args.session.clone(),
        lines,
        follow: args.follow,
        since_ms: args.since,
        list: args.list,
    });
    if args.list {
        return match client.call(request).await? {
            Response::LogSessions { sessions } => print_list(&sessions, json, args.no_headers),
            other => Err(CliError::error(format!("unexpected answer: {other:?}"))),
        };
    }
    client.send(request).await?;
    // All agents' lines interleave: each says whose it is.
    let mut printer = Printer {
        timestamps: args.timestamps,
        name_lines: args.agent.is_none() && args.session.is_none(),
        names: HashMap::new(),
    };
    let stream = async {
        loop {
            let reply = client.next().await?;
            let last = reply.is_last();
            match reply.data {
                Some(data) if json => print_json(&data)?,
                Some(data) => printer.print(data)?,
                None => {}
            }
            if last {
                return Ok(());
            }
        }
    };
    tokio::select! {
        result = stream => result,
        // Ctrl-C ends `-f`; closing the connection tells the daemon to stop.
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

struct Printer {
    timestamps: bool,
    name_lines: bool,
    /// Agent names, from the headers.
    names: HashMap<AgentId, String>,
}

impl Printer {
    /// Everything printed here holds remote text (prompts, runner output):
    /// all of it goes through [`shown`].
    fn print(&mut self, data: Response) -> Result<(), CliError> {
        match data {
            Response::LogSession(info) => {
                self.names
                    .insert(info.agent_id.clone(), info.agent_name.clone());
                print_line(&header(&info))
            }
            Response::LogLine {
                agent_id,
                line,
                time_ms,
                ..
            } => {
                let mut text = String::new();
                if self.timestamps {
                    match time_ms {
                        Some(ms) => text.push_str(&rfc3339::format(ms, true)),
                        // An old log's line: the same width, no time.
                        None => text.push_str(&format!("{:24}", "-")),
                    }
                    text.push(' ');
                }
                if self.name_lines {
                    let name = self.names.get(&agent_id).map_or(agent_id.as_str(), |n| n);
                    text.push_str(&shown(name));
                    text.push_str(": ");
                }
                text.push_str(&shown(&line));
                print_line(&text)
            }
            other => print_json(&other),
        }
    }
}

/// `-- run 1a2b3c4d of web, started 2026-03-04T10:11:12Z: fix the tests --`
fn header(info: &LogSessionInfo) -> String {
    let started = info.started_at_ms.map_or_else(
        || "at an unknown time".to_string(),
        |ms| rfc3339::format(ms, false),
    );
    format!(
        "-- run {} of {}, started {started}: {} --",
        short_id(info.session_id.as_str()),
        shown(&info.agent_name),
        first_words(&info.prompt)
    )
}

/// The prompt's first words, cleaned for a terminal.
fn first_words(prompt: &str) -> String {
    let clean = shown(prompt);
    let words: Vec<&str> = clean.split_whitespace().collect();
    let mut out = words
        .iter()
        .take(PROMPT_WORDS)
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let mut cut = words.len() > PROMPT_WORDS;
    if out.chars().count() > PROMPT_CHARS {
        out = out.chars().take(PROMPT_CHARS).collect();
        cut = true;
    }
    if cut {
        out.push('…');
    }
    out
}

const LIST_HEADER: [&str; 6] = ["AGENT", "RUN", "STARTED", "DURATION", "OUTCOME", "PROMPT"];

fn print_list(sessions: &[LogSessionInfo], json: bool, no_headers: bool) -> Result<(), CliError> {
    if json {
        return print_json(&sessions);
    }
    if !std::io::stdout().is_terminal() {
        // For `cut`, `awk` and `while read`, as `list` prints: cleaned text
        // has no tabs or newlines.
        if !no_headers {
            print_line(&LIST_HEADER.join("\t"))?;
        }
        for r in sessions.iter().map(list_row) {
            print_line(&r.join("\t"))?;
        }
        return Ok(());
    }
    print_line(&table(sessions, no_headers))
}

/// `--list` on a terminal.
fn table(sessions: &[LogSessionInfo], no_headers: bool) -> String {
    if sessions.is_empty() {
        return "No run logs.".into();
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    if !no_headers {
        table.set_header(LIST_HEADER.to_vec());
    }
    for r in sessions.iter().map(list_row) {
        table.add_row(r);
    }
    table.to_string()
}

fn list_row(s: &LogSessionInfo) -> Vec<String> {
    let (duration, outcome) = match (&s.outcome, s.duration_ms, s.running) {
        (_, _, true) => ("running".to_string(), "-".to_string()),
        (Some(outcome), ms, false) => (ms.map_or("-".into(), duration), shown(outcome)),
        (None, _, false) => ("-".into(), "unfinished".into()),
    };
    vec![
        shown(&s.agent_name),
        short_id(s.session_id.as_str()).to_string(),
        s.started_at_ms
            .map_or("-".into(), |ms| rfc3339::format(ms, false)),
        duration,
        outcome,
        first_words(&s.prompt),
    ]
}

/// `0.4s`, `12.0s`, `3m05s`, `2h07m`.
fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0..60 => format!("{:.1}s", ms as f64 / 1000.0),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_and_times() {
        let now = now_ms();
        let ten_min = parse_since("10m").unwrap();
        assert!(now - 600_000 <= ten_min && ten_min <= now_ms() - 600_000);
        let day = parse_since("1d").unwrap();
        assert!(day <= now - 86_400_000 && day > now - 86_500_000);
        assert!(parse_since("2h").unwrap() <= now - 7_200_000);
        assert_eq!(parse_since("2026-03-04T10:11:12Z"), Ok(1_772_619_072_000));
        for bad in [
            "",
            "10",
            "m",
            "10x",
            "-5m",
            "yesterday",
            "99999999999999999999d",
            "1.5h",
        ] {
            let e = parse_since(bad).unwrap_err();
            assert!(e.contains("RFC 3339"), "{bad}: {e}");
        }
    }

    #[test]
    fn headers_and_rows_show_clean_first_words() {
        let info = LogSessionInfo {
            agent_id: AgentId::generate(),
            agent_name: "web\x1b]0;x\x07".into(),
            session_id: remoteagent_proto::SessionId::parse("1a2b3c4d5e6f").unwrap(),
            started_at_ms: Some(1_772_619_072_000),
            prompt: "fix \x1b[31mthe failing test in the parser and then run it all".into(),
            runner: "sh".into(),
            running: false,
            outcome: Some("ok".into()),
            duration_ms: Some(65_000),
            last_write_ms: 0,
        };
        let h = header(&info);
        assert_eq!(
            h,
            "-- run 1a2b3c4d of web, started 2026-03-04T10:11:12Z: fix the failing test in the parser and… --"
        );
        assert_eq!(
            list_row(&info),
            vec![
                "web",
                "1a2b3c4d",
                "2026-03-04T10:11:12Z",
                "1m05s",
                "ok",
                "fix the failing test in the parser and…"
            ]
        );
        let mut running = info.clone();
        running.running = true;
        running.outcome = None;
        let shown = table(&[info, running], false);
        for text in [
            "AGENT",
            "OUTCOME",
            "1a2b3c4d",
            "1m05s",
            "running",
            "fix the failing",
        ] {
            assert!(shown.contains(text), "{text}: {shown}");
        }
        assert!(!shown.contains('\x1b'), "{shown:?}");
        assert_eq!(table(&[], false), "No run logs.");
        assert_eq!(duration(400), "0.4s");
        assert_eq!(duration(7_620_000), "2h07m");
    }
}
