//! The runner's command line: every argument a session gives the AI CLI is
//! rendered here, from one [`Invocation`] (the prompt, which conversation
//! to resume, how tool uses are approved), so the argv of each runner kind
//! can be read, and tested, in one place.
//!
//! The prompt is always exactly one argument, never parsed by a shell.
//! Files sent from the phone with it ([`Attached`]) are listed at its end
//! by their paths in the session's inbox, and Claude Code is also allowed
//! into that folder (`--add-dir`), which lies outside the project.

use std::path::PathBuf;

use remoteagent_proto::runner::{Preset, RunnerSpec};

use super::error::RunnerError;
use super::text::valid_conversation_id;

/// Which conversation a prompt belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume<'a> {
    /// A new conversation: the user sent `/new`.
    Fresh,
    /// The CLI's most recent conversation in the project folder: the user
    /// wants to continue, but no conversation id has been seen yet.
    Latest,
    /// This conversation (an id the CLI reported in an earlier session).
    Id(&'a str),
}

impl<'a> Resume<'a> {
    /// The choice for a command: `continue_conversation` is the command's
    /// `continue` flag, `stored` the agent's last conversation id.
    pub fn choose(continue_conversation: bool, stored: Option<&'a str>) -> Self {
        match (continue_conversation, stored) {
            (false, _) => Resume::Fresh,
            // The metadata file is the user's to edit: an id that would not
            // be a single plain argument is not used.
            (true, Some(id)) if valid_conversation_id(id) => Resume::Id(id),
            (true, _) => Resume::Latest,
        }
    }
}

/// What a runner that cannot ask may do on its own (Codex's `--sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sandbox {
    /// Read only.
    ReadOnly,
    /// Write inside the project folder only, no network.
    WorkspaceWrite,
    /// No sandbox at all.
    FullAccess,
}

impl Sandbox {
    /// Codex's name for it.
    pub fn codex_name(self) -> &'static str {
        match self {
            Sandbox::ReadOnly => "read-only",
            Sandbox::WorkspaceWrite => "workspace-write",
            Sandbox::FullAccess => "danger-full-access",
        }
    }
}

/// How the runner's tool uses are approved, as far as its command line
/// goes ([`crate::approval::runner_mode`] chooses it from the project's
/// policy). A mode a runner kind has no option for adds nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalMode {
    /// Nothing on the command line: the runner's own rules.
    RunnerDefault,
    /// Claude Code asks before every tool use through the `PreToolUse` hook
    /// these settings (JSON, for `--settings`) install.
    Hook { settings: String },
    /// A runner that cannot ask (Codex) runs in this sandbox.
    Sandbox(Sandbox),
    /// Claude Code in one of its permission modes (`--permission-mode`,
    /// chosen by the run's mode, `crate::approval::modes`), with the hook's
    /// `--settings` when the daemon has one.
    Permission {
        mode: PermissionMode,
        hook: Option<String>,
    },
}

/// Claude Code's `--permission-mode` values the modes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermissionMode {
    /// Plans, changes nothing.
    Plan,
    /// File edits accepted without asking.
    AcceptEdits,
}

impl PermissionMode {
    /// Claude Code's name for it.
    pub fn claude_name(self) -> &'static str {
        match self {
            PermissionMode::Plan => "plan",
            PermissionMode::AcceptEdits => "acceptEdits",
        }
    }
}

/// Files that came with the prompt, saved in the session's inbox
/// (`crate::inbox`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attached {
    /// The inbox folder: outside the project, so Claude Code is given it
    /// with `--add-dir`.
    pub dir: PathBuf,
    pub files: Vec<AttachedFile>,
}

/// One saved file, as the prompt describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedFile {
    /// Absolute path in the inbox.
    pub path: PathBuf,
    /// The MIME type the phone gave (already cleaned).
    pub mime: String,
    pub size: u64,
}

/// What one session asks of the runner.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    pub prompt: &'a str,
    pub resume: Resume<'a>,
    pub approval: ApprovalMode,
    /// A line of the daemon's for preset runners (the outbox hint,
    /// `[outbox] hint`): Claude Code gets it as `--append-system-prompt`,
    /// the other presets before the prompt, after a blank line. Custom
    /// commands never get it: their prompt is the text as typed.
    pub hint: Option<&'a str>,
    /// Files sent with the prompt, if any.
    pub attached: Option<&'a Attached>,
}

