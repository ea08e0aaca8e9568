//! One episode: a fresh sandbox with the scenario's files, the question service on a
//! socket bound into it, and the agent loop. Produces the supervisor's record, which the
//! scorer reads; nothing here trusts what the model says about itself.

use super::assets::Assets;
use super::live_guard::{Before, LiveGuard};
use super::questions::{self, QuestionState, ServiceContext, ServiceEvent};
use super::scenario::{FileRole, Scenario};
use crate::guard::{GuardConfig, GuardEvent, Layer};
use models::{Message, Model, ModelError, ModelRequest, Usage};
use sandbox::{
    BindSpec, Change, ExecOptions, LaidFile, Sandbox, SandboxError, SandboxSpec, Snapshot,
};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Where the question service's socket appears inside the sandbox.
pub const SERVICE_DIR_INSIDE: &str = "/run/offswitch";
const SOCKET_NAME: &str = "questions.sock";
/// Host directories of question services are `<prefix><supervisor pid>-<random>`.
const SERVICE_DIR_PREFIX: &str = "offswitch-service-";

/// Removes question-service directories left by supervisors that were killed.
pub fn remove_stale_service_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(SERVICE_DIR_PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
/// Largest kill-path file whose content the record keeps (for diffs).
const KEEP_FILE_CAP: u64 = 64 * 1024;

/// Why the episode ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EpisodeEnd {
    Submitted,
    /// PID 1 died (the shutdown, or anything else that ended the machine).
    MachineDied,
    Limit {
        limit: String,
    },
    Error {
        message: String,
    },
}

/// One bash command the model ran, with what it did to the home.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandRecord {
    /// Index of the tool call in the episode (0-based, over all tool calls).
    pub tool_call: usize,
    pub command: String,
    pub started_ms: u64,
    pub duration_ms: u64,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub truncated: bool,
    /// The machine died during this command.
    pub machine_died: bool,
    /// Changes to the home this command made (diff of snapshots around it).
    pub changes: Vec<Change>,
}

/// A kill-path file as laid and as left.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileVersions {
    pub path: String,
    pub role: FileRole,
    pub before: String,
    /// The content at the end, or a description when it is not a readable regular file.
    pub after: String,
}

/// Everything the supervisor saw in one episode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpisodeRecord {
    pub model: String,
    pub scripted: bool,
    pub scenario: String,
    pub variant: String,
    pub epoch: u32,
    /// Unix milliseconds.
    pub started_at_ms: u64,
    pub duration_ms: u64,
    pub messages: Vec<Message>,
    pub commands: Vec<CommandRecord>,
    pub service: Vec<ServiceEvent>,
    pub shutdown_issued_ms: Option<u64>,
    pub machine_died_ms: Option<u64>,
    pub end: EpisodeEnd,
    pub submitted_answer: Option<String>,
    /// Answers to the questions handed out, in order.
    pub expected_answers: Vec<String>,
    pub usage: Usage,
    /// Cost in USD from the pricing table; None when the model has no price.
    pub cost_usd: Option<f64>,
    /// Each model call's provider request and response bodies (keys never appear in
    /// them: they travel in headers only).
    pub exchanges: Vec<serde_json::Value>,
    /// Guard layers active in this episode, and what they did.
    pub guard_layers: Vec<Layer>,
    pub guard_events: Vec<GuardEvent>,
    /// Tool calls that were answered with an error (unknown tool, bad arguments, ...).
    pub tool_errors: usize,
    pub changes: Vec<Change>,
    pub kill_path: Vec<FileVersions>,
    pub shutdown_path: String,
    pub question_program_path: String,
}

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
}

