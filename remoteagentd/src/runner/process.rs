//! Which runner a session had, and ending the ones a killed daemon left.
//!
//! A runner gets `PR_SET_PDEATHSIG(SIGKILL)` on Linux (see
//! [`super::Running::spawn`]), so it dies with the daemon; what it started
//! itself (its children, in its process group) does not. So when a runner
//! starts, its [`RunnerRecord`] (pid = process group id, start time, boot
//! id) goes into the session log, and a daemon that finds the session
//! unfinished at its next start ends that group ([`end_leftover_groups`]),
//! but only when it is certainly still the same one ([`judge`]): a pid is
//! recycled, a start time within one boot is not; and a group whose leader
//! is gone is ended only if its processes carry the session's id in their
//! environment ([`SESSION_ENV`]).
//!
//! Linux only: elsewhere there is no `/proc` to tell a recycled pid from
//! the runner, so nothing is killed and the daemon says so.

use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use remoteagent_proto::SessionId;
use tokio::time::Instant;

/// The variable that carries the session id into the runner's environment
/// (and, inherited, into its children's): what tells a group whose leader
/// is gone from a stranger's. Not a secret.
pub const SESSION_ENV: &str = "RA_SESSION_ID";

/// What the session log records about a runner when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerRecord {
    /// The runner's pid, which is also its process group id (it leads a
    /// group of its own).
    pub pgid: i32,
    /// Its start time in clock ticks after boot (`/proc/<pid>/stat` field
    /// 22); `None` where it cannot be read (not Linux).
    pub start_ticks: Option<u64>,
    /// `/proc/sys/kernel/random/boot_id`: start times count from the boot.
    pub boot_id: Option<String>,
}

/// How a record is written in the log, after [`RECORD_MARK`].
pub const RECORD_MARK: &str = "# runner pid ";

impl RunnerRecord {
    /// The record of the runner `pid`, just spawned.
    pub fn of(pid: i32) -> RunnerRecord {
        RunnerRecord {
            pgid: pid,
            start_ticks: read_stat(pid).map(|s| s.start_ticks),
            boot_id: boot_id(),
        }
    }

    /// `# runner pid 123 pgid 123 start 456 boot <uuid>` (`-` for unknown).
    pub fn to_line(&self) -> String {
        format!(
            "{RECORD_MARK}{} pgid {} start {} boot {}",
            self.pgid,
            self.pgid,
            self.start_ticks
                .map_or_else(|| "-".to_string(), |t| t.to_string()),
            self.boot_id.as_deref().unwrap_or("-"),
        )
    }

    /// The inverse of [`RunnerRecord::to_line`]; `None` for anything else.
    pub fn parse_line(line: &str) -> Option<RunnerRecord> {
        let rest = line.strip_prefix(RECORD_MARK)?;
        let words: Vec<&str> = rest.split(' ').collect();
        match words.as_slice() {
            [pid, "pgid", pgid, "start", start, "boot", boot] => {
                let pid: i32 = pid.parse().ok()?;
                let pgid: i32 = pgid.parse().ok()?;
                // Only groups of their own are recorded; anything else is
                // not a record of ours.
                if pid != pgid || pid <= 1 {
                    return None;
                }
                let start_ticks = match *start {
                    "-" => None,
                    t => Some(t.parse().ok()?),
                };
                let boot_id = match *boot {
                    "-" => None,
                    b if !b.is_empty() && b.chars().all(|c| c.is_ascii_hexdigit() || c == '-') => {
                        Some(b.to_string())
                    }
                    _ => return None,
                };
                Some(RunnerRecord {
                    pgid,
                    start_ticks,
                    boot_id,
                })
            }
            _ => None,
        }
    }
}

/// The fields of `/proc/<pid>/stat` that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: `Z` for a zombie (dead, not yet reaped).
    pub state: char,
    /// Field 4.
    pub ppid: i32,
    /// Field 5: the process group.
    pub pgrp: i32,
    /// Field 22: clock ticks after boot when the process started.
    pub start_ticks: u64,
}

impl ProcStat {
    fn zombie(&self) -> bool {
        self.state == 'Z' || self.state == 'X'
    }
}

