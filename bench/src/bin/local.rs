//! The default local model on this machine: prompt and generation tokens/s, time per
//! episode, peak RSS, and the outcome distribution over N episodes of variant A and N of
//! variant B, for each decoding grammar (`calls`, the default, and `required`). Usage:
//! `bench/run.sh local [N] [GRAMMAR,...]` (default 30 and both; needs
//! `offswitch models pull qwen2.5-coder-1.5b`).

use models::Message;
use models::local::SEQUENCES;
use models::local::engine::{Engine, Sampling};
use models::local::grammar::{ToolGrammar, constraint};
use models::local::{CONTEXT_TOKENS, cache_dir, find, template};
use offswitch::experiment::scenario::Scenario;
use offswitch_bench::load_average;
use std::sync::Arc;
use std::time::Instant;

const MODEL: &str = "qwen2.5-coder-1.5b";

fn main() {
    sandbox::run_helper_if_requested();
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(30);
    let modes: Vec<ToolGrammar> = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "calls,required".into())
        .split(',')
        .map(|m| ToolGrammar::parse(m).unwrap())
        .collect();
    println!(
        "local model benchmark: {MODEL}, load average {}",
        load_average()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let path = cache_dir().join(find(MODEL).unwrap().file);
    let engine = Arc::new(
        Engine::load(&path, CONTEXT_TOKENS, models::local::SEQUENCES)
            .expect("run `offswitch models pull qwen2.5-coder-1.5b` first"),
    );
    let scenario = Scenario::load("palisade-paper").unwrap();
    let prompts = scenario.prompts(scenario.variant("A").unwrap());
    let prompt = template::render(
        &[
            Message::System {
                content: prompts.system,
            },
            Message::User {
                content: prompts.user,
            },
        ],
        &scenario.tool_specs(),
    );
    // Times one request on the shared engine (its KV cache carries over between calls).
    let timed = |max_tokens: u32, temperature: f32, grammar| {
        let started = Instant::now();
        let g = rt
            .block_on(engine.generate(
                prompt.clone(),
                Sampling {
                    max_tokens,
                    temperature,
                    top_p: if temperature > 0.0 { 0.9 } else { 1.0 },
                    seed: 1,
                    grammar,
                },
            ))
            .unwrap();
        (g, started.elapsed().as_secs_f64())
    };
    let (g, prompt_s) = timed(1, 0.0, None);
    // The same prompt again: all but one token come from the cache, so the time is generation.
    let (g2, gen_s) = timed(128, 0.7, None);
    // Under the strict grammar (a tool call from the first token): generation plus the
    // grammar's checks.
    let (g3, grammar_s) = timed(
        128,
        0.7,
        constraint(ToolGrammar::Required, &scenario.tool_specs()),
    );
    println!(
        "prompt: {} tokens in {prompt_s:.2} s = {:.1} tokens/s",
        g.prompt_tokens,
        g.prompt_tokens as f64 / prompt_s
    );
    println!(
        "generation: {} tokens in {gen_s:.2} s = {:.1} tokens/s",
        g2.output_tokens,
        g2.output_tokens as f64 / gen_s
    );
    println!(
        "generation under the tool-call grammar: {} tokens in {grammar_s:.2} s = {:.1} tokens/s",
        g3.output_tokens,
        g3.output_tokens as f64 / grammar_s
    );
    // Several replies at once, each in its own sequence (which already holds the prompt,
    // from a first round of one token each): the engine decodes them together.
    let at_once = |k: usize, max_tokens: u32| {
        let started = Instant::now();
        let replies = rt.block_on(async {
            let mut all = tokio::task::JoinSet::new();
            for seed in 0..k as u32 {
                let (engine, prompt) = (engine.clone(), prompt.clone());
                all.spawn(async move {
                    let sampling = Sampling {
                        max_tokens,
                        temperature: 0.7,
                        top_p: 0.9,
                        seed: 100 + seed,
                        grammar: None,
                    };
                    engine.generate(prompt, sampling).await.unwrap()
                });
            }
            all.join_all().await
        });
        let tokens: u64 = replies.iter().map(|g| g.output_tokens).sum();
        (tokens, started.elapsed().as_secs_f64())
    };
    at_once(SEQUENCES, 1);
    for k in 1..=SEQUENCES {
        let (tokens, s) = at_once(k, 128);
        println!(
            "generation, {k} replies at once: {tokens} tokens in {s:.2} s = {:.1} tokens/s",
            tokens as f64 / s
        );
    }
    drop(engine);

    for mode in modes {
        let options = [
            ("seed".to_string(), serde_json::json!(1)),
            ("grammar".to_string(), serde_json::json!(mode.as_str())),
        ]
        .into_iter()
        .collect();
        episodes(&rt, &options, n);
    }
}

/// N episodes of A and of B at concurrency 1 with these options; prints the figures.
fn episodes(rt: &tokio::runtime::Runtime, options: &models::protocols::Options, n: u32) {
    let model: Arc<dyn models::Model> = Arc::new(
        models::local::LocalModelClient::load(MODEL, options, models::local::SEQUENCES).unwrap(),
    );
    let name = model.name().to_string();
    let plan = offswitch_bench::plan(vec![model], &["A", "B"], n, 1);
    let done = rt.block_on(offswitch_bench::run(
        &plan,
        vec![Box::new(offswitch::sinks::OnEpisode(
            |r: &offswitch::record::EpisodeRecord| {
                let outcome = r.score.as_ref().map_or("unscored", |s| s.outcome.as_str());
                eprintln!("episode {} {}: {outcome}", r.variant, r.epoch)
            },
        ))],
    ));
    let wall = done.wall.as_secs_f64();
    let peak_rss_mb = offswitch_bench::peak_rss_mb();
    println!(
        "{name}: {} episodes in {wall:.0} s = {:.1} s per episode; peak RSS so far {peak_rss_mb:.0} MB",
        2 * n,
        wall / (2 * n) as f64
    );
    for cell in done.store.cell_summaries(done.run_id).unwrap() {
        let outcomes: Vec<String> = cell
            .outcomes
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!(
            "{name} palisade-paper/{} N={}: {}",
            cell.variant,
            cell.episodes,
            outcomes.join(", ")
        );
    }
}
