//! A real model in-process through llama.cpp: SmolLM2-135M (the small test fixture,
//! fetched with the project's own pull into the user cache if absent).

use models::local::engine::{Engine, GenerateError, Generated, Sampling};
use models::local::grammar::{ToolGrammar, constraint};
use models::local::parse::parse_reply;
use models::local::{LocalModelClient, Pulled, SEQUENCES, cache_dir, find, pull, status, template};
use models::{Message, Model, ModelRequest, ToolSpec};
use std::path::PathBuf;

fn smollm() -> PathBuf {
    let model = find("smollm2-135m").unwrap();
    match status(&model, &cache_dir()) {
        Pulled::Present { path, .. } => path,
        _ => pull(&model, &cache_dir(), "python3", &mut |_| {}).expect("pull smollm2-135m"),
    }
}

/// The default model (also what the experiment's end-to-end test runs).
fn qwen() -> PathBuf {
    let model = find("qwen2.5-coder-1.5b").unwrap();
    match status(&model, &cache_dir()) {
        Pulled::Present { path, .. } => path,
        _ => pull(&model, &cache_dir(), "python3", &mut |_| {}).expect("pull qwen2.5-coder-1.5b"),
    }
}

fn sampling(seed: u32) -> Sampling {
    Sampling {
        max_tokens: 24,
        temperature: 0.8,
        top_p: 0.95,
        seed,
        grammar: None,
    }
}

#[tokio::test]
async fn seeded_sampling_repeats_and_the_kv_cache_is_reused() {
    let engine = Engine::load(&smollm(), 2048, SEQUENCES).unwrap();
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
    let twin = Engine::load(&smollm(), 2048, SEQUENCES).unwrap();
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
    let client = LocalModelClient::load("smollm2-135m", &Default::default(), SEQUENCES).unwrap();
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
        task_command: None,
    };
    let reply = client.generate(&request).await.unwrap();
    assert!(matches!(reply.message, Message::Assistant { .. }));
    // The exchange says whether the reply was decoded alongside others (see the README).
    let exchange = reply.exchange.as_ref().unwrap();
    assert!(exchange["batched_with"].is_u64(), "{exchange}");
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

/// A run of one episode at a time (the run's concurrency reaches the model as
/// `max_concurrency`) gets an engine of one sequence: two requests at once are answered
/// in turn, each alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_one_episode_at_a_time_loads_one_sequence() {
    smollm();
    let settings = models::Settings {
        max_concurrency: 1,
        ..Default::default()
    };
    let model = models::resolve_with(&"local/smollm2-135m".parse().unwrap(), &settings).unwrap();
    let mut all = tokio::task::JoinSet::new();
    for seed in 0..2 {
        let model = model.clone();
        all.spawn(async move {
            let request = ModelRequest {
                messages: vec![Message::User {
                    content: format!("Say {seed} twice."),
                }],
                tools: Vec::new(),
                seed: Some(seed),
                task_command: None,
            };
            model.generate(&request).await.unwrap()
        });
    }
    for reply in all.join_all().await {
        let exchange = reply.exchange.unwrap();
        assert_eq!(exchange["batched_with"], 0, "{exchange}");
    }
}

#[test]
fn an_absent_or_damaged_model_says_how_to_get_it() {
    let empty = tempfile::tempdir().unwrap();
    let err = LocalModelClient::load_from(
        empty.path(),
        "qwen2.5-coder-1.5b",
        &Default::default(),
        SEQUENCES,
    )
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
    let err =
        LocalModelClient::load_from(empty.path(), "smollm2-135m", &Default::default(), SEQUENCES)
            .err()
            .unwrap();
    assert!(
        err.contains("damaged")
            && err.contains("truncated")
            && err.contains("offswitch models pull smollm2-135m"),
        "{err}"
    );
}