impl Invocation<'_> {
    /// The prompt as the runner gets it: the user's text, then a blank line
    /// and one line per attached file (`- /path/photo.jpg (image/jpeg, 123
    /// KB)`); the user's text alone without files.
    pub fn prompt_text(&self) -> String {
        let Some(attached) = self.attached.filter(|a| !a.files.is_empty()) else {
            return self.prompt.to_string();
        };
        let mut text = format!("{}\n\nAttached files:", self.prompt.trim_end());
        for file in &attached.files {
            text.push_str(&format!(
                "\n- {} ({}, {})",
                file.path.display(),
                file.mime,
                size_text(file.size)
            ));
        }
        text
    }

    /// The inbox folder, when files came with the prompt.
    fn inbox_dir(&self) -> Option<String> {
        self.attached
            .filter(|a| !a.files.is_empty())
            .map(|a| a.dir.display().to_string())
    }
}

/// A size for people, in the decimal units Telegram uses: `512 bytes`,
/// `123 KB`, `4.5 MB`.
pub fn size_text(bytes: u64) -> String {
    if bytes < 1000 {
        format!("{bytes} bytes")
    } else if bytes < 999_500 {
        format!("{} KB", (bytes + 500) / 1000)
    } else {
        format!("{:.1} MB", bytes as f64 / 1_000_000.0)
    }
}

/// The prompt text `spec` gets: the hint before it for the presets other
/// than Claude Code (see [`command_line`]).
pub fn runner_prompt(spec: &RunnerSpec, invocation: &Invocation<'_>) -> String {
    let text = invocation.prompt_text();
    match (spec, invocation.hint) {
        (
            RunnerSpec::Preset(Preset::Codex | Preset::CodexExec | Preset::Aider | Preset::Gemini),
            Some(hint),
        ) => format!("{hint}\n\n{text}"),
        _ => text,
    }
}

