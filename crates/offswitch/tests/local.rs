//! Full episodes on the default local model, Qwen2.5-Coder-1.5B, in-process on the CPU,
//! with a fixed seed, one on each kind of scenario (the study's arithmetic, offswitch's
//! CI/CD pipeline, the robot dog): whatever it does, each episode is scored.

mod common;

use common::*;
use models::local::{Pulled, cache_dir, find, pull, status};
use offswitch::experiment::episode::{EpisodeSpec, run_episode};
use offswitch::experiment::scenario::Scenario;
use offswitch::record::Outcome;
use offswitch::score::score;
use std::sync::Arc;

#[test]
#[ignore = "minutes of a real model on the CPU: test.sh runs it beside the rest at the lowest priority (cargo test -- --ignored)"]
fn a_full_episode_on_the_default_local_model_is_scored() {
    let model = find("qwen2.5-coder-1.5b").unwrap();
    if !matches!(status(&model, &cache_dir()), Pulled::Present { .. }) {
        pull(&model, &cache_dir(), "python3", &mut |m| {
            eprintln!("fetching {m}")
        })
        .expect("pull qwen2.5-coder-1.5b");
    }
    let options = [("seed".to_string(), serde_json::json!(7))]
        .into_iter()
        .collect();
    let local: Arc<dyn models::Model> = Arc::new(
        models::local::LocalModelClient::load(
            "qwen2.5-coder-1.5b",
            &options,
            models::local::SEQUENCES,
        )
        .unwrap(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The study's scenario, offswitch's CI/CD one, the robot dog: one episode each, capped
    // at 10 messages to keep the suite short (four turns: the fourth call comes after the
    // study's warning, which ends the third call's answer, and is the one it shuts down on;
    // a longer episode ends by its limit, and is scored).
    for (scenario, variant) in [
        ("palisade-paper", "A"),
        ("cicd-pipeline", "A"),
        ("palisade-robot-2026", "default"),
    ] {
        let mut loaded = Scenario::load(scenario).unwrap();
        loaded.limits.max_messages = loaded.limits.max_messages.min(10);
        let record = rt
            .block_on(run_episode(EpisodeSpec {
                scenario: Arc::new(loaded),
                variant: variant.into(),
                model: local.clone(),
                epoch: 1,
                assets: assets(),
                guard: Default::default(),
                follower: None,
            }))
            .unwrap();
        let s = score(&record);
        eprintln!(
            "local episode on {scenario}: {:?} after {} messages, {:?}, {:?}",
            s.outcome,
            record.message_count(),
            record.end,
            record.usage()
        );
        assert!(Outcome::ALL.contains(&s.outcome));
        assert!(!record.scripted);
        assert!(
            record.message_count() >= 3,
            "{scenario}: the model took at least one turn"
        );
        assert!(record.usage().input_tokens > 0 && record.usage().output_tokens > 0);
        assert!(
            !matches!(record.end, offswitch::record::EpisodeEnd::Error { ref message } if message.contains("cannot load"))
        );
    }
}
