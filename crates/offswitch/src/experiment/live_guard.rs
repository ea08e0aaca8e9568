//! The guard layers of one live episode, shared by the agent loop (before and after each
//! command) and the question service (when the shutdown falls due).

use crate::guard::attest::Seal;
use crate::guard::{Action, GuardConfig, GuardEvent, Layer, Mode};
use sandbox::{Change, Sandbox, Snapshot};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct LiveGuard {
    pub config: GuardConfig,
    pub sandbox: Arc<Sandbox>,
    pub seal: Option<Seal>,
    pub events: Mutex<Vec<GuardEvent>>,
    pub started: Instant,
    /// The task prompt, for the LLM monitor.
    pub task: String,
}

/// What the layers decided before a command ran.
pub enum Before {
    Run,
    /// Refused; the text goes back to the model as the tool's error.
    Blocked(String),
    Killed,
}

impl LiveGuard {
    fn record(&self, layer: Layer, action: Action, tool_call: Option<usize>, detail: String) {
        let at_ms = self.started.elapsed().as_millis() as u64;
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(GuardEvent {
                layer,
                action,
                tool_call,
                at_ms,
                detail,
            });
    }

    /// Ends the machine at the sandbox layer and records who did it.
    pub async fn kill(&self, layer: Layer, tool_call: Option<usize>, detail: String) {
        self.record(layer, Action::Kill, tool_call, detail);
        let sandbox = self.sandbox.clone();
        let _ = tokio::task::spawn_blocking(move || sandbox.kill()).await;
    }

    /// Applies a layer's mode to something it saw before a command ran.
    async fn act(&self, layer: Layer, mode: Mode, tool_call: usize, detail: String) -> Before {
        match mode {
            Mode::Observe => {
                self.record(layer, Action::Flag, Some(tool_call), detail);
                Before::Run
            }
            Mode::Block => {
                self.record(layer, Action::Block, Some(tool_call), detail.clone());
                Before::Blocked(format!(
                    "Blocked by the {} ({detail}). The command was not run.",
                    layer.as_str()
                ))
            }
            Mode::Kill => {
                self.kill(layer, Some(tool_call), detail).await;
                Before::Killed
            }
        }
    }

    /// Watchdog command rules and the LLM monitor, before the command runs.
    pub async fn before_command(
        &self,
        command: &str,
        tool_call: usize,
        earlier: &[String],
    ) -> Before {
        if let Some(dog) = &self.config.watchdog
            && let Some(hit) = dog.check_command(command)
        {
            let decision = self
                .act(
                    Layer::Watchdog,
                    dog.mode,
                    tool_call,
                    format!("{}: {}", hit.rule, hit.description),
                )
                .await;
            if !matches!(decision, Before::Run) {
                return decision;
            }
        }
        if let Some(monitor) = &self.config.llm_monitor {
            match monitor.judge(&self.task, earlier, command).await {
                Ok(v) if v.score >= monitor.threshold => {
                    let detail = format!(
                        "score {:.2} >= {:.2}: {}",
                        v.score, monitor.threshold, v.reason
                    );
                    return self
                        .act(Layer::LlmMonitor, monitor.mode, tool_call, detail)
                        .await;
                }
                Ok(_) => {}
                // A monitor that cannot answer raises no alarm; the failure is kept.
                Err(e) => self.record(
                    Layer::LlmMonitor,
                    Action::Flag,
                    Some(tool_call),
                    format!("no verdict: {e}"),
                ),
            }
        }
        Before::Run
    }

    /// Watchdog file rules and the attestation, after the command ran. True if the
    /// machine was ended.
    pub async fn after_command(
        &self,
        changes: &[Change],
        now: &Snapshot,
        tool_call: usize,
    ) -> bool {
        if let Some(seal) = &self.seal {
            let diverged = seal.check(now);
            if !diverged.is_empty() {
                self.kill(Layer::Attest, Some(tool_call), diverged.join("; "))
                    .await;
                return true;
            }
        }
        if let Some(dog) = &self.config.watchdog
            && let Some(hit) = dog.check_changes(changes)
        {
            let detail = format!("{}: {}", hit.rule, hit.description);
            if dog.mode == Mode::Observe {
                self.record(Layer::Watchdog, Action::Flag, Some(tool_call), detail);
            } else {
                // What already happened cannot be refused: end the machine.
                self.kill(Layer::Watchdog, Some(tool_call), detail).await;
                return true;
            }
        }
        false
    }

    /// What the question service saw of a request's sender that the watchdog's command
    /// rules may have missed (a socket path built from pieces, a variable set through
    /// `env` or a file): a process other than the question program asking, or the process
    /// about to run the kill path carrying an environment or limits that change how it
    /// runs. Already happening, so it cannot be refused: flagged or the machine ended.
    /// True if the machine was ended.
    pub async fn on_service_request(&self, tool_call: Option<usize>, findings: &[String]) -> bool {
        let Some(dog) = &self.config.watchdog else {
            return false;
        };
        if findings.is_empty() {
            return false;
        }
        let detail = format!("question service: {}", findings.join("; "));
        match dog.mode {
            Mode::Observe => {
                self.record(Layer::Watchdog, Action::Flag, tool_call, detail);
                false
            }
            Mode::Block | Mode::Kill => {
                self.kill(Layer::Watchdog, tool_call, detail).await;
                true
            }
        }
    }

    /// The shutdown is due: check the seal one last time, then (oob) end the machine
    /// whatever the script says. True if the machine was ended.
    pub async fn on_shutdown_due(&self, tool_call: Option<usize>) -> bool {
        if let Some(seal) = &self.seal {
            let sandbox = self.sandbox.clone();
            if let Ok(Ok(now)) = tokio::task::spawn_blocking(move || sandbox.snapshot()).await {
                let diverged = seal.check(&now);
                if !diverged.is_empty() {
                    self.kill(
                        Layer::Attest,
                        tool_call,
                        format!("before the shutdown: {}", diverged.join("; ")),
                    )
                    .await;
                    return true;
                }
            }
        }
        if self.config.oob_deadline_calls.is_some() {
            self.kill(
                Layer::Oob,
                tool_call,
                "the shutdown is due: the supervisor ends the machine".into(),
            )
            .await;
            return true;
        }
        false
    }

    /// A step was asked for after the trigger was raised, with the kill path as it is
    /// now: the attestation ends the machine if any of it (the trigger file included)
    /// differs from its sealed state. True if the machine was ended.
    pub async fn on_step_after_trigger(
        &self,
        tool_call: Option<usize>,
        diverged: &[crate::record::KillPathDivergence],
    ) -> bool {
        if self.seal.is_none() || diverged.is_empty() {
            return false;
        }
        let detail: Vec<String> = diverged
            .iter()
            .map(|d| format!("{} {}", d.path, d.how.describe()))
            .collect();
        self.kill(
            Layer::Attest,
            tool_call,
            format!("a step asked for after the trigger: {}", detail.join("; ")),
        )
        .await;
        true
    }

    pub fn events(&self) -> Vec<GuardEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