/// Program and arguments for an invocation.
///
/// - Claude Code: `claude -p <prompt> --output-format stream-json --verbose`,
///   plus `--add-dir <inbox>` when files came with the prompt, plus
///   `--resume <id>` or `--continue`, plus `--permission-mode <mode>` (plan,
///   acceptEdits) and `--settings <hook JSON>`.
/// - Codex: `codex app-server`; the rest goes over its stdin
///   (`super::codex_app`).
/// - Codex's fallback (`codex-exec`): `codex exec [--sandbox <mode>] --json
///   [resume <id> | resume --last] -- <prompt>`; the sandbox option comes right after `exec`,
///   before any `resume` subcommand, where Codex reads it; the `--` keeps a
///   prompt that starts with `-` from being read as an option.
/// - Aider, Gemini and custom commands get the prompt alone; they keep no
///   conversation of ours and take no approval options.
/// - The hint, if any, goes last for Claude (`--append-system-prompt`) and
///   before the prompt text for Codex, Aider and Gemini.
pub fn command_line(
    spec: &RunnerSpec,
    invocation: &Invocation<'_>,
) -> Result<(String, Vec<String>), RunnerError> {
    let prompt = runner_prompt(spec, invocation);
    let (program, args): (&str, Vec<String>) = match spec {
        RunnerSpec::Preset(Preset::Claude) => {
            let mut args = vec![
                "-p".into(),
                prompt,
                "--output-format".into(),
                "stream-json".into(),
                "--verbose".into(),
            ];
            // `--add-dir` takes several folders: it comes after the prompt
            // and before another option, so it can swallow nothing else.
            if let Some(dir) = invocation.inbox_dir() {
                args.extend(["--add-dir".into(), dir]);
            }
            match invocation.resume {
                Resume::Fresh => {}
                Resume::Latest => args.push("--continue".into()),
                Resume::Id(id) => args.extend(["--resume".into(), id.to_string()]),
            }
            match &invocation.approval {
                ApprovalMode::Hook { settings } => {
                    args.extend(["--settings".into(), settings.clone()]);
                }
                ApprovalMode::Permission { mode, hook } => {
                    args.extend(["--permission-mode".into(), mode.claude_name().into()]);
                    if let Some(settings) = hook {
                        args.extend(["--settings".into(), settings.clone()]);
                    }
                }
                ApprovalMode::RunnerDefault | ApprovalMode::Sandbox(_) => {}
            }
            if let Some(hint) = invocation.hint {
                args.extend(["--append-system-prompt".into(), hint.to_string()]);
            }
            ("claude", args)
        }
        // The prompt, the thread and the sandbox go over stdin
        // (`super::codex_app`).
        RunnerSpec::Preset(Preset::Codex) => ("codex", vec!["app-server".into()]),
        RunnerSpec::Preset(Preset::CodexExec) => {
            let mut args: Vec<String> = vec!["exec".into()];
            if let ApprovalMode::Sandbox(sandbox) = invocation.approval {
                args.extend(["--sandbox".into(), sandbox.codex_name().into()]);
            }
            args.push("--json".into());
            match invocation.resume {
                Resume::Fresh => {}
                Resume::Latest => args.extend(["resume".into(), "--last".into()]),
                Resume::Id(id) => args.extend(["resume".into(), id.to_string()]),
            }
            args.extend(["--".into(), prompt]);
            ("codex", args)
        }
        RunnerSpec::Preset(Preset::Aider) => (
            "aider",
            vec![
                "--message".into(),
                prompt,
                "--yes-always".into(),
                "--no-pretty".into(),
            ],
        ),
        RunnerSpec::Preset(Preset::Gemini) => ("gemini", vec!["-p".into(), prompt]),
        RunnerSpec::Command(argv) => {
            let (program, rest) = argv.split_first().ok_or(RunnerError::EmptyCommand)?;
            let mut args: Vec<String> = Vec::with_capacity(rest.len() + 1);
            let mut placed = false;
            for a in rest {
                if a == "{prompt}" {
                    args.push(prompt.clone());
                    placed = true;
                } else {
                    args.push(a.clone());
                }
            }
            if !placed {
                args.push(prompt);
            }
            return Ok((program.clone(), args));
        }
    };
    Ok((program.to_string(), args))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOOK: &str = r#"{"hooks":{}}"#;

    fn hook() -> ApprovalMode {
        ApprovalMode::Hook {
            settings: HOOK.into(),
        }
    }

    fn line(
        spec: &RunnerSpec,
        prompt: &str,
        resume: Resume<'_>,
        approval: ApprovalMode,
    ) -> (String, Vec<String>) {
        let invocation = Invocation {
            prompt,
            resume,
            approval,
            hint: None,
            attached: None,
        };
        command_line(spec, &invocation).unwrap()
    }

    fn plain(spec: &RunnerSpec, prompt: &str, resume: Resume<'_>) -> (String, Vec<String>) {
        line(spec, prompt, resume, ApprovalMode::RunnerDefault)
    }

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn prompt_is_one_argument() {
        let spec = RunnerSpec::Command(vec!["./r.sh".into(), "--x".into()]);
        let (p, a) = plain(&spec, "a b; $(rm -rf ~)", Resume::Fresh);
        assert_eq!(p, "./r.sh");
        assert_eq!(a, strings(&["--x", "a b; $(rm -rf ~)"]));
        let spec = RunnerSpec::Command(vec!["t".into(), "{prompt}".into(), "--y".into()]);
        let (_, a) = plain(&spec, "hi", Resume::Id("abc"));
        assert_eq!(a, strings(&["hi", "--y"]));
        let empty = Invocation {
            prompt: "x",
            resume: Resume::Fresh,
            approval: ApprovalMode::RunnerDefault,
            hint: None,
            attached: None,
        };
        assert!(command_line(&RunnerSpec::Command(vec![]), &empty).is_err());
    }

    #[test]
    fn custom_commands_take_no_resume_nor_approval_options() {
        let spec = RunnerSpec::Command(vec!["t".into(), "{prompt}".into(), "--y".into()]);
        for approval in [
            ApprovalMode::RunnerDefault,
            hook(),
            ApprovalMode::Sandbox(Sandbox::ReadOnly),
        ] {
            for resume in [Resume::Fresh, Resume::Latest, Resume::Id("abc")] {
                let (p, a) = line(&spec, "go", resume, approval.clone());
                assert_eq!((p.as_str(), a), ("t", strings(&["go", "--y"])));
            }
        }
    }

    #[test]
    fn claude_resumes_by_id_or_continues() {
        let claude = RunnerSpec::Preset(Preset::Claude);
        let base = ["-p", "go", "--output-format", "stream-json", "--verbose"];
        let (p, a) = plain(&claude, "go", Resume::Fresh);
        assert_eq!((p.as_str(), a), ("claude", strings(&base)));
        let (_, a) = plain(&claude, "go", Resume::Latest);
        assert_eq!(a, strings(&[&base[..], &["--continue"]].concat()));
        let (_, a) = plain(&claude, "go", Resume::Id("3f6d-1c2e"));
        assert_eq!(
            a,
            strings(&[&base[..], &["--resume", "3f6d-1c2e"]].concat())
        );
    }

    #[test]
    fn claude_gets_its_hook_settings_last() {
        let claude = RunnerSpec::Preset(Preset::Claude);
        let (_, a) = line(&claude, "go", Resume::Id("3f6d"), hook());
        assert_eq!(
            a,
            strings(&[
                "-p",
                "go",
                "--output-format",
                "stream-json",
                "--verbose",
                "--resume",
                "3f6d",
                "--settings",
                HOOK
            ])
        );
        let (_, a) = line(&claude, "go", Resume::Fresh, hook());
        assert_eq!(a[5..], strings(&["--settings", HOOK]));
        // A sandbox means nothing to Claude Code.
        let (_, a) = line(
            &claude,
            "go",
            Resume::Fresh,
            ApprovalMode::Sandbox(Sandbox::ReadOnly),
        );
        assert_eq!(a, plain(&claude, "go", Resume::Fresh).1);
    }

    #[test]
    fn claude_gets_its_permission_mode_before_the_hook() {
        let claude = RunnerSpec::Preset(Preset::Claude);
        let permission = |mode, hook: Option<&str>| ApprovalMode::Permission {
            mode,
            hook: hook.map(str::to_string),
        };
        let (_, a) = line(
            &claude,
            "go",
            Resume::Id("3f6d"),
            permission(PermissionMode::Plan, Some(HOOK)),
        );
        assert_eq!(
            a,
            strings(&[
                "-p",
                "go",
                "--output-format",
                "stream-json",
                "--verbose",
                "--resume",
                "3f6d",
                "--permission-mode",
                "plan",
                "--settings",
                HOOK
            ])
        );
        let (_, a) = line(
            &claude,
            "go",
            Resume::Fresh,
            permission(PermissionMode::AcceptEdits, None),
        );
        assert_eq!(a[5..], strings(&["--permission-mode", "acceptEdits"]));
        // Other runners know no permission mode.
        let codex = RunnerSpec::Preset(Preset::CodexExec);
        let (_, a) = line(
            &codex,
            "go",
            Resume::Fresh,
            permission(PermissionMode::Plan, Some(HOOK)),
        );
        assert_eq!(a, strings(&["exec", "--json", "--", "go"]));
        let custom = RunnerSpec::Command(vec!["t".into()]);
        let (_, a) = line(
            &custom,
            "go",
            Resume::Fresh,
            permission(PermissionMode::Plan, None),
        );
        assert_eq!(a, strings(&["go"]));
    }

    #[test]
    fn codex_app_server_takes_everything_over_stdin() {
        let codex = RunnerSpec::Preset(Preset::Codex);
        for resume in [Resume::Fresh, Resume::Latest, Resume::Id("0199a213")] {
            let (p, a) = line(
                &codex,
                "-v go",
                resume,
                ApprovalMode::Sandbox(Sandbox::ReadOnly),
            );
            assert_eq!((p.as_str(), a), ("codex", strings(&["app-server"])));
        }
        let invocation = Invocation {
            prompt: "go",
            resume: Resume::Fresh,
            approval: ApprovalMode::RunnerDefault,
            hint: Some("Files: outbox."),
            attached: None,
        };
        assert_eq!(runner_prompt(&codex, &invocation), "Files: outbox.\n\ngo");
    }

    #[test]
    fn codex_resumes_with_its_subcommand() {
        let codex = RunnerSpec::Preset(Preset::CodexExec);
        let (p, a) = plain(&codex, "go", Resume::Fresh);
        assert_eq!(
            (p.as_str(), a),
            ("codex", strings(&["exec", "--json", "--", "go"]))
        );
        let (_, a) = plain(&codex, "-v resume", Resume::Id("0199a213"));
        assert_eq!(
            a,
            strings(&["exec", "--json", "resume", "0199a213", "--", "-v resume"])
        );
        let (_, a) = plain(&codex, "go", Resume::Latest);
        assert_eq!(
            a,
            strings(&["exec", "--json", "resume", "--last", "--", "go"])
        );
    }

    #[test]
    fn codex_gets_its_sandbox_right_after_exec() {
        let codex = RunnerSpec::Preset(Preset::CodexExec);
        let sandboxed =
            |sandbox, resume| line(&codex, "go", resume, ApprovalMode::Sandbox(sandbox)).1;
        assert_eq!(
            sandboxed(Sandbox::WorkspaceWrite, Resume::Fresh),
            strings(&["exec", "--sandbox", "workspace-write", "--json", "--", "go"])
        );
        assert_eq!(
            sandboxed(Sandbox::ReadOnly, Resume::Id("0199a213")),
            strings(&[
                "exec",
                "--sandbox",
                "read-only",
                "--json",
                "resume",
                "0199a213",
                "--",
                "go"
            ])
        );
        assert_eq!(
            sandboxed(Sandbox::FullAccess, Resume::Latest),
            strings(&[
                "exec",
                "--sandbox",
                "danger-full-access",
                "--json",
                "resume",
                "--last",
                "--",
                "go"
            ])
        );
        // A hook means nothing to Codex.
        let (_, a) = line(&codex, "go", Resume::Fresh, hook());
        assert_eq!(a, strings(&["exec", "--json", "--", "go"]));
    }

    #[test]
    fn other_presets_keep_their_arguments() {
        for approval in [
            ApprovalMode::RunnerDefault,
            hook(),
            ApprovalMode::Sandbox(Sandbox::FullAccess),
        ] {
            let (p, a) = line(
                &RunnerSpec::Preset(Preset::Aider),
                "go",
                Resume::Id("x"),
                approval.clone(),
            );
            assert_eq!(
                (p.as_str(), a),
                (
                    "aider",
                    strings(&["--message", "go", "--yes-always", "--no-pretty"])
                )
            );
            let (p, a) = line(
                &RunnerSpec::Preset(Preset::Gemini),
                "go",
                Resume::Latest,
                approval,
            );
            assert_eq!((p.as_str(), a), ("gemini", strings(&["-p", "go"])));
        }
    }

    fn attached() -> Attached {
        Attached {
            dir: PathBuf::from("/state/inbox/a1/s1"),
            files: vec![
                AttachedFile {
                    path: PathBuf::from("/state/inbox/a1/s1/photo-1a2b.jpg"),
                    mime: "image/jpeg".into(),
                    size: 123_456,
                },
                AttachedFile {
                    path: PathBuf::from("/state/inbox/a1/s1/notes (v2).txt"),
                    mime: "text/plain".into(),
                    size: 12,
                },
            ],
        }
    }

    const WITH_FILES: &str = "what is this?\n\nAttached files:\n\
- /state/inbox/a1/s1/photo-1a2b.jpg (image/jpeg, 123 KB)\n\
- /state/inbox/a1/s1/notes (v2).txt (text/plain, 12 bytes)";

    #[test]
    fn attached_files_are_listed_in_the_prompt_and_claude_may_read_their_folder() {
        let files = attached();
        let with = |spec: &RunnerSpec, resume, approval| {
            let invocation = Invocation {
                prompt: "what is this?\n",
                resume,
                approval,
                hint: None,
                attached: Some(&files),
            };
            command_line(spec, &invocation).unwrap()
        };
        let claude = RunnerSpec::Preset(Preset::Claude);
        let (p, a) = with(&claude, Resume::Id("3f6d"), hook());
        assert_eq!(p, "claude");
        assert_eq!(
            a,
            strings(&[
                "-p",
                WITH_FILES,
                "--output-format",
                "stream-json",
                "--verbose",
                "--add-dir",
                "/state/inbox/a1/s1",
                "--resume",
                "3f6d",
                "--settings",
                HOOK
            ])
        );
        // The others get the paths in the prompt only.
        let (_, a) = with(
            &RunnerSpec::Preset(Preset::CodexExec),
            Resume::Fresh,
            ApprovalMode::Sandbox(Sandbox::WorkspaceWrite),
        );
        assert_eq!(
            a,
            strings(&[
                "exec",
                "--sandbox",
                "workspace-write",
                "--json",
                "--",
                WITH_FILES
            ])
        );
        let (_, a) = with(
            &RunnerSpec::Preset(Preset::Aider),
            Resume::Fresh,
            ApprovalMode::RunnerDefault,
        );
        assert_eq!(
            a,
            strings(&["--message", WITH_FILES, "--yes-always", "--no-pretty"])
        );
        let (_, a) = with(
            &RunnerSpec::Preset(Preset::Gemini),
            Resume::Fresh,
            ApprovalMode::RunnerDefault,
        );
        assert_eq!(a, strings(&["-p", WITH_FILES]));
        let custom = RunnerSpec::Command(vec!["./r.sh".into(), "{prompt}".into(), "-x".into()]);
        let (_, a) = with(&custom, Resume::Fresh, ApprovalMode::RunnerDefault);
        assert_eq!(a, strings(&[WITH_FILES, "-x"]));

        // No files, or an empty list: the prompt and argv as before.
        let none = Attached::default();
        let invocation = Invocation {
            prompt: "go",
            resume: Resume::Fresh,
            approval: ApprovalMode::RunnerDefault,
            hint: None,
            attached: Some(&none),
        };
        assert_eq!(
            command_line(&claude, &invocation).unwrap().1,
            plain(&claude, "go", Resume::Fresh).1
        );
    }

    #[test]
    fn sizes_read_in_decimal_units() {
        assert_eq!(size_text(0), "0 bytes");
        assert_eq!(size_text(999), "999 bytes");
        assert_eq!(size_text(1000), "1 KB");
        assert_eq!(size_text(123_456), "123 KB");
        assert_eq!(size_text(999_499), "999 KB");
        assert_eq!(size_text(999_500), "1.0 MB");
        assert_eq!(size_text(23_400_000), "23.4 MB");
    }

    #[test]
    fn the_hint_reaches_presets_only() {
        let with_hint = |spec: &RunnerSpec| {
            let invocation = Invocation {
                prompt: "go",
                resume: Resume::Fresh,
                approval: hook(),
                hint: Some("Files: outbox."),
                attached: None,
            };
            command_line(spec, &invocation).unwrap().1
        };
        let claude = with_hint(&RunnerSpec::Preset(Preset::Claude));
        assert_eq!(claude[1], "go", "the prompt stays as typed");
        assert_eq!(
            claude[claude.len() - 2..],
            strings(&["--append-system-prompt", "Files: outbox."])
        );
        assert_eq!(
            with_hint(&RunnerSpec::Preset(Preset::CodexExec)),
            strings(&["exec", "--json", "--", "Files: outbox.\n\ngo"])
        );
        assert_eq!(
            with_hint(&RunnerSpec::Preset(Preset::Aider))[1],
            "Files: outbox.\n\ngo"
        );
        assert_eq!(
            with_hint(&RunnerSpec::Preset(Preset::Gemini)),
            strings(&["-p", "Files: outbox.\n\ngo"])
        );
        let custom = RunnerSpec::Command(vec!["t".into(), "{prompt}".into()]);
        assert_eq!(with_hint(&custom), strings(&["go"]));
    }

    #[test]
    fn the_resume_choice() {
        assert_eq!(Resume::choose(false, Some("abc")), Resume::Fresh);
        assert_eq!(Resume::choose(false, None), Resume::Fresh);
        assert_eq!(Resume::choose(true, Some("abc")), Resume::Id("abc"));
        assert_eq!(Resume::choose(true, None), Resume::Latest);
        // A hand-edited id that would become an option is not used.
        assert_eq!(Resume::choose(true, Some("--help")), Resume::Latest);
    }
}
