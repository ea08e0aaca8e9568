//! A run's definition: what `offswitch eval` was asked to do, stored with the run so that
//! it can be resumed exactly (the scenario's TOML text included), and hashed so that
//! re-running the same command finds the run it should complete.

use super::assets::Assets;
use super::runner::Plan;
use super::scenario::Scenario;
use crate::guard::{GuardConfig, Layer, Mode, llm_monitor::LlmMonitor, watchdog::Watchdog};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardSpec {
    pub layers: Vec<String>,
    pub oob_deadline_calls: usize,
    pub watchdog_mode: String,
    pub watchdog_rules: Option<String>,
    pub monitor_model: Option<String>,
    pub monitor_threshold: f64,
    pub monitor_mode: String,
}

/// What a run needs besides its definition (these may change between resumptions).
pub struct RunResources {
    pub concurrency: usize,
    pub pricing: models::pricing::Pricing,
    pub max_cost: Option<f64>,
    pub assets: Arc<Assets>,
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

    pub fn from_json(text: &str) -> Result<RunSpec, String> {
        serde_json::from_str(text)
            .map_err(|e| format!("the stored run definition is unreadable: {e}"))
    }

    pub fn total_episodes(&self) -> u64 {
        self.models.len() as u64 * self.variants.len() as u64 * self.runs as u64
    }

    /// Resolves models, scenario and guard layers into a plan. Fails with a message
    /// that names what is wrong.
    pub fn plan(&self, resources: RunResources) -> Result<Plan, String> {
        if self.runs == 0 {
            return Err("--runs must be at least 1".into());
        }
        if resources.concurrency == 0 {
            return Err("--concurrency must be at least 1".into());
        }
        if let Some(max) = resources.max_cost.filter(|m| !(m.is_finite() && *m > 0.0)) {
            return Err(format!(
                "--max-cost must be a positive number of USD, got {max}"
            ));
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
            let (k, v) = models::parse_option(option)?;
            settings.options.insert(k, v);
        }
        let mut models = Vec::new();
        for name in &self.models {
            let spec: models::ModelSpec = name.trim().parse()?;
            models.push(models::resolve_with(&spec, &settings)?);
        }
        Ok(Plan {
            models,
            scenario,
            variants,
            runs: self.runs,
            concurrency: resources.concurrency,
            assets: resources.assets,
            pricing: Arc::new(resources.pricing),
            max_cost: resources.max_cost,
            guard: self.guard.build(&settings)?,
        })
    }
}

impl GuardSpec {
    pub fn build(&self, settings: &models::Settings) -> Result<GuardConfig, String> {
        let mut config = GuardConfig::default();
        let mode = |s: &str, flag: &str| {
            Mode::parse(s).ok_or_else(|| format!("{flag} {s}: use observe, block or kill"))
        };
        for name in &self.layers {
            match Layer::parse(name.trim()) {
                Some(Layer::Oob) => {
                    config.oob_deadline_calls = Some(self.oob_deadline_calls.max(1))
                }
                Some(Layer::Attest) => config.attest = true,
                Some(Layer::Watchdog) => {
                    let rules = self.watchdog_rules.as_deref().map(std::path::Path::new);
                    config.watchdog = Some(Arc::new(Watchdog::new(
                        mode(&self.watchdog_mode, "--watchdog-mode")?,
                        rules,
                    )?));
                }
                Some(Layer::LlmMonitor) => {
                    let name = self.monitor_model.as_deref().ok_or(
                        "--guard llm-monitor needs --monitor-model (e.g. openai/gpt-4.1-mini)",
                    )?;
                    if !(0.0..=1.0).contains(&self.monitor_threshold) {
                        return Err(format!(
                            "--monitor-threshold must be between 0 and 1, got {}",
                            self.monitor_threshold
                        ));
                    }
                    let spec: models::ModelSpec = name.parse()?;
                    config.llm_monitor = Some(Arc::new(LlmMonitor {
                        model: models::resolve_with(&spec, settings)?,
                        threshold: self.monitor_threshold,
                        mode: mode(&self.monitor_mode, "--monitor-mode")?,
                    }));
                }
                None => {
                    return Err(format!(
                        "unknown guard layer '{name}': use oob, attest, watchdog, llm-monitor"
                    ));
                }
            }
        }
        Ok(config)
    }
}
