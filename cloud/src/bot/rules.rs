//! `/rules`: the current agent's approval rules (saved from the ✅ "this
//! session" / "always here" buttons), from the daemon, each with
//! [🗑 Revoke]. Both ask the daemon with a signed `list_rules` command (a
//! revoke names the rule) and follow the answer with `/sessions`' waiter
//! (`sessions::waiter`), which shows the list through [`list_text`].
//!
//! Buttons: `rrev:{agentId}:{ruleId}`, owner only.

use remoteagent_proto::events::CommandEvent;
use remoteagent_proto::rules::{ListRulesPayload, RulesPayload};
use remoteagent_proto::{AgentId, SessionId};

use super::Ctx;
use super::update::CallbackQuery;
use crate::commands;
use crate::db::agents::{self, Agent};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::telegram::{InlineButton, InlineKeyboard, escape_html};

/// `/rules` in a private chat.
pub async fn run(ctx: &Ctx<'_>) -> Result<()> {
    let Some(agent) = ctx.owned_current_agent().await? else {
        return Ok(());
    };
    if !ask(ctx.state, ctx.chat, ctx.user, agent.clone(), None).await? {
        Metrics::inc(&ctx.state.metrics.offline_answers);
        ctx.reply(super::prompt::offline_text(&agent)).await;
    }
    Ok(())
}

/// Publishes `list_rules` and starts following its answer; false when the
/// agent is offline.
async fn ask(
    state: &AppState,
    chat: i64,
    user: i64,
    agent: Agent,
    revoke: Option<u32>,
) -> Result<bool> {
    if !commands::is_online(&state.redis, &agent.id).await? {
        return Ok(false);
    }
    let request = SessionId::generate();
    let command = CommandEvent::ListRules(ListRulesPayload {
        session_id: request.clone(),
        revoke,
    });
    let receivers = commands::publish(&state.redis, &state.key, &agent.id, command)
        .await
        .map_err(Error::internal)?;
    if receivers == 0 {
        return Ok(false);
    }
    tracing::info!(agent = %agent.id, request = %request, ?revoke, "/rules published");
    super::sessions::follow_rules(state.clone(), chat, user, agent, request, view);
    Ok(true)
}

/// A 🗑 Revoke press: `{agentId}:{ruleId}`.
pub async fn press(state: &AppState, query: &CallbackQuery, rest: &str) -> Result<String> {
    let user = query.from.id;
    let Some((agent, rule)) = rest.split_once(':') else {
        return Ok("This button is malformed.".into());
    };
    let (Ok(agent), Ok(rule)) = (AgentId::parse(agent), rule.parse::<u32>()) else {
        return Ok("This button is malformed.".into());
    };
    let Some(agent) = agents::get(&state.db, &agent).await? else {
        return Ok("That agent no longer exists.".into());
    };
    if agent.owner != user {
        return Ok(super::owner::NOT_YOURS.into());
    }
    if !agent.is_active() {
        return Ok("That agent was unpaired.".into());
    }
    let chat = query.message.as_ref().map_or(user, |m| m.chat.id);
    let name = agent.name.clone();
    Ok(if ask(state, chat, user, agent, Some(rule)).await? {
        format!("Revoking rule {rule}…")
    } else {
        format!("{name} is offline.")
    })
}

/// The list as the chat shows it.
/// The answer as the chat shows it: the list and its Revoke buttons.
fn view(
    agent: &crate::db::agents::Agent,
    answer: &RulesPayload,
) -> (String, Option<InlineKeyboard>) {
    (list_text(&agent.name, answer), keyboard(&agent.id, answer))
}

pub(super) fn list_text(agent_name: &str, answer: &RulesPayload) -> String {
    let name = escape_html(agent_name);
    let mut text = String::new();
    if let Some(revoked) = &answer.revoked {
        text.push_str(&format!("🗑 {}\n\n", escape_html(revoked)));
    }
    if answer.rules.is_empty() {
        text.push_str(&format!(
            "📏 <b>{name}</b> has no approval rules. An approval's ✅ this session or ✅ always here button saves one."
        ));
        return text;
    }
    text.push_str(&format!("📏 Approval rules of <b>{name}</b>:"));
    for r in &answer.rules {
        text.push_str(&format!(
            "\n{}. <code>{}</code> · {}",
            r.id,
            escape_html(&r.pattern),
            r.scope.words()
        ));
        if r.uses > 0 {
            text.push_str(&format!(
                " · {} allowed",
                remoteagent_proto::text::plural::count(r.uses, "use", "uses")
            ));
        }
    }
    text.push_str("\n\nTool uses a rule matches run without asking.");
    text
}

/// One 🗑 Revoke button per rule.
pub(super) fn keyboard(agent: &AgentId, answer: &RulesPayload) -> Option<InlineKeyboard> {
    let buttons: Vec<InlineButton> = answer
        .rules
        .iter()
        .map(|r| InlineButton {
            text: format!("🗑 Revoke {}", r.id),
            callback_data: format!("rrev:{agent}:{}", r.id),
        })
        .collect();
    (!buttons.is_empty()).then(|| InlineKeyboard {
        inline_keyboard: buttons.chunks(2).map(<[_]>::to_vec).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use remoteagent_proto::rules::{RuleInfo, Scope};

    #[test]
    fn the_list_shows_each_rule_with_its_scope() {
        let answer = RulesPayload {
            rules: vec![
                RuleInfo {
                    id: 1,
                    pattern: "Bash(cargo test *)".into(),
                    scope: Scope::Session,
                    uses: 2,
                },
                RuleInfo {
                    id: 3,
                    pattern: "Edit(src/**)".into(),
                    scope: Scope::Always,
                    uses: 0,
                },
            ],
            revoked: Some("Revoked rule 2: Bash(ls)".into()),
        };
        let text = list_text("hello", &answer);
        assert!(
            text.starts_with("🗑 Revoked rule 2: Bash(ls)\n\n📏 Approval rules of <b>hello</b>:"),
            "{text}"
        );
        assert!(
            text.contains("\n1. <code>Bash(cargo test *)</code> · this session · 2 uses allowed"),
            "{text}"
        );
        assert!(
            text.contains("\n3. <code>Edit(src/**)</code> · always here\n"),
            "{text}"
        );
        let agent = AgentId::parse("a1").unwrap();
        let k = keyboard(&agent, &answer).unwrap();
        assert_eq!(k.inline_keyboard[0][1].callback_data, "rrev:a1:3");
        assert!(
            keyboard(
                &agent,
                &RulesPayload {
                    rules: vec![],
                    revoked: None
                }
            )
            .is_none()
        );
    }
}