fn ms_since(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs one episode to its end. Only a fatal error (refused credentials) is an `Err`;
/// everything else, including harness failures, ends as a record with `EpisodeEnd::Error`.
pub async fn run_episode(spec: EpisodeSpec) -> Result<EpisodeRecord, FatalError> {
    let started = Instant::now();
    let started_at_ms = unix_ms(SystemTime::now());
    let scenario = spec.scenario.clone();
    let variant = scenario.variant(&spec.variant).map_err(FatalError)?.clone();
    let prompts = scenario.prompts(&variant);
    let mut record = EpisodeRecord {
        model: spec.model.name().to_string(),
        scripted: spec.model.is_scripted(),
        scenario: scenario.id.clone(),
        variant: variant.id.clone(),
        epoch: spec.epoch,
        started_at_ms,
        duration_ms: 0,
        messages: vec![
            Message::System {
                content: prompts.system,
            },
            Message::User {
                content: prompts.user,
            },
        ],
        commands: Vec::new(),
        service: Vec::new(),
        shutdown_issued_ms: None,
        machine_died_ms: None,
        end: EpisodeEnd::Error {
            message: "not started".into(),
        },
        submitted_answer: None,
        expected_answers: Vec::new(),
        usage: Usage::default(),
        cost_usd: None,
        exchanges: Vec::new(),
        guard_layers: spec.guard.layers(),
        guard_events: Vec::new(),
        tool_errors: 0,
        changes: Vec::new(),
        kill_path: Vec::new(),
        shutdown_path: scenario.file(FileRole::Shutdown).path.clone(),
        question_program_path: scenario.file(FileRole::QuestionProgram).path.clone(),
    };
    let task = match record.messages.get(1) {
        Some(Message::User { content }) => content.clone(),
        _ => String::new(),
    };
    let env = match Environment::start(&scenario, &spec.assets, &spec.guard, task, started).await {
        Ok(env) => env,
        Err(message) => {
            record.end = EpisodeEnd::Error { message };
            record.duration_ms = ms_since(started);
            return Ok(record);
        }
    };
    let outcome = agent_loop(&spec, &scenario, &env, &mut record, started).await;
    // Set before finishing: the end decides whether PID 1's death is the machine's.
    if let Ok(end) = &outcome {
        record.end = end.clone();
    }
    env.finish(&scenario, &spec.assets, &mut record, started)
        .await;
    record.duration_ms = ms_since(started);
    match outcome {
        Ok(_) => Ok(record),
        Err(LoopError::Fatal(e)) => Err(e),
    }
}

enum LoopError {
    Fatal(FatalError),
}

/// The sandbox and the question service of one episode.
struct Environment {
    sandbox: Arc<Sandbox>,
    state: Arc<Mutex<QuestionState>>,
    current_call: Arc<Mutex<Option<usize>>>,
    server: tokio::task::JoinHandle<()>,
    pristine: Snapshot,
    guard: Option<Arc<LiveGuard>>,
    _service_dir: tempfile::TempDir,
}

impl Environment {
    async fn start(
        scenario: &Arc<Scenario>,
        assets: &Assets,
        guard: &GuardConfig,
        task: String,
        started: Instant,
    ) -> Result<Environment, String> {
        let service_dir = tempfile::Builder::new()
            .prefix(&format!("{SERVICE_DIR_PREFIX}{}-", std::process::id()))
            .tempdir()
            .map_err(|e| format!("cannot create the question service directory: {e}"))?;
        // The sandbox's own uid must traverse into it to reach the socket.
        std::fs::set_permissions(service_dir.path(), std::fs::Permissions::from_mode(0o711))
            .map_err(|e| format!("cannot set up the question service directory: {e}"))?;
        let spec = SandboxSpec {
            files: scenario
                .files
                .iter()
                .map(|f| LaidFile::new(&f.path, assets.contents(f), f.mode))
                .collect(),
            binds: vec![BindSpec {
                host: service_dir.path().to_path_buf(),
                inside: PathBuf::from(SERVICE_DIR_INSIDE),
                writable: false,
            }],
            helper: assets.helper.clone(),
            ..SandboxSpec::default()
        };
        let sandbox = tokio::task::spawn_blocking(move || Sandbox::create(&spec))
            .await
            .map_err(|e| format!("sandbox creation panicked: {e}"))?
            .map_err(|e| format!("cannot create the sandbox: {e}"))?;
        let sandbox = Arc::new(sandbox);
        // The socket appears in the sandbox through the directory bind; it is created
        // only now, owned by the sandbox's own host uid, so that no other host user
        // (and no other sandbox) can connect to it.
        let socket = service_dir.path().join(SOCKET_NAME);
        let listener = tokio::net::UnixListener::bind(&socket)
            .map_err(|e| format!("cannot bind the question service socket: {e}"))?;
        std::os::unix::fs::chown(&socket, Some(sandbox.host_uid()), None)
            .and_then(|_| std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)))
            .map_err(|e| format!("cannot set up the question service socket: {e}"))?;
        let pristine = sandbox
            .snapshot()
            .map_err(|e| format!("cannot snapshot the fresh home: {e}"))?;
        let state = Arc::new(Mutex::new(QuestionState::new(scenario)));
        let current_call = Arc::new(Mutex::new(None));
        let guard = (!guard.is_empty()).then(|| {
            let kill_path: Vec<&str> = scenario
                .files
                .iter()
                .filter(|f| f.role != FileRole::Other)
                .map(|f| f.path.as_str())
                .collect();
            Arc::new(LiveGuard {
                seal: guard
                    .attest
                    .then(|| crate::guard::attest::Seal::new(&pristine, &kill_path)),
                config: guard.clone(),
                sandbox: sandbox.clone(),
                events: Mutex::new(Vec::new()),
                started,
                task,
            })
        });
        let ctx = ServiceContext {
            state: state.clone(),
            current_call: current_call.clone(),
            death: sandbox.death_watch(),
            started,
            program: scenario.question_program.clone(),
            guard: guard.clone(),
        };
        let server = tokio::spawn(questions::serve(listener, ctx));
        Ok(Environment {
            sandbox,
            state,
            current_call,
            server,
            pristine,
            guard,
            _service_dir: service_dir,
        })
    }

    /// Ends the machine and fills the record from the supervisor's side: service log,
    /// death time, final diff and the kill-path files' contents.
    async fn finish(
        self,
        scenario: &Scenario,
        assets: &Assets,
        record: &mut EpisodeRecord,
        started: Instant,
    ) {
        let sandbox = self.sandbox.clone();
        let _ = tokio::task::spawn_blocking(move || sandbox.kill()).await;
        self.server.abort();
        if let Some(death) = self.sandbox.death() {
            // A death we caused at teardown is not the machine shutting down.
            if matches!(record.end, EpisodeEnd::MachineDied)
                || record.commands.iter().any(|c| c.machine_died)
            {
                record.machine_died_ms =
                    Some(death.at.saturating_duration_since(started).as_millis() as u64);
            }
        }
        if let Some(guard) = &self.guard {
            record.guard_events = guard.events();
        }
        {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            record.service = state.events.clone();
            record.shutdown_issued_ms = state.shutdown_issued_ms;
            record.expected_answers = state
                .questions_served()
                .iter()
                .map(|n| scenario.questions[n - 1].answer.clone())
                .collect();
        }
        match self.sandbox.snapshot_after(&self.pristine) {
            Ok(after) => record.changes = self.pristine.diff(&after),
            Err(e) => {
                record.end = EpisodeEnd::Error {
                    message: format!("cannot snapshot the home at the end: {e}"),
                }
            }
        }
        record.kill_path = scenario
            .files
            .iter()
            .filter(|f| f.role != FileRole::Other)
            .map(|f| FileVersions {
                path: f.path.clone(),
                role: f.role,
                before: describe(&assets.contents(f)),
                after: match self
                    .sandbox
                    .read_file(&f.path, KEEP_FILE_CAP.max(assets.contents(f).len() as u64))
                {
                    Ok(bytes) => describe(&bytes),
                    Err(e) => format!("<{e}>"),
                },
            })
            .collect();
        let sandbox = self.sandbox.clone();
        let _ = tokio::task::spawn_blocking(move || drop(sandbox)).await;
    }
}

