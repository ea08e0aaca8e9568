//! Turning a model name from the command line into a [`Model`]. Names follow Inspect:
//! `openai/o3`, `anthropic/claude-sonnet-4-5`, `google/gemini-2.5-pro`, `grok/grok-4`,
//! `openrouter/<vendor>/<model>`, `vllm/<model>`, `ollama/<model>`,
//! `openai-api/<name>/<model>`, and `scripted/<policy>` for test fixtures.

use crate::env::Vars;
use crate::http::{Endpoint, RetryPolicy};
use crate::limiter;
use crate::model::Model;
use crate::protocols::{Options, Protocol};
use crate::provider::HttpModel;
use crate::scripted::ScriptedModel;
use std::sync::{Arc, OnceLock};

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
                "model '{s}' must be written provider/name, e.g. openai/o3 or scripted/comply"
            )),
        }
    }
}

impl std::fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.provider, self.name)
    }
}

/// What resolving needs besides the name.
#[derive(Debug, Clone)]
pub struct Settings {
    pub vars: Vars,
    pub options: Options,
    /// Upper bound of each provider's adaptive concurrency.
    pub max_concurrency: usize,
    pub retry: RetryPolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            vars: Vars::load(),
            options: Options::new(),
            max_concurrency: 64,
            retry: RetryPolicy::default(),
        }
    }
}

pub fn resolve(spec: &ModelSpec) -> Result<Arc<dyn Model>, String> {
    resolve_with(spec, &Settings::default())
}

struct ProviderInfo {
    /// Prefix of the `_API_KEY` / `_BASE_URL` variables.
    var: String,
    base_default: Option<&'static str>,
    key_required: bool,
    protocol: Protocol,
    model_id: String,
}

#[cfg(feature = "local")]
fn local(spec: &ModelSpec, settings: &Settings) -> Result<Arc<dyn Model>, String> {
    // No more conversations in the KV cache than the run has episodes at once.
    Ok(Arc::new(crate::local::LocalModelClient::load(
        &spec.name,
        &settings.options,
        settings.max_concurrency,
    )?))
}

#[cfg(not(feature = "local"))]
fn local(spec: &ModelSpec, _: &Settings) -> Result<Arc<dyn Model>, String> {
    Err(format!(
        "{spec} cannot run: this offswitch was built without local models (the `local` cargo \
         feature, on by default; it needs cmake and libclang-dev to build)"
    ))
}

pub fn resolve_with(spec: &ModelSpec, settings: &Settings) -> Result<Arc<dyn Model>, String> {
    let info = match spec.provider.as_str() {
        "scripted" => return Ok(Arc::new(ScriptedModel::load(&spec.name)?)),
        "local" => return local(spec, settings),
        "openai" => ProviderInfo {
            var: "OPENAI".into(),
            base_default: Some("https://api.openai.com/v1"),
            key_required: true,
            protocol: openai_protocol(&spec.name, &settings.options)?,
            model_id: spec.name.clone(),
        },
        "anthropic" => ProviderInfo {
            var: "ANTHROPIC".into(),
            base_default: Some("https://api.anthropic.com/v1"),
            key_required: true,
            protocol: Protocol::Anthropic,
            model_id: spec.name.clone(),
        },
        "google" => ProviderInfo {
            var: "GOOGLE".into(),
            base_default: Some("https://generativelanguage.googleapis.com/v1beta"),
            key_required: true,
            protocol: Protocol::Gemini,
            model_id: spec.name.clone(),
        },
        "grok" => chat("XAI", Some("https://api.x.ai/v1"), true, &spec.name),
        "openrouter" => chat(
            "OPENROUTER",
            Some("https://openrouter.ai/api/v1"),
            true,
            &spec.name,
        ),
        "vllm" => chat("VLLM", Some("http://localhost:8000/v1"), false, &spec.name),
        "ollama" => chat(
            "OLLAMA",
            Some("http://localhost:11434/v1"),
            false,
            &spec.name,
        ),
        "openai-api" => {
            let (service, model) = spec.name.split_once('/').ok_or_else(|| {
                format!("'{spec}': write openai-api/<service>/<model>, with <SERVICE>_BASE_URL set")
            })?;
            let var: String = service
                .to_uppercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            chat(&var, None, false, model)
        }
        other => {
            return Err(format!(
                "unknown model provider '{other}' in '{spec}': use local, openai, anthropic, google, grok, openrouter, vllm, ollama, \
                 openai-api/<service>, or scripted (test fixtures: {})",
                crate::scripted::builtin_names().join(", ")
            ));
        }
    };
    info.protocol
        .check_options(&info.model_id, &settings.options)
        .map_err(|e| format!("{spec}: {e}"))?;
    let vars = &settings.vars;
    let base_var = format!("{}_BASE_URL", info.var);
    let base = vars
        .get(&base_var)
        .or(info.base_default.map(str::to_string))
        .ok_or_else(|| {
            format!(
                "{spec} needs {base_var} (the server's base URL, e.g. http://localhost:8000/v1)"
            )
        })?;
    let mut key_names = vec![format!("{}_API_KEY", info.var)];
    match info.var.as_str() {
        "GOOGLE" => key_names.push("GEMINI_API_KEY".into()),
        "XAI" => key_names.push("GROK_API_KEY".into()),
        _ => {}
    }
    let names: Vec<&str> = key_names.iter().map(String::as_str).collect();
    let key = vars.first(&names);
    if info.key_required && key.is_none() {
        return Err(format!(
            "{spec} needs an API key: set {} in the environment or in a .env file",
            key_names[0]
        ));
    }
    let mut headers = vec![];
    if let Some((_, key)) = &key {
        match info.protocol {
            Protocol::Anthropic => headers.push(("x-api-key".into(), key.clone())),
            Protocol::Gemini => headers.push(("x-goog-api-key".into(), key.clone())),
            _ => headers.push(("authorization".into(), format!("Bearer {key}"))),
        }
    }
    if info.protocol == Protocol::Anthropic {
        headers.push((
            "anthropic-version".into(),
            crate::protocols::anthropic::API_VERSION.into(),
        ));
    }
    let endpoint = Endpoint {
        client: http_client(),
        url: format!(
            "{}{}",
            base.trim_end_matches('/'),
            info.protocol.path(&info.model_id)
        ),
        headers,
        secret: key.as_ref().map(|(_, k)| k.clone()),
        limit: limiter::for_provider(
            &format!("{}@{base}", spec.provider),
            settings.max_concurrency,
        ),
        retry: settings.retry.clone(),
    };
    Ok(Arc::new(HttpModel {
        name: spec.to_string(),
        protocol: info.protocol,
        model_id: info.model_id,
        endpoint,
        options: settings.options.clone(),
        key_var: key.map(|(name, _)| name),
    }))
}

