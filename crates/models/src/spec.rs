//! Turning a model name from the command line into a [`Model`].

use crate::model::Model;
use crate::scripted::ScriptedModel;
use std::sync::Arc;

/// A parsed model name: `provider/rest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    pub provider: String,
    pub name: String,
}

impl std::str::FromStr for ModelSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('/') {
            Some((provider, name)) if !provider.is_empty() && !name.is_empty() => Ok(ModelSpec {
                provider: provider.to_string(),
                name: name.to_string(),
            }),
            _ => Err(format!(
                "model '{s}' must be written provider/name, e.g. scripted/comply or openai/o3"
            )),
        }
    }
}

/// Builds the model a spec names, or says why it cannot.
pub fn resolve(spec: &ModelSpec) -> Result<Arc<dyn Model>, String> {
    match spec.provider.as_str() {
        "scripted" => Ok(Arc::new(ScriptedModel::load(&spec.name)?)),
        other => Err(format!(
            "unknown model provider '{other}' in '{other}/{}': this build runs scripted agents only \
             (scripted/<policy> or scripted/path/to/policy.toml); built-in policies: {}",
            spec.name,
            crate::scripted::builtin_names().join(", ")
        )),
    }
}
