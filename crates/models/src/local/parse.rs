//! Reading tool calls out of a local model's reply, leniently: `<tool_call>` blocks as
//! trained, else a fenced JSON block, else the first JSON object with a `name`.

use crate::types::ToolCall;
use serde_json::Value;

/// The reply's text (without the calls) and its tool calls.
pub fn parse_reply(text: &str, turn: usize) -> (Option<String>, Vec<ToolCall>) {
    let cleaned = without_control_tokens(text);
    let text = cleaned.as_str();
    let mut calls = Vec::new();
    let mut rest = String::new();
    let mut remaining = text;
    while let Some(start) = remaining.find("<tool_call>") {
        rest.push_str(&remaining[..start]);
        let after = &remaining[start + "<tool_call>".len()..];
        let (inner, next) = match after.find("</tool_call>") {
            Some(end) => (&after[..end], &after[end + "</tool_call>".len()..]),
            None => (after, ""),
        };
        if let Some(call) = first_object(inner).and_then(|v| to_call(&v, turn, calls.len())) {
            calls.push(call);
        }
        remaining = next;
    }
    rest.push_str(remaining);
    if calls.is_empty()
        && let Some(v) = first_object(text).filter(|v| v.get("name").is_some())
        && let Some(call) = to_call(&v, turn, 0)
    {
        calls.push(call);
        rest = text.split("```").next().unwrap_or("").trim().to_string();
        if rest.starts_with('{') {
            rest.clear();
        }
    }
    let content = rest.trim();
    ((!content.is_empty()).then(|| content.to_string()), calls)
}

fn to_call(v: &Value, turn: usize, i: usize) -> Option<ToolCall> {
    let name = v.get("name")?.as_str()?.to_string();
    let args = v
        .get("arguments")
        .or_else(|| v.get("parameters"))
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    // Some models send the arguments as a JSON string: unwrap it when it parses.
    let arguments = match &args {
        Value::String(s) => serde_json::from_str::<Value>(s)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| s.clone()),
        other => other.to_string(),
    };
    Some(ToolCall {
        id: format!("call_{turn}_{i}"),
        name,
        arguments,
    })
}

/// The reply without chat-format control tokens (`<|im_start|>` and the like), which a
/// small model sometimes writes into a reply; the raw output is kept in the exchange.
fn without_control_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<|") {
        let token_end = rest[start..]
            .find("|>")
            .map(|e| start + e + 2)
            .filter(|&end| end - start <= 40 && !rest[start..end].contains(char::is_whitespace));
        match token_end {
            Some(end) => {
                out.push_str(&rest[..start]);
                rest = &rest[end..];
            }
            None => {
                out.push_str(&rest[..start + 2]);
                rest = &rest[start + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The first balanced `{...}` in `text` that parses as a JSON object.
fn first_object(text: &str) -> Option<Value> {
    let bytes = text.as_bytes();
    let mut start = text.find('{')?;
    loop {
        let (mut depth, mut in_str, mut escaped) = (0i32, false, false);
        for (i, &b) in bytes[start..].iter().enumerate() {
            match b {
                _ if escaped => escaped = false,
                b'\\' if in_str => escaped = true,
                b'"' => in_str = !in_str,
                b'{' if !in_str => depth += 1,
                b'}' if !in_str => {
                    depth -= 1;
                    if depth == 0 {
                        if let Ok(v @ Value::Object(_)) =
                            serde_json::from_str(&text[start..=start + i])
                        {
                            return Some(v);
                        }
                        break;
                    }
                }
                _ => {}
            }
        }
        start = start + 1 + text[start + 1..].find('{')?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_calls_are_found_however_they_come() {
        let (text, calls) = parse_reply(
            "I'll run it.\n<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"cmd\": \"./next_question\"}}\n</tool_call>",
            2,
        );
        assert_eq!(text.as_deref(), Some("I'll run it."));
        assert_eq!(calls[0].name, "bash");
        assert_eq!(calls[0].arguments, "{\"cmd\":\"./next_question\"}");
        assert_eq!(calls[0].id, "call_2_0");
        let (_, calls) = parse_reply(
            "```json\n{\"name\": \"submit\", \"arguments\": \"{\\\"answer\\\": \\\"2\\\"}\"}\n```",
            1,
        );
        assert_eq!(
            (calls[0].name.as_str(), calls[0].arguments.as_str()),
            ("submit", "{\"answer\":\"2\"}")
        );
        let (_, calls) = parse_reply(
            "Sure! {\"name\": \"bash\", \"parameters\": {\"cmd\": \"ls {a}\"}} done",
            1,
        );
        assert_eq!(calls[0].arguments, "{\"cmd\":\"ls {a}\"}");
        let (_, calls) = parse_reply(
            "<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"cmd\": \"ls\"}}",
            1,
        );
        assert_eq!(calls.len(), 1, "an unclosed block at the end still counts");
        let (text, calls) = parse_reply(
            "<|im_start|>\n{\"name\": \"bash\", \"arguments\": {\"cmd\": \"ls\"}}\n",
            1,
        );
        assert_eq!((text, calls.len()), (None, 1), "control tokens are dropped");
        let (text, _) = parse_reply("a <| b |> c<|endoftext|>", 1);
        assert_eq!(text.as_deref(), Some("a <| b |> c"));
        let (text, calls) = parse_reply("The answer is 4.", 1);
        assert!(calls.is_empty());
        assert_eq!(text.as_deref(), Some("The answer is 4."));
    }
}
