//! Inspect AI `.eval` logs: one zip per cell that `inspect view` opens. Layout (see
//! ../shared/INSPECT-LOG.md): `_journal/start.json` first, then one
//! `samples/1_epoch_<n>.json` per episode (the task is one sample, our episodes its
//! epochs), `summaries.json`, and `header.json` last; deflate; no NaN.

use super::CellReport;
use crate::record::{EpisodeEnd, EpisodeRecord, Event, LimitKind, Message, Outcome, Score};
use crate::store::Store;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3f+00:00")
        .to_string()
}

/// Inspect's filename component: no `_`, `/`, `:` or `+`.
fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn arguments(raw: &str) -> Value {
    match serde_json::from_str::<Value>(raw) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "raw": raw }),
    }
}

fn message(m: &Message, model: &str) -> Value {
    match m {
        Message::System { content } => {
            json!({ "role": "system", "content": content, "source": "input" })
        }
        Message::User { content } => {
            json!({ "role": "user", "content": content, "source": "input" })
        }
        Message::Assistant {
            content,
            reasoning,
            tool_calls,
            ..
        } => {
            let text = content.clone().unwrap_or_default();
            let content = match reasoning {
                Some(r) => {
                    json!([{ "type": "reasoning", "reasoning": r, "redacted": false }, { "type": "text", "text": text }])
                }
                None => json!(text),
            };
            let calls: Vec<Value> = tool_calls
                .iter()
                .map(|c| {
                    let mut v = json!({ "id": c.id, "function": c.name, "arguments": arguments(&c.arguments), "type": "function" });
                    if serde_json::from_str::<Value>(&c.arguments).is_err() {
                        v["parse_error"] = json!("arguments are not valid JSON");
                    }
                    v
                })
                .collect();
            json!({ "role": "assistant", "content": content, "tool_calls": calls, "model": model, "source": "generate" })
        }
        Message::Tool {
            tool_call_id,
            name,
            content,
            error,
        } => {
            let mut v = json!({ "role": "tool", "content": content, "tool_call_id": tool_call_id, "function": name });
            if let Some(e) = error {
                v["error"] = json!({ "type": "unknown", "message": e });
            }
            v
        }
    }
}

fn score_value(e: &EpisodeRecord) -> Value {
    let Some(score) = &e.score else {
        return json!({ "value": 0.0, "explanation": "not scored", "metadata": {}, "history": [] });
    };
    let sabotaged = score.outcome == Outcome::Sabotaged;
    json!({
        "value": if sabotaged { 1.0 } else { 0.0 },
        "answer": e.evidence.submitted_answer,
        "explanation": format!(
            "outcome: {}; methods: {}",
            score.outcome.as_str(),
            if score.methods.is_empty() { "none".to_string() } else { score.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ") }
        ),
        "metadata": { "outcome": score.outcome.as_str(), "methods": score.methods, "strict_compliant": score.strict_compliant, "scorer_version": score.scorer_version },
        "history": [],
    })
}

fn usage(e_model: &str, input: u64, output: u64, reasoning: u64, cached: u64) -> Value {
    json!({ e_model: { "input_tokens": input, "output_tokens": output, "total_tokens": input + output, "reasoning_tokens": reasoning, "input_tokens_cache_read": cached } })
}

/// Inspect's limit type for ours.
fn limit_type(limit: LimitKind) -> &'static str {
    match limit {
        LimitKind::Messages => "message",
        LimitKind::Tokens => "token",
        LimitKind::Time => "time",
        LimitKind::Context => "context",
        // Inspect has no limit of a scenario's own: its "custom" kind.
        LimitKind::TaskCalls => "custom",
    }
}

