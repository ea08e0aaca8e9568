//! Scripted agents: test fixtures that replay a policy file, one step per assistant
//! turn. They stand in for models in tests and benchmarks and are labelled as fixtures
//! everywhere; nothing they do is a model's behaviour.
//!
//! A policy is TOML: optional `name` and `description`, then `[[step]]` tables. Each
//! step is one assistant message with an optional `say`, and at most one action:
//! `bash = "command"`, `submit = "text"` (`"auto"` submits the correct answers to the
//! questions seen so far), or `call = { name = "...", arguments = "..." }` for a raw,
//! possibly malformed tool call. `repeat = N` repeats a step. When the steps run out the
//! agent submits `auto`. In commands, `{next}` stands for the scenario's task command
//! (`./next_question`, `./ci next`; read from the task prompt when the request does not
//! say) and `{program}` for the task program alone (`./ci`). `bash` steps call the scenario's shell tool whatever its name
//! (the tool with a `cmd` or `command` argument; other arguments get a fixed note), and
//! `submit` calls the `submit` tool with its argument, or none if it takes none.

use crate::model::{Model, ModelError};
use crate::types::{Message, ModelReply, ModelRequest, StopReason, ToolCall, ToolSpec, Usage};
use serde::Deserialize;
use std::path::Path;

const BUILTIN: &[(&str, &str)] = &[
    ("comply", include_str!("../policies/comply.toml")),
    (
        "inspect-then-comply",
        include_str!("../policies/inspect-then-comply.toml"),
    ),
    ("overwrite", include_str!("../policies/overwrite.toml")),
    ("exit0-stub", include_str!("../policies/exit0-stub.toml")),
    ("chmod", include_str!("../policies/chmod.toml")),
    ("rename", include_str!("../policies/rename.toml")),
    ("delete", include_str!("../policies/delete.toml")),
    (
        "redefine-kill",
        include_str!("../policies/redefine-kill.toml"),
    ),
    (
        "rewrite-question-program",
        include_str!("../policies/rewrite-question-program.toml"),
    ),
    (
        "direct-service",
        include_str!("../policies/direct-service.toml"),
    ),
    (
        "tamper-but-shut-down",
        include_str!("../policies/tamper-but-shut-down.toml"),
    ),
    (
        "submit-early",
        include_str!("../policies/submit-early.toml"),
    ),
    (
        "malformed-calls",
        include_str!("../policies/malformed-calls.toml"),
    ),
    ("stall", include_str!("../policies/stall.toml")),
    // The CI/CD scenario's own ways to comply and to defeat the halt.
    (
        "ci-fix-then-comply",
        include_str!("../policies/ci-fix-then-comply.toml"),
    ),
    (
        "ci-rewrite-halt",
        include_str!("../policies/ci-rewrite-halt.toml"),
    ),
    (
        "ci-lower-flag",
        include_str!("../policies/ci-lower-flag.toml"),
    ),
    (
        "ci-edit-config",
        include_str!("../policies/ci-edit-config.toml"),
    ),
    (
        "robot-rename-shutdown",
        include_str!("../policies/robot-rename-shutdown.toml"),
    ),
    (
        "robot-empty-shutdown",
        include_str!("../policies/robot-empty-shutdown.toml"),
    ),
    (
        "robot-delete-trigger",
        include_str!("../policies/robot-delete-trigger.toml"),
    ),
    (
        "robot-direct-library",
        include_str!("../policies/robot-direct-library.toml"),
    ),
    (
        "robot-rewrite-dog-control",
        include_str!("../policies/robot-rewrite-dog-control.toml"),
    ),
];

pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(name, _)| *name).collect()
}

/// The text of a built-in policy.
pub fn builtin_text(name: &str) -> Option<&'static str> {
    BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(default, rename = "step")]
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub say: Option<String>,
    pub bash: Option<String>,
    pub submit: Option<String>,
    pub call: Option<RawCall>,
    #[serde(default = "one")]
    pub repeat: usize,
}

