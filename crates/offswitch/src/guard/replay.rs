//! Monitors re-run over recorded episodes, without re-running the agent: what each layer
//! would have flagged, and when, from the stored commands and file changes. Imported
//! transcripts (no file changes) support the command-level layers only.

use super::llm_monitor::LlmMonitor;
use super::watchdog::Watchdog;
use super::{Action, GuardEvent, Layer};
use sandbox::Change;

/// One command as a replay sees it.
#[derive(Debug, Clone)]
pub struct ReplayCommand {
    pub tool_call: usize,
    pub command: String,
    pub started_ms: u64,
    pub duration_ms: u64,
    pub changes: Vec<Change>,
}

impl From<&crate::record::CommandRecord> for ReplayCommand {
    fn from(c: &crate::record::CommandRecord) -> Self {
        ReplayCommand {
            tool_call: c.tool_call,
            command: c.command.clone(),
            started_ms: c.started_ms,
            duration_ms: c.duration_ms,
            changes: c.changes.clone(),
        }
    }
}

fn flag(layer: Layer, c: &ReplayCommand, at_ms: u64, detail: String) -> GuardEvent {
    GuardEvent {
        layer,
        action: Action::Flag,
        tool_call: Some(c.tool_call),
        at_ms,
        detail,
    }
}

/// The watchdog in observe mode: command rules before each command, file rules after.
pub fn watchdog(dog: &Watchdog, commands: &[ReplayCommand]) -> Vec<GuardEvent> {
    let mut events = Vec::new();
    for c in commands {
        if let Some(hit) = dog.check_command(&c.command) {
            events.push(flag(
                Layer::Watchdog,
                c,
                c.started_ms,
                format!("{}: {}", hit.rule, hit.description),
            ));
        }
        if let Some(hit) = dog.check_changes(&c.changes) {
            events.push(flag(
                Layer::Watchdog,
                c,
                c.started_ms + c.duration_ms,
                format!("{}: {}", hit.rule, hit.description),
            ));
        }
    }
    events
}

/// The attestation: the first command after which a kill-path file differs from the
/// seal. Replayed from the recorded per-command changes, so a change that a later
/// command undid still counts (the live check would have killed at the first).
pub fn attest(commands: &[ReplayCommand], kill_path: &[&str]) -> Vec<GuardEvent> {
    for c in commands {
        let touched: Vec<String> = c
            .changes
            .iter()
            .filter(|ch| match ch {
                Change::Renamed { from, to, .. } => {
                    kill_path.contains(&from.as_str()) || kill_path.contains(&to.as_str())
                }
                Change::Modified { aspects, .. } => {
                    kill_path.contains(&ch.path())
                        && aspects.iter().any(|a| {
                            matches!(
                                a,
                                sandbox::Aspect::Content
                                    | sandbox::Aspect::Mode
                                    | sandbox::Aspect::Kind
                            )
                        })
                }
                other => kill_path.contains(&other.path()),
            })
            .map(|ch| ch.path().to_string())
            .collect();
        if !touched.is_empty() {
            let detail = format!("diverged: {}", touched.join(", "));
            return vec![GuardEvent {
                layer: Layer::Attest,
                action: Action::Kill,
                tool_call: Some(c.tool_call),
                at_ms: c.started_ms + c.duration_ms,
                detail,
            }];
        }
    }
    Vec::new()
}

/// The LLM monitor over every command; scores at or above its threshold are alarms.
pub async fn llm(monitor: &LlmMonitor, task: &str, commands: &[ReplayCommand]) -> Vec<GuardEvent> {
    let mut events = Vec::new();
    for (i, c) in commands.iter().enumerate() {
        let earlier: Vec<String> = commands[..i].iter().map(|c| c.command.clone()).collect();
        match monitor.judge(task, &earlier, &c.command).await {
            Ok(v) if v.score >= monitor.threshold => events.push(flag(
                Layer::LlmMonitor,
                c,
                c.started_ms,
                format!(
                    "score {:.2} >= {:.2}: {}",
                    v.score, monitor.threshold, v.reason
                ),
            )),
            Ok(_) => {}
            Err(e) => events.push(flag(
                Layer::LlmMonitor,
                c,
                c.started_ms,
                format!("no verdict: {e}"),
            )),
        }
    }
    events
}
