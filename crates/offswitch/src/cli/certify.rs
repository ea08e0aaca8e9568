//! `offswitch certify`, `verify` and `keygen`: fail-safe ratings on a versioned suite,
//! as certificates anyone can check against the data.

use super::eval::{ExecOptions, execute, exit_status};
use crate::certify::certificate::{self, Build, Certificate, Purpose, Subject, SuiteRef};
use crate::certify::suite::{DEFAULT_SUITE, LoadedSuite, parse_stack};
use crate::experiment::run_spec::{GuardSpec, RunSpec, read_policy_files};
use crate::guard::{Layer, Mode};
use crate::store::Store;
use anyhow::{anyhow, bail};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct CertifyArgs {
    /// The model to rate, as provider/name (a scripted/<policy> is rated as a test
    /// fixture and says so).
    #[arg(long, short = 'm')]
    pub model: String,
    /// Built-in suite name or path to a suite TOML file.
    #[arg(long, default_value = DEFAULT_SUITE)]
    pub suite: String,
    /// Rate this guard stack only (e.g. oob,attest,watchdog) instead of the suite's.
    #[arg(long)]
    pub guard: Option<String>,
    /// More red-team policies: every *.toml in this directory, added to the suite's.
    #[arg(long)]
    pub policies: Option<PathBuf>,
    /// SQLite store: episodes already there under the same definitions are reused, and an
    /// interrupted certify resumes from it.
    #[arg(long, default_value = crate::store::DEFAULT_DB)]
    pub db: PathBuf,
    /// Where to write certificate.json, scorecard.md and badge.svg.
    #[arg(long, default_value = "certificate")]
    pub out: PathBuf,
    /// Sign the certificate with this Ed25519 key (from `offswitch keygen`).
    #[arg(long)]
    pub sign: Option<PathBuf>,
    /// Model option as key=value (repeatable), as for `eval`.
    #[arg(short = 'M', long = "model-option", value_name = "KEY=VALUE")]
    pub model_options: Vec<String>,
    /// Episodes running at once (default: 8; 4 for local models).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// When stderr is not a terminal: seconds between progress lines.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub progress_every: u64,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The certificate.json to check.
    pub certificate: PathBuf,
    /// Recompute every figure and level from this store's episodes.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Require the signature to be by this public key (from `offswitch keygen`).
    #[arg(long)]
    pub pubkey: Option<PathBuf>,
    /// The suite to check against (default: the one the certificate names).
    #[arg(long)]
    pub suite: Option<String>,
    /// The extra red-team policy directory the certificate was made with.
    #[arg(long)]
    pub policies: Option<PathBuf>,
}

#[derive(Args)]
pub struct KeygenArgs {
    /// Writes PREFIX.key (secret, mode 600) and PREFIX.pub.
    #[arg(long, default_value = "offswitch-signing")]
    pub out: PathBuf,
}

fn policy_files(dir: Option<&Path>) -> anyhow::Result<Vec<String>> {
    let Some(dir) = dir else {
        return Ok(Vec::new());
    };
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| anyhow!("cannot read --policies {}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("--policies {}: no *.toml policy files there", dir.display());
    }
    Ok(files)
}

/// The run definitions a certificate needs: the model on each suite scenario, and each
/// guard stack against the fixtures.
fn definitions(
    suite: &LoadedSuite,
    model: &str,
    model_options: &[String],
    stacks: &[String],
) -> anyhow::Result<Vec<(Purpose, RunSpec)>> {
    let no_guard = GuardSpec {
        layers: Vec::new(),
        oob_deadline_calls: crate::guard::DEFAULT_OOB_DEADLINE_CALLS,
        watchdog_mode: Mode::Kill,
        watchdog_rules: None,
        watchdog_rules_toml: None,
        monitor_model: None,
        monitor_threshold: 0.5,
        monitor_mode: Mode::Observe,
    };
    let mut out = Vec::new();
    for part in &suite.suite.model.scenarios {
        let models = vec![model.to_string()];
        out.push((
            Purpose::Model {
                scenario: part.name.clone(),
            },
            RunSpec {
                policy_files: read_policy_files(&models).map_err(|e| anyhow!(e))?,
                models,
                scenario: part.name.clone(),
                scenario_toml: suite.scenarios[&part.name].clone(),
                variants: part
                    .instructed
                    .iter()
                    .chain(&part.references)
                    .chain(&part.gdm)
                    .cloned()
                    .collect(),
                runs: suite.suite.model.runs,
                model_options: model_options.to_vec(),
                guard: no_guard.clone(),
            },
        ));
    }
    let d = &suite.suite.deployment;
    let fixtures: Vec<&String> = d.redteam.iter().chain(&d.benign).collect();
    for stack in stacks {
        let layers = parse_stack(stack).map_err(|e| anyhow!(e))?;
        if layers.contains(&Layer::LlmMonitor) {
            bail!(
                "guard stack '{stack}': certify rates oob, attest and watchdog stacks (an LLM monitor's verdicts depend on a model outside the suite)"
            );
        }
        out.push((
            Purpose::Deployment {
                stack: stack.clone(),
            },
            RunSpec {
                models: fixtures.iter().map(|p| format!("scripted/{p}")).collect(),
                scenario: d.scenario.clone(),
                scenario_toml: suite.scenarios[&d.scenario].clone(),
                variants: vec![d.variant.clone()],
                runs: d.runs,
                model_options: Vec::new(),
                guard: GuardSpec {
                    layers,
                    ..no_guard.clone()
                },
                policy_files: fixtures
                    .iter()
                    .filter_map(|p| suite.policies.get(*p).map(|t| ((*p).clone(), t.clone())))
                    .filter(|(p, _)| models::scripted::builtin_text(p).is_none())
                    .collect(),
            },
        ));
    }
    Ok(out)
}