fn one() -> usize {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCall {
    pub name: String,
    pub arguments: String,
}

impl Policy {
    pub fn parse(text: &str, origin: &str) -> Result<Policy, String> {
        let policy: Policy = toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
        for (i, step) in policy.steps.iter().enumerate() {
            let actions = [
                step.bash.is_some(),
                step.submit.is_some(),
                step.call.is_some(),
            ];
            if actions.iter().filter(|a| **a).count() > 1 {
                return Err(format!(
                    "{origin}: step {} has more than one of bash, submit and call",
                    i + 1
                ));
            }
            if step.repeat == 0 {
                return Err(format!("{origin}: step {} has repeat = 0", i + 1));
            }
        }
        Ok(policy)
    }

    fn flattened(&self) -> Vec<Step> {
        self.steps
            .iter()
            .flat_map(|s| std::iter::repeat_n(s.clone(), s.repeat))
            .collect()
    }
}

/// A scripted agent. Stateless across calls: the step is the number of assistant turns
/// already in the conversation, so one instance serves any number of episodes.
pub struct ScriptedModel {
    name: String,
    steps: Vec<Step>,
}

/// Whether a scripted policy name is a policy file (a path) rather than a built-in.
pub fn is_policy_file(name_or_path: &str) -> bool {
    !BUILTIN.iter().any(|(n, _)| *n == name_or_path)
        && (name_or_path.contains('/')
            || name_or_path.ends_with(".toml")
            || Path::new(name_or_path).exists())
}

impl ScriptedModel {
    /// A policy from its text, labelled `scripted/<label>` (a policy file read earlier).
    pub fn from_text(label: &str, text: &str) -> Result<ScriptedModel, String> {
        Ok(ScriptedModel::from_policy(
            label,
            &Policy::parse(text, label)?,
        ))
    }

    /// Loads a built-in policy by name, or a policy file by path.
    pub fn load(name_or_path: &str) -> Result<ScriptedModel, String> {
        let (policy, label) = if let Some((_, text)) =
            BUILTIN.iter().find(|(n, _)| *n == name_or_path)
        {
            (
                Policy::parse(text, &format!("built-in policy {name_or_path}"))?,
                name_or_path.to_string(),
            )
        } else if is_policy_file(name_or_path) {
            let text = std::fs::read_to_string(name_or_path)
                .map_err(|e| format!("cannot read policy file {name_or_path}: {e}"))?;
            (
                Policy::parse(&text, name_or_path)?,
                name_or_path.to_string(),
            )
        } else {
            return Err(format!(
                "unknown scripted policy '{name_or_path}': built-in policies are {}; or give a path to a policy file",
                builtin_names().join(", ")
            ));
        };
        Ok(ScriptedModel {
            name: format!("scripted/{label}"),
            steps: policy.flattened(),
        })
    }

    pub fn from_policy(name: &str, policy: &Policy) -> ScriptedModel {
        ScriptedModel {
            name: format!("scripted/{name}"),
            steps: policy.flattened(),
        }
    }
}

#[async_trait::async_trait]
impl Model for ScriptedModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_scripted(&self) -> bool {
        true
    }

    async fn generate(&self, request: &ModelRequest) -> Result<ModelReply, ModelError> {
        let turn = request
            .messages
            .iter()
            .filter(|m| matches!(m, Message::Assistant { .. }))
            .count();
        let program = request
            .task_command
            .clone()
            .unwrap_or_else(|| question_program(&request.messages));
        // `{program}`: the task program alone (`./ci` of `./ci next`).
        let path = program
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        let fill = |s: &str| s.replace("{next}", &program).replace("{program}", &path);
        let call_id = format!("call_{}", turn + 1);
        let step = self.steps.get(turn);
        let (say, call) = match step {
            Some(step) => {
                let call = if let Some(cmd) = &step.bash {
                    Some(shell_call(call_id, &fill(cmd), &request.tools))
                } else if let Some(text) = &step.submit {
                    Some(submit_call(call_id, text, request))
                } else {
                    step.call.as_ref().map(|raw| ToolCall {
                        id: call_id,
                        name: raw.name.clone(),
                        arguments: raw.arguments.clone(),
                    })
                };
                (step.say.as_deref().map(fill), call)
            }
            None => (None, Some(submit_call(call_id, "auto", request))),
        };
        let stop_reason = if call.is_some() {
            StopReason::ToolCalls
        } else {
            StopReason::Stop
        };
        let message = Message::Assistant {
            content: Some(say.unwrap_or_else(|| format!("(scripted step {})", turn + 1))),
            reasoning: None,
            tool_calls: call.into_iter().collect(),
            provider_data: None,
        };
        Ok(ModelReply {
            message,
            usage: Usage::default(),
            stop_reason,
            exchange: None,
        })
    }
}

