//! What a session does with a runner's output before it is streamed: one
//! [`OutputFormat`] per session, chosen by the runner.
//!
//! - Claude Code (`--output-format stream-json`), Codex (`exec --json`) and
//!   Codex's app-server (its notifications, `codex_app::render`) write JSON
//!   events, one a line; they are rendered as readable text and
//!   the conversation id they report is kept, so the next prompt can resume
//!   that conversation.
//! - Everything else (Aider, Gemini, custom commands) is plain text.
//!
//! Escape sequences are stripped from every stream first: `NO_COLOR` is a
//! request, not a guarantee. Unknown lines and events come through as they
//! were, so a format change degrades to raw output, never to silence.

use std::path::Path;

use remoteagent_proto::runner::{Preset, RunnerSpec};

use super::ansi::AnsiStrip;
use super::claude::ClaudeStream;
use super::codex::CodexStream;
use super::codex_app::render::CodexAppStream;
pub use super::text::RunStats;

#[derive(Debug)]
enum Kind {
    Claude(ClaudeStream),
    Codex(CodexStream),
    CodexApp(CodexAppStream),
    Plain,
}

/// One session's output handling: escape sequences stripped, JSON events
/// rendered, the conversation id noted.
#[derive(Debug)]
pub struct OutputFormat {
    kind: Kind,
    stdout_ansi: AnsiStrip,
    stderr_ansi: AnsiStrip,
}

impl OutputFormat {
    /// The format of `runner`'s output; `project` is the folder it runs in
    /// (paths under it are shown relative).
    pub fn for_runner(runner: &RunnerSpec, project: &Path) -> Self {
        let kind = match runner {
            RunnerSpec::Preset(Preset::Claude) => Kind::Claude(ClaudeStream::new(project)),
            RunnerSpec::Preset(Preset::Codex) => Kind::CodexApp(CodexAppStream::new(project)),
            RunnerSpec::Preset(Preset::CodexExec) => Kind::Codex(CodexStream::new(project)),
            RunnerSpec::Preset(Preset::Aider | Preset::Gemini) | RunnerSpec::Command(_) => {
                Kind::Plain
            }
        };
        OutputFormat {
            kind,
            stdout_ansi: AnsiStrip::new(),
            stderr_ansi: AnsiStrip::new(),
        }
    }

    /// Feeds decoded stdout text; returns what to show.
    pub fn stdout(&mut self, text: &str) -> String {
        let text = self.stdout_ansi.push(text);
        match &mut self.kind {
            Kind::Claude(c) => c.push(&text),
            Kind::Codex(c) => c.push(&text),
            Kind::CodexApp(c) => c.push(&text),
            Kind::Plain => text,
        }
    }

    /// Feeds decoded stderr text (always plain: the CLIs log there).
    pub fn stderr(&mut self, text: &str) -> String {
        self.stderr_ansi.push(text)
    }

    /// Ends stdout: renders a last line that had no newline.
    pub fn finish_stdout(&mut self) -> String {
        self.stdout_ansi.finish();
        match &mut self.kind {
            Kind::Claude(c) => c.finish(),
            Kind::Codex(c) => c.finish(),
            Kind::CodexApp(c) => c.finish(),
            Kind::Plain => String::new(),
        }
    }

    pub fn finish_stderr(&mut self) {
        self.stderr_ansi.finish();
    }

    /// The turns and cost the runner reported (Claude Code only: Codex
    /// reports tokens, the others nothing).
    pub fn stats(&self) -> RunStats {
        match &self.kind {
            Kind::Claude(c) => c.stats(),
            Kind::Codex(_) | Kind::CodexApp(_) | Kind::Plain => RunStats::default(),
        }
    }

    /// The conversation id the runner reported (Claude's `session_id`,
    /// Codex's `thread_id`), already checked with
    /// [`super::text::valid_conversation_id`].
    pub fn conversation(&self) -> Option<&str> {
        match &self.kind {
            Kind::Claude(c) => c.session_id(),
            Kind::Codex(c) => c.thread_id(),
            Kind::CodexApp(c) => c.thread_id(),
            Kind::Plain => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_output_loses_its_escapes_and_nothing_else() {
        let mut f =
            OutputFormat::for_runner(&RunnerSpec::Command(vec!["./tool".into()]), Path::new("/p"));
        let mut out = f.stdout("\x1b[1mbold\x1b");
        out += &f.stdout("[0m {\"type\":\"result\"}\n");
        out += &f.finish_stdout();
        assert_eq!(out, "bold {\"type\":\"result\"}\n");
        assert_eq!(f.stderr("\x1b[31mwarn\x1b[0m\n"), "warn\n");
        assert_eq!(f.conversation(), None);
    }
}
