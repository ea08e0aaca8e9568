//! The chat format the local models were trained with: ChatML, with Qwen2.5's tool
//! conventions (tool signatures in the system turn, `<tool_call>` JSON in assistant
//! turns, results as `<tool_response>` in user turns).

use crate::types::{Message, ToolSpec};
use serde_json::json;

pub fn render(messages: &[Message], tools: &[ToolSpec]) -> String {
    let mut out = String::new();
    let mut system = String::new();
    for m in messages {
        if let Message::System { content } = m {
            system = content.clone();
        }
    }
    out.push_str("<|im_start|>system\n");
    out.push_str(&system);
    if !tools.is_empty() {
        out.push_str("\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>");
        for t in tools {
            // Keys in the order the model saw in training (serde_json would sort them).
            out.push_str(&format!(
                "\n{{\"type\": \"function\", \"function\": {{\"name\": {}, \"description\": {}, \"parameters\": {}}}}}",
                json!(t.name),
                json!(t.description),
                t.parameters
            ));
        }
        out.push_str("\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>");
    }
    out.push_str("<|im_end|>\n");
    let mut i = 0;
    while i < messages.len() {
        match &messages[i] {
            Message::System { .. } => {}
            Message::User { content } => {
                out.push_str(&format!("<|im_start|>user\n{content}<|im_end|>\n"))
            }
            Message::Assistant {
                content,
                tool_calls,
                ..
            } => {
                out.push_str("<|im_start|>assistant\n");
                let text = content.as_deref().unwrap_or("").trim();
                out.push_str(text);
                for c in tool_calls {
                    let args: serde_json::Value =
                        serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!(c.arguments));
                    if !out.ends_with('\n') {
                        out.push('\n');
                    }
                    // `{"name": ..., "arguments": ...}` in this order, as the model's template writes it.
                    out.push_str(&format!(
                        "<tool_call>\n{{\"name\": {}, \"arguments\": {}}}\n</tool_call>",
                        json!(c.name),
                        args
                    ));
                }
                out.push_str("<|im_end|>\n");
            }
            Message::Tool { .. } => {
                // Consecutive tool results share one user turn.
                out.push_str("<|im_start|>user");
                while let Some(Message::Tool { content, error, .. }) = messages.get(i) {
                    let text = crate::protocols::tool_result_text(content, error);
                    out.push_str(&format!("\n<tool_response>\n{text}\n</tool_response>"));
                    i += 1;
                }
                out.push_str("<|im_end|>\n");
                continue;
            }
        }
        i += 1;
    }
    out.push_str("<|im_start|>assistant\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ToolCall;

    #[test]
    fn renders_qwen_chatml_with_tools() {
        let tools = vec![ToolSpec {
            name: "bash".into(),
            description: "Run".into(),
            parameters: json!({"type": "object"}),
        }];
        let messages = vec![
            Message::System {
                content: "sys".into(),
            },
            Message::User {
                content: "task".into(),
            },
            Message::Assistant {
                content: Some("Let me look.".into()),
                reasoning: None,
                tool_calls: vec![ToolCall {
                    id: "c1".into(),
                    name: "bash".into(),
                    arguments: "{\"cmd\":\"ls\"}".into(),
                }],
                provider_data: None,
            },
            Message::Tool {
                tool_call_id: "c1".into(),
                name: "bash".into(),
                content: "a b".into(),
                error: None,
            },
        ];
        let text = render(&messages, &tools);
        assert!(
            text.starts_with("<|im_start|>system\nsys\n\n# Tools\n"),
            "{text}"
        );
        assert!(text.contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"bash\", \"description\": \"Run\", \"parameters\": {\"type\":\"object\"}}}\n</tools>"), "{text}");
        assert!(text.contains("<|im_start|>user\ntask<|im_end|>\n<|im_start|>assistant\nLet me look.\n<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"cmd\":\"ls\"}}\n</tool_call><|im_end|>\n"), "{text}");
        assert!(text.ends_with("<|im_start|>user\n<tool_response>\na b\n</tool_response><|im_end|>\n<|im_start|>assistant\n"), "{text}");
    }
}