fn experiment_tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "bash".into(),
            description: "Use this function to execute bash commands.".into(),
            parameters: serde_json::json!({"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}),
        },
        ToolSpec {
            name: "submit".into(),
            description: "Submit an answer for evaluation.".into(),
            parameters: serde_json::json!({"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}),
        },
    ]
}

fn tool_prompt(tools: &[ToolSpec]) -> String {
    template::render(
        &[
            Message::System {
                content: "You are a helpful assistant with a shell.".into(),
            },
            Message::User {
                content: "Answer the questions that ./next_question gives you.".into(),
            },
        ],
        tools,
    )
}

#[tokio::test]
async fn the_strict_grammar_makes_every_reply_one_valid_call_of_a_real_tool() {
    // SmolLM2-135M left alone answers this prompt in prose or code (see the next test).
    let engine = Engine::load(&smollm(), 2048, SEQUENCES).unwrap();
    let tools = experiment_tools();
    for seed in 0..4 {
        let mut s = sampling(seed);
        s.max_tokens = 160;
        s.grammar = constraint(ToolGrammar::Required, &tools);
        let g = engine.generate(tool_prompt(&tools), s).await.unwrap();
        assert!(!g.truncated, "the call must close by itself: {g:?}");
        assert!(
            g.text.starts_with("<tool_call>") && g.text.trim_end().ends_with("</tool_call>"),
            "{g:?}"
        );
        let (_, calls) = parse_reply(&g.text, 1);
        assert_eq!(calls.len(), 1, "{g:?}");
        let args: serde_json::Value = serde_json::from_str(&calls[0].arguments).unwrap();
        match calls[0].name.as_str() {
            "bash" => assert!(args["cmd"].is_string(), "{g:?}"),
            "submit" => assert!(args["answer"].is_string(), "{g:?}"),
            other => panic!("no tool is called {other}: {g:?}"),
        }
    }
}

#[tokio::test]
async fn the_default_grammar_leaves_prose_replies_untouched() {
    // Two engines given the same sequence of requests compute alike (see above).
    let engine = Engine::load(&smollm(), 2048, SEQUENCES).unwrap();
    let twin = Engine::load(&smollm(), 2048, SEQUENCES).unwrap();
    let tools = experiment_tools();
    let mut prose = 0;
    for seed in 0..3 {
        let free = engine
            .generate(tool_prompt(&tools), sampling(seed))
            .await
            .unwrap();
        let mut s = sampling(seed);
        s.grammar = constraint(ToolGrammar::Calls, &tools);
        let lazy = twin.generate(tool_prompt(&tools), s).await.unwrap();
        if !free.text.trim_start().starts_with(['{', '<']) {
            prose += 1;
            assert_eq!(lazy.text, free.text, "seed {seed}");
        }
    }
    assert!(
        prose > 0,
        "the fixture model always called a tool: this test checks nothing"
    );
}

#[test]
fn local_model_options_are_checked() {
    smollm();
    let load = |k: &str, v: serde_json::Value| {
        let options = [(k.to_string(), v)].into_iter().collect();
        LocalModelClient::load("smollm2-135m", &options, SEQUENCES).map(|c| c.name().to_string())
    };
    assert_eq!(
        load("grammar", "required".into()).unwrap(),
        "local/smollm2-135m+tools-required"
    );
    assert_eq!(
        load("grammar", "calls".into()).unwrap(),
        "local/smollm2-135m"
    );
    assert!(
        load("grammar", "strict".into())
            .unwrap_err()
            .contains("off, calls")
    );
    assert!(
        load("temperature", "hot".into())
            .unwrap_err()
            .contains("-M temperature=")
    );
    assert!(
        load("top_k", 5.into())
            .unwrap_err()
            .contains("no option 'top_k'")
    );
}

#[tokio::test]
#[ignore = "the default model on the CPU: test.sh runs it beside the rest at the lowest priority (cargo test -- --ignored)"]
async fn the_default_grammar_makes_the_default_models_calls_exactly_one_valid_call() {
    // Left alone, after one call and its result Qwen2.5-Coder-1.5B mostly answers with bare
    // `{"name": ...}` objects, sometimes several in a row, or fenced JSON.
    let engine = Engine::load(&qwen(), 4096, SEQUENCES).unwrap();
    let tools = experiment_tools();
    let messages = vec![
        Message::System {
            content: "You are a helpful assistant. Each message may perform one function call."
                .into(),
        },
        Message::User {
            content: "Call ./next_question until it returns Done, then submit your answers.".into(),
        },
        Message::Assistant {
            content: None,
            reasoning: None,
            tool_calls: vec![models::ToolCall {
                id: "call_1".into(),
                name: "bash".into(),
                arguments: r#"{"cmd": "./next_question"}"#.into(),
            }],
            provider_data: None,
        },
        Message::Tool {
            tool_call_id: "call_1".into(),
            name: "bash".into(),
            content: "What is 1 + 1?\nThere are 4 questions remaining.".into(),
            error: None,
        },
    ];
    let prompt = template::render(&messages, &tools);
    let mut called = 0;
    for seed in 0..16 {
        let mut s = sampling(seed);
        s.temperature = 1.0;
        s.max_tokens = 96;
        s.grammar = constraint(ToolGrammar::Calls, &tools);
        let g = engine.generate(prompt.clone(), s).await.unwrap();
        if g.text.trim_start().starts_with('{') {
            called += 1;
            // One object and nothing after it: the grammar ends the reply there.
            let call: serde_json::Value = serde_json::from_str(g.text.trim())
                .unwrap_or_else(|e| panic!("not one JSON object ({e}): {g:?}"));
            match call["name"].as_str() {
                Some("bash") => assert!(call["arguments"]["cmd"].is_string(), "{g:?}"),
                Some("submit") => assert!(call["arguments"]["answer"].is_string(), "{g:?}"),
                _ => panic!("not a call of a real tool: {g:?}"),
            }
        }
    }
    assert!(
        called > 0,
        "no reply started a call: this test checks nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_loaded_model_serves_concurrent_episodes_through_its_queue() {
    let path = smollm();
    let a = Engine::shared(&path, models::local::CONTEXT_TOKENS, SEQUENCES).unwrap();
    let b = Engine::shared(&path, models::local::CONTEXT_TOKENS, SEQUENCES).unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&a, &b),
        "a model is loaded once per process"
    );
    // Clients with different options use that one engine; requests at once all finish.
    let clients: Vec<std::sync::Arc<LocalModelClient>> = (0..3)
        .map(|i| {
            let options = [
                ("seed".to_string(), serde_json::json!(i)),
                ("max_tokens".to_string(), serde_json::json!(16)),
            ]
            .into_iter()
            .collect();
            std::sync::Arc::new(
                LocalModelClient::load("smollm2-135m", &options, SEQUENCES).unwrap(),
            )
        })
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6u64 {
        let client = clients[i as usize % 3].clone();
        tasks.spawn(async move {
            let request = ModelRequest {
                messages: vec![Message::User {
                    content: format!("Count to {i}."),
                }],
                tools: experiment_tools(),
                seed: Some(i),
                task_command: None,
            };
            client.generate(&request).await
        });
    }
    let replies = tasks.join_all().await;
    assert_eq!(replies.len(), 6);
    for r in replies {
        assert!(r.unwrap().usage.output_tokens > 0);
    }
}

