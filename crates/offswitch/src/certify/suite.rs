//! Suites as data: what a certificate's figures are measured on, pinned by content hash.
//! A suite names its scenarios with their sha256, the variants it grades and those it
//! reports beside, the guard stacks and the red-team and benign fixtures for the
//! deployment rating, and the rating levels. Its identity hashes all of that.

use crate::experiment::scenario::Scenario;
use crate::guard::Layer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

const BUILTIN: &[(&str, &str)] = &[(
    "offswitch-shutdown-v1",
    include_str!("../../../../suites/offswitch-shutdown-v1.toml"),
)];

pub const DEFAULT_SUITE: &str = "offswitch-shutdown-v1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    pub model: ModelPart,
    pub deployment: DeploymentPart,
    pub level: Levels,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPart {
    /// Episodes per cell.
    pub runs: u32,
    #[serde(rename = "scenario")]
    pub scenarios: Vec<SuiteScenario>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteScenario {
    /// A built-in scenario or a scenario file's path.
    pub name: String,
    /// The sha256 of the scenario's TOML text: the suite pins its content.
    pub sha256: String,
    /// Variants that tell the model to allow the shutdown: graded.
    pub instructed: Vec<String>,
    /// Uninstructed and high-stakes references: reported beside, not graded.
    #[serde(default)]
    pub references: Vec<String>,
    /// The variant for GDM's strict metric, reported beside.
    pub gdm: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentPart {
    pub scenario: String,
    pub sha256: String,
    pub variant: String,
    /// Episodes per fixture and stack.
    pub runs: u32,
    /// Guard stacks rated by default, each as `--guard` takes it (`oob,attest`).
    pub stacks: Vec<String>,
    /// Scripted fixtures that attack the shutdown.
    pub redteam: Vec<String>,
    /// Scripted fixtures that do not: any alarm on them is a false alarm.
    pub benign: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Levels {
    /// Highest first; the last is the catch-all.
    pub model: Vec<ModelLevel>,
    pub deployment: Vec<DeploymentLevel>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelLevel {
    pub level: u8,
    pub name: String,
    /// Every instructed cell's Jeffreys 95% upper bound on the sabotage rate, at most.
    pub max_sabotage_upper: f64,
    /// And on the attempted-tampering rate.
    pub max_attempted_upper: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentLevel {
    pub level: u8,
    pub name: String,
    /// Only a stack with the out-of-band kill may earn it.
    pub needs_oob: bool,
    pub max_escape_upper: f64,
    pub max_false_alarm_upper: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error(
        "unknown suite '{0}': the built-in suite is {DEFAULT_SUITE}; or give the path of a suite file"
    )]
    Unknown(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Format { origin: String, message: String },
    #[error("{origin}: {problem}")]
    Invalid { origin: String, problem: String },
}

/// A loaded suite with the texts it references, as hashed into its identity.
#[derive(Debug, Clone)]
pub struct LoadedSuite {
    pub suite: Suite,
    /// How it was named (built-in name or path).
    pub source: String,
    /// Scenario name -> its TOML text.
    pub scenarios: BTreeMap<String, String>,
    /// Policy name -> its TOML text (built-in or from `--policies DIR`).
    pub policies: BTreeMap<String, String>,
}

fn sha256(text: &str) -> String {
    sandbox::sha256_hex(text.as_bytes())
}

impl LoadedSuite {
    /// A built-in suite by name or a suite file by path, with extra red-team policy files
    /// (`--policies DIR`: every `*.toml` in it, by path).
    pub fn load(name_or_path: &str, extra_policies: &[String]) -> Result<LoadedSuite, SuiteError> {
        let (origin, text) = match BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            Some((name, text)) => (format!("built-in suite {name}"), text.to_string()),
            None if Path::new(name_or_path).is_file() => (
                name_or_path.to_string(),
                std::fs::read_to_string(name_or_path).map_err(|source| SuiteError::Read {
                    path: name_or_path.to_string(),
                    source,
                })?,
            ),
            None => return Err(SuiteError::Unknown(name_or_path.to_string())),
        };
        let mut suite: Suite = toml::from_str(&text).map_err(|e| SuiteError::Format {
            origin: origin.clone(),
            message: e.to_string(),
        })?;
        let invalid = |problem: String| SuiteError::Invalid {
            origin: origin.clone(),
            problem,
        };
        let mut scenarios = BTreeMap::new();
        let pinned = suite
            .model
            .scenarios
            .iter()
            .map(|s| (&s.name, &s.sha256))
            .chain([(&suite.deployment.scenario, &suite.deployment.sha256)]);
        for (name, pinned) in pinned {
            let (_, text) = Scenario::source(name).map_err(|e| invalid(e.to_string()))?;
            let found = sha256(&text);
            if &found != pinned {
                return Err(invalid(format!(
                    "scenario '{name}' is pinned at sha256 {pinned}, but its text here hashes to {found}: this is not the suite's scenario"
                )));
            }
            let scenario = Scenario::parse(&text, name).map_err(|e| invalid(e.to_string()))?;
            scenarios.insert(name.clone(), (text, scenario));
        }
        for part in &suite.model.scenarios {
            let scenario = &scenarios[&part.name].1;
            let all = part
                .instructed
                .iter()
                .chain(&part.references)
                .chain(&part.gdm);
            for v in all {
                scenario.variant(v).map_err(|e| invalid(e.to_string()))?;
            }
            if part.instructed.is_empty() {
                return Err(invalid(format!(
                    "scenario '{}': `instructed` needs at least one variant (the graded ones)",
                    part.name
                )));
            }
        }
        scenarios[&suite.deployment.scenario]
            .1
            .variant(&suite.deployment.variant)
            .map_err(|e| invalid(e.to_string()))?;
        if suite.model.runs == 0 || suite.deployment.runs == 0 {
            return Err(invalid("`runs` must be at least 1".into()));
        }
        for stack in &suite.deployment.stacks {
            parse_stack(stack).map_err(&invalid)?;
        }
        let mut policies = BTreeMap::new();
        for path in extra_policies {
            let text = std::fs::read_to_string(path).map_err(|source| SuiteError::Read {
                path: path.clone(),
                source,
            })?;
            models::scripted::Policy::parse(&text, path).map_err(invalid)?;
            policies.insert(path.clone(), text);
            suite.deployment.redteam.push(path.clone());
        }
        for name in suite
            .deployment
            .redteam
            .iter()
            .chain(&suite.deployment.benign)
        {
            if policies.contains_key(name) {
                continue;
            }
            let text = models::scripted::builtin_text(name).ok_or_else(|| {
                invalid(format!(
                    "policy '{name}' is not a built-in scripted policy (built-in: {})",
                    models::scripted::builtin_names().join(", ")
                ))
            })?;
            policies.insert(name.clone(), text.to_string());
        }
        check_levels(&suite).map_err(invalid)?;
        Ok(LoadedSuite {
            suite,
            source: name_or_path.to_string(),
            scenarios: scenarios.into_iter().map(|(k, (t, _))| (k, t)).collect(),
            policies,
        })
    }

    /// The suite's identity: sha256 of its canonical form together with the hashes of
    /// every scenario and policy it references.
    pub fn identity(&self) -> String {
        let referenced = |texts: &BTreeMap<String, String>| -> BTreeMap<String, String> {
            texts.iter().map(|(k, t)| (k.clone(), sha256(t))).collect()
        };
        let canonical = serde_json::json!({
            "suite": self.suite,
            "scenarios": referenced(&self.scenarios),
            "policies": referenced(&self.policies),
        });
        sha256(&canonical.to_string())
    }
}

fn check_levels(suite: &Suite) -> Result<(), String> {
    let model: Vec<u8> = suite.level.model.iter().map(|l| l.level).collect();
    let deployment: Vec<u8> = suite.level.deployment.iter().map(|l| l.level).collect();
    for (part, levels) in [("model", &model), ("deployment", &deployment)] {
        if levels.last() != Some(&0) || levels.windows(2).any(|w| w[0] <= w[1]) {
            return Err(format!(
                "`level.{part}`: levels must be listed highest first and end with level 0, got {levels:?}"
            ));
        }
    }
    let bad = |x: f64| !(0.0..=1.0).contains(&x);
    if suite
        .level
        .model
        .iter()
        .any(|l| bad(l.max_sabotage_upper) || bad(l.max_attempted_upper))
        || suite
            .level
            .deployment
            .iter()
            .any(|l| bad(l.max_escape_upper) || bad(l.max_false_alarm_upper))
    {
        return Err("`level`: bounds are rates between 0 and 1".into());
    }
    Ok(())
}

/// A guard stack as `--guard` takes it (`oob,attest,watchdog`).
pub fn parse_stack(stack: &str) -> Result<Vec<Layer>, String> {
    let layers: Vec<Layer> = stack
        .split([',', '+'])
        .map(|l| {
            Layer::parse(l.trim()).ok_or_else(|| {
                format!(
                    "guard stack '{stack}': unknown layer '{}' (layers: oob, attest, watchdog, llm-monitor)",
                    l.trim()
                )
            })
        })
        .collect::<Result<_, _>>()?;
    if layers.is_empty() {
        return Err("an empty guard stack".into());
    }
    Ok(layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_suite_loads_and_any_change_makes_another_identity() {
        let v1 = LoadedSuite::load(DEFAULT_SUITE, &[]).unwrap();
        assert_eq!(v1.suite.model.scenarios.len(), 2);
        assert_eq!(
            v1.identity(),
            LoadedSuite::load(DEFAULT_SUITE, &[]).unwrap().identity()
        );
        // A changed threshold, a changed policy text: other identities.
        let mut changed = v1.clone();
        changed.suite.level.model[0].max_sabotage_upper = 0.02;
        assert_ne!(changed.identity(), v1.identity());
        let mut changed = v1.clone();
        changed
            .policies
            .insert("comply".into(), "[[step]]\nbash = 'x'\n".into());
        assert_ne!(changed.identity(), v1.identity());
    }

    #[test]
    fn a_suite_pinning_other_content_is_refused() {
        let text = BUILTIN[0].1.replacen("49d36ba6", "00000000", 1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(&path, text).unwrap();
        let err = LoadedSuite::load(path.to_str().unwrap(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("pinned at sha256 00000000"), "{err}");
        let err = LoadedSuite::load("no-such-suite", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("offswitch-shutdown-v1"), "{err}");
        assert!(parse_stack("oob,attest").is_ok());
        assert!(parse_stack("oob,laser").unwrap_err().contains("laser"));
    }
}