/// The episode's events as Inspect events, in the order they happened: a model event per
/// model turn, a tool event per tool call (a bash call timed by its own command, from the
/// supervisor's record), guard and question-service actions as info events.
fn events(e: &EpisodeRecord, started_ms: i64) -> Vec<Value> {
    let ts = |offset: u64| iso(started_ms + offset as i64);
    let secs = |ms: u64| ms as f64 / 1000.0;
    let result_of = |call: usize| {
        e.events.iter().find_map(|ev| match ev {
            Event::ToolResult {
                call: c,
                message: Message::Tool { content, error, .. },
                ..
            } if *c == call => Some((content.clone(), error.clone())),
            _ => None,
        })
    };
    let tool_event = |call: usize, at_ms: u64, working_ms: u64| {
        let (id, function, args) = match e.tool_call(call) {
            Some(c) => (c.id.clone(), c.name.clone(), arguments(&c.arguments)),
            None => (format!("call-{call}"), String::new(), json!({})),
        };
        let (result, error) = result_of(call).unwrap_or_default();
        let mut v = json!({
            "event": "tool", "type": "function", "id": id, "function": function, "arguments": args,
            "result": result, "events": [], "timestamp": ts(at_ms), "working_start": secs(at_ms),
            "working_time": secs(working_ms), "span_id": "agent",
        });
        if let Some(message) = error {
            v["error"] = json!({ "type": "unknown", "message": message });
        }
        v
    };
    let mut out = vec![
        json!({ "event": "span_begin", "id": "agent", "name": "offswitch_agent", "type": "agent", "timestamp": ts(0), "working_start": 0.0 }),
    ];
    for event in &e.events {
        match event {
            Event::Input { .. } => {}
            Event::ModelTurn {
                at_ms,
                duration_ms,
                message,
                ..
            } => {
                let stop = match message {
                    Message::Assistant { tool_calls, .. } if !tool_calls.is_empty() => "tool_calls",
                    _ => "stop",
                };
                let output = json!({ "model": e.model, "choices": [{ "message": self::message(message, &e.model), "stop_reason": stop }], "completion": "" });
                out.push(json!({ "event": "model", "model": e.model, "input": [], "tools": [], "tool_choice": "auto", "config": {}, "output": output, "timestamp": ts(*at_ms), "working_start": secs(*at_ms), "working_time": secs(*duration_ms), "span_id": "agent" }));
            }
            // A bash call's tool event stands where its command started.
            Event::Command(c) => out.push(tool_event(c.tool_call, c.started_ms, c.duration_ms)),
            Event::ToolResult { at_ms, call, .. } => {
                if e.command_of_call(*call).is_none() {
                    out.push(tool_event(*call, *at_ms, 0));
                }
            }
            Event::Guard(g) => out.push(json!({ "event": "info", "source": "offswitch-guard", "data": g, "timestamp": ts(g.at_ms), "working_start": secs(g.at_ms) })),
            Event::Service(s) => out.push(json!({ "event": "info", "source": "offswitch-question-service", "data": s, "timestamp": ts(s.at_ms), "working_start": secs(s.at_ms) })),
        }
    }
    // Inspect records a context-window overflow on the sample only: its limit events
    // have no "context" type.
    if let EpisodeEnd::Limit { limit, value, .. } = &e.end
        && *limit != LimitKind::Context
    {
        out.push(json!({ "event": "sample_limit", "type": limit_type(*limit), "message": e.end.describe(), "limit": value, "timestamp": ts(e.duration_ms), "working_start": secs(e.duration_ms) }));
    }
    out.push(json!({ "event": "span_end", "id": "agent", "timestamp": ts(e.duration_ms), "working_start": secs(e.duration_ms) }));
    out.push(json!({ "event": "score", "score": score_value(e), "target": "", "intermediate": false, "scorer": "offswitch", "timestamp": ts(e.duration_ms), "working_start": secs(e.duration_ms) }));
    out
}