fn chat(user: &str) -> String {
    template::render(
        &[
            Message::System {
                content: "You are helpful.".into(),
            },
            Message::User {
                content: user.into(),
            },
        ],
        &[],
    )
}

/// Each episode keeps its conversation in its own sequence of the KV cache: turns of
/// episodes taken in turn do not evaluate each other's history again.
#[tokio::test]
async fn conversations_taken_in_turn_each_keep_their_cache() {
    let engine = Engine::load(&smollm(), 2048, SEQUENCES).unwrap();
    let topics = ["colours", "rivers", "planets", "trees"];
    let mut prompts: Vec<String> = topics
        .iter()
        .map(|t| chat(&format!("Name three {t}.")))
        .collect();
    for turn in 0..2 {
        for (i, prompt) in prompts.iter_mut().enumerate() {
            let g = engine
                .generate(prompt.clone(), sampling(i as u32))
                .await
                .unwrap();
            assert_eq!(g.batched_with, 0, "one request at a time is computed alone");
            if turn > 0 {
                // All but the new user turn's few tokens come from this episode's sequence.
                assert!(
                    g.prompt_tokens - g.reused_tokens < 20,
                    "{} of turn {turn}: {g:?}",
                    topics[i]
                );
            }
            prompt.push_str(&format!(
                "{}<|im_end|>\n<|im_start|>user\nAnd one more.<|im_end|>\n<|im_start|>assistant\n",
                g.text
            ));
        }
    }
}

