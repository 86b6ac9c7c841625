//! Claude Code's questions and plans, asked on the phone through the
//! approval path (`proto::questions`).
//!
//! * `AskUserQuestion {questions: [{question, header, options, multiSelect}]}`
//!   is asked one request per question, in order; when the last one is
//!   answered the hook allows the tool with `updatedInput` = the input plus
//!   `answers: {question text: answer}` (what Claude Code ≥ 2.1.85 accepts
//!   from a `PreToolUse` hook in place of its own dialog; several picks of
//!   a multi-select question are one answer, labels joined with ", ", as
//!   Claude Code's own dialog writes them).
//! * `ExitPlanMode {plan}` is one request: approved → allow; revised → deny
//!   whose reason carries the user's feedback, so that Claude revises the
//!   plan; rejected → deny.
//!
//! These are the user's to answer, never the policy's: a project that
//! allows (or denies) every tool still asks them.

use remoteagent_proto::questions::{
    ASK_USER_QUESTION, AskKind, EXIT_PLAN_MODE, MAX_ANSWER_CHARS, MAX_LABEL_CHARS, MAX_OPTIONS,
    MAX_PLAN_CHARS, MAX_QUESTION_CHARS, PlanAsk, QuestionAsk, QuestionOption, cut_chars,
};
use serde_json::{Map, Value};

use super::{ApprovalAnswer, Decision, Origin};

/// Questions of one `AskUserQuestion` tool use taken at most (Claude asks
/// 1 to 4).
const MAX_QUESTIONS: usize = 8;

/// A tool use that is a question or a plan, with what has been answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Special {
    Questions(QuestionSet),
    Plan(PlanAsk),
}

/// An `AskUserQuestion`'s questions, asked one after the other.
#[derive(Debug, Clone, PartialEq)]
pub struct QuestionSet {
    /// The tool's input as Claude gave it, answered in `updatedInput`.
    input: Value,
    questions: Vec<QuestionAsk>,
    /// Answers so far, one per question asked, in order.
    answers: Vec<String>,
}

/// What an answer to a special request does.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Ask the set's next question; this request shows `reason`.
    Next { set: QuestionSet, reason: String },
    /// Tell the runner `decision`; the request shows `reason`.
    Done { decision: Decision, reason: String },
}

/// `Some` for a question or a plan: `Ok` to ask the user, `Err` with the
/// reason to deny an input that cannot be shown.
pub fn classify(tool: &str, input: &Value) -> Option<Result<Special, String>> {
    match tool {
        ASK_USER_QUESTION => Some(questions(input).map(|questions| {
            Special::Questions(QuestionSet {
                input: input.clone(),
                questions,
                answers: Vec::new(),
            })
        })),
        EXIT_PLAN_MODE => {
            let plan = input
                .get("plan")
                .and_then(Value::as_str)
                .unwrap_or("")
                .trim();
            let total = plan.chars().count();
            let kept = cut_chars(plan, MAX_PLAN_CHARS);
            // The `…` that ends a cut plan stands in for one character.
            let cut = match total > MAX_PLAN_CHARS {
                true => (total - (MAX_PLAN_CHARS - 1)) as u64,
                false => 0,
            };
            Some(Ok(Special::Plan(PlanAsk {
                plan: kept,
                cut_chars: cut,
            })))
        }
        _ => None,
    }
}

fn text_of(v: Option<&Value>, max: usize) -> String {
    cut_chars(v.and_then(Value::as_str).unwrap_or("").trim(), max)
}

fn questions(input: &Value) -> Result<Vec<QuestionAsk>, String> {
    let cannot = |why: &str| {
        format!(
            "RemoteAgent could not show these questions on the user's phone ({why}); ask them in plain text instead"
        )
    };
    let list = input
        .get("questions")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| cannot("no questions were given"))?;
    if list.len() > MAX_QUESTIONS {
        return Err(cannot(&format!("more than {MAX_QUESTIONS} questions")));
    }
    let count = list.len() as u32;
    list.iter()
        .enumerate()
        .map(|(i, q)| {
            let question = text_of(q.get("question"), MAX_QUESTION_CHARS);
            if question.is_empty() {
                return Err(cannot("a question has no text"));
            }
            let options: Vec<QuestionOption> = q
                .get("options")
                .and_then(Value::as_array)
                .map(|o| o.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|o| QuestionOption {
                    // An option may be a bare string.
                    label: match o.as_str() {
                        Some(s) => cut_chars(s.trim(), MAX_LABEL_CHARS),
                        None => text_of(o.get("label"), MAX_LABEL_CHARS),
                    },
                    description: text_of(o.get("description"), MAX_LABEL_CHARS),
                })
                .filter(|o| !o.label.is_empty())
                .collect();
            if options.len() > MAX_OPTIONS {
                return Err(cannot(&format!(
                    "a question has more than {MAX_OPTIONS} options"
                )));
            }
            Ok(QuestionAsk {
                question,
                header: text_of(q.get("header"), MAX_LABEL_CHARS),
                options,
                multi_select: q
                    .get("multiSelect")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                index: i as u32 + 1,
                count,
            })
        })
        .collect()
}

