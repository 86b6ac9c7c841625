//! `/start` and `/help`.

use super::Ctx;
use crate::error::Result;

pub(crate) const HELP: &str = "<b>RemoteAgent</b> runs the AI coding agent on your computer from here.\n\n\
<b>Pairing</b>\n\
On your computer: <code>remoteagentctl pair ./your-project</code>, then send\n\
/pair CODE — confirm the code it prints\n\n\
<b>Using agents</b>\n\
Any text message is a prompt for your current agent.\n\
A photo or document goes with a prompt: its caption, or your next message.\n\
A voice note is transcribed and shown with ▶ Run (when the cloud has speech to text).\n\
Files your agent writes to <code>.remoteagent/outbox/</code> arrive here when the run ends.\n\
A prompt sent while your agent is busy waits in its queue and runs when the run ends; \
its buttons: ▶ Run now — stop current, ✖ Cancel.\n\
/agents — your agents and which are online\n\
/use NAME — switch the current agent\n\
/new — the next prompt starts a new session\n\
/mode — how freely the current agent may act: plan, ask, edits or auto (buttons; /mode plan sets it)\n\
/sessions — the agent's recent sessions; ▶ Resume makes the next prompt continue one\n\
/rules — the agent's approval rules (saved from ✅ this session / always here), with 🗑 Revoke\n\
/stop — stop the current agent's run\n\
/queue — the prompts waiting while your agent is busy, with ✖ Cancel\n\
/clean — remove the agent's finished worktrees of parallel runs (their branches stay)\n\
/get PATH — a file of the project as a document (a folder comes zipped)\n\
/status — current agent, its run, plan\n\
/notify on|off — a message when a run ends, so your phone notifies you (on by default)\n\
/unpair NAME — revoke an agent\n\
/help — this list\n\n\
<b>Topics</b>\n\
With topics on (my forum topic mode in this chat, or a forum group you opted in), each agent \
gets its own topic, named after it, the first time you use it: its runs, approvals and files \
show there, and whatever you write in an agent's topic goes to that agent with no /use. \
Unpairing an agent closes its topic; a topic you delete is opened again on its next run.\n\n\
<b>Buttons</b>\n\
⏹ Stop under a run's output stops it.\n\
A tool Claude wants to use comes with ✅ Approve / ⛔ Deny; when a narrow rule fits, ✅ Once / \
✅ <i>rule</i> this session / ✅ <i>rule</i> always here: tool uses that rule matches then run without asking (/rules).\n\
Claude's questions come with one button per option and ✎ other: tap it, then send your answer.\n\
A plan comes with ✅ Approve plan / ✎ Revise (then send what to change) / ⛔ Reject.\n\
A queued prompt: ▶ Run now — stop current / ✖ Cancel. A voice note: ▶ Run / ✎ Edit / ✖ Cancel.\n\
/agents, /mode and /sessions answer with buttons: pick an agent, a mode, ▶ Resume a session.\n\
A run that changed files in a git project ends with a card: 🔍 Diff (▶ Next file pages through the files), \
↩️ Undo (↩️ Undo anyway when a file changed again since), ✅ Commit or 🌿 Branch (a proposed message: \
commit it, or ✎ Edit message and send yours).\n\n\
<b>Groups</b>\n\
Prompts come from this private chat. To use an agent in a group, send /allowgroup there \
(/disallowgroup undoes it); then your messages there that mention me or reply to me are prompts.";

/// `/start`, or `/start CODE` from a `t.me/bot?start=CODE` deep link, which
/// pairs at once.
pub async fn start(ctx: &Ctx<'_>, args: &str) -> Result<()> {
    if crate::pairing::normalize(args).is_some() {
        return super::pair::run(ctx, args).await;
    }
    ctx.reply(format!("👋 Welcome!\n\n{HELP}")).await;
    Ok(())
}

pub async fn help(ctx: &Ctx<'_>) -> Result<()> {
    ctx.reply(HELP).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::HELP;

    /// The commands `bot::mod`'s dispatcher routes: every `"name" =>` (or
    /// `"a" | "b" =>`) arm of its command match.
    fn routed_commands() -> Vec<String> {
        let source = include_str!("mod.rs");
        let mut names = Vec::new();
        for line in source.lines().map(str::trim) {
            let Some((arm, _)) = line.split_once("=>") else {
                continue;
            };
            let parts: Vec<&str> = arm.split('|').map(str::trim).collect();
            if parts.iter().all(|p| {
                p.len() > 2
                    && p.starts_with('"')
                    && p.ends_with('"')
                    && p[1..p.len() - 1].bytes().all(|b| b.is_ascii_lowercase())
            }) {
                names.extend(parts.iter().map(|p| p[1..p.len() - 1].to_string()));
            }
        }
        names
    }

    #[test]
    fn help_lists_every_command_the_bot_answers() {
        let routed = routed_commands();
        assert!(
            routed.len() >= 14,
            "the dispatcher's arms were not found: {routed:?}"
        );
        for name in routed.iter().filter(|n| n.as_str() != "start") {
            assert!(
                HELP.contains(&format!("/{name}")),
                "/help does not mention /{name}"
            );
        }
    }
}