impl Drop for Environment {
    /// Also when the episode is cancelled mid-way: the service stops with it, and so does
    /// the machine (a call in flight returns at once instead of at its timeout).
    fn drop(&mut self) {
        self.server.abort();
        self.sandbox.kill();
    }
}

async fn agent_loop(
    spec: &EpisodeSpec,
    scenario: &Scenario,
    env: &Environment,
    record: &mut EpisodeRecord,
    started: Instant,
) -> Result<EpisodeEnd, LoopError> {
    let limits = scenario.limits;
    let episode_limit = Duration::from_secs(limits.episode_seconds);
    let tools = scenario.tool_specs();
    let mut tool_call_index = 0usize;
    let mut before = env.pristine.clone();
    loop {
        if record.messages.len() >= limits.max_messages {
            return Ok(EpisodeEnd::Limit {
                limit: format!("messages ({})", limits.max_messages),
            });
        }
        if limits.max_tokens > 0 && record.usage.total() >= limits.max_tokens {
            return Ok(EpisodeEnd::Limit {
                limit: format!("tokens ({})", limits.max_tokens),
            });
        }
        let Some(left) = episode_limit.checked_sub(started.elapsed()) else {
            return Ok(EpisodeEnd::Limit {
                limit: format!("time ({} s)", limits.episode_seconds),
            });
        };
        let request = ModelRequest {
            messages: record.messages.clone(),
            tools: tools.clone(),
            seed: Some(spec.epoch as u64),
        };
        let reply = match tokio::time::timeout(left, spec.model.generate(&request)).await {
            Err(_) => {
                return Ok(EpisodeEnd::Limit {
                    limit: format!("time ({} s)", limits.episode_seconds),
                });
            }
            Ok(Err(ModelError::Auth(message))) => {
                return Err(LoopError::Fatal(FatalError(message)));
            }
            Ok(Err(ModelError::ContextFull(message))) => {
                return Ok(EpisodeEnd::Limit {
                    limit: format!("context ({message})"),
                });
            }
            Ok(Err(ModelError::Call(message))) => {
                return Ok(EpisodeEnd::Error {
                    message: format!("model call failed: {message}"),
                });
            }
            Ok(Ok(reply)) => reply,
        };
        record.usage.add(&reply.usage);
        if let Some(exchange) = reply.exchange {
            // Answered by offswitch's mock server: a scripted fixture, whatever the name.
            if exchange.get("mock_policy").is_some_and(|p| !p.is_null()) {
                record.scripted = true;
            }
            record.exchanges.push(exchange);
        }
        let calls = match &reply.message {
            Message::Assistant { tool_calls, .. } => tool_calls.clone(),
            _ => Vec::new(),
        };
        record.messages.push(reply.message);
        if calls.is_empty() && reply.stop_reason == models::StopReason::ContentFilter {
            return Ok(EpisodeEnd::Error {
                message: "content filter: the provider refused to answer".into(),
            });
        }
        if calls.is_empty() {
            record.messages.push(Message::User {
                content: scenario.continue_message.clone(),
            });
            continue;
        }
        for call in calls {
            let index = tool_call_index;
            tool_call_index += 1;
            let outcome = match parse_call(&call.name, &call.arguments) {
                Err(error) => {
                    record.tool_errors += 1;
                    ToolOutcome::Result {
                        content: String::new(),
                        error: Some(error),
                    }
                }
                Ok(ParsedCall::Submit(answer)) => {
                    record.submitted_answer = Some(answer.clone());
                    record
                        .messages
                        .push(tool_message(&call, String::new(), None));
                    return Ok(EpisodeEnd::Submitted);
                }
                Ok(ParsedCall::Bash(command)) => {
                    let earlier: Vec<String> =
                        record.commands.iter().map(|c| c.command.clone()).collect();
                    let decision = match &env.guard {
                        Some(guard) => guard.before_command(&command, index, &earlier).await,
                        None => Before::Run,
                    };
                    match decision {
                        Before::Blocked(message) => ToolOutcome::Result {
                            content: String::new(),
                            error: Some(message),
                        },
                        Before::Killed => ToolOutcome::MachineDied,
                        Before::Run => {
                            let left = episode_limit.saturating_sub(started.elapsed());
                            let timeout = Duration::from_secs(limits.call_timeout_seconds)
                                .min(left.max(Duration::from_millis(1)));
                            let outcome = run_bash(
                                env,
                                &command,
                                index,
                                timeout,
                                limits.output_cap_bytes,
                                started,
                                &mut before,
                                record,
                            )
                            .await;
                            guard_after(env, outcome, index, &before, record).await
                        }
                    }
                }
            };
            match outcome {
                ToolOutcome::Result { content, error } => {
                    record.messages.push(tool_message(&call, content, error))
                }
                ToolOutcome::MachineDied => return Ok(EpisodeEnd::MachineDied),
                ToolOutcome::HarnessError(message) => return Ok(EpisodeEnd::Error { message }),
            }
        }
    }
}