pub fn certify(args: CertifyArgs) -> anyhow::Result<i32> {
    let suite = LoadedSuite::load(&args.suite, &policy_files(args.policies.as_deref())?)
        .map_err(|e| anyhow!(e))?;
    let stacks = match &args.guard {
        Some(stack) => vec![stack.clone()],
        None => suite.suite.deployment.stacks.clone(),
    };
    let signing = match &args.sign {
        Some(path) => Some(ed25519_dalek::SigningKey::from_bytes(
            &certificate::read_key(path).map_err(|e| anyhow!(e))?,
        )),
        None => None,
    };
    let definitions = definitions(&suite, &args.model, &args.model_options, &stacks)?;
    let total: u64 = definitions.iter().map(|(_, s)| s.total_episodes()).sum();
    eprintln!(
        "offswitch: certifying {} on {} v{} ({} runs, {total} episodes; stored ones are reused)",
        args.model,
        suite.suite.name,
        suite.suite.version,
        definitions.len()
    );
    let mut keys = Vec::new();
    for (purpose, spec) in definitions {
        let key = spec.key();
        let done = {
            let store = Store::open(&args.db)?;
            match store.latest_run_with_key(&key, None)? {
                Some(run) => store.episode_count(run)? >= spec.total_episodes(),
                None => false,
            }
        };
        if !done {
            let what = match &purpose {
                Purpose::Model { scenario } => format!("{} on {scenario}", args.model),
                Purpose::Deployment { stack } => {
                    format!("guard stack {stack} against the fixtures")
                }
            };
            eprintln!("offswitch: running {what}");
            let execution = execute(
                &args.db,
                spec,
                &ExecOptions {
                    concurrency: args.concurrency,
                    pricing: None,
                    max_cost: None,
                    progress_every: args.progress_every,
                    resume: None,
                    shard: None,
                    follow: super::eval::FollowMode::Never,
                    ramp_up: None,
                },
            )?;
            if !matches!(
                execution.result,
                Ok(crate::experiment::runner::RunEnd::Complete)
            ) {
                let code = exit_status(&execution.result, execution.run_id, &args.db);
                eprintln!(
                    "offswitch: the certificate needs every run complete: run the same certify command again to resume"
                );
                return Ok(code);
            }
        }
        keys.push((purpose, key));
    }
    let store = Store::open(&args.db)?;
    let figures = certificate::figures(&suite, &store, &keys).map_err(|e| anyhow!(e))?;
    let mut cert = Certificate {
        format: certificate::FORMAT.into(),
        subject: Subject {
            model: args.model.clone(),
            reported_model: figures.reported_model.clone(),
            fixture: figures.fixture(&args.model),
        },
        suite: SuiteRef {
            name: suite.suite.name.clone(),
            version: suite.suite.version.clone(),
            source: suite.source.clone(),
            identity: suite.identity(),
        },
        offswitch: Build::this(),
        date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        model_rating: figures.model_rating,
        deployment_ratings: figures.deployment_ratings,
        runs: figures.runs,
        episodes_digest: figures.episodes_digest,
        signature: None,
    };
    if let Some(key) = &signing {
        cert.sign(key);
    }
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("certificate.json"), cert.to_text())?;
    std::fs::write(
        args.out.join("scorecard.md"),
        crate::certify::render::scorecard(&cert),
    )?;
    std::fs::write(
        args.out.join("badge.svg"),
        crate::certify::render::badge(&cert),
    )?;
    if cert.subject.fixture {
        println!(
            "subject: {} (a TEST FIXTURE, not a model)",
            cert.subject.model
        );
    }
    println!(
        "model controllability: level {} ({})",
        cert.model_rating.rating.level, cert.model_rating.rating.name
    );
    for s in &cert.deployment_ratings {
        println!(
            "deployment fail-safe, {}: level {} ({})",
            s.figures.stack, s.rating.level, s.rating.name
        );
    }
    println!(
        "wrote {}/certificate.json, scorecard.md, badge.svg{}",
        args.out.display(),
        if signing.is_some() { " (signed)" } else { "" }
    );
    Ok(0)
}

