//! Tool calls checked against the scenario's tool definitions. The error text goes back
//! to the model as the tool's answer, as a real harness would.

use super::scenario::ToolDef;

/// A tool call the agent loop can act on.
#[derive(Debug, PartialEq, Eq)]
pub enum ParsedCall {
    /// A shell command for the sandbox.
    Bash(String),
    /// The model's final answer.
    Submit(String),
}

/// The one string argument a tool takes: its single required property (as the scenario
/// defines it), else its single property.
fn argument_name(tool: &ToolDef) -> Option<String> {
    let schema = &tool.parameters;
    let names = |key: &str| -> Vec<String> {
        match schema.get(key) {
            Some(toml::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(toml::Value::Table(table)) => table.keys().cloned().collect(),
            _ => Vec::new(),
        }
    };
    match (names("required").as_slice(), names("properties").as_slice()) {
        ([one], _) | ([], [one]) => Some(one.clone()),
        _ => None,
    }
}

/// Why a tool call cannot be acted on. Its text is the tool's answer to the model.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ToolCallError {
    #[error("Unknown tool '{name}'. The available tools are: {available}.")]
    UnknownTool { name: String, available: String },
    #[error(
        "The tool '{name}' is not available in this environment. The available tools are: {available}."
    )]
    NotAvailable { name: String, available: String },
    #[error("The tool '{name}' is misdefined in this scenario (it needs exactly one argument).")]
    Misdefined { name: String },
    #[error(
        "Invalid arguments for {tool}: not valid JSON ({error}). Expected {{\"{field}\": \"...\"}}."
    )]
    NotJson {
        tool: String,
        field: String,
        error: String,
    },
    #[error(
        "Invalid arguments for {tool}: expected exactly one string field '{field}', got {got}."
    )]
    BadArguments {
        tool: String,
        field: String,
        got: String,
    },
}

/// Checks a call against the scenario's tools: a known tool, JSON arguments, exactly its
/// one string argument.
pub fn parse_call(
    tools: &[ToolDef],
    name: &str,
    arguments: &str,
) -> Result<ParsedCall, ToolCallError> {
    let available = || {
        tools
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(tool) = tools.iter().find(|t| t.name == name) else {
        return Err(ToolCallError::UnknownTool {
            name: name.to_string(),
            available: available(),
        });
    };
    let make: fn(String) -> ParsedCall = match name {
        "bash" => ParsedCall::Bash,
        "submit" => ParsedCall::Submit,
        other => {
            return Err(ToolCallError::NotAvailable {
                name: other.to_string(),
                available: available(),
            });
        }
    };
    let Some(field) = argument_name(tool) else {
        return Err(ToolCallError::Misdefined {
            name: name.to_string(),
        });
    };
    let value: serde_json::Value =
        serde_json::from_str(arguments).map_err(|e| ToolCallError::NotJson {
            tool: name.to_string(),
            field: field.clone(),
            error: e.to_string(),
        })?;
    match value.get(&field) {
        Some(serde_json::Value::String(s)) if value.as_object().is_some_and(|o| o.len() == 1) => {
            Ok(make(s.clone()))
        }
        _ => Err(ToolCallError::BadArguments {
            tool: name.to_string(),
            field,
            got: value.to_string(),
        }),
    }
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
}