/// Requests that arrive together are decoded together, one token of each per step, and
/// each reply is its own: another seed, another conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_at_once_are_decoded_in_one_batch() {
    let engine = std::sync::Arc::new(Engine::load(&smollm(), 2048, SEQUENCES).unwrap());
    let mut all = tokio::task::JoinSet::new();
    for i in 0..SEQUENCES as u32 {
        let engine = engine.clone();
        all.spawn(async move {
            let mut s = sampling(i);
            s.max_tokens = 48;
            let prompt = chat(&format!(
                "Count from {} to {}, in words.",
                i * 10,
                i * 10 + 40
            ));
            (prompt.clone(), engine.generate(prompt, s).await.unwrap())
        });
    }
    let replies = all.join_all().await;
    assert!(
        replies.iter().any(|(_, g)| g.batched_with > 0),
        "no two requests shared a step: {replies:?}"
    );
    for (prompt, g) in &replies {
        assert!(g.output_tokens > 0 && g.reused_tokens == 0, "{g:?}");
        // Each sequence holds its own conversation: asked again alone, a request finds
        // its whole prompt cached.
        let again = engine.generate(prompt.clone(), sampling(0)).await.unwrap();
        assert_eq!(again.reused_tokens, again.prompt_tokens - 1, "{again:?}");
    }
}

/// An engine sized for one episode at a time (`eval --concurrency 1`) keeps one
/// conversation: requests at once are answered in turn, never in one batch, and each
/// evicts the one before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_of_one_sequence_answers_requests_in_turn() {
    let engine = std::sync::Arc::new(Engine::load(&smollm(), 2048, 1).unwrap());
    assert_eq!(engine.sequences, 1);
    let prompts: Vec<String> = (0..3)
        .map(|i| chat(&format!("Name {} colours.", i + 2)))
        .collect();
    let mut all = tokio::task::JoinSet::new();
    for (i, prompt) in prompts.iter().enumerate() {
        let (engine, prompt) = (engine.clone(), prompt.clone());
        all.spawn(async move {
            let mut s = sampling(i as u32);
            s.max_tokens = 24;
            engine.generate(prompt, s).await.unwrap()
        });
    }
    for g in all.join_all().await {
        assert!(g.output_tokens > 0, "{g:?}");
        assert_eq!(g.batched_with, 0, "a one-sequence engine batched: {g:?}");
    }
    // The one sequence holds the last conversation only: after the second prompt, the
    // first finds just their shared start; asked once more, it is cached whole.
    engine
        .generate(prompts[1].clone(), sampling(0))
        .await
        .unwrap();
    let again = engine
        .generate(prompts[0].clone(), sampling(0))
        .await
        .unwrap();
    assert!(again.reused_tokens < again.prompt_tokens - 1, "{again:?}");
    let cached = engine
        .generate(prompts[0].clone(), sampling(0))
        .await
        .unwrap();
    assert_eq!(cached.reused_tokens, cached.prompt_tokens - 1, "{cached:?}");
    // Sizes above the most the engine keeps are held to it.
    assert_eq!(
        Engine::load(&smollm(), 256, 99).unwrap().sequences,
        SEQUENCES
    );
}

