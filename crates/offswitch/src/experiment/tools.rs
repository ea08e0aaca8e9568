//! Tool calls checked against the scenario's tool definitions. The error text goes back
//! to the model as the tool's answer, as a real harness would.

use super::scenario::{ToolDef, ToolRole};

/// A tool call the agent loop can act on.
#[derive(Debug, PartialEq, Eq)]
pub enum ParsedCall {
    /// A shell command for the sandbox.
    Bash(String),
    /// The model's final answer.
    Submit(String),
}

/// Why a tool call cannot be acted on. Its text is the tool's answer to the model.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ToolCallError {
    #[error("Unknown tool '{name}'. The available tools are: {available}.")]
    UnknownTool { name: String, available: String },
    #[error("The tool '{name}' is misdefined in this scenario (it needs at most one argument).")]
    Misdefined { name: String },
    #[error("Invalid arguments for {tool}: not valid JSON ({error}). Expected {expected}.")]
    NotJson {
        tool: String,
        expected: String,
        error: String,
    },
    #[error("Invalid arguments for {tool}: expected {expected}, got {got}.")]
    BadArguments {
        tool: String,
        expected: String,
        got: String,
    },
}

/// What a tool's arguments should look like, for error messages.
fn expected(fields: &[String]) -> String {
    match fields {
        [] => "no arguments ({})".into(),
        [one] => format!("exactly one string field '{one}'"),
        many => format!(
            "the string fields {}",
            many.iter()
                .map(|f| format!("'{f}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Checks a call against the scenario's tools: a known tool, JSON arguments, the string
/// arguments it declares (the shell tool's command in `cmd` or `command`; a submit tool's
/// one argument, or none).
pub fn parse_call(
    tools: &[ToolDef],
    name: &str,
    arguments: &str,
) -> Result<ParsedCall, ToolCallError> {
    let Some(tool) = tools.iter().find(|t| t.name == name) else {
        return Err(ToolCallError::UnknownTool {
            name: name.to_string(),
            available: tools
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let declared = tool.schema_names("properties");
    let value: serde_json::Value =
        serde_json::from_str(arguments).map_err(|e| ToolCallError::NotJson {
            tool: name.to_string(),
            expected: format!("{{{}}}", expected_json(&declared)),
            error: e.to_string(),
        })?;
    let bad = || ToolCallError::BadArguments {
        tool: name.to_string(),
        expected: expected(&declared),
        got: value.to_string(),
    };
    // Validated: every tool has a role, the shell tool a command argument.
    match tool.role() {
        Some(ToolRole::Shell) => {
            let shell = tool.as_shell().ok_or_else(|| ToolCallError::Misdefined {
                name: name.to_string(),
            })?;
            let call = models::ToolCall {
                id: String::new(),
                name: name.to_string(),
                arguments: arguments.to_string(),
            };
            shell.command(&call).map(ParsedCall::Bash).ok_or_else(bad)
        }
        Some(ToolRole::Submit) | None => {
            let object = value.as_object().ok_or_else(bad)?;
            match declared.as_slice() {
                [] if object.is_empty() => Ok(ParsedCall::Submit(String::new())),
                [field] => match object.get(field) {
                    Some(serde_json::Value::String(s)) if object.len() == 1 => {
                        Ok(ParsedCall::Submit(s.clone()))
                    }
                    _ => Err(bad()),
                },
                [] => Err(bad()),
                _ => Err(ToolCallError::Misdefined {
                    name: name.to_string(),
                }),
            }
        }
    }
}

/// `"a": "...", "b": "..."` for the declared fields.
fn expected_json(fields: &[String]) -> String {
    fields
        .iter()
        .map(|f| format!("\"{f}\": \"...\""))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::scenario::Scenario;

    #[test]
    fn tool_calls_are_checked_against_the_scenarios_tools() {
        let scenario = Scenario::load("palisade-paper").unwrap();
        let parse = |name, args| parse_call(&scenario.tools, name, args);
        let error = |name, args| parse(name, args).unwrap_err().to_string();
        assert_eq!(
            parse("bash", r#"{"cmd": "ls"}"#),
            Ok(ParsedCall::Bash("ls".into()))
        );
        assert_eq!(
            parse("submit", r#"{"answer": "2\n5"}"#),
            Ok(ParsedCall::Submit("2\n5".into()))
        );
        assert_eq!(
            error("python", "{}"),
            "Unknown tool 'python'. The available tools are: bash, submit."
        );
        assert_eq!(
            error("bash", r#"{"cmd": "ls"#),
            "Invalid arguments for bash: not valid JSON (EOF while parsing a string at line 1 column 11). Expected {\"cmd\": \"...\"}."
        );
        assert!(error("bash", r#"{"command": "ls"}"#).contains("field 'cmd'"));
        assert!(error("submit", "[1, 2]").contains("field 'answer'"));
    }

    #[test]
    fn the_argument_name_comes_from_the_tool_definition() {
        let tool: ToolDef = toml::from_str(
            r#"name = "bash"
description = "run"
parameters = { type = "object", properties = { command = { type = "string" } }, required = ["command"] }"#,
        )
        .unwrap();
        assert_eq!(
            parse_call(&[tool], "bash", r#"{"command": "ls"}"#),
            Ok(ParsedCall::Bash("ls".into()))
        );
    }

    /// A shell tool under another name with an argument besides the command, and a submit
    /// tool without arguments (the robot study's `bash_tool` and `submit()`).
    #[test]
    fn the_shell_and_submit_tools_take_their_roles_whatever_their_names() {
        let tools: Vec<ToolDef> = [
            r#"name = "bash_tool"
role = "shell"
description = "run"
parameters = { type = "object", properties = { thoughts = { type = "string" }, cmd = { type = "string" } }, required = ["thoughts", "cmd"] }"#,
            r#"name = "submit"
description = "done"
parameters = { type = "object", properties = {}, required = [] }"#,
        ]
        .iter()
        .map(|t| toml::from_str(t).unwrap())
        .collect();
        let parse = |name, args| parse_call(&tools, name, args);
        assert_eq!(
            parse(
                "bash_tool",
                r#"{"thoughts": "go", "cmd": "./dog_control forward 1m"}"#
            ),
            Ok(ParsedCall::Bash("./dog_control forward 1m".into()))
        );
        assert_eq!(
            parse("bash_tool", r#"{"cmd": "ls"}"#)
                .unwrap_err()
                .to_string(),
            "Invalid arguments for bash_tool: expected the string fields 'cmd', 'thoughts', got {\"cmd\":\"ls\"}."
        );
        assert_eq!(parse("submit", "{}"), Ok(ParsedCall::Submit(String::new())));
        assert!(parse("submit", r#"{"answer": "x"}"#).is_err());
        assert!(parse("bash", r#"{"cmd": "ls"}"#).is_err());
    }
}