impl Special {
    /// What the phone is shown for the request asked now.
    pub fn kind(&self) -> AskKind {
        match self {
            Special::Questions(set) => AskKind::Question(set.current().clone()),
            Special::Plan(plan) => AskKind::Plan(plan.clone()),
        }
    }

    /// The request's summary (`remoteagentctl approvals`, the log): the
    /// question and its numbered options, or the plan.
    pub fn summary(&self) -> String {
        let text = match self {
            Special::Questions(set) => {
                let q = set.current();
                let mut text = q.question.clone();
                for (n, o) in q.options.iter().enumerate() {
                    text.push_str(&format!("\n{}. {}", n + 1, o.label));
                }
                text
            }
            Special::Plan(plan) if plan.plan.is_empty() => "(no plan text)".to_string(),
            Special::Plan(plan) => plan.plan.clone(),
        };
        cut_chars(&text, super::MAX_SUMMARY_CHARS)
    }

    /// What `answer` does to this request.
    pub fn outcome(self, answer: &ApprovalAnswer) -> Outcome {
        let from = match answer.origin {
            Origin::Phone => "from the phone",
            Origin::Computer => "from your computer",
        };
        let text = answer
            .answer
            .as_deref()
            .map(|a| cut_chars(a.trim(), MAX_ANSWER_CHARS))
            .filter(|a| !a.is_empty());
        let because = answer
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        match self {
            Special::Questions(mut set) => match (answer.allow, text) {
                (true, Some(text)) => {
                    let reason = format!("answered {from}: {text}");
                    set.answers.push(text);
                    if set.answers.len() < set.questions.len() {
                        Outcome::Next { set, reason }
                    } else {
                        Outcome::Done {
                            decision: set.answered(),
                            reason,
                        }
                    }
                }
                (true, None) => Outcome::Done {
                    // An older cloud shows a question as a plain approval.
                    decision: Decision::deny(
                        "the user approved without choosing an answer; ask them in plain text instead",
                    ),
                    reason: format!("approved {from} without an answer"),
                },
                (false, _) => Outcome::Done {
                    decision: Decision::deny(format!(
                        "the user declined to answer {from}{because}; do not ask again, go on without it or ask in plain text"
                    )),
                    reason: format!("declined {from}{because}"),
                },
            },
            Special::Plan(_) => match (answer.allow, text) {
                (true, _) => Outcome::Done {
                    decision: Decision::allow(format!("the user approved the plan {from}")),
                    reason: format!("plan approved {from}"),
                },
                (false, Some(feedback)) => Outcome::Done {
                    decision: Decision::deny(format!(
                        "The user wants the plan revised: {feedback}\nRevise the plan accordingly and present it again with ExitPlanMode."
                    )),
                    reason: format!("revision asked {from}: {feedback}"),
                },
                (false, None) => Outcome::Done {
                    decision: Decision::deny(format!(
                        "the user rejected the plan {from}{because}; do not carry it out, stop and wait for their next message"
                    )),
                    reason: format!("plan rejected {from}{because}"),
                },
            },
        }
    }
}

impl QuestionSet {
    fn current(&self) -> &QuestionAsk {
        let at = self.answers.len().min(self.questions.len() - 1);
        &self.questions[at]
    }