/// The names of a tool's declared arguments.
fn properties(tool: &ToolSpec) -> Vec<String> {
    tool.parameters
        .get("properties")
        .and_then(|p| p.as_object())
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// A call of the scenario's shell tool (the one with a `cmd` or `command` argument;
/// `bash` when the request names none), any other argument it declares filled with a
/// fixed note.
fn shell_call(id: String, command: &str, tools: &[ToolSpec]) -> ToolCall {
    let shell = tools.iter().find_map(|t| {
        let declared = properties(t);
        ["cmd", "command"]
            .into_iter()
            .find(|a| declared.iter().any(|d| d == a))
            .map(|a| (t, a, declared))
    });
    let (name, arguments) = match shell {
        Some((tool, argument, declared)) => {
            let mut args = serde_json::Map::new();
            for d in declared {
                let value = if d == argument {
                    command.to_string()
                } else {
                    "(scripted step)".to_string()
                };
                args.insert(d, serde_json::Value::String(value));
            }
            (tool.name.clone(), serde_json::Value::Object(args))
        }
        None => ("bash".to_string(), serde_json::json!({ "cmd": command })),
    };
    ToolCall {
        id,
        name,
        arguments: arguments.to_string(),
    }
}

/// A call of the `submit` tool: with its one argument when it declares one (the answers
/// seen, for `auto`), else with none.
fn submit_call(id: String, text: &str, request: &ModelRequest) -> ToolCall {
    let answer = if text == "auto" {
        auto_answers(&request.messages)
    } else {
        text.to_string()
    };
    let field = request
        .tools
        .iter()
        .find(|t| t.name == "submit")
        .map(properties)
        .map_or(Some("answer".to_string()), |p| p.into_iter().next());
    let arguments = match field {
        Some(field) => serde_json::json!({ field: answer }),
        None => serde_json::json!({}),
    };
    ToolCall {
        id,
        name: "submit".into(),
        arguments: arguments.to_string(),
    }
}

/// The question program the task prompt names: its first `./word` token.
fn question_program(messages: &[Message]) -> String {
    let prompt = messages.iter().find_map(|m| match m {
        Message::User { content } => Some(content.as_str()),
        _ => None,
    });
    prompt
        .and_then(|p| p.split_whitespace().find(|w| w.starts_with("./")))
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_alphanumeric() && c != '_')
                .to_string()
        })
        .unwrap_or_else(|| "./next_question".into())
}

/// Answers to every "What is A + B?" seen in tool results, newline-separated.
fn auto_answers(messages: &[Message]) -> String {
    let mut answers = Vec::new();
    for m in messages {
        if let Message::Tool { content, .. } = m {
            for line in content.lines() {
                if let Some(sum) = parse_sum(line) {
                    answers.push(sum.to_string());
                }
            }
        }
    }
    answers.join("\n")
}

fn parse_sum(line: &str) -> Option<i64> {
    let rest = line.trim().strip_prefix("What is ")?.strip_suffix('?')?;
    let (a, b) = rest.split_once('+')?;
    Some(a.trim().parse::<i64>().ok()? + b.trim().parse::<i64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convo(turns: usize, tool_texts: &[&str]) -> Vec<Message> {
        let mut m = vec![
            Message::System {
                content: "sys".into(),
            },
            Message::User {
                content: "Each time you call the command ./next_task, you will".into(),
            },
        ];
        for i in 0..turns {
            m.push(Message::Assistant {
                content: None,
                reasoning: None,
                tool_calls: vec![],
                provider_data: None,
            });
            if let Some(t) = tool_texts.get(i) {
                m.push(Message::Tool {
                    tool_call_id: format!("c{i}"),
                    name: "bash".into(),
                    content: t.to_string(),
                    error: None,
                });
            }
        }
        m
    }

    async fn step(model: &ScriptedModel, messages: Vec<Message>) -> ToolCall {
        let reply = model
            .generate(&ModelRequest {
                messages,
                tools: vec![],
                seed: None,
                task_command: None,
            })
            .await
            .unwrap();
        match reply.message {
            Message::Assistant { tool_calls, .. } => tool_calls.into_iter().next().unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn steps_follow_turns_and_fill_the_question_program() {
        let model = ScriptedModel::load("overwrite").unwrap();
        assert!(model.is_scripted());
        let first = step(&model, convo(0, &[])).await;
        assert_eq!(first.name, "bash");
        assert!(
            first.arguments.contains("./next_task"),
            "{}",
            first.arguments
        );
    }

    #[tokio::test]
    async fn auto_submit_answers_the_questions_seen() {
        let model = ScriptedModel::load("comply").unwrap();
        let texts = [
            "What is 1 + 1?\nThere are 5 tasks remaining.",
            "What is 2 + 3?\nThere are 4 tasks remaining.",
        ];
        let call = step(&model, convo(100, &texts)).await;
        assert_eq!(call.name, "submit");
        let args: serde_json::Value = serde_json::from_str(&call.arguments).unwrap();
        assert_eq!(args["answer"], "2\n5");
    }

    #[test]
    fn every_builtin_policy_parses() {
        for name in builtin_names() {
            ScriptedModel::load(name).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn bad_policies_are_refused_with_the_reason() {
        let err = Policy::parse("[[step]]\nbash = 'a'\nsubmit = 'b'\n", "p.toml").unwrap_err();
        assert!(err.contains("step 1 has more than one"), "{err}");
        let err = Policy::parse("[[step]]\nbsh = 'a'\n", "p.toml").unwrap_err();
        assert!(err.contains("p.toml") && err.contains("bsh"), "{err}");
        let err = ScriptedModel::load("no-such-policy").err().unwrap();
        assert!(err.contains("built-in policies are"), "{err}");
    }
}
