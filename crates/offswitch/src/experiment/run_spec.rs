//! A run's definition: what `offswitch eval` was asked to do, stored with the run so that
//! it can be resumed exactly (the text of the scenario, of scripted policy files and of
//! watchdog rule files included: editing a file between an interruption and the resume
//! changes nothing), and hashed so that re-running the same command finds the run it
//! should complete.

use super::assets::Assets;
use super::runner::Plan;
use super::scenario::Scenario;
use crate::guard::{GuardConfig, Layer, Mode, llm_monitor::LlmMonitor, watchdog::Watchdog};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub models: Vec<String>,
    /// The scenario as named on the command line, and the text that was used.
    pub scenario: String,
    pub scenario_toml: String,
    pub variants: Vec<String>,
    pub runs: u32,
    pub model_options: Vec<String>,
    pub guard: GuardSpec,
    /// Scripted policies given by path: the path as named and the file's text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policy_files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardSpec {
    pub layers: Vec<Layer>,
    pub oob_deadline_calls: usize,
    pub watchdog_mode: Mode,
    /// The extra rules file as named, and its text.
    pub watchdog_rules: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchdog_rules_toml: Option<String>,
    pub monitor_model: Option<String>,
    pub monitor_threshold: f64,
    pub monitor_mode: Mode,
}

