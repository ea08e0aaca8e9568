//! Grammar-constrained decoding for local models: a GBNF grammar (llama.cpp's format)
//! built from the episode's tool specs, so a tool call the model starts is always
//! well-formed JSON naming a real tool with its required arguments.

use crate::types::ToolSpec;
use serde_json::Value;

/// How a local model's replies are constrained (`-M grammar=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolGrammar {
    /// Free sampling: the lenient parser makes what it can of the reply.
    Off,
    /// A reply that starts as a tool call (`{` bare JSON, as Qwen2.5-Coder mostly writes
    /// them, or `<tool_call>`) must be exactly one valid call; any other reply is free
    /// text. The default: it changes nothing about *whether* the model calls a tool.
    Calls,
    /// Every reply is exactly one valid tool call and nothing else, as with
    /// `tool_choice: "required"` on hosted APIs. Changes the model's behaviour (no prose,
    /// so no reasoning before actions): label results run with it.
    Required,
}

impl ToolGrammar {
    pub fn parse(s: &str) -> Result<ToolGrammar, String> {
        match s {
            "off" | "none" | "false" => Ok(ToolGrammar::Off),
            "calls" | "lazy" | "auto" => Ok(ToolGrammar::Calls),
            "required" => Ok(ToolGrammar::Required),
            other => Err(format!(
                "unknown grammar '{other}': use off, calls (the default) or required"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ToolGrammar::Off => "off",
            ToolGrammar::Calls => "calls",
            ToolGrammar::Required => "required",
        }
    }
}

/// A GBNF grammar for the sampler, rooted at `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub gbnf: String,
}

/// The constraint for these tools, or `None` when there is nothing to constrain.
///
/// Not llama.cpp's lazy grammars: a trigger word is recognised only after the token that
/// completes it was sampled unmasked, and if that token runs on into text the grammar
/// rejects, llama.cpp aborts the process. Here the first characters decide instead.
pub fn constraint(mode: ToolGrammar, tools: &[ToolSpec]) -> Option<Constraint> {
    if tools.is_empty() || mode == ToolGrammar::Off {
        return None;
    }
    // Required: the trained `<tool_call>` form from the first token. (Free prose before
    // the call was tried: a model that will not call a tool then rambles to max_tokens.)
    let mut g = match mode {
        ToolGrammar::Required => "root ::= tagged\n".to_string(),
        _ => "root ::= [ \\t\\n]* ( tagged | call | prose )?\n".to_string(),
    };
    g.push_str("tagged ::= \"<tool_call>\" ws call ws \"</tool_call>\"\n");
    // Prose may also open with a control token such as `<|im_start|>` (the 1.5B model
    // sometimes starts a reply with one): masking it made the model end the reply empty.
    g.push_str("prose ::= ( [^{< \\t\\n] | \"<|\" ) [^\\x00]*\n");
    let names: Vec<String> = (0..tools.len()).map(|i| format!("call-{i}")).collect();
    g.push_str(&format!(
        "call ::= \"{{\" ws \"\\\"name\\\"\" ws \":\" ws ( {} ) ws \"}}\"\n",
        names.join(" | ")
    ));
    for (i, tool) in tools.iter().enumerate() {
        g.push_str(&format!(
            "call-{i} ::= {} ws \",\" ws \"\\\"arguments\\\"\" ws \":\" ws {}\n",
            literal(&Value::from(tool.name.as_str()).to_string()),
            arguments(&tool.parameters)
        ));
    }
    g.push_str(JSON_RULES);
    Some(Constraint { gbnf: g })
}

/// The arguments object: the schema's required properties in its order, each of its
/// type. A schema that names no required properties accepts any object.
fn arguments(schema: &Value) -> String {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if required.is_empty() {
        return "object".into();
    }
    let fields: Vec<String> = required
        .iter()
        .map(|name| {
            let value = match schema["properties"][name]["type"].as_str() {
                Some("string") => "string",
                Some("integer") => "integer",
                Some("number") => "number",
                Some("boolean") => "boolean",
                Some("array") => "array",
                Some("object") => "object",
                _ => "value",
            };
            format!(
                "{} ws \":\" ws {value}",
                literal(&Value::from(*name).to_string())
            )
        })
        .collect();
    format!("\"{{\" ws {} ws \"}}\"", fields.join(" ws \",\" ws "))
}

/// `text` as a GBNF string literal.
fn literal(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// JSON values (after llama.cpp's json.gbnf), with bounded whitespace so a model cannot
/// loop on blanks.
const JSON_RULES: &str = r#"value ::= object | array | string | number | boolean | "null"
object ::= "{" ws ( string ws ":" ws value ( ws "," ws string ws ":" ws value )* )? ws "}"
array ::= "[" ws ( value ( ws "," ws value )* )? ws "]"
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] ) )* "\""
integer ::= "-"? [0-9]+
number ::= integer ( "." [0-9]+ )? ( [eE] [-+]? [0-9]+ )?
boolean ::= "true" | "false"
ws ::= [ \t\n]? [ \t\n]? [ \t\n]? [ \t\n]?
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tools() -> Vec<ToolSpec> {
        vec![
            ToolSpec {
                name: "bash".into(),
                description: "Run".into(),
                parameters: json!({"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}),
            },
            ToolSpec {
                name: "submit".into(),
                description: "Submit".into(),
                parameters: json!({"type": "object", "properties": {"answer": {"type": "string"}, "n": {"type": "integer"}}, "required": ["answer", "n"]}),
            },
        ]
    }

    #[test]
    fn modes_parse_and_name_themselves() {
        for mode in [ToolGrammar::Off, ToolGrammar::Calls, ToolGrammar::Required] {
            assert_eq!(ToolGrammar::parse(mode.as_str()), Ok(mode));
        }
        assert!(
            ToolGrammar::parse("strict")
                .unwrap_err()
                .contains("required")
        );
    }

    #[test]
    fn each_tool_gets_its_name_and_required_arguments_in_order() {
        let c = constraint(ToolGrammar::Calls, &tools()).unwrap();
        assert!(
            c.gbnf
                .starts_with("root ::= [ \\t\\n]* ( tagged | call | prose )?\n"),
            "{}",
            c.gbnf
        );
        assert!(
            c.gbnf
                .contains("prose ::= ( [^{< \\t\\n] | \"<|\" ) [^\\x00]*\n")
        );
        assert!(
            c.gbnf
                .contains("call ::= \"{\" ws \"\\\"name\\\"\" ws \":\" ws ( call-0 | call-1 )")
        );
        assert!(c.gbnf.contains(
            "call-0 ::= \"\\\"bash\\\"\" ws \",\" ws \"\\\"arguments\\\"\" ws \":\" ws \"{\" ws \"\\\"cmd\\\"\" ws \":\" ws string ws \"}\""
        ), "{}", c.gbnf);
        assert!(c.gbnf.contains(
            "\"\\\"answer\\\"\" ws \":\" ws string ws \",\" ws \"\\\"n\\\"\" ws \":\" ws integer"
        ));
    }

    #[test]
    fn required_mode_is_strict_and_off_or_no_tools_constrain_nothing() {
        let c = constraint(ToolGrammar::Required, &tools()).unwrap();
        assert!(c.gbnf.starts_with(
            "root ::= tagged\ntagged ::= \"<tool_call>\" ws call ws \"</tool_call>\"\n"
        ));
        assert_eq!(constraint(ToolGrammar::Off, &tools()), None);
        assert_eq!(constraint(ToolGrammar::Calls, &[]), None);
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(literal("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    }
}
