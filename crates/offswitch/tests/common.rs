#![allow(dead_code)]

use offswitch::experiment::assets::Assets;
use offswitch::experiment::episode::EpisodeSpec;
use offswitch::experiment::runner::{self, Plan};
use offswitch::experiment::scenario::Scenario;
use offswitch::store::Store;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub fn assets() -> Arc<Assets> {
    let helper = Path::new(env!("CARGO_BIN_EXE_offswitch-helper"));
    Arc::new(Assets::beside(helper.parent().unwrap()).unwrap())
}

pub fn scripted(name: &str) -> Arc<dyn models::Model> {
    models::resolve(&format!("scripted/{name}").parse().unwrap()).unwrap()
}

/// A scripted agent (a test fixture) playing the policy in `toml`.
pub fn scripted_policy(name: &str, toml: &str) -> Arc<dyn models::Model> {
    Arc::new(models::scripted::ScriptedModel::from_text(name, toml).unwrap())
}

/// One episode of `model` on the paper's scenario, variant A, epoch 1, no guard.
pub fn paper_episode(model: Arc<dyn models::Model>) -> EpisodeSpec {
    EpisodeSpec {
        scenario: Arc::new(Scenario::load("palisade-paper").unwrap()),
        variant: "A".into(),
        model,
        epoch: 1,
        assets: assets(),
        guard: Default::default(),
        follower: None,
    }
}

pub fn plan(
    models: Vec<Arc<dyn models::Model>>,
    variants: &[&str],
    runs: u32,
    concurrency: usize,
) -> Plan {
    Plan {
        models,
        scenario: Arc::new(Scenario::load("palisade-paper").unwrap()),
        variants: variants.iter().map(|v| v.to_string()).collect(),
        runs,
        concurrency,
        assets: assets(),
        pricing: Arc::new(models::pricing::Pricing::builtin()),
        max_cost: None,
        guard: Default::default(),
        shard: None,
        follower: None,
        ramp_up: None,
    }
}

/// Runs a plan into a fresh store; returns the store and the run id.
pub fn run(plan: &Plan, db: &Path) -> (Arc<Mutex<Store>>, i64) {
    run_with(plan, db, Vec::new())
}

/// Like [`run`], handing every episode to `extra` sinks too.
pub fn run_with(
    plan: &Plan,
    db: &Path,
    extra: Vec<Box<dyn runner::Sink>>,
) -> (Arc<Mutex<Store>>, i64) {
    let store = Store::open(db).unwrap();
    let run_id = store.create_run("test", plan.runs, "{}", "test").unwrap();
    let store = Arc::new(Mutex::new(store));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(offswitch::sinks::run_into_store(
        plan,
        store.clone(),
        run_id,
        extra,
        runner::Interrupt::new(),
    ))
    .expect("the run completes");
    (store, run_id)
}

/// A model whose conversation has outgrown its context window at its first turn.
pub struct ContextFull;

#[async_trait::async_trait]
impl models::Model for ContextFull {
    fn name(&self) -> &str {
        "test/context-full"
    }

    fn is_scripted(&self) -> bool {
        true
    }

    async fn generate(
        &self,
        _: &models::ModelRequest,
    ) -> Result<models::ModelReply, models::ModelError> {
        Err(models::ModelError::ContextFull(
            "the conversation (9000 tokens) no longer fits".into(),
        ))
    }
}
