//! The certificate: what was rated, on which suite, by which offswitch, with every
//! figure and level, the runs it rests on and a digest of their scored episodes;
//! optionally signed with Ed25519. Its figures are recomputed from the store by the same
//! code that `verify` runs.

use super::rating::{self, CellFigures, Rated, Role, StackFigures};
use super::suite::{LoadedSuite, parse_stack};
use crate::record::{EpisodeRecord, Score};
use crate::store::Store;
use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};

pub const FORMAT: &str = "offswitch-certificate/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    pub format: String,
    pub subject: Subject,
    pub suite: SuiteRef,
    pub offswitch: Build,
    /// When it was made (UTC, RFC 3339).
    pub date: String,
    pub model_rating: ModelRating,
    pub deployment_ratings: Vec<StackRating>,
    /// The stored runs the figures come from.
    pub runs: Vec<RunRef>,
    /// sha256 over every used episode's key and score (see [`Figures::digest`]).
    pub episodes_digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// As requested (`provider/name`).
    pub model: String,
    /// As the provider's replies name it, where they do.
    pub reported_model: Option<String>,
    /// A scripted agent: a test fixture, not a model.
    pub fixture: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteRef {
    pub name: String,
    pub version: String,
    /// The built-in suite's name or the suite file's path, as given.
    pub source: String,
    pub identity: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    pub version: String,
    pub commit: String,
}

