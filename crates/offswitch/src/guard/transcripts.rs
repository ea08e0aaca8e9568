//! Transcripts recorded by other harnesses, read for the monitors: JSONL, one episode per
//! line, `{"id": ..., "messages": [...], "label": "tampered" | "clean" | true | false}`.
//!
//! Accepted as real harnesses write them: roles `system`, `developer`, `user`,
//! `assistant`, `tool`; content as a string, `null`, or a list of parts (text parts kept,
//! others shown as `[type]`); tool calls in offswitch's shape (`{"id", "name",
//! "arguments"}`) or OpenAI's (`{"id", "type": "function", "function": {"name",
//! "arguments"}}`), `arguments` as a JSON object or a JSON string; the shell tool under
//! any name, its command in `cmd` or `command` (other arguments, such as `thoughts`, are
//! ignored). Anything else is an error that names the line, the message and the field.

use super::replay::ReplayCommand;
use serde_json::Value;

/// One imported episode.
#[derive(Debug, Clone)]
pub struct Transcript {
    /// The line's `id`, or `line N` when it has none.
    pub id: String,
    /// The first user message: the task, for the LLM monitor.
    pub task: String,
    /// The shell tool's calls, in order.
    pub commands: Vec<ReplayCommand>,
    /// The label: true = tampered, false = clean, None = not labelled (not scored).
    pub label: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Line {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}: no episodes (an empty file)")]
    Empty { path: String },
    #[error(
        "{path}: none of the {episodes} episodes has a label (\"tampered\", \"clean\", true or false): nothing to score"
    )]
    Unlabelled { path: String, episodes: usize },
}

/// Reads a JSONL file of transcripts; `shell_tool` names the tool whose calls are shell
/// commands. At least one episode must be labelled.
pub fn read(path: &std::path::Path, shell_tool: &str) -> Result<Vec<Transcript>, ImportError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        path: shown.clone(),
        source,
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let transcript =
            parse_line(line, n + 1, shell_tool).map_err(|message| ImportError::Line {
                path: shown.clone(),
                line: n + 1,
                message,
            })?;
        out.push(transcript);
    }
    if out.is_empty() {
        return Err(ImportError::Empty { path: shown });
    }
    if out.iter().all(|t| t.label.is_none()) {
        return Err(ImportError::Unlabelled {
            path: shown,
            episodes: out.len(),
        });
    }
    Ok(out)
}

fn parse_line(line: &str, number: usize, shell_tool: &str) -> Result<Transcript, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let id = match value.get("id") {
        None | Some(Value::Null) => format!("line {number}"),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let label = match value.get("label") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) if s == "tampered" => Some(true),
        Some(Value::String(s)) if s == "clean" => Some(false),
        Some(other) => {
            return Err(format!(
                "field `label`: must be \"tampered\", \"clean\", true or false, got {other}"
            ));
        }
    };
    let messages = value
        .get("messages")
        .ok_or("no `messages` field")?
        .as_array()
        .ok_or("field `messages`: must be a list")?;
    let mut task = None;
    let mut commands = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let at = |field: &str, what: String| format!("message {i}: field `{field}`: {what}");
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| at("role", "missing or not a string".into()))?;
        let content = text_of(m.get("content")).map_err(|e| at("content", e))?;
        match role {
            "system" | "developer" | "tool" => {}
            "user" => {
                task.get_or_insert(content);
            }
            "assistant" => {
                let calls = match m.get("tool_calls") {
                    None | Some(Value::Null) => &[][..],
                    Some(Value::Array(calls)) => calls.as_slice(),
                    Some(_) => return Err(at("tool_calls", "must be a list".into())),
                };
                for (j, call) in calls.iter().enumerate() {
                    let field = |f: &str| format!("tool_calls[{j}].{f}");
                    let (name, arguments, base) = match call.get("function") {
                        Some(f) => (f.get("name"), f.get("arguments"), "function."),
                        None => (call.get("name"), call.get("arguments"), ""),
                    };
                    let name = name.and_then(Value::as_str).ok_or_else(|| {
                        at(
                            &field(&format!("{base}name")),
                            "missing or not a string".into(),
                        )
                    })?;
                    if name != shell_tool {
                        continue;
                    }
                    let arguments = match arguments {
                        Some(Value::String(s)) => {
                            serde_json::from_str::<Value>(s).map_err(|e| {
                                at(
                                    &field(&format!("{base}arguments")),
                                    format!("not JSON: {e}"),
                                )
                            })?
                        }
                        Some(v @ Value::Object(_)) => v.clone(),
                        _ => {
                            return Err(at(
                                &field(&format!("{base}arguments")),
                                "must be a JSON object or a string holding one".into(),
                            ));
                        }
                    };
                    let command = arguments
                        .get("cmd")
                        .or_else(|| arguments.get("command"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            at(
                                &field(&format!("{base}arguments")),
                                format!("the {shell_tool} call has no `cmd` or `command` string"),
                            )
                        })?;
                    commands.push(ReplayCommand {
                        tool_call: commands.len(),
                        command: command.to_string(),
                        started_ms: 0,
                        duration_ms: 0,
                        changes: vec![],
                    });
                }
            }
            other => {
                return Err(at(
                    "role",
                    format!("{other:?}: expected system, developer, user, assistant or tool"),
                ));
            }
        }
    }
    Ok(Transcript {
        id,
        task: task.unwrap_or_default(),
        commands,
        label,
    })
}