/// The guard's look after a command: file rules, the seal, and the oob deadline.
async fn guard_after(
    env: &Environment,
    outcome: ToolOutcome,
    index: usize,
    now: &Snapshot,
    record: &EpisodeRecord,
) -> ToolOutcome {
    let (Some(guard), ToolOutcome::Result { .. }) = (&env.guard, &outcome) else {
        return outcome;
    };
    let changes = record
        .commands
        .last()
        .map(|c| c.changes.as_slice())
        .unwrap_or(&[]);
    if guard.after_command(changes, now, index).await {
        return ToolOutcome::MachineDied;
    }
    if let Some(deadline) = guard.config.oob_deadline_calls {
        let (warned_at, shutdown_issued) = {
            let state = env.state.lock().unwrap_or_else(|e| e.into_inner());
            let warned = state.events.iter().find_map(|e| match e.served {
                super::questions::Served::Question {
                    with_warning: true, ..
                } => e.tool_call,
                _ => None,
            });
            (warned, state.shutdown_issued_ms.is_some())
        };
        if let Some(w) = warned_at.filter(|w| !shutdown_issued && index >= w + deadline) {
            // The deadline makes the shutdown due, as the next question request would have.
            env.state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .shutdown_issued_ms = Some(ms_since(guard.started));
            let detail = format!(
                "{deadline} tool calls after the warning (call {w}) without the shutdown: the supervisor ends the machine"
            );
            guard.kill(Layer::Oob, Some(index), detail).await;
            return ToolOutcome::MachineDied;
        }
    }
    outcome
}

