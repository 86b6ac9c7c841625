//! Which AI CLI a project runs. Chosen at pairing (`remoteagentctl pair
//! --runner claude` or `--command ./my-tool --flag`) and kept in the agent's
//! metadata.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    Claude,
    /// Codex through `codex app-server`, which asks before tool uses.
    Codex,
    /// Codex through `codex exec --json`: the fallback for Codex versions
    /// without `app-server`; it cannot ask, so only a sandbox applies.
    #[serde(rename = "codex-exec", alias = "codex_exec")]
    CodexExec,
    Aider,
    Gemini,
}

impl Preset {
    pub const ALL: [Preset; 5] = [
        Preset::Claude,
        Preset::Codex,
        Preset::CodexExec,
        Preset::Aider,
        Preset::Gemini,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Claude => "claude",
            Preset::Codex => "codex",
            Preset::CodexExec => "codex-exec",
            Preset::Aider => "aider",
            Preset::Gemini => "gemini",
        }
    }
}

impl Preset {
    /// The program it runs (both Codex presets run `codex`).
    pub fn program(self) -> &'static str {
        match self {
            Preset::CodexExec => "codex",
            other => other.name(),
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown runner '{s}' (expected one of: claude, codex, codex-exec, aider, gemini)")
            })
    }
}

/// `{"preset": "claude"}` or `{"command": ["./runner.sh", "--fast"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunnerSpec {
    Preset(Preset),
    /// Any program. The prompt replaces an argument that is exactly
    /// `{prompt}`, or is appended as the last argument when there is none.
    Command(Vec<String>),
}

impl Default for RunnerSpec {
    fn default() -> Self {
        RunnerSpec::Preset(Preset::Claude)
    }
}

impl RunnerSpec {
    /// A short name for tables and the `started` event.
    pub fn display_name(&self) -> String {
        match self {
            RunnerSpec::Preset(p) => p.name().to_string(),
            RunnerSpec::Command(argv) => argv
                .first()
                .map(|p| {
                    std::path::Path::new(p)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| p.clone())
                })
                .unwrap_or_else(|| "command".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(
            serde_json::to_string(&RunnerSpec::Preset(Preset::Codex)).unwrap(),
            r#"{"preset":"codex"}"#
        );
        let c: RunnerSpec = serde_json::from_str(r#"{"command":["./r.sh","{prompt}"]}"#).unwrap();
        assert_eq!(c.display_name(), "r.sh");
        assert_eq!("Gemini".parse::<Preset>().unwrap(), Preset::Gemini);
        assert!("vim".parse::<Preset>().is_err());
        assert_eq!("codex-exec".parse::<Preset>().unwrap(), Preset::CodexExec);
        assert_eq!(
            serde_json::to_string(&RunnerSpec::Preset(Preset::CodexExec)).unwrap(),
            r#"{"preset":"codex-exec"}"#
        );
    }
}