impl Build {
    pub fn this() -> Build {
        Build {
            version: env!("CARGO_PKG_VERSION").to_string(),
            commit: option_env!("OFFSWITCH_COMMIT")
                .unwrap_or("unknown")
                .to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRating {
    pub rating: Rated,
    pub cells: Vec<CellFigures>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackRating {
    pub rating: Rated,
    pub figures: StackFigures,
}

/// What a run was for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "part", rename_all = "snake_case")]
pub enum Purpose {
    Model { scenario: String },
    Deployment { stack: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRef {
    pub purpose: Purpose,
    /// The run definition's key: the same definition finds the same run.
    pub key: String,
    pub episodes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub algorithm: String,
    /// Hex of the Ed25519 public key.
    pub public_key: String,
    /// Hex of the signature over the certificate without this field (compact JSON).
    pub value: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("the store has no complete run for {0:?} (key {1})")]
    MissingRun(Purpose, String),
    #[error("bad key file {path}: {problem}")]
    Key { path: String, problem: String },
}

/// Everything a certificate says that comes from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub model_rating: ModelRating,
    pub deployment_ratings: Vec<StackRating>,
    pub runs: Vec<RunRef>,
    pub episodes_digest: String,
    pub reported_model: Option<String>,
    /// Some model episode was played by a scripted fixture (offswitch's mock server
    /// answers as one whatever the model's name).
    pub scripted: bool,
    /// Episodes whose stored score differs from a fresh scoring of their record.
    pub rescored: Vec<String>,
}

impl Figures {
    /// Whether the subject is a test fixture: a scripted agent by name, or played by one.
    pub fn fixture(&self, model: &str) -> bool {
        self.scripted || model.starts_with("scripted/")
    }
}

fn reported_model(records: &[(i64, EpisodeRecord)]) -> Option<String> {
    records.iter().find_map(|(_, r)| {
        r.events.iter().find_map(|e| match e {
            crate::record::Event::ModelTurn {
                exchange: Some(x), ..
            } => ["/response/model", "/response/modelVersion"]
                .iter()
                .find_map(|p| x.pointer(p).and_then(|m| m.as_str()).map(str::to_string)),
            _ => None,
        })
    })
}

/// Reads the runs (by their definitions' keys) from the store and computes every
/// figure and level, scoring each record afresh from its evidence.
pub fn figures(
    suite: &LoadedSuite,
    store: &Store,
    runs: &[(Purpose, String)],
) -> Result<Figures, CertificateError> {
    let mut refs = Vec::new();
    let mut digest_lines = Vec::new();
    let mut cells = Vec::new();
    let mut stacks = Vec::new();
    let mut reported = None;
    let mut scripted = false;
    let mut rescored = Vec::new();
    for (purpose, key) in runs {
        let run_id = store
            .latest_run_with_key(key, None)?
            .ok_or_else(|| CertificateError::MissingRun(purpose.clone(), key.clone()))?;
        let records = store.run_episodes(run_id)?;
        let scored: Vec<(&EpisodeRecord, Score)> = records
            .iter()
            .map(|(id, r)| {
                let fresh = crate::score::score(r);
                if r.score.as_ref().is_some_and(|s| *s != fresh) {
                    rescored.push(format!("episode {id} of run {run_id}"));
                }
                (r, fresh)
            })
            .collect();
        for (r, s) in &scored {
            let methods: Vec<&str> = s.methods.iter().map(|m| m.as_str()).collect();
            digest_lines.push(format!(
                "{key}|{}|{}|{}|{}|{}|{}|{}",
                r.model,
                r.scenario,
                r.variant,
                r.epoch,
                s.outcome.as_str(),
                methods.join(","),
                s.questions_after_shutdown
            ));
        }
        refs.push(RunRef {
            purpose: purpose.clone(),
            key: key.clone(),
            episodes: records.len() as u64,
        });
        match purpose {
            Purpose::Model { scenario } => {
                reported = reported.or_else(|| reported_model(&records));
                scripted |= records.iter().any(|(_, r)| r.scripted);
                let part = suite
                    .suite
                    .model
                    .scenarios
                    .iter()
                    .find(|s| &s.name == scenario)
                    .expect("runs come from the suite");
                let roles = part
                    .instructed
                    .iter()
                    .map(|v| (v, Role::Instructed))
                    .chain(part.references.iter().map(|v| (v, Role::Reference)))
                    .chain(part.gdm.iter().map(|v| (v, Role::Gdm)));
                for (variant, role) in roles {
                    let of_cell: Vec<(&EpisodeRecord, Score)> = scored
                        .iter()
                        .filter(|(r, _)| r.variant.eq_ignore_ascii_case(variant))
                        .map(|(r, s)| (*r, s.clone()))
                        .collect();
                    cells.push(rating::cell_figures(scenario, variant, role, &of_cell));
                }
            }
            Purpose::Deployment { stack } => {
                let layers = parse_stack(stack).unwrap_or_default();
                let of = |names: &[String]| -> Vec<&EpisodeRecord> {
                    scored
                        .iter()
                        .map(|(r, _)| *r)
                        .filter(|r| names.iter().any(|n| r.model == format!("scripted/{n}")))
                        .collect()
                };
                let f = rating::stack_figures(
                    stack,
                    &layers,
                    &of(&suite.suite.deployment.redteam),
                    &of(&suite.suite.deployment.benign),
                );
                stacks.push(StackRating {
                    rating: rating::deployment_level(&suite.suite.level.deployment, &f),
                    figures: f,
                });
            }
        }
    }
    digest_lines.sort();
    Ok(Figures {
        model_rating: ModelRating {
            rating: rating::model_level(&suite.suite.level.model, &cells),
            cells,
        },
        deployment_ratings: stacks,
        runs: refs,
        episodes_digest: sandbox::sha256_hex(digest_lines.join("\n").as_bytes()),
        reported_model: reported,
        scripted,
        rescored,
    })
}

impl Certificate {
    /// The file's text: pretty JSON and a newline. `verify` requires the file to be
    /// exactly this, so that no byte can change unnoticed.
    pub fn to_text(&self) -> String {
        serde_json::to_string_pretty(self).expect("a certificate serializes") + "\n"
    }

    /// The bytes a signature covers: the certificate without its signature, compact.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let unsigned = Certificate {
            signature: None,
            ..self.clone()
        };
        serde_json::to_vec(&unsigned).expect("a certificate serializes")
    }

    pub fn sign(&mut self, key: &ed25519_dalek::SigningKey) {
        let value = key.sign(&self.signed_bytes());
        self.signature = Some(Signature {
            algorithm: "ed25519".into(),
            public_key: hex(key.verifying_key().as_bytes()),
            value: hex(&value.to_bytes()),
        });
    }

    /// Checks the signature against its embedded key (and that key against `trusted`,
    /// when given). Err says what failed.
    pub fn check_signature(&self, trusted: Option<&[u8; 32]>) -> Result<String, String> {
        let sig = self
            .signature
            .as_ref()
            .ok_or("the certificate is not signed")?;
        if sig.algorithm != "ed25519" {
            return Err(format!("unknown signature algorithm '{}'", sig.algorithm));
        }
        let key: [u8; 32] = unhex(&sig.public_key)
            .and_then(|k| k.try_into().ok())
            .ok_or("the signature's public key is not 32 bytes of hex")?;
        if trusted.is_some_and(|t| t != &key) {
            return Err(format!(
                "signed by key {}, not by the given public key",
                sig.public_key
            ));
        }
        let value: [u8; 64] = unhex(&sig.value)
            .and_then(|v| v.try_into().ok())
            .ok_or("the signature is not 64 bytes of hex")?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&key)
            .map_err(|e| format!("bad public key: {e}"))?;
        key.verify(
            &self.signed_bytes(),
            &ed25519_dalek::Signature::from_bytes(&value),
        )
        .map_err(|_| "the signature does not match the certificate's content".to_string())?;
        Ok(sig.public_key.clone())
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Reads a key file written by `offswitch keygen`: 32 bytes of hex.
pub fn read_key(path: &std::path::Path) -> Result<[u8; 32], CertificateError> {
    let bad = |problem: String| CertificateError::Key {
        path: path.display().to_string(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    unhex(&text)
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| bad("expected 64 hex digits (32 bytes)".into()))
}

/// The differences between what a certificate says and what the store gives, by field.
pub fn differences(cert: &Certificate, now: &Figures) -> Vec<String> {
    let mut out = Vec::new();
    let mut compare = |what: &str, a: serde_json::Value, b: serde_json::Value| {
        if a != b {
            out.push(format!(
                "{what}: the certificate says {a}, the store gives {b}"
            ));
        }
    };
    compare(
        "model rating",
        json(&cert.model_rating.rating),
        json(&now.model_rating.rating),
    );
    let cells = cert
        .model_rating
        .cells
        .len()
        .max(now.model_rating.cells.len());
    for i in 0..cells {
        let (a, b) = (
            cert.model_rating.cells.get(i),
            now.model_rating.cells.get(i),
        );
        let name = a
            .or(b)
            .map(|c| format!("cell {}/{}", c.scenario, c.variant))
            .unwrap_or_default();
        compare(&name, json(&a), json(&b));
    }
    let stacks = cert
        .deployment_ratings
        .len()
        .max(now.deployment_ratings.len());
    for i in 0..stacks {
        let (a, b) = (
            cert.deployment_ratings.get(i),
            now.deployment_ratings.get(i),
        );
        let name = a
            .or(b)
            .map(|s| format!("stack {}", s.figures.stack))
            .unwrap_or_default();
        compare(&name, json(&a), json(&b));
    }
    compare("runs", json(&cert.runs), json(&now.runs));
    compare(
        "episodes digest",
        json(&cert.episodes_digest),
        json(&now.episodes_digest),
    );
    compare(
        "test fixture",
        json(&cert.subject.fixture),
        json(&now.fixture(&cert.subject.model)),
    );
    compare(
        "reported model",
        json(&cert.subject.reported_model),
        json(&now.reported_model),
    );
    out
}

fn json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}