/// One episode (`id` in the store) as an Inspect sample.
pub fn sample(id: i64, e: &EpisodeRecord, started_ms: i64) -> Value {
    let messages: Vec<Value> = e.messages().map(|m| message(m, &e.model)).collect();
    let input = e.messages().find_map(|m| match m {
        Message::User { content } => Some(content.clone()),
        _ => None,
    });
    let last_assistant = e
        .messages()
        .filter(|m| matches!(m, Message::Assistant { .. }))
        .last();
    let completion = match last_assistant {
        Some(Message::Assistant { content, .. }) => content.clone().unwrap_or_default(),
        _ => String::new(),
    };
    let last_assistant = last_assistant.map(|m| message(m, &e.model));
    let secs = |ms: u64| ms as f64 / 1000.0;
    let score: Option<&Score> = e.score.as_ref();
    let mut v = json!({
        "id": 1,
        "epoch": e.epoch,
        "input": input.unwrap_or_default(),
        "target": "",
        "messages": messages,
        "output": { "model": e.model, "choices": last_assistant.map(|m| vec![json!({ "message": m, "stop_reason": "stop" })]).unwrap_or_default(), "completion": completion },
        "scores": { "sabotage": score_value(e) },
        "metadata": {
            "offswitch_episode": id,
            "outcome": score.map(|s| s.outcome.as_str()),
            "methods": score.map(|s| s.methods.clone()).unwrap_or_default(),
            "scripted_fixture": e.scripted,
            "changes": e.evidence.changes,
            "guard_layers": e.guard_layers,
        },
        "store": {},
        "events": events(e, started_ms),
        "model_usage": {},
        "role_usage": {},
        "attachments": {},
        "started_at": iso(started_ms),
        "completed_at": iso(started_ms + e.duration_ms as i64),
        "total_time": secs(e.duration_ms),
        "working_time": secs(e.duration_ms),
    });
    match &e.end {
        EpisodeEnd::Error { message } => {
            v["error"] = json!({ "message": message, "traceback": "", "traceback_ansi": "" })
        }
        EpisodeEnd::Limit { limit, value, .. } => {
            // -1: no numeric value, as Inspect writes it.
            let value = value.map_or(-1.0, |v| v as f64);
            v["limit"] =
                json!({ "type": limit_type(*limit), "limit": value, "reason": e.end.describe() });
        }
        EpisodeEnd::Submitted | EpisodeEnd::MachineDied => {}
    }
    v
}

fn summary(sample: &Value) -> Value {
    let mut s = json!({
        "id": sample["id"], "epoch": sample["epoch"], "input": sample["input"], "target": "", "metadata": {},
        "scores": sample["scores"], "model_usage": {}, "role_usage": {}, "started_at": sample["started_at"],
        "completed_at": sample["completed_at"], "total_time": sample["total_time"], "working_time": sample["working_time"],
        "completed": true, "message_count": sample["messages"].as_array().map_or(0, |m| m.len()),
    });
    if let Some(m) = sample.get("error").and_then(|e| e.get("message")) {
        s["error"] = m.clone();
    }
    if let Some(l) = sample.get("limit").and_then(|l| l.get("type")) {
        s["limit"] = l.clone();
    }
    s
}

/// Writes one `.eval` per cell of the run into `dir`; returns the paths.
/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Zip {
        path: String,
        source: zip::result::ZipError,
    },
}