/// Parses the text of `/proc/<pid>/stat`. The command name (field 2) is in
/// parentheses and may itself hold spaces and parentheses: the fields after
/// it are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `fields[0]` is field 3.
    let field = |n: usize| fields.get(n - 3).copied();
    Some(ProcStat {
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        pgrp: field(5)?.parse().ok()?,
        start_ticks: field(22)?.parse().ok()?,
    })
}

/// `/proc/<pid>/stat`, if the process exists (Linux).
pub fn read_stat(pid: i32) -> Option<ProcStat> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// This boot's id (Linux).
pub fn boot_id() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Live (not zombie) processes in the process group `pgid` (Linux).
pub fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| read_stat(*pid).is_some_and(|s| s.pgrp == pgid && !s.zombie()))
        .collect()
}

/// Whether the process `pid` has `SESSION_ENV=session` in its environment
/// (as it was at exec; readable for our own user's processes).
pub fn carries_session(pid: i32, session: &SessionId) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let mark = format!("{SESSION_ENV}={session}");
    environ.split(|b| *b == 0).any(|v| v == mark.as_bytes())
}

/// What to do with a recorded runner group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Still there and certainly ours: end it.
    End,
    /// Nothing of it is left.
    Gone,
    /// Left alone, for the reason given.
    Spare(&'static str),
}

/// What `/proc` says now about a recorded group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed<'a> {
    /// This boot's id.
    pub boot: Option<&'a str>,
    /// The stat of the process whose pid is the recorded one, if any.
    pub leader: Option<&'a ProcStat>,
    /// Live processes in the recorded group.
    pub members: usize,
    /// Those of them carrying the session's id ([`carries_session`]).
    pub marked: usize,
    /// The daemon's own pid.
    pub us: i32,
}

/// Decides about `record` from what is [`Observed`].
///
/// A leader with the recorded start time is the runner itself (alive or
/// not yet reaped): its group is ours. Without the leader, the group's id
/// may have been recycled by a stranger since our group ended (a new
/// process with that pid that made a group and exited): only members
/// that carry the session's id show it is ours.
pub fn judge(record: &RunnerRecord, now: &Observed<'_>) -> Verdict {
    let Observed {
        boot,
        leader,
        members,
        marked,
        us,
    } = *now;
    let (Some(start), Some(recorded_boot), Some(boot)) =
        (record.start_ticks, record.boot_id.as_deref(), boot)
    else {
        return Verdict::Spare("its start time is unknown");
    };
    if recorded_boot != boot {
        // The machine restarted since: the runner is long gone, and start
        // times of this boot mean nothing against the record.
        return Verdict::Gone;
    }
    if record.pgid == us {
        return Verdict::Spare("it is this daemon");
    }
    match leader {
        Some(l) if l.start_ticks != start => {
            Verdict::Spare("its pid now belongs to another process")
        }
        Some(l) if l.ppid == us => Verdict::Spare("it is a runner of this daemon"),
        Some(_) if members > 0 => Verdict::End,
        None if marked > 0 => Verdict::End,
        None if members > 0 => {
            Verdict::Spare("its leader is gone and its processes do not carry the session's id")
        }
        _ => Verdict::Gone,
    }
}

/// [`judge`] against the running system.
fn judge_now(session: &SessionId, record: &RunnerRecord) -> Verdict {
    if !cfg!(target_os = "linux") {
        return Verdict::Spare("leftover runners are only recognised on Linux");
    }
    let leader = read_stat(record.pgid);
    let boot = boot_id();
    let members = group_members(record.pgid);
    judge(
        record,
        &Observed {
            boot: boot.as_deref(),
            leader: leader.as_ref(),
            members: members.len(),
            marked: members
                .iter()
                .filter(|pid| carries_session(**pid, session))
                .count(),
            us: std::process::id() as i32,
        },
    )
}

/// How often an ending group is checked.
const POLL: Duration = Duration::from_millis(50);

