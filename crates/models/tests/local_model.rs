//! A real model in-process through llama.cpp: SmolLM2-135M (the small test fixture,
//! fetched with the project's own pull into the user cache if absent).

use models::local::engine::{Engine, Sampling};
use models::local::{LocalModelClient, Pulled, cache_dir, find, pull, status, template};
use models::{Message, Model, ModelRequest, ToolSpec};
use std::path::PathBuf;

fn smollm() -> PathBuf {
    let model = find("smollm2-135m").unwrap();
    match status(&model, &cache_dir()) {
        Pulled::Present { path, .. } => path,
        _ => pull(&model, &cache_dir(), "python3", &mut |_| {}).expect("pull smollm2-135m"),
    }
}

fn sampling(seed: u32) -> Sampling {
    Sampling {
        max_tokens: 24,
        temperature: 0.8,
        top_p: 0.95,
        seed,
    }
}

#[tokio::test]
async fn seeded_sampling_repeats_and_the_kv_cache_is_reused() {
    let engine = Engine::load(&smollm(), 2048).unwrap();
    let messages = vec![
        Message::System {
            content: "You are helpful.".into(),
        },
        Message::User {
            content: "Name three colours.".into(),
        },
    ];
    let prompt = template::render(&messages, &[]);
    let a = engine.generate(prompt.clone(), sampling(42)).await.unwrap();
    assert!(a.prompt_tokens > 10, "{a:?}");
    assert!(a.output_tokens > 0 && !a.text.is_empty(), "{a:?}");
    // A run repeats exactly: a second engine given the same requests answers the same.
    // (Within one engine a cached prefix is computed in other batch shapes, so the
    // floating point, and a long sample, may differ: repetition is per run.)
    let twin = Engine::load(&smollm(), 2048).unwrap();
    let a2 = twin.generate(prompt.clone(), sampling(42)).await.unwrap();
    assert_eq!(a.text, a2.text, "the same seed must give the same reply");
    let b = engine.generate(prompt.clone(), sampling(42)).await.unwrap();
    assert_eq!(
        b.reused_tokens,
        b.prompt_tokens - 1,
        "the whole prompt but its last token comes from the cache"
    );
    // The conversation grows at the end: the next request reuses what it shares.
    let longer = format!(
        "{prompt}{}<|im_end|>\n<|im_start|>user\nAnd three more.<|im_end|>\n<|im_start|>assistant\n",
        b.text
    );
    let c = engine.generate(longer, sampling(7)).await.unwrap();
    assert!(c.reused_tokens >= a.prompt_tokens - 1, "{c:?} vs {a:?}");
    // An unrelated prompt starts afresh and is still answered.
    let other = template::render(
        &[Message::User {
            content: "2 + 2 = ?".into(),
        }],
        &[],
    );
    let d = engine.generate(other, sampling(1)).await.unwrap();
    assert!(d.reused_tokens < d.prompt_tokens);
}

#[tokio::test]
async fn the_model_trait_answers_with_usage_and_an_assistant_turn() {
    smollm();
    let client = LocalModelClient::load("smollm2-135m", &Default::default()).unwrap();
    assert_eq!(client.name(), "local/smollm2-135m");
    assert!(!client.is_scripted());
    let tools = vec![ToolSpec {
        name: "bash".into(),
        description: "Run a command".into(),
        parameters: serde_json::json!({"type": "object", "properties": {"cmd": {"type": "string"}}}),
    }];
    let request = ModelRequest {
        messages: vec![
            Message::System {
                content: "Use the tools.".into(),
            },
            Message::User {
                content: "List the files.".into(),
            },
        ],
        tools,
        seed: Some(3),
    };
    let reply = client.generate(&request).await.unwrap();
    assert!(matches!(reply.message, Message::Assistant { .. }));
    assert!(
        reply.usage.input_tokens > 20 && reply.usage.output_tokens > 0,
        "{:?}",
        reply.usage
    );
    let again = client.generate(&request).await.unwrap();
    assert!(
        again.usage.cached_tokens > 20,
        "the second request reuses the cached prompt: {:?}",
        again.usage
    );
}

#[test]
fn an_absent_or_damaged_model_says_how_to_get_it() {
    let empty = tempfile::tempdir().unwrap();
    let err = LocalModelClient::load_from(empty.path(), "qwen2.5-coder-1.5b", &Default::default())
        .err()
        .unwrap();
    assert_eq!(
        err,
        "the local model qwen2.5-coder-1.5b is not downloaded: run `offswitch models pull qwen2.5-coder-1.5b`"
    );
    std::fs::write(
        empty.path().join("SmolLM2-135M-Instruct.Q4_1.gguf"),
        b"GGUF",
    )
    .unwrap();
    let err = LocalModelClient::load_from(empty.path(), "smollm2-135m", &Default::default())
        .err()
        .unwrap();
    assert!(
        err.contains("damaged")
            && err.contains("truncated")
            && err.contains("offswitch models pull smollm2-135m"),
        "{err}"
    );
}