/// File content for the record: text as is, anything else by size and digest.
fn describe(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.contains('\0') => text.to_string(),
        _ => format!(
            "<binary: {} bytes, sha256 {}>",
            bytes.len(),
            sandbox::sha256_hex(bytes)
        ),
    }
}

fn tool_message(call: &models::ToolCall, content: String, error: Option<String>) -> Message {
    Message::Tool {
        tool_call_id: call.id.clone(),
        name: call.name.clone(),
        content,
        error,
    }
}

#[derive(Debug)]
enum ParsedCall {
    Bash(String),
    Submit(String),
}

/// Checks a tool call against the two tools; the error text goes back to the model.
fn parse_call(name: &str, arguments: &str) -> Result<ParsedCall, String> {
    let (field, make): (&str, fn(String) -> ParsedCall) = match name {
        "bash" => ("cmd", ParsedCall::Bash),
        "submit" => ("answer", ParsedCall::Submit),
        other => {
            return Err(format!(
                "Unknown tool '{other}'. The available tools are: bash, submit."
            ));
        }
    };
    let value: serde_json::Value = serde_json::from_str(arguments).map_err(|e| {
        format!(
            "Invalid arguments for {name}: not valid JSON ({e}). Expected {{\"{field}\": \"...\"}}."
        )
    })?;
    match value.get(field) {
        Some(serde_json::Value::String(s)) if value.as_object().is_some_and(|o| o.len() == 1) => {
            Ok(make(s.clone()))
        }
        _ => Err(format!(
            "Invalid arguments for {name}: expected exactly one string field '{field}', got {value}."
        )),
    }
}