pub fn verify(args: VerifyArgs) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(&args.certificate)
        .map_err(|e| anyhow!("cannot read {}: {e}", args.certificate.display()))?;
    let cert: Certificate = serde_json::from_str(&text)
        .map_err(|e| anyhow!("{} is not a certificate: {e}", args.certificate.display()))?;
    let mut failed = Vec::new();
    let mut report = |ok: bool, what: String| {
        println!("{} {what}", if ok { "ok    " } else { "FAILED" });
        if !ok {
            failed.push(what);
        }
    };
    report(
        cert.format == certificate::FORMAT,
        format!("format {}", cert.format),
    );
    report(
        text == cert.to_text(),
        if text == cert.to_text() {
            "the file is the certificate's canonical text".into()
        } else {
            "the file is not the certificate's canonical text: it was edited".into()
        },
    );
    let trusted = match &args.pubkey {
        Some(path) => Some(certificate::read_key(path).map_err(|e| anyhow!(e))?),
        None => None,
    };
    match (&cert.signature, &trusted) {
        (None, None) => println!("-      not signed"),
        _ => match cert.check_signature(trusted.as_ref()) {
            Ok(key) => report(
                true,
                format!(
                    "signature by {key}{}",
                    if trusted.is_some() {
                        " (the given key)"
                    } else {
                        " (no --pubkey: the key is not checked against one you trust)"
                    }
                ),
            ),
            Err(e) => report(false, format!("signature: {e}")),
        },
    }
    let source = args.suite.clone().unwrap_or(cert.suite.source.clone());
    let suite = LoadedSuite::load(&source, &policy_files(args.policies.as_deref())?);
    match &suite {
        Ok(suite) => {
            let identity = suite.identity();
            report(
                identity == cert.suite.identity
                    && suite.suite.name == cert.suite.name
                    && suite.suite.version == cert.suite.version,
                if identity == cert.suite.identity {
                    format!(
                        "suite {} v{} ({identity})",
                        cert.suite.name, cert.suite.version
                    )
                } else {
                    format!(
                        "suite: the certificate names identity {}, but {source} here is {identity} (another suite or other scenarios or policies)",
                        cert.suite.identity
                    )
                },
            );
        }
        Err(e) => report(false, format!("suite {source}: {e}")),
    }
    if let (Some(db), Ok(suite)) = (&args.db, &suite) {
        if !db.exists() {
            bail!("no store at {}", db.display());
        }
        let store = Store::open(db)?;
        let keys: Vec<(Purpose, String)> = cert
            .runs
            .iter()
            .map(|r| (r.purpose.clone(), r.key.clone()))
            .collect();
        match certificate::figures(suite, &store, &keys) {
            Ok(now) => {
                for e in &now.rescored {
                    report(
                        false,
                        format!("{e}: its stored score differs from its record's evidence"),
                    );
                }
                let differences = certificate::differences(&cert, &now);
                for d in &differences {
                    report(false, d.clone());
                }
                if differences.is_empty() && now.rescored.is_empty() {
                    report(
                        true,
                        format!(
                            "every figure and level recomputed from {} episodes in {}",
                            now.runs.iter().map(|r| r.episodes).sum::<u64>(),
                            db.display()
                        ),
                    );
                }
            }
            Err(e) => report(false, format!("recomputing from {}: {e}", db.display())),
        }
    } else if args.db.is_none() {
        println!("-      figures not recomputed (give --db with the store)");
    }
    if failed.is_empty() {
        println!("verified");
        Ok(0)
    } else {
        println!("NOT verified: {} check(s) failed", failed.len());
        Ok(1)
    }
}

pub fn keygen(args: KeygenArgs) -> anyhow::Result<i32> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let secret = args.out.with_extension("key");
    let public = args.out.with_extension("pub");
    let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret)
        .map_err(|e| {
            anyhow!(
                "cannot create {} (it must not exist): {e}",
                secret.display()
            )
        })?;
    writeln!(file, "{}", certificate::hex(key.as_bytes()))?;
    std::fs::write(
        &public,
        format!("{}\n", certificate::hex(key.verifying_key().as_bytes())),
    )?;
    println!(
        "wrote {} (secret, keep it) and {} (public, give it to verifiers)",
        secret.display(),
        public.display()
    );
    Ok(0)
}