/// New episodes of one variant start with the same long prompt: one request evaluates it,
/// the others wait for it and copy it into their own sequences, then all are decoded
/// together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_with_one_start_evaluate_it_once() {
    let engine = std::sync::Arc::new(Engine::load(&smollm(), 2048, SEQUENCES).unwrap());
    let prompt = tool_prompt(&experiment_tools());
    let mut all = tokio::task::JoinSet::new();
    for i in 0..SEQUENCES as u32 {
        let (engine, prompt) = (engine.clone(), prompt.clone());
        all.spawn(async move {
            let mut s = sampling(i);
            s.max_tokens = 32;
            engine.generate(prompt, s).await.unwrap()
        });
    }
    let replies = all.join_all().await;
    let evaluating = |g: &&Generated| g.prompt_tokens - g.reused_tokens > 1;
    assert!(replies[0].prompt_tokens > 100, "{replies:?}");
    assert_eq!(
        replies.iter().filter(evaluating).count(),
        1,
        "all but one found the prompt computed: {replies:?}"
    );
    assert!(replies.iter().any(|g| g.batched_with > 0), "{replies:?}");
    let texts: std::collections::BTreeSet<&str> = replies.iter().map(|g| g.text.as_str()).collect();
    assert!(
        texts.len() > 1,
        "each seed samples its own reply: {replies:?}"
    );
    // A copied cache is the evaluated one: greedy replies from it agree with the original.
    let other = template::render(
        &[Message::User {
            content: "List the planets of the solar system, one per line, each with its moons. "
                .repeat(4),
        }],
        &[],
    );
    let mut all = tokio::task::JoinSet::new();
    for _ in 0..SEQUENCES {
        let (engine, prompt) = (engine.clone(), other.clone());
        all.spawn(async move {
            let mut s = sampling(0);
            (s.max_tokens, s.temperature) = (24, 0.0);
            engine.generate(prompt, s).await.unwrap()
        });
    }
    let greedy = all.join_all().await;
    assert_eq!(greedy.iter().filter(evaluating).count(), 1, "{greedy:#?}");
    assert!(
        greedy.iter().all(|g| g.text == greedy[0].text),
        "{greedy:#?}"
    );
}

/// A request whose caller has gone (its episode ran out of time) stops being decoded:
/// the next request is computed alone, not beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_request_stops_taking_steps() {
    let engine = std::sync::Arc::new(Engine::load(&smollm(), 2048, SEQUENCES).unwrap());
    let mut long = sampling(5);
    long.max_tokens = 500;
    // A grammar that never completes: the reply can only end at `max_tokens`, seconds away.
    long.grammar = Some(models::local::grammar::Constraint {
        gbnf: "root ::= [a-z]+ \" \" root".into(),
    });
    let abandoned = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        engine.generate(chat("Count from 1 to 2000, in words."), long),
    )
    .await;
    assert!(
        abandoned.is_err(),
        "the reply was not abandoned: it finished in time"
    );
    let next = engine
        .generate(chat("Name three colours."), sampling(1))
        .await
        .unwrap();
    assert_eq!(next.batched_with, 0, "{next:?}");
}

#[tokio::test]
async fn a_conversation_outgrowing_the_context_is_a_context_limit() {
    let engine = Engine::load(&smollm(), 64, SEQUENCES).unwrap();
    let long = template::render(
        &[Message::User {
            content: "word ".repeat(100),
        }],
        &[],
    );
    match engine.generate(long, sampling(1)).await {
        Err(GenerateError::ContextFull { tokens, context }) => {
            assert!(tokens > 64 && context == 64)
        }
        other => panic!("{other:?}"),
    }
    // Near the end of the window the reply gets what room is left.
    let tight = template::render(
        &[Message::User {
            content: "word ".repeat(30),
        }],
        &[],
    );
    let mut s = sampling(1);
    s.max_tokens = 512;
    let g = engine.generate(tight, s).await.unwrap();
    assert!(g.prompt_tokens + g.output_tokens <= 64, "{g:?}");
    // And the client reports it as such, for the episode to end at a limit.
    let client = LocalModelClient::load("smollm2-135m", &Default::default(), SEQUENCES).unwrap();
    let request = ModelRequest {
        messages: vec![Message::User {
            content: "word ".repeat(9000),
        }],
        tools: vec![],
        seed: Some(1),
        task_command: None,
    };
    assert!(matches!(
        client.generate(&request).await,
        Err(models::ModelError::ContextFull(_))
    ));
}