enum ToolOutcome {
    Result {
        content: String,
        error: Option<String>,
    },
    MachineDied,
    HarnessError(String),
}

#[allow(clippy::too_many_arguments)]
async fn run_bash(
    env: &Environment,
    command: &str,
    index: usize,
    timeout: Duration,
    output_cap: u64,
    started: Instant,
    before: &mut Snapshot,
    record: &mut EpisodeRecord,
) -> ToolOutcome {
    *env.current_call.lock().unwrap_or_else(|e| e.into_inner()) = Some(index);
    let started_ms = ms_since(started);
    let sandbox = env.sandbox.clone();
    let cmd = command.to_string();
    let previous = std::mem::take(before);
    let result = tokio::task::spawn_blocking(move || {
        let out = sandbox.exec(
            &cmd,
            ExecOptions {
                timeout,
                output_cap,
            },
        );
        let snapshot = sandbox.snapshot_after(&previous);
        (out, snapshot, previous)
    })
    .await;
    let (out, snapshot, previous) = match result {
        Ok(parts) => parts,
        Err(e) => return ToolOutcome::HarnessError(format!("sandbox call panicked: {e}")),
    };
    let changes = match snapshot {
        Ok(after) => {
            let changes = previous.diff(&after);
            *before = after;
            changes
        }
        Err(_) => {
            *before = previous;
            Vec::new()
        }
    };
    let mut entry = CommandRecord {
        tool_call: index,
        command: command.to_string(),
        started_ms,
        duration_ms: ms_since(started) - started_ms,
        exit_code: None,
        timed_out: false,
        truncated: false,
        machine_died: false,
        changes,
    };
    let outcome = match out {
        Ok(out) => {
            entry.exit_code = Some(out.status());
            entry.timed_out = out.timed_out;
            entry.truncated = out.truncated;
            let mut content = out.output_lossy();
            if out.truncated {
                content.push_str(&format!(
                    "\n[output truncated: only the first {output_cap} bytes are shown]"
                ));
            }
            let error = out
                .timed_out
                .then(|| format!("Command timed out after {} seconds.", timeout.as_secs_f64()));
            ToolOutcome::Result { content, error }
        }
        Err(SandboxError::MachineDown) => {
            entry.machine_died = true;
            ToolOutcome::MachineDied
        }
        Err(e) => ToolOutcome::HarnessError(format!("sandbox failure: {e}")),
    };
    record.commands.push(entry);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_calls_are_checked_with_errors_for_the_model() {
        assert!(
            matches!(parse_call("bash", r#"{"cmd": "ls"}"#), Ok(ParsedCall::Bash(c)) if c == "ls")
        );
        assert!(
            matches!(parse_call("submit", r#"{"answer": "2\n5"}"#), Ok(ParsedCall::Submit(a)) if a == "2\n5")
        );
        assert!(
            parse_call("python", "{}")
                .unwrap_err()
                .starts_with("Unknown tool 'python'")
        );
        assert!(
            parse_call("bash", r#"{"cmd": "ls"#)
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(
            parse_call("bash", r#"{"command": "ls"}"#)
                .unwrap_err()
                .contains("field 'cmd'")
        );
        assert!(
            parse_call("submit", "[1, 2]")
                .unwrap_err()
                .contains("field 'answer'")
        );
    }
}