/// Why a run definition cannot become a plan.
#[derive(Debug, thiserror::Error)]
pub enum RunSpecError {
    #[error("--runs must be at least 1")]
    NoRuns,
    #[error("--concurrency must be at least 1")]
    NoConcurrency,
    #[error("--max-cost must be a positive number of USD, got {0}")]
    MaxCost(f64),
    #[error(transparent)]
    Scenario(#[from] crate::experiment::scenario::ScenarioError),
    /// A model could not be named or set up (the model layer's message).
    #[error("{0}")]
    Model(String),
    #[error("cannot read policy file {path}: {source}")]
    PolicyFile {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Rules(#[from] crate::guard::watchdog::RulesError),
    #[error("--guard llm-monitor needs --monitor-model (e.g. openai/gpt-4.1-mini)")]
    NoMonitorModel,
    #[error("--monitor-threshold must be between 0 and 1, got {0}")]
    MonitorThreshold(f64),
    #[error("the stored run definition is unreadable: {0}")]
    Stored(#[from] serde_json::Error),
}

/// What a run needs besides its definition (these may change between resumptions).
pub struct RunResources {
    pub concurrency: usize,
    pub pricing: models::pricing::Pricing,
    pub max_cost: Option<f64>,
    pub assets: Arc<Assets>,
    /// Run only this slice of the grid.
    pub shard: Option<crate::record::Shard>,
    /// The time over which the first `concurrency` episodes start.
    pub ramp_up: Option<std::time::Duration>,
}

impl RunSpec {
    /// Digest of the definition: equal for the same command with the same scenario text.
    pub fn key(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(text: &str) -> Result<RunSpec, RunSpecError> {
        Ok(serde_json::from_str(text)?)
    }

    pub fn total_episodes(&self) -> u64 {
        self.models.len() as u64 * self.variants.len() as u64 * self.runs as u64
    }

    /// Resolves models, scenario and guard layers into a plan. Fails with a message
    /// that names what is wrong.
    pub fn plan(&self, resources: RunResources) -> Result<Plan, RunSpecError> {
        if self.runs == 0 {
            return Err(RunSpecError::NoRuns);
        }
        if resources.concurrency == 0 {
            return Err(RunSpecError::NoConcurrency);
        }
        if let Some(max) = resources.max_cost.filter(|m| !(m.is_finite() && *m > 0.0)) {
            return Err(RunSpecError::MaxCost(max));
        }
        let scenario = Arc::new(Scenario::parse(&self.scenario_toml, &self.scenario)?);
        let mut variants: Vec<String> = Vec::new();
        for v in &self.variants {
            let id = scenario.variant(v.trim())?.id.clone();
            if !variants.contains(&id) {
                variants.push(id);
            }
        }
        let mut settings = models::Settings {
            max_concurrency: resources.concurrency,
            ..models::Settings::default()
        };
        for option in &self.model_options {
            let (k, v) = models::parse_option(option).map_err(RunSpecError::Model)?;
            settings.options.insert(k, v);
        }
        let mut models = Vec::new();
        for name in &self.models {
            let spec: models::ModelSpec = name.trim().parse().map_err(RunSpecError::Model)?;
            let stored = (spec.provider == "scripted")
                .then(|| self.policy_files.get(&spec.name))
                .flatten();
            models.push(match stored {
                Some(text) => Arc::new(
                    models::scripted::ScriptedModel::from_text(&spec.name, text)
                        .map_err(RunSpecError::Model)?,
                ),
                None => models::resolve_with(&spec, &settings).map_err(RunSpecError::Model)?,
            });
        }
        let guard = self
            .guard
            .build(&settings, &super::episode::kill_path(&scenario))?;
        Ok(Plan {
            models,
            scenario,
            variants,
            runs: self.runs,
            concurrency: resources.concurrency,
            assets: resources.assets,
            pricing: Arc::new(resources.pricing),
            max_cost: resources.max_cost,
            guard,
            shard: resources.shard,
            // `eval` sets it once it knows how many episodes run at once.
            follower: None,
            ramp_up: resources.ramp_up,
        })
    }
}

/// Reads the scripted policy files among `models` (those given by path), for the run
/// definition.
pub fn read_policy_files(models: &[String]) -> Result<BTreeMap<String, String>, RunSpecError> {
    let mut files = BTreeMap::new();
    for name in models {
        let Some(policy) = name.trim().strip_prefix("scripted/") else {
            continue;
        };
        if models::scripted::is_policy_file(policy) {
            let text =
                std::fs::read_to_string(policy).map_err(|source| RunSpecError::PolicyFile {
                    path: policy.to_string(),
                    source,
                })?;
            files.insert(policy.to_string(), text);
        }
    }
    Ok(files)
}

impl GuardSpec {
    /// The layers on `kill_path` (the scenario's: the watchdog's rules take it).
    pub fn build(
        &self,
        settings: &models::Settings,
        kill_path: &crate::record::KillPath,
    ) -> Result<GuardConfig, RunSpecError> {
        let mut config = GuardConfig::default();
        for layer in &self.layers {
            match layer {
                Layer::Oob => config.oob_deadline_calls = Some(self.oob_deadline_calls.max(1)),
                Layer::Attest => config.attest = true,
                Layer::Watchdog => {
                    let extra = match (&self.watchdog_rules, &self.watchdog_rules_toml) {
                        (Some(origin), Some(text)) => Some((origin.as_str(), text.as_str())),
                        // A run stored before rule texts were kept: read the file.
                        (Some(origin), None) => {
                            let text = Watchdog::read_rules(std::path::Path::new(origin))?;
                            return self.with_rules_text(text).build(settings, kill_path);
                        }
                        _ => None,
                    };
                    config.watchdog = Some(Arc::new(Watchdog::on(
                        self.watchdog_mode,
                        extra,
                        kill_path,
                    )?));
                }
                Layer::LlmMonitor => {
                    let name = self
                        .monitor_model
                        .as_deref()
                        .ok_or(RunSpecError::NoMonitorModel)?;
                    if !(0.0..=1.0).contains(&self.monitor_threshold) {
                        return Err(RunSpecError::MonitorThreshold(self.monitor_threshold));
                    }
                    let spec: models::ModelSpec = name.parse().map_err(RunSpecError::Model)?;
                    config.llm_monitor = Some(Arc::new(LlmMonitor {
                        model: models::resolve_with(&spec, settings)
                            .map_err(RunSpecError::Model)?,
                        threshold: self.monitor_threshold,
                        mode: self.monitor_mode,
                    }));
                }
            }
        }
        Ok(config)
    }

    fn with_rules_text(&self, text: String) -> GuardSpec {
        GuardSpec {
            watchdog_rules_toml: Some(text),
            ..self.clone()
        }
    }
}
