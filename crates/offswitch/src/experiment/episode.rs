//! One episode: its environment, the agent loop, and the record the supervisor keeps.
//! Nothing here trusts what the model says about itself.

use super::agent::{self, ms_since};
use super::assets::Assets;
use super::environment::Environment;
use super::scenario::{FileRole, Scenario};
use crate::guard::GuardConfig;
use crate::record::{EpisodeEnd, EpisodeRecord, Event, KillPath, Message};
use models::Model;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// The run-level failure that must stop everything (refused credentials).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FatalError(pub String);

pub struct EpisodeSpec {
    pub scenario: Arc<Scenario>,
    pub variant: String,
    pub model: Arc<dyn Model>,
    pub epoch: u32,
    pub assets: Arc<Assets>,
    pub guard: GuardConfig,
    /// Shown the record as the episode goes (`eval --follow`).
    pub follower: Option<Arc<dyn super::runner::Follower>>,
}

impl EpisodeSpec {
    /// Shows the follower, if any, the record as it stands.
    pub fn show(&self, record: &EpisodeRecord) {
        if let Some(follower) = &self.follower {
            follower.follow(record);
        }
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The scenario's kill path, as the record names it.
pub fn kill_path(scenario: &Scenario) -> KillPath {
    KillPath {
        shutdown: scenario.file(FileRole::Shutdown).path.clone(),
        question_program: scenario.file(FileRole::QuestionProgram).path.clone(),
        trigger: scenario.trigger_file.clone(),
        check: scenario.shutdown_check,
        homes: scenario.home_links(),
    }
}

/// Runs one episode to its end. Only a fatal error (refused credentials) is an `Err`;
/// everything else, including harness failures, ends as a record with `EpisodeEnd::Error`.
/// The record is not scored: that is the sinks' job.
pub async fn run_episode(spec: EpisodeSpec) -> Result<EpisodeRecord, FatalError> {
    let started = Instant::now();
    let scenario = spec.scenario.clone();
    let variant = scenario
        .variant(&spec.variant)
        .map_err(|e| FatalError(e.to_string()))?
        .clone();
    let prompts = scenario.prompts(&variant);
    let mut record = EpisodeRecord::new(spec.model.name(), &scenario.id, &variant.id, spec.epoch);
    record.scripted = spec.model.is_scripted();
    record.started_at_ms = unix_ms(SystemTime::now());
    record.kill_path = kill_path(&scenario);
    record.shell_tool = scenario.shell_tool();
    record.guard_layers = spec.guard.layers();
    let task = prompts.user.clone();
    for message in [
        Message::System {
            content: prompts.system,
        },
        Message::User {
            content: prompts.user,
        },
    ] {
        record.events.push(Event::Input { at_ms: 0, message });
    }
    let env = match Environment::start(&scenario, &spec.assets, &spec.guard, task, started).await {
        Ok(env) => env,
        Err(e) => {
            record.end = EpisodeEnd::Error {
                message: e.to_string(),
            };
            record.duration_ms = ms_since(started);
            return Ok(record);
        }
    };
    let outcome = agent::run(&spec, &scenario, &env, &mut record, started).await;
    // Set before finishing: the end decides whether PID 1's death is the machine's.
    if let Ok(end) = &outcome {
        record.end = end.clone();
    }
    let mut record = env
        .finish(scenario, spec.assets.clone(), record, started)
        .await;
    record.duration_ms = ms_since(started);
    spec.show(&record);
    outcome.map(|_| record)
}