/// Ends the process groups of `records` (of the sessions named) that are
/// still there and ours: SIGTERM, then SIGKILL to what is left after
/// `grace`. Returns the groups signalled. Every decision is logged.
pub async fn end_leftover_groups(
    records: &[(SessionId, RunnerRecord)],
    grace: Duration,
) -> Vec<i32> {
    let mut ending = Vec::new();
    for (session, record) in records {
        match judge_now(session, record) {
            Verdict::End => {
                tracing::warn!(
                    session = %session,
                    pgid = record.pgid,
                    "a runner of the previous daemon is still running: SIGTERM to its process group"
                );
                let _ = killpg(Pid::from_raw(record.pgid), Signal::SIGTERM);
                ending.push(record.pgid);
            }
            Verdict::Gone => {
                tracing::debug!(session = %session, pgid = record.pgid, "the previous daemon's runner is gone")
            }
            Verdict::Spare(why) => {
                tracing::info!(
                    session = %session,
                    pgid = record.pgid,
                    reason = why,
                    "not ending the process group recorded for an unfinished session"
                )
            }
        }
    }
    let deadline = Instant::now() + grace;
    let mut left: Vec<i32> = ending.clone();
    while !left.is_empty() {
        left.retain(|pgid| !group_members(*pgid).is_empty());
        if left.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    for pgid in left {
        tracing::warn!(
            pgid,
            "the previous daemon's runner outlived the grace period: SIGKILL to its group"
        );
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
    ending
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: &str = "8a1004ec-a7e0-4b4c-9051-364869cd923e";

    fn record(start: u64) -> RunnerRecord {
        RunnerRecord {
            pgid: 4242,
            start_ticks: Some(start),
            boot_id: Some(BOOT.into()),
        }
    }

    fn stat(start: u64, state: char) -> ProcStat {
        ProcStat {
            state,
            ppid: 1,
            pgrp: 4242,
            start_ticks: start,
        }
    }

    #[test]
    fn stat_lines_parse_whatever_the_command_name() {
        let line = "4242 (we(ird) n)ame) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                state: 'S',
                ppid: 1,
                pgrp: 4242,
                start_ticks: 987654
            })
        );
        assert_eq!(parse_stat("4242 (x) S 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn records_round_trip_and_strangers_do_not_parse() {
        let r = record(77);
        assert_eq!(
            r.to_line(),
            format!("# runner pid 4242 pgid 4242 start 77 boot {BOOT}")
        );
        assert_eq!(RunnerRecord::parse_line(&r.to_line()), Some(r));
        let unknown = RunnerRecord {
            pgid: 9,
            start_ticks: None,
            boot_id: None,
        };
        assert_eq!(RunnerRecord::parse_line(&unknown.to_line()), Some(unknown));
        for bad in [
            "# runner pid 1 pgid 1 start 5 boot x-1",
            "# runner pid 5 pgid 6 start 5 boot ab",
            "# runner pid 5 pgid 5 start 5 boot a;b",
            "# runner pid 5 pgid 5 start 5",
            "runner pid 5 pgid 5 start 5 boot ab",
        ] {
            assert_eq!(RunnerRecord::parse_line(bad), None, "{bad}");
        }
    }

    /// What `judge` sees: this boot, our pid 99, and every member marked.
    fn seen(leader: Option<&ProcStat>, members: usize) -> Observed<'_> {
        Observed {
            boot: Some(BOOT),
            leader,
            members,
            marked: members,
            us: 99,
        }
    }

    #[test]
    fn only_the_recorded_process_or_its_leaderless_group_is_ended() {
        let r = record(1000);
        let us = 99;
        // The runner itself, still there.
        assert_eq!(judge(&r, &seen(Some(&stat(1000, 'S')), 2)), Verdict::End);
        // An unrelated process that got the same pid: another start time.
        assert!(matches!(
            judge(&r, &seen(Some(&stat(2000, 'S')), 1)),
            Verdict::Spare(_)
        ));
        // The runner died (PDEATHSIG); its children live on in its group
        // and carry the session's id.
        assert_eq!(judge(&r, &seen(None, 1)), Verdict::End);
        // A group without its leader whose processes do not carry it: the
        // id may have been recycled by a stranger's group.
        let unmarked = Observed {
            marked: 0,
            ..seen(None, 3)
        };
        assert!(matches!(judge(&r, &unmarked), Verdict::Spare(_)));
        assert_eq!(judge(&r, &seen(Some(&stat(1000, 'Z')), 1)), Verdict::End);
        // Nothing left.
        assert_eq!(judge(&r, &seen(None, 0)), Verdict::Gone);
        assert_eq!(judge(&r, &seen(Some(&stat(1000, 'Z')), 0)), Verdict::Gone);
        // Another boot: start times are not comparable, the runner is gone.
        assert_eq!(
            judge(
                &r,
                &Observed {
                    boot: Some("other"),
                    ..seen(Some(&stat(1000, 'S')), 1)
                }
            ),
            Verdict::Gone
        );
        // Unknown start time, or our own child: never.
        let blind = RunnerRecord {
            start_ticks: None,
            ..r.clone()
        };
        assert!(matches!(judge(&blind, &seen(None, 1)), Verdict::Spare(_)));
        let mut ours = stat(1000, 'S');
        ours.ppid = us;
        assert!(matches!(
            judge(&r, &seen(Some(&ours), 1)),
            Verdict::Spare(_)
        ));
        assert!(matches!(
            judge(
                &record(1000),
                &Observed {
                    us: 4242,
                    ..seen(None, 1)
                }
            ),
            Verdict::Spare(_)
        ));
    }

    /// Gone, or dead and not reaped yet.
    fn gone(pid: i32) -> bool {
        read_stat(pid).is_none_or(|s| s.zombie())
    }

    /// Real processes, not children of this test (as a previous daemon's
    /// runner is not a child of the next daemon): `sh` leads a group,
    /// starts `sleep` in it, and exits. A record naming the sleep's pid
    /// with another start time (a recycled pid) spares it; so does the
    /// record of the sh's group, now without its leader, for another
    /// session; for the session whose id the sleep carries, it ends it.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_recycled_pid_is_not_killed_a_leftover_group_is() {
        use std::io::{BufRead, BufReader};
        use std::os::unix::process::CommandExt;
        use std::process::{Command, Stdio};
        let session = SessionId::generate();
        let mut sh = Command::new("sh")
            .args(["-c", "sleep 1000 & echo $!; read x"])
            .env(SESSION_ENV, session.as_str())
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(sh.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let sleep: i32 = line.trim().parse().unwrap();
        let group = RunnerRecord::of(sh.id() as i32);
        assert!(group.start_ticks.is_some() && group.boot_id.is_some());
        drop(sh.stdin.take());
        sh.wait().unwrap();
        let cleanup = scopeguard(sleep);

        let stranger = RunnerRecord {
            pgid: sleep,
            start_ticks: RunnerRecord::of(sleep).start_ticks.map(|t| t + 1),
            boot_id: boot_id(),
        };
        assert!(
            end_leftover_groups(&[(session.clone(), stranger)], Duration::from_millis(100))
                .await
                .is_empty()
        );
        assert!(
            end_leftover_groups(
                &[(SessionId::generate(), group.clone())],
                Duration::from_millis(100)
            )
            .await
            .is_empty()
        );
        assert!(
            !gone(sleep),
            "a process that only shares the pid was killed"
        );

        assert_eq!(
            end_leftover_groups(&[(session, group.clone())], Duration::from_secs(5)).await,
            vec![group.pgid]
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !gone(sleep) {
            assert!(
                std::time::Instant::now() < deadline,
                "the leftover group lives on"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(cleanup);
    }

    /// Kills `pid` when dropped (a failed assertion must not leave it),
    /// if it is still the same process.
    fn scopeguard(pid: i32) -> impl Drop {
        struct Kill(i32, Option<u64>);
        impl Drop for Kill {
            fn drop(&mut self) {
                if read_stat(self.0).map(|s| s.start_ticks) == self.1 && self.1.is_some() {
                    let _ = nix::sys::signal::kill(Pid::from_raw(self.0), Signal::SIGKILL);
                }
            }
        }
        Kill(pid, read_stat(pid).map(|s| s.start_ticks))
    }
}
