//! The run's mode (`plan` < `ask` < `edits` < `auto`, chosen with `/mode`
//! on the phone) against the policy of this computer, which always has the
//! last word.
//!
//! The project's approval policy is itself a mode, the loosest this
//! computer allows from the phone: `deny` is `plan`, `ask` is `ask`,
//! `allow` is `auto`. The phone's mode may only be stricter, unless the
//! project's config says `allow_remote_loosen = true`; a looser one is
//! clamped to the policy's and the run says so in a notice. A command
//! without a mode (an older cloud, or none chosen) runs in the policy's.
//!
//! Only Claude Code and Codex take modes; the other runners run as
//! configured, whatever the phone chose.
//!
//! What a mode means for a run:
//!
//! | mode | Claude Code | Codex | the hook's policy |
//! |---|---|---|---|
//! | plan | `--permission-mode plan` | `--sandbox read-only` | ask (deny under `deny`) |
//! | ask | as configured | `--sandbox workspace-write` | ask |
//! | edits | `--permission-mode acceptEdits` | `--sandbox workspace-write` | ask; edit tools allowed |
//! | auto | as configured | `--sandbox danger-full-access` | allow |

use remoteagent_proto::modes::Mode;
use remoteagent_proto::runner::{Preset, RunnerSpec};

use super::policy::{PolicyKind, ProjectPolicy, ToolRule};
use crate::runner::invocation::PermissionMode;
use crate::runner::{ApprovalMode, Sandbox};

/// The tools that edit files: what `edits` allows without asking.
pub const EDIT_TOOLS: &[&str] = &["Edit", "MultiEdit", "Write", "NotebookEdit"];

/// The loosest mode a policy allows from the phone.
pub fn policy_mode(kind: PolicyKind) -> Mode {
    match kind {
        PolicyKind::Deny => Mode::Plan,
        PolicyKind::Ask => Mode::Ask,
        PolicyKind::Allow => Mode::Auto,
    }
}

/// Whether `runner` has options for modes.
pub fn takes_modes(runner: &RunnerSpec) -> bool {
    matches!(
        runner,
        RunnerSpec::Preset(Preset::Claude | Preset::Codex | Preset::CodexExec)
    )
}

/// A run's mode, decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeChoice {
    /// The mode the run is in; `None` for runners that take no modes.
    pub mode: Option<Mode>,
    /// Said in the run's stream when the phone's mode was clamped.
    pub notice: Option<String>,
    /// The project's policy as the run's hook applies it.
    pub policy: ProjectPolicy,
}

/// The mode of a run of `agent` (its name, for the notice) with `runner`
/// under `policy`, when the phone asked for `requested`.
pub fn choose(
    policy: ProjectPolicy,
    runner: &RunnerSpec,
    requested: Option<Mode>,
    agent: &str,
) -> ModeChoice {
    if !takes_modes(runner) {
        return ModeChoice {
            mode: None,
            notice: None,
            policy,
        };
    }
    let ceiling = policy_mode(policy.policy);
    let (mode, notice) = match requested {
        None => (ceiling, None),
        Some(wanted) if wanted <= ceiling || policy.allow_remote_loosen => (wanted, None),
        Some(wanted) => (
            ceiling,
            Some(format!(
                "{agent} runs in {ceiling} mode: this computer's policy does not allow {wanted} \
                 from the phone (allow_remote_loosen)"
            )),
        ),
    };
    ModeChoice {
        mode: Some(mode),
        notice,
        policy: hook_policy(policy, mode),
    }
}

/// The policy the hook applies in `mode`.
fn hook_policy(mut policy: ProjectPolicy, mode: Mode) -> ProjectPolicy {
    policy.policy = match mode {
        // Planning reads; anything else (leaving plan mode included) is
        // the phone's to allow, or denied where the policy denies.
        Mode::Plan if policy.policy == PolicyKind::Deny => PolicyKind::Deny,
        Mode::Plan | Mode::Ask | Mode::Edits => PolicyKind::Ask,
        Mode::Auto => PolicyKind::Allow,
    };
    if mode == Mode::Edits {
        for tool in EDIT_TOOLS {
            policy.allow_tools.push(ToolRule {
                tool: (*tool).to_string(),
                pattern: None,
            });
        }
    }
    policy
}