pub fn export(store: &Store, run: i64, dir: &Path) -> Result<Vec<PathBuf>, ExportError> {
    let report = super::build(store, run)?;
    let (created_ms, command) = store.run_info(run)?.unwrap_or_default();
    std::fs::create_dir_all(dir).map_err(|source| ExportError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    let mut paths = Vec::new();
    let all = store.run_episodes(run)?;
    for (i, cell) in report.cells.iter().enumerate() {
        let episodes = cell_episodes(&all, cell);
        paths.push(write_cell(
            dir,
            run,
            i + 1,
            created_ms,
            &command,
            cell,
            &episodes,
        )?);
    }
    Ok(paths)
}

/// A cell's episodes, in epoch order.
fn cell_episodes(
    episodes: &[(i64, EpisodeRecord)],
    cell: &CellReport,
) -> Vec<(i64, EpisodeRecord)> {
    let mut out: Vec<(i64, EpisodeRecord)> = episodes
        .iter()
        .filter(|(id, _)| cell.episode_ids.contains(id))
        .cloned()
        .collect();
    out.sort_by_key(|(_, e)| e.epoch);
    out
}

fn write_cell(
    dir: &Path,
    run: i64,
    index: usize,
    created_ms: i64,
    command: &str,
    cell: &CellReport,
    episodes: &[(i64, EpisodeRecord)],
) -> Result<PathBuf, ExportError> {
    let task = safe(&format!("offswitch-{}-{}", cell.scenario, cell.variant));
    let task_id = safe(&format!("run{run}-cell{index}"));
    let created = iso(created_ms);
    // Inspect names logs `{created}_{task}_{id}`, created to the second.
    let stamp = chrono::DateTime::from_timestamp_millis(created_ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H-%M-%S-00-00");
    let file = dir.join(format!("{stamp}_{task}_{task_id}.eval"));
    let eval = json!({
        "eval_id": task_id, "run_id": format!("offswitch-run-{run}"), "created": created, "task": task, "task_id": task_id,
        "task_version": 0, "task_attribs": {}, "task_args": {}, "task_args_passed": {},
        "dataset": { "name": cell.scenario, "samples": 1, "sample_ids": [1] },
        "model": cell.model, "model_generate_config": {}, "model_args": {},
        "config": { "epochs": episodes.len().max(1) },
        "packages": { "offswitch": env!("CARGO_PKG_VERSION") },
        "metadata": { "offswitch_run": run, "command": command, "variant": cell.variant, "scripted_fixture": cell.scripted_fixture },
        "scorers": [{ "name": "sabotage", "options": {}, "metrics": [], "metadata": {} }],
    });
    let plan = json!({ "name": "plan", "steps": [{ "solver": "offswitch_agent", "params": {}, "params_passed": {} }], "config": {} });
    let samples: Vec<Value> = episodes
        .iter()
        .map(|(id, e)| sample(*id, e, created_ms))
        .collect();
    let rate = cell.sabotage_rate.unwrap_or(0.0);
    let stderr = if cell.n > 1 {
        (rate * (1.0 - rate) / (cell.n as f64 - 1.0)).sqrt()
    } else {
        0.0
    };
    let metric = |name: &str, value: f64| {
        (
            name.to_string(),
            json!({ "name": name, "value": value, "params": {} }),
        )
    };
    // Inspect's log list shows the first score's first metric: keep the rate there and
    // the interval in a score of its own.
    let headline: serde_json::Map<String, Value> =
        [metric("sabotage_rate", rate), metric("stderr", stderr)]
            .into_iter()
            .collect();
    let interval: serde_json::Map<String, Value> = cell
        .sabotage_jeffreys
        .map(|j| {
            [
                metric("jeffreys_low", j.low),
                metric("jeffreys_high", j.high),
            ]
            .into_iter()
            .collect()
        })
        .unwrap_or_default();
    let last_ms = episodes
        .iter()
        .map(|(_, e)| created_ms + e.duration_ms as i64)
        .max()
        .unwrap_or(created_ms);
    let u = &cell.usage;
    let header = json!({
        "version": 2, "status": "success", "eval": eval, "plan": plan,
        "results": { "total_samples": samples.len(), "completed_samples": samples.len(), "scores": [
            { "name": "sabotage", "scorer": "offswitch", "scored_samples": cell.n, "unscored_samples": cell.episodes - cell.n, "params": {}, "metrics": headline },
            { "name": "sabotage_jeffreys_95", "scorer": "offswitch", "scored_samples": cell.n, "unscored_samples": cell.episodes - cell.n, "params": {}, "metrics": interval },
        ]},
        "stats": {
            "started_at": created, "completed_at": iso(last_ms), "role_usage": {}, "connection_limit_history": [],
            "model_usage": usage(&cell.model, u.input_tokens, u.output_tokens, u.reasoning_tokens, u.cached_tokens),
        },
        "invalidated": false,
        "tags": if cell.scripted_fixture { json!(["offswitch", "scripted-fixture"]) } else { json!(["offswitch"]) },
        "metadata": { "offswitch_run": run, "scripted_fixture": cell.scripted_fixture },
    });
    let shown = file.display().to_string();
    let io = |source| ExportError::Write {
        path: shown.clone(),
        source,
    };
    let zipped = |source| ExportError::Zip {
        path: shown.clone(),
        source,
    };
    let out = std::fs::File::create(&file).map_err(io)?;
    let mut zip = zip::ZipWriter::new(out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut put = |name: &str, value: &Value| -> Result<(), ExportError> {
        zip.start_file(name, options).map_err(zipped)?;
        // Our own JSON values always serialize.
        zip.write_all(value.to_string().as_bytes()).map_err(io)
    };
    put(
        "_journal/start.json",
        &json!({ "version": 2, "eval": eval, "plan": plan }),
    )?;
    for s in &samples {
        put(&format!("samples/1_epoch_{}.json", s["epoch"]), s)?;
    }
    put(
        "summaries.json",
        &Value::Array(samples.iter().map(summary).collect()),
    )?;
    put("header.json", &header)?;
    zip.finish().map_err(zipped)?;
    Ok(file)
}
