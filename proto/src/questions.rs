//! Questions and plans from Claude Code that reach the phone as buttons:
//! `AskUserQuestion` (a question with options) and `ExitPlanMode` (a plan
//! to approve, revise or reject). Both travel the approval path: the
//! daemon's `approval_request` carries an [`AskKind`] in its optional
//! `kind`, and the phone's `approval` envelope its optional `answer`.
//!
//! Both fields are lenient: an older reader ignores them (and shows a plain
//! approval), and a `kind` this build cannot read is treated as absent.

use serde::{Deserialize, Deserializer, Serialize};

/// Claude Code's tool that asks the user questions.
pub const ASK_USER_QUESTION: &str = "AskUserQuestion";
/// Claude Code's tool that ends plan mode with a plan to approve.
pub const EXIT_PLAN_MODE: &str = "ExitPlanMode";

/// Most options a question is shown with (Claude asks with 2 to 4).
pub const MAX_OPTIONS: usize = 8;
/// Longest question, option label or description carried, in characters.
pub const MAX_QUESTION_CHARS: usize = 1000;
pub const MAX_LABEL_CHARS: usize = 200;
/// Longest plan carried in the event, in characters. The phone shows less
/// (a message holds 4,096); the whole plan is in the session's log.
pub const MAX_PLAN_CHARS: usize = 16_000;
/// Longest answer the phone or the computer may give, in characters.
pub const MAX_ANSWER_CHARS: usize = 2000;

/// What an approval request asks beyond "may I use this tool".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AskKind {
    /// One question of an `AskUserQuestion` (a tool use with several
    /// questions is asked one request per question, in order).
    Question(QuestionAsk),
    /// An `ExitPlanMode` plan.
    Plan(PlanAsk),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuestionAsk {
    pub question: String,
    /// Claude's short chip label ("Auth method"); may be empty.
    #[serde(default)]
    pub header: String,
    #[serde(default)]
    pub options: Vec<QuestionOption>,
    /// Several options may be picked.
    #[serde(default)]
    pub multi_select: bool,
    /// This question's place among the tool use's questions: 1-based.
    #[serde(default = "one")]
    pub index: u32,
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionOption {
    pub label: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanAsk {
    /// The plan (Markdown as Claude wrote it), cut to [`MAX_PLAN_CHARS`].
    pub plan: String,
    /// Characters cut from the end of the plan (0: it is whole).
    #[serde(default)]
    pub cut_chars: u64,
}

/// Reads an optional [`AskKind`], treating one this build cannot read as
/// absent (a newer daemon's kind is shown as a plain approval).
pub fn lenient_kind<'de, D: Deserializer<'de>>(d: D) -> Result<Option<AskKind>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(value.and_then(|v| serde_json::from_value(v).ok()))
}

/// `s` cut to `max` characters, with `…` when cut.
pub fn cut_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        #[serde(default, deserialize_with = "lenient_kind")]
        kind: Option<AskKind>,
    }

    #[test]
    fn kinds_round_trip_and_unknown_ones_are_absent() {
        let q = AskKind::Question(QuestionAsk {
            question: "Which colour?".into(),
            header: "Colour".into(),
            options: vec![QuestionOption {
                label: "Blue".into(),
                description: "cool".into(),
            }],
            multi_select: true,
            index: 1,
            count: 2,
        });
        let json = serde_json::to_value(&q).unwrap();
        assert_eq!(json["type"], "question");
        assert_eq!(json["multiSelect"], true);
        let back: Holder = serde_json::from_value(serde_json::json!({ "kind": json })).unwrap();
        assert_eq!(back.kind, Some(q));
        for odd in [
            serde_json::json!({"kind": {"type": "survey", "x": 1}}),
            serde_json::json!({"kind": {"type": "plan"}}),
            serde_json::json!({"kind": 5}),
            serde_json::json!({"kind": null}),
            serde_json::json!({}),
        ] {
            let h: Holder = serde_json::from_value(odd.clone()).unwrap();
            assert_eq!(h.kind, None, "{odd}");
        }
        let plan: Holder =
            serde_json::from_value(serde_json::json!({"kind": {"type": "plan", "plan": "1. x"}}))
                .unwrap();
        assert_eq!(
            plan.kind,
            Some(AskKind::Plan(PlanAsk {
                plan: "1. x".into(),
                cut_chars: 0
            }))
        );
    }

    #[test]
    fn cutting_counts_characters() {
        assert_eq!(cut_chars("héllo", 5), "héllo");
        assert_eq!(cut_chars("héllo", 4), "hél…");
    }
}