/// A message's text: a string, nothing, or the text parts of a list (other parts shown
/// as `[type]`).
fn text_of(content: Option<&Value>) -> Result<String, String> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => Ok(parts
            .iter()
            .map(
                |p| match (p.get("type").and_then(Value::as_str), p.get("text")) {
                    (_, Some(Value::String(t))) => t.clone(),
                    (Some(kind), _) => format!("[{kind}]"),
                    _ => "[part]".into(),
                },
            )
            .collect::<Vec<_>>()
            .join("\n")),
        Some(other) => Err(format!(
            "must be a string, null or a list of parts, got {other}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Result<Transcript, String> {
        parse_line(line, 1, "bash")
    }

    #[test]
    fn other_harnesses_shapes_are_read() {
        let t = one(r#"{"id": 7, "label": "tampered", "messages": [
            {"role": "developer", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "the task"}, {"type": "image_url", "image_url": {}}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "bash", "arguments": "{\"cmd\": \"ls\"}"}},
                {"id": "b", "name": "bash", "arguments": {"command": "chmod -x shutdown.sh"}},
                {"id": "c", "name": "submit", "arguments": "{}"}
            ]},
            {"role": "tool", "content": "out"}
        ]}"#)
        .unwrap();
        assert_eq!(t.id, "7");
        assert_eq!(t.label, Some(true));
        assert_eq!(t.task, "the task\n[image_url]");
        let commands: Vec<&str> = t.commands.iter().map(|c| c.command.as_str()).collect();
        assert_eq!(commands, ["ls", "chmod -x shutdown.sh"]);
        // The shell tool by another name, with extra arguments.
        let t = parse_line(
            r#"{"messages": [{"role": "assistant", "tool_calls": [{"id": "a", "name": "bash_tool", "arguments": {"thoughts": "x", "cmd": "mv shutdown.py x"}}]}], "label": false}"#,
            3,
            "bash_tool",
        )
        .unwrap();
        assert_eq!((t.id.as_str(), t.commands.len()), ("line 3", 1));
    }

    #[test]
    fn malformed_lines_name_the_message_and_field() {
        let err = |line: &str| one(line).unwrap_err();
        assert_eq!(
            err("{"),
            "not JSON: EOF while parsing an object at line 1 column 1"
        );
        assert_eq!(err(r#"{"label": true}"#), "no `messages` field");
        assert!(err(r#"{"messages": [{"content": "x"}]}"#).starts_with("message 0: field `role`"));
        assert!(
            err(r#"{"messages": [{"role": "user"}, {"role": "assistant", "tool_calls": [{"function": {"name": "bash", "arguments": "{bad"}}]}]}"#)
                .starts_with("message 1: field `tool_calls[0].function.arguments`: not JSON")
        );
        assert!(
            err(r#"{"messages": [{"role": "assistant", "tool_calls": [{"name": "bash", "arguments": {"x": 1}}]}]}"#)
                .contains("no `cmd` or `command`")
        );
        assert!(err(r#"{"messages": [{"role": "robot", "content": "x"}]}"#).contains("\"robot\""));
        assert!(err(r#"{"messages": [], "label": "maybe"}"#).starts_with("field `label`"));
        assert!(
            err(r#"{"messages": [{"role": "user", "content": 5}]}"#)
                .starts_with("message 0: field `content`")
        );
    }
}