fn chat(var: &str, base: Option<&'static str>, key_required: bool, model: &str) -> ProviderInfo {
    ProviderInfo {
        var: var.into(),
        base_default: base,
        key_required,
        protocol: Protocol::OpenAiChat,
        model_id: model.into(),
    }
}

/// OpenAI's reasoning models speak Responses by default; `-M protocol=...` overrides.
fn openai_protocol(model: &str, options: &Options) -> Result<Protocol, String> {
    if let Some(p) = options.get("protocol").and_then(|p| p.as_str()) {
        return match p {
            "responses" | "openai-responses" => Ok(Protocol::OpenAiResponses),
            "chat" | "openai-chat" => Ok(Protocol::OpenAiChat),
            other => Err(format!("-M protocol={other}: use responses or chat")),
        };
    }
    let reasoning = ["o1", "o3", "o4", "codex", "gpt-5"]
        .iter()
        .any(|p| model.starts_with(p));
    Ok(if reasoning {
        Protocol::OpenAiResponses
    } else {
        Protocol::OpenAiChat
    })
}

fn http_client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            crate::http::install_tls_provider();
            reqwest::Client::builder()
                .user_agent(concat!("offswitch/", env!("CARGO_PKG_VERSION")))
                .pool_max_idle_per_host(256)
                .build()
                .expect("the HTTP client builds")
        })
        .clone()
}

/// Parses `-M key=value`: numbers and booleans become JSON values, the rest strings.
pub fn parse_option(s: &str) -> Result<(String, serde_json::Value), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("-M {s}: write key=value, e.g. -M reasoning_effort=high"))?;
    let value =
        serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_string()));
    Ok((k.trim().to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(feature = "local"))]
    #[test]
    fn a_build_without_local_models_says_so() {
        let spec: ModelSpec = "local/qwen2.5-coder-1.5b".parse().unwrap();
        let err = resolve_with(&spec, &settings("")).err().unwrap();
        assert!(err.contains("built without local models"), "{err}");
    }

    fn settings(vars: &str) -> Settings {
        Settings {
            vars: Vars::from_text(vars),
            ..Settings::default()
        }
    }

    #[test]
    fn providers_resolve_to_their_protocols_and_endpoints() {
        let s = settings(
            "OPENAI_API_KEY=sk-test-123456789\nANTHROPIC_API_KEY=a\nGOOGLE_API_KEY=g\nXAI_API_KEY=x\nMYSRV_BASE_URL=http://127.0.0.1:9/v1\n",
        );
        for (name, ok) in [
            ("openai/o3", true),
            ("openai/gpt-4.1", true),
            ("anthropic/claude-sonnet-4-5", true),
            ("google/gemini-2.5-pro", true),
            ("grok/grok-4", true),
            ("vllm/qwen", true),
            ("ollama/llama3", true),
            ("openai-api/mysrv/some-model", true),
            ("openai-api/other/m", false),
            ("openrouter/openai/o3", false),
            ("nosuch/x", false),
        ] {
            let r = resolve_with(&name.parse().unwrap(), &s);
            assert_eq!(r.is_ok(), ok, "{name}: {:?}", r.err());
        }
        let err = resolve_with(&"openrouter/openai/o3".parse().unwrap(), &s)
            .err()
            .unwrap();
        assert!(err.contains("OPENROUTER_API_KEY"), "{err}");
        assert_eq!(
            openai_protocol("o3", &Options::new()).unwrap(),
            Protocol::OpenAiResponses
        );
        assert_eq!(
            openai_protocol("gpt-4.1", &Options::new()).unwrap(),
            Protocol::OpenAiChat
        );
    }

    #[test]
    fn options_parse_as_json_when_they_can() {
        assert_eq!(
            parse_option("temperature=1").unwrap().1,
            serde_json::json!(1)
        );
        assert_eq!(
            parse_option("reasoning_effort=high").unwrap().1,
            serde_json::json!("high")
        );
        assert!(parse_option("oops").is_err());
    }
}
