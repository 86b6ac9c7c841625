//! Shell completion: `remoteagentctl completions SHELL` and the hidden
//! `remoteagentctl __complete-agents` it calls back.
//!
//! The scripts are clap_complete's static ones, so packagers can write them
//! at build time (`packaging/build-deb`, `packaging/install.sh`) and every
//! fixed value is in them, `--runner`'s included (its parser lists the
//! presets). Agent names exist only in the running daemon, so the bash,
//! zsh and fish scripts get a few lines that ask for them at TAB time by
//! running `remoteagentctl __complete-agents`, which prints one name a line
//! and prints nothing (exit 0) when no daemon answers within
//! [`ANSWER_WITHIN`]. (clap_complete's dynamic engine would do it all by
//! calling the binary for every word, but it is behind an `unstable-`
//! feature whose script format may change between releases, and its
//! scripts name the binary's path at generation time.) Elvish and
//! PowerShell get the static script alone.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap_complete::Shell;
use remoteagent_control::BlockingClient;
use remoteagent_proto::control::{ClientMessage, Request, Response};
use remoteagent_proto::runner::Preset;

/// The hidden subcommand that prints the agents' names.
pub const AGENTS_HELPER: &str = "__complete-agents";
/// How long completion waits for the daemon: a TAB must never hang.
pub const ANSWER_WITHIN: Duration = Duration::from_millis(700);
/// The subcommands whose positional `agent` names an agent.
const AGENT_COMMANDS: &[&str] = &["stop", "logs", "sessions", "unpair"];

/// `--runner`'s parser: the presets' names as possible values (help and
/// completion show them), any case accepted.
pub fn runner_parser() -> impl TypedValueParser<Value = Preset> {
    PossibleValuesParser::new(Preset::ALL.map(Preset::name)).try_map(|s| s.parse::<Preset>())
}

/// Prints the completion script for `shell`.
pub fn print_script(shell: Shell, mut cmd: clap::Command) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "remoteagentctl", &mut out);
    let script = with_agent_names(shell, &String::from_utf8(out)?);
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(script.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// clap's script with the lines that complete agent names added.
pub fn with_agent_names(shell: Shell, script: &str) -> String {
    let commands = AGENT_COMMANDS.join("|");
    match shell {
        Shell::Bash => format!(
            "{script}
# Agent names come from the running daemon (nothing when it does not answer).
_remoteagentctl_with_agents() {{
    _remoteagentctl \"$@\"
    local cur=\"${{COMP_WORDS[COMP_CWORD]}}\" prev=\"${{COMP_WORDS[COMP_CWORD-1]}}\" word sub=\"\"
    for word in \"${{COMP_WORDS[@]:1:COMP_CWORD-1}}\"; do
        case \"$word\" in {commands}) sub=\"$word\"; break ;; esac
    done
    [[ -n \"$sub\" && \"$cur\" != -* ]] || return 0
    case \"$prev\" in -f|--follow|--json|\"$sub\") ;; -*) return 0 ;; esac
    local kept=() reply
    for reply in \"${{COMPREPLY[@]}}\"; do
        [[ \"$reply\" == \"<\"*\">\" ]] || kept+=(\"$reply\")
    done
    COMPREPLY=(\"${{kept[@]}}\" $(compgen -W \"$(remoteagentctl {AGENTS_HELPER} 2>/dev/null)\" -- \"$cur\"))
}}
complete -F _remoteagentctl_with_agents -o bashdefault -o default remoteagentctl
"
        ),
        Shell::Zsh => {
            let helper = format!(
                "
# Agent names come from the running daemon (nothing when it does not answer).
_remoteagentctl_agents() {{
    local -a agents
    agents=(${{(f)\"$(remoteagentctl {AGENTS_HELPER} 2>/dev/null)\"}})
    compadd -a agents
}}
"
            );
            let mut out = String::new();
            for (i, line) in script.lines().enumerate() {
                if line.contains(":agent -- ") && line.ends_with(":_default' \\") {
                    out.push_str(&line.replace(":_default' \\", ":_remoteagentctl_agents' \\"));
                } else {
                    out.push_str(line);
                }
                out.push('\n');
                // After `#compdef`, which must stay the first line.
                if i == 0 {
                    out.push_str(&helper);
                }
            }
            out
        }
        Shell::Fish => {
            let mut out = format!(
                "{script}\n# Agent names come from the running daemon (nothing when it does not answer).\n"
            );
            for command in AGENT_COMMANDS {
                out.push_str(&format!(
                    "complete -c remoteagentctl -n \"__fish_remoteagentctl_using_subcommand {command}\" -f -a \"(remoteagentctl {AGENTS_HELPER} 2>/dev/null)\"\n"
                ));
            }
            out
        }
        _ => script.to_string(),
    }
}

/// Prints the paired agents' names, one a line; nothing on any failure.
pub fn print_agents(socket: &Path) {
    for name in agent_names(socket) {
        println!("{name}");
    }
}

/// The names to offer: a name a shell can take as one word, else the id
/// (which every agent command accepts too).
fn agent_names(socket: &Path) -> Vec<String> {
    if !socket.exists() {
        return Vec::new();
    }
    let deadline = Instant::now() + ANSWER_WITHIN;
    let Ok(mut client) = BlockingClient::connect(socket) else {
        return Vec::new();
    };
    let Ok(line) = remoteagent_control::codec::encode_line(&ClientMessage {
        id: remoteagent_control::blocking::HELLO_ID + 1,
        request: Request::List,
    }) else {
        return Vec::new();
    };
    if client.send_line(&line).is_err() {
        return Vec::new();
    }
    match client.next_before(deadline) {
        Ok(reply) => match reply.data {
            Some(Response::Agents { agents }) => agents
                .into_iter()
                .map(|a| {
                    let plain = !a.name.is_empty()
                        && a.name
                            .chars()
                            .all(|c| c.is_alphanumeric() || "._-+@".contains(c));
                    if plain { a.name } else { a.id.to_string() }
                })
                .collect(),
            _ => Vec::new(),
        },
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_parser_lists_and_parses_presets() {
        let parser = runner_parser();
        let values: Vec<String> = parser
            .possible_values()
            .unwrap()
            .map(|v| v.get_name().to_string())
            .collect();
        assert_eq!(values, ["claude", "codex", "codex-exec", "aider", "gemini"]);
    }

    #[test]
    fn zsh_agent_positionals_call_the_helper() {
        let script = "#compdef remoteagentctl\n':agent -- Agent name or id prefix:_default' \\\n'::path:_files' \\\n";
        let out = with_agent_names(Shell::Zsh, script);
        assert!(out.starts_with("#compdef remoteagentctl\n"), "{out}");
        assert!(
            out.contains("':agent -- Agent name or id prefix:_remoteagentctl_agents' \\"),
            "{out}"
        );
        assert!(out.contains("'::path:_files'"), "{out}");
    }
}