/// `approval` (what [`super::runner_mode`] chose) with the options of
/// `mode` for `runner`.
pub fn with_mode(approval: ApprovalMode, runner: &RunnerSpec, mode: Option<Mode>) -> ApprovalMode {
    let Some(mode) = mode else {
        return approval;
    };
    match runner {
        RunnerSpec::Preset(Preset::Claude) => {
            let permission = match mode {
                Mode::Plan => PermissionMode::Plan,
                Mode::Edits => PermissionMode::AcceptEdits,
                Mode::Ask | Mode::Auto => return approval,
            };
            let hook = match approval {
                ApprovalMode::Hook { settings } => Some(settings),
                ApprovalMode::Permission { hook, .. } => hook,
                ApprovalMode::RunnerDefault | ApprovalMode::Sandbox(_) => None,
            };
            ApprovalMode::Permission {
                mode: permission,
                hook,
            }
        }
        RunnerSpec::Preset(Preset::Codex | Preset::CodexExec) => {
            ApprovalMode::Sandbox(match mode {
                Mode::Plan => Sandbox::ReadOnly,
                Mode::Ask | Mode::Edits => Sandbox::WorkspaceWrite,
                Mode::Auto => Sandbox::FullAccess,
            })
        }
        _ => approval,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CLAUDE: RunnerSpec = RunnerSpec::Preset(Preset::Claude);
    const CODEX: RunnerSpec = RunnerSpec::Preset(Preset::Codex);

    fn policy(kind: PolicyKind, loosen: bool) -> ProjectPolicy {
        ProjectPolicy {
            policy: kind,
            allow_remote_loosen: loosen,
            ..ProjectPolicy::default()
        }
    }

    /// The clamp, for every policy and every mode the phone may send.
    #[test]
    fn the_phone_may_only_be_stricter_unless_the_computer_allows_looser() {
        use Mode::*;
        use PolicyKind as P;
        // (policy, requested, effective without loosen)
        let table = [
            (P::Deny, None, Plan),
            (P::Deny, Some(Plan), Plan),
            (P::Deny, Some(Ask), Plan),
            (P::Deny, Some(Edits), Plan),
            (P::Deny, Some(Auto), Plan),
            (P::Ask, None, Ask),
            (P::Ask, Some(Plan), Plan),
            (P::Ask, Some(Ask), Ask),
            (P::Ask, Some(Edits), Ask),
            (P::Ask, Some(Auto), Ask),
            (P::Allow, None, Auto),
            (P::Allow, Some(Plan), Plan),
            (P::Allow, Some(Ask), Ask),
            (P::Allow, Some(Edits), Edits),
            (P::Allow, Some(Auto), Auto),
        ];
        for (kind, requested, effective) in table {
            let chosen = choose(policy(kind, false), &CLAUDE, requested, "hello");
            assert_eq!(chosen.mode, Some(effective), "{kind:?} {requested:?}");
            let clamped = requested.is_some_and(|r| r != effective);
            assert_eq!(chosen.notice.is_some(), clamped, "{kind:?} {requested:?}");
            // With allow_remote_loosen, the phone's mode is taken as it is.
            let loose = choose(policy(kind, true), &CODEX, requested, "hello");
            assert_eq!(loose.mode, Some(requested.unwrap_or(effective)));
            assert_eq!(loose.notice, None);
        }
    }

    #[test]
    fn a_clamp_says_so_in_words() {
        let chosen = choose(
            policy(PolicyKind::Ask, false),
            &CLAUDE,
            Some(Mode::Auto),
            "hello",
        );
        assert_eq!(
            chosen.notice.as_deref(),
            Some(
                "hello runs in ask mode: this computer's policy does not allow auto from the phone (allow_remote_loosen)"
            )
        );
    }

    #[test]
    fn runners_without_modes_run_as_configured() {
        for runner in [
            RunnerSpec::Command(vec!["./r.sh".into()]),
            RunnerSpec::Preset(Preset::Aider),
            RunnerSpec::Preset(Preset::Gemini),
        ] {
            let chosen = choose(
                policy(PolicyKind::Ask, false),
                &runner,
                Some(Mode::Auto),
                "x",
            );
            assert_eq!(chosen.mode, None);
            assert_eq!(chosen.notice, None);
            assert_eq!(chosen.policy, policy(PolicyKind::Ask, false));
            assert_eq!(
                with_mode(ApprovalMode::RunnerDefault, &runner, Some(Mode::Plan)),
                ApprovalMode::RunnerDefault
            );
        }
    }

    #[test]
    fn the_hook_follows_the_mode() {
        let bash = json!({"command": "ls"});
        let edit = json!({"file_path": "/p/a.rs"});
        let hook = |kind, mode| choose(policy(kind, true), &CLAUDE, Some(mode), "x").policy;
        use super::super::policy::Verdict;
        assert_eq!(
            hook(PolicyKind::Allow, Mode::Plan).decide("Bash", &bash),
            Verdict::Ask
        );
        assert_eq!(
            hook(PolicyKind::Deny, Mode::Plan).decide("Bash", &bash),
            Verdict::Deny
        );
        assert_eq!(
            hook(PolicyKind::Allow, Mode::Ask).decide("Bash", &bash),
            Verdict::Ask
        );
        let edits = hook(PolicyKind::Allow, Mode::Edits);
        assert_eq!(edits.decide("Edit", &edit), Verdict::Allow);
        assert_eq!(edits.decide("Write", &edit), Verdict::Allow);
        assert_eq!(edits.decide("Bash", &bash), Verdict::Ask);
        assert_eq!(
            hook(PolicyKind::Ask, Mode::Auto).decide("Bash", &bash),
            Verdict::Allow
        );
        // Read-only tools stay allowed in every mode.
        let read = json!({"file_path": "/p/a.rs"});
        assert_eq!(
            hook(PolicyKind::Deny, Mode::Plan).decide("Read", &read),
            Verdict::Allow
        );
    }

    #[test]
    fn argv_options_per_mode() {
        let hooked = || ApprovalMode::Hook {
            settings: "{}".into(),
        };
        let claude = |mode| with_mode(hooked(), &CLAUDE, Some(mode));
        assert_eq!(
            claude(Mode::Plan),
            ApprovalMode::Permission {
                mode: PermissionMode::Plan,
                hook: Some("{}".into())
            }
        );
        assert_eq!(
            claude(Mode::Edits),
            ApprovalMode::Permission {
                mode: PermissionMode::AcceptEdits,
                hook: Some("{}".into())
            }
        );
        assert_eq!(claude(Mode::Ask), hooked());
        assert_eq!(claude(Mode::Auto), hooked());
        // Without a hook target Claude still gets its permission mode.
        assert_eq!(
            with_mode(ApprovalMode::RunnerDefault, &CLAUDE, Some(Mode::Plan)),
            ApprovalMode::Permission {
                mode: PermissionMode::Plan,
                hook: None
            }
        );
        let codex = |mode| {
            with_mode(
                ApprovalMode::Sandbox(Sandbox::WorkspaceWrite),
                &CODEX,
                Some(mode),
            )
        };
        assert_eq!(codex(Mode::Plan), ApprovalMode::Sandbox(Sandbox::ReadOnly));
        assert_eq!(
            codex(Mode::Ask),
            ApprovalMode::Sandbox(Sandbox::WorkspaceWrite)
        );
        assert_eq!(
            codex(Mode::Edits),
            ApprovalMode::Sandbox(Sandbox::WorkspaceWrite)
        );
        assert_eq!(
            codex(Mode::Auto),
            ApprovalMode::Sandbox(Sandbox::FullAccess)
        );
        // No mode: as chosen before.
        assert_eq!(with_mode(hooked(), &CLAUDE, None), hooked());
    }

    /// Each policy's own mode renders the argv the policy gave before
    /// modes existed, but for `deny`, where Claude Code now plans.
    #[test]
    fn a_policys_own_mode_keeps_codexs_sandbox() {
        for (kind, sandbox) in [
            (PolicyKind::Deny, Sandbox::ReadOnly),
            (PolicyKind::Ask, Sandbox::WorkspaceWrite),
            (PolicyKind::Allow, Sandbox::FullAccess),
        ] {
            let mode = choose(policy(kind, false), &CODEX, None, "x").mode;
            assert_eq!(
                with_mode(
                    ApprovalMode::Sandbox(super::super::sandbox(kind)),
                    &CODEX,
                    mode
                ),
                ApprovalMode::Sandbox(sandbox)
            );
        }
    }
}