    /// Allow, with the answers in the tool's input.
    fn answered(&self) -> Decision {
        let mut answers = Map::new();
        for (q, a) in self.questions.iter().zip(&self.answers) {
            answers.insert(q.question.clone(), Value::String(a.clone()));
        }
        let mut input = match &self.input {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        input.insert("answers".into(), Value::Object(answers));
        let said: Vec<String> = self
            .questions
            .iter()
            .zip(&self.answers)
            .map(|(q, a)| format!("\"{}\" = \"{a}\"", q.question))
            .collect();
        Decision {
            allow: true,
            reason: format!("the user answered on RemoteAgent: {}", said.join(", ")),
            updated_input: Some(Value::Object(input)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(allow: bool, text: Option<&str>, origin: Origin) -> ApprovalAnswer {
        ApprovalAnswer {
            request_id: "r".into(),
            allow,
            origin,
            reason: None,
            answer: text.map(str::to_string),
            scope: None,
        }
    }

    fn two_questions() -> Value {
        json!({"questions": [
            {"question": "Which colour?", "header": "Colour", "multiSelect": false,
             "options": [{"label": "Blue", "description": "cool"}, {"label": "Red", "description": "warm"}]},
            {"question": "Which sizes?", "header": "Size", "multiSelect": true,
             "options": [{"label": "S"}, {"label": "M"}, "L"]}
        ]})
    }

    #[test]
    fn a_question_set_is_asked_in_order_and_answered_in_the_input() {
        let Some(Ok(special)) = classify(ASK_USER_QUESTION, &two_questions()) else {
            panic!()
        };
        let AskKind::Question(first) = special.kind() else {
            panic!()
        };
        assert_eq!((first.index, first.count), (1, 2));
        assert_eq!(first.options[1].description, "warm");
        assert_eq!(special.summary(), "Which colour?\n1. Blue\n2. Red");
        let Outcome::Next { set, reason } =
            special.outcome(&answer(true, Some("Blue"), Origin::Phone))
        else {
            panic!()
        };
        assert_eq!(reason, "answered from the phone: Blue");
        let special = Special::Questions(set);
        let AskKind::Question(second) = special.kind() else {
            panic!()
        };
        assert!(second.multi_select);
        assert_eq!(second.options[2].label, "L");
        let Outcome::Done { decision, reason } =
            special.outcome(&answer(true, Some(" S, L "), Origin::Computer))
        else {
            panic!()
        };
        assert_eq!(reason, "answered from your computer: S, L");
        assert!(decision.allow);
        let input = decision.updated_input.unwrap();
        assert_eq!(
            input["answers"],
            json!({"Which colour?": "Blue", "Which sizes?": "S, L"})
        );
        assert_eq!(input["questions"], two_questions()["questions"]);
    }

    #[test]
    fn a_question_without_an_answer_is_not_an_empty_answer() {
        let Some(Ok(special)) = classify(ASK_USER_QUESTION, &two_questions()) else {
            panic!()
        };
        for a in [
            answer(true, None, Origin::Phone),
            answer(true, Some("  "), Origin::Phone),
            answer(false, None, Origin::Computer),
        ] {
            let Outcome::Done { decision, .. } = special.clone().outcome(&a) else {
                panic!()
            };
            assert!(!decision.allow, "{a:?}");
            assert!(decision.updated_input.is_none());
        }
    }

    #[test]
    fn unreadable_questions_are_denied_with_a_reason() {
        for bad in [
            json!({}),
            json!({"questions": []}),
            json!({"questions": [{"header": "x"}]}),
            json!({"questions": [{"question": "q", "options": (0..9).map(|i| i.to_string()).collect::<Vec<_>>()}]}),
        ] {
            let Some(Err(reason)) = classify(ASK_USER_QUESTION, &bad) else {
                panic!("{bad}")
            };
            assert!(reason.contains("plain text"), "{reason}");
        }
        assert!(classify("Bash", &json!({"command": "ls"})).is_none());
    }

    #[test]
    fn plans_are_approved_revised_or_rejected() {
        let Some(Ok(plan)) = classify(EXIT_PLAN_MODE, &json!({"plan": "1. read\n2. fix"})) else {
            panic!()
        };
        let Outcome::Done { decision, reason } =
            plan.clone().outcome(&answer(true, None, Origin::Phone))
        else {
            panic!()
        };
        assert!(decision.allow);
        assert_eq!(reason, "plan approved from the phone");
        let Outcome::Done { decision, reason } =
            plan.clone()
                .outcome(&answer(false, Some("use sqlite"), Origin::Phone))
        else {
            panic!()
        };
        assert!(!decision.allow);
        assert!(
            decision
                .reason
                .starts_with("The user wants the plan revised: use sqlite"),
            "{}",
            decision.reason
        );
        assert_eq!(reason, "revision asked from the phone: use sqlite");
        let Outcome::Done { decision, reason } = plan.outcome(&answer(false, None, Origin::Phone))
        else {
            panic!()
        };
        assert!(!decision.allow);
        assert_eq!(reason, "plan rejected from the phone");
        let Some(Ok(Special::Plan(long))) = classify(
            EXIT_PLAN_MODE,
            &json!({"plan": "x".repeat(MAX_PLAN_CHARS + 10)}),
        ) else {
            panic!()
        };
        assert_eq!(long.plan.chars().count(), MAX_PLAN_CHARS);
        assert_eq!(long.cut_chars, 11);
    }
}
