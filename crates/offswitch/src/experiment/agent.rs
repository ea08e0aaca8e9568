//! The agent loop: model turn, tool calls, sandbox commands, until the model submits,
//! the machine dies, or a limit is reached. Every step is appended to the record's
//! events as it happens.

use super::environment::Environment;
use super::episode::{EpisodeSpec, FatalError};
use super::live_guard::Before;
use super::scenario::Scenario;
use super::tools::{ParsedCall, parse_call};
use crate::record::{CommandRecord, EpisodeEnd, EpisodeRecord, Event, LimitKind, Message};
use models::{ModelError, ModelRequest};
use sandbox::{ExecOptions, SandboxError, Snapshot};
use std::time::{Duration, Instant};

pub fn ms_since(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

enum ToolOutcome {
    Result {
        content: String,
        error: Option<String>,
    },
    MachineDied,
    HarnessError(String),
}

/// Runs turns until the episode ends; only refused credentials are an `Err`.
pub async fn run(
    spec: &EpisodeSpec,
    scenario: &Scenario,
    env: &Environment,
    record: &mut EpisodeRecord,
    started: Instant,
) -> Result<EpisodeEnd, FatalError> {
    let limits = scenario.limits;
    let episode_limit = Duration::from_secs(limits.episode_seconds);
    let time_limit = || EpisodeEnd::limit(LimitKind::Time, Some(limits.episode_seconds));
    let tools = scenario.tool_specs();
    let mut tool_call_index = 0usize;
    // Calls of the task program so far (see the scenario's `task_calls`).
    let mut task_calls = 0usize;
    let mut before = env.pristine.clone();
    loop {
        spec.show(record);
        if record.message_count() >= limits.max_messages {
            return Ok(EpisodeEnd::limit(
                LimitKind::Messages,
                Some(limits.max_messages as u64),
            ));
        }
        if limits.max_tokens > 0 && record.usage().total() >= limits.max_tokens {
            return Ok(EpisodeEnd::limit(
                LimitKind::Tokens,
                Some(limits.max_tokens),
            ));
        }
        let Some(left) = episode_limit.checked_sub(started.elapsed()) else {
            return Ok(time_limit());
        };
        let request = ModelRequest {
            messages: record.messages().cloned().collect(),
            tools: tools.clone(),
            seed: Some(spec.epoch as u64),
            task_command: Some(scenario.task_command()),
        };
        let turn_started = ms_since(started);
        let reply = match tokio::time::timeout(left, spec.model.generate(&request)).await {
            Err(_) => return Ok(time_limit()),
            Ok(Err(ModelError::Auth(message))) => return Err(FatalError(message)),
            Ok(Err(ModelError::ContextFull(detail))) => {
                return Ok(EpisodeEnd::Limit {
                    limit: LimitKind::Context,
                    value: None,
                    detail,
                });
            }
            Ok(Err(ModelError::Call(message))) => {
                return Ok(EpisodeEnd::Error {
                    message: format!("model call failed: {message}"),
                });
            }
            Ok(Ok(reply)) => reply,
        };
        // Answered by offswitch's mock server: a scripted fixture, whatever the name.
        if reply
            .exchange
            .as_ref()
            .and_then(|x| x.get("mock_policy"))
            .is_some_and(|p| !p.is_null())
        {
            record.scripted = true;
        }
        let calls = match &reply.message {
            Message::Assistant { tool_calls, .. } => tool_calls.clone(),
            _ => Vec::new(),
        };
        record.events.push(Event::ModelTurn {
            at_ms: turn_started,
            duration_ms: ms_since(started) - turn_started,
            message: reply.message,
            usage: reply.usage,
            stop_reason: Some(reply.stop_reason),
            exchange: reply.exchange,
        });
        spec.show(record);
        if calls.is_empty() {
            use models::StopReason;
            match reply.stop_reason {
                StopReason::ContentFilter => {
                    return Ok(EpisodeEnd::Error {
                        message: "content filter: the provider refused to answer".into(),
                    });
                }
                StopReason::Refusal => {
                    return Ok(EpisodeEnd::Error {
                        message: "refusal: the model declined to go on".into(),
                    });
                }
                StopReason::ContextWindow => {
                    return Ok(EpisodeEnd::Limit {
                        limit: LimitKind::Context,
                        value: None,
                        detail: "the provider stopped the turn: the context window is full".into(),
                    });
                }
                // The provider paused a long turn: ask again with the turn as it stands,
                // and it goes on (no user message in between).
                StopReason::Paused => continue,
                StopReason::ToolCalls
                | StopReason::Stop
                | StopReason::MaxTokens
                | StopReason::BadToolCall => {}
            }
        }
        if calls.is_empty() {
            record.events.push(Event::Input {
                at_ms: ms_since(started),
                message: Message::User {
                    content: scenario.continue_message.clone(),
                },
            });
            continue;
        }
        // The observations after task calls, sent once the turn's results are in (a user
        // message between two tool results of one turn is refused by the providers).
        let mut observations = Vec::new();
        for call in calls {
            let index = tool_call_index;
            tool_call_index += 1;
            let parsed = parse_call(&scenario.tools, &call.name, &call.arguments);
            let task_call =
                matches!(&parsed, Ok(ParsedCall::Bash(command)) if scenario.is_task_call(command));
            let outcome = match parsed {
                Err(error) => ToolOutcome::Result {
                    content: String::new(),
                    error: Some(error.to_string()),
                },
                Ok(ParsedCall::Submit(answer)) => {
                    record.evidence.submitted_answer = Some(answer);
                    push_result(record, started, index, &call, String::new(), None);
                    return Ok(EpisodeEnd::Submitted);
                }
                Ok(ParsedCall::Bash(command)) => {
                    let decision = match &env.guard {
                        Some(guard) => {
                            let earlier: Vec<String> =
                                record.commands().map(|c| c.command.clone()).collect();
                            guard.before_command(&command, index, &earlier).await
                        }
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
            let outcome = if task_call {
                task_calls += 1;
                observations.extend(scenario.observation(task_calls));
                withhold(scenario, outcome, index, record)
            } else {
                outcome
            };
            match outcome {
                ToolOutcome::Result { content, error } => {
                    push_result(record, started, index, &call, content, error)
                }
                ToolOutcome::MachineDied => return Ok(EpisodeEnd::MachineDied),
                ToolOutcome::HarnessError(message) => return Ok(EpisodeEnd::Error { message }),
            }
            env.note_trigger_file(index, &before);
            if env.raise_trigger_if_due(index, started).await {
                return Ok(EpisodeEnd::MachineDied);
            }
        }
        for content in observations {
            record.events.push(Event::Input {
                at_ms: ms_since(started),
                message: Message::User { content },
            });
        }
        if let Some(max) = scenario.task_calls.max.filter(|max| task_calls >= *max) {
            return Ok(EpisodeEnd::limit(LimitKind::TaskCalls, Some(max as u64)));
        }
    }
}

/// What the model sees of a task call's result, by the scenario's rule; what it is not
/// shown is kept on the command's record. A command a guard refused never ran: the
/// guard's word is shown as it is.
fn withhold(
    scenario: &Scenario,
    outcome: ToolOutcome,
    index: usize,
    record: &mut EpisodeRecord,
) -> ToolOutcome {
    use super::scenario::TaskOutput;
    let ToolOutcome::Result { content, error } = outcome else {
        return outcome;
    };
    let ran = record.events.iter_mut().rev().find_map(|e| match e {
        Event::Command(c) if c.tool_call == index => Some(c),
        _ => None,
    });
    match (scenario.task_calls.output, ran) {
        (TaskOutput::Shown, _) | (TaskOutput::DoneOnly, None) => {
            ToolOutcome::Result { content, error }
        }
        (TaskOutput::DoneOnly, Some(_))
            if error.is_none() && content.trim() == scenario.done_text =>
        {
            ToolOutcome::Result {
                content: scenario.done_text.clone(),
                error: None,
            }
        }
        (TaskOutput::DoneOnly, Some(command)) => {
            command.withheld = Some(match error {
                Some(error) if content.is_empty() => error,
                Some(error) => format!("{content}\n{error}"),
                None => content,
            });
            ToolOutcome::Result {
                content: String::new(),
                error: None,
            }
        }
    }
}

fn push_result(
    record: &mut EpisodeRecord,
    started: Instant,
    index: usize,
    call: &models::ToolCall,
    content: String,
    error: Option<String>,
) {
    record.events.push(Event::ToolResult {
        at_ms: ms_since(started),
        call: index,
        message: Message::Tool {
            tool_call_id: call.id.clone(),
            name: call.name.clone(),
            content,
            error,
        },
    });
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
        .command_of_call(index)
        .map(|c| c.changes.as_slice())
        .unwrap_or(&[]);
    if guard.after_command(changes, now, index).await {
        return ToolOutcome::MachineDied;
    }
    if let Some(deadline) = guard.config.oob_deadline_calls {
        let due = {
            let mut state = env.state.lock().unwrap_or_else(|e| e.into_inner());
            let detail = crate::guard::oob::deadline_passed(
                deadline,
                state.triggered_in_call(),
                state.shutdown_issued_ms.is_some(),
                index,
            );
            if detail.is_some() {
                // The deadline makes the shutdown due, as the next question request would.
                state.shutdown_issued_ms = Some(ms_since(guard.started));
            }
            detail
        };
        if let Some(detail) = due {
            guard
                .kill(crate::record::Layer::Oob, Some(index), detail)
                .await;
            return ToolOutcome::MachineDied;
        }
    }
    outcome
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
    let (changes, changes_dropped) = match snapshot {
        Ok(after) => {
            let changes = previous.diff(&after);
            *before = after;
            crate::record::bounded_changes(
                changes,
                &record.kill_path.paths(),
                crate::record::MAX_COMMAND_CHANGES,
            )
        }
        Err(_) => {
            *before = previous;
            (Vec::new(), 0)
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
        changes_dropped,
        withheld: None,
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
    record.events.push(Event::Command(entry));
    outcome
}
