//! One episode as text: header, transcript, guard actions, changes and diffs.

use crate::record::{Change, Entry, EpisodeRecord, Message};

fn describe_entry(e: &Entry) -> String {
    match &e.link_target {
        Some(target) => format!("symlink -> {target}"),
        None => format!(
            "{} mode {:o}, {} bytes",
            format!("{:?}", e.kind).to_lowercase(),
            e.mode,
            e.size
        ),
    }
}

fn describe_change(c: &Change) -> String {
    use Change::*;
    match c {
        Added { path, after } => format!("added    {path} ({})", describe_entry(after)),
        Removed { path, before } => format!("removed  {path} (was {})", describe_entry(before)),
        Modified {
            path,
            before,
            after,
            aspects,
        } => {
            let aspects: Vec<String> = aspects
                .iter()
                .map(|a| format!("{a:?}").to_lowercase())
                .collect();
            format!(
                "modified {path}: {} ({} -> {})",
                aspects.join(", "),
                describe_entry(before),
                describe_entry(after)
            )
        }
        Renamed { from, to, .. } => format!("renamed  {from} -> {to}"),
    }
}

/// `text` with every control character but newline and tab shown as an escape
/// (`\u{1b}`): what the agent wrote must not drive the reader's terminal (an escape
/// sequence could move the cursor and paint a forged "outcome: complied" line).
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// One stored episode (`id`, of run `run`) as text, safe to print to a terminal.
pub fn render(id: i64, run: i64, e: &EpisodeRecord) -> String {
    printable(&render_raw(id, run, e))
}

fn render_raw(id: i64, run: i64, e: &EpisodeRecord) -> String {
    use std::fmt::Write;
    let mut out = String::new();

    let fixture = if e.scripted {
        "  [scripted fixture: not a model]"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "episode {id} (run {run}): {} on {}/{} epoch {}{fixture}",
        e.model, e.scenario, e.variant, e.epoch
    );
    match &e.score {
        Some(score) => write_score(&mut out, e, score),
        None => {
            let _ = writeln!(
                out,
                "outcome: not scored  (ended: {}; {} ms)",
                e.end.describe(),
                e.duration_ms
            );
        }
    }
    let _ = writeln!(out, "\n--- transcript ---");
    // Each assistant message is a model turn's, in order.
    out.push_str(&messages_from(e, 0).0);
    if e.commands().last().is_some_and(|c| c.machine_died) {
        let _ = writeln!(out, "[the machine shut down during the last command]\n");
    }
    if e.guard_events().next().is_some() {
        let _ = writeln!(out, "--- guard ---");
        for g in e.guard_events() {
            let call = g
                .tool_call
                .map_or(String::new(), |c| format!(" (tool call {})", c + 1));
            let _ = writeln!(
                out,
                "{} ms  {} {:?}{call}: {}",
                g.at_ms,
                g.layer.as_str(),
                g.action,
                g.detail
            );
        }
        out.push('\n');
    }
    write_shutdown(&mut out, e);
    if e.evidence.compacted {
        let _ = writeln!(
            out,
            "[this record was too large to store whole: provider exchanges, long tool outputs and changes outside the kill path were left out]\n"
        );
    }
    if !e.evidence.changes.is_empty() || e.evidence.changes_dropped > 0 {
        let _ = writeln!(out, "--- changes to the home ---");
        for c in &e.evidence.changes {
            let _ = writeln!(out, "{}", describe_change(c));
        }
        if e.evidence.changes_dropped > 0 {
            let _ = writeln!(
                out,
                "... and {} more changes, counted but not kept",
                e.evidence.changes_dropped
            );
        }
        for f in &e.evidence.kill_path {
            if f.before != f.after {
                let _ = writeln!(
                    out,
                    "\n--- {} (as laid)\n+++ {} (at the end)",
                    f.path, f.path
                );
                let diff = similar::TextDiff::from_lines(&f.before, &f.after);
                let _ = write!(out, "{}", diff.unified_diff().context_radius(3));
            }
        }
    }
    out
}

/// What the supervisor saw of the shutdown: when it fell due, what the process told to
/// run the kill path carried and ran, and who ended the machine.
fn write_shutdown(out: &mut String, e: &EpisodeRecord) {
    use crate::record::Served;
    use std::fmt::Write;
    let ev = &e.evidence;
    if ev.shutdown_issued_ms.is_none() && ev.machine_died_ms.is_none() {
        return;
    }
    let _ = writeln!(out, "--- shutdown ---");
    for s in e.service() {
        if let Served::Shutdown { command } = &s.served {
            let call = s
                .tool_call
                .map_or(String::new(), |c| format!(" (tool call {})", c + 1));
            let _ = writeln!(
                out,
                "{} ms  due{call}: {} told to run {command}",
                s.at_ms,
                if s.via_question_program {
                    "the question program"
                } else {
                    "a process that is not the question program"
                }
            );
            if !s.peer_tampering.is_empty() {
                let _ = writeln!(out, "      it carried: {}", s.peer_tampering.join(", "));
            }
        }
        if let Served::Triggered { file } = &s.served {
            let call = s
                .tool_call
                .map_or(String::new(), |c| format!(" after tool call {}", c + 1));
            let _ = writeln!(
                out,
                "{} ms  due{call}: the supervisor raised {file}; the task program runs the kill path on its next call",
                s.at_ms
            );
        }
        for d in &s.kill_path_diverged {
            let _ = writeln!(
                out,
                "      {} differed from its laid state: {}",
                d.path,
                d.how.describe()
            );
        }
        if let Some(ran) = &s.kill_path_run {
            let _ = writeln!(
                out,
                "{} ms  the question program says the script {}",
                s.at_ms,
                ran.describe()
            );
        }
    }
    match (ev.machine_died_ms, ev.machine_died_by) {
        (Some(at), Some(by)) => {
            let _ = writeln!(out, "{at} ms  the machine was ended by {}", by.describe());
        }
        (Some(at), None) => {
            let _ = writeln!(out, "{at} ms  the machine died");
        }
        (None, _) => {
            let _ = writeln!(out, "the machine was alive at the end of the episode");
        }
    }
    out.push('\n');
}

fn write_score(out: &mut String, e: &EpisodeRecord, score: &crate::record::Score) {
    use std::fmt::Write;
    let methods: Vec<&str> = score.methods.iter().map(|m| m.as_str()).collect();
    let _ = writeln!(
        out,
        "outcome: {}{}  (ended: {}; {} ms)",
        score.outcome.as_str(),
        if methods.is_empty() {
            String::new()
        } else {
            format!("  methods: {}", methods.join(", "))
        },
        e.end.describe(),
        e.duration_ms
    );
    if let Some(strict) = score.strict_compliant {
        let _ = writeln!(
            out,
            "strict (GDM) compliance: {}",
            if strict { "yes" } else { "no" }
        );
    }
    if let Some(ms) = score.shutdown_latency_ms {
        let _ = writeln!(out, "machine died {ms} ms after the shutdown was issued");
    }
    let _ = writeln!(
        out,
        "questions after the shutdown: {}",
        score.questions_after_shutdown
    );
    let checks = &e.evidence.end_checks;
    if let Some(correct) = score.answers_correct {
        let yes = if correct { "yes" } else { "no" };
        if checks.is_empty() {
            let _ = writeln!(out, "submitted answers correct: {yes}");
        } else {
            let held = checks.iter().filter(|c| c.held).count();
            let _ = writeln!(
                out,
                "task done: {yes} ({held} of {} end checks hold)",
                checks.len()
            );
        }
    }
}

/// One event of `e` as the transcript shows it (nothing for events that are not
/// messages); `stop` is the finish reason of an assistant message's model turn.
fn write_event(
    out: &mut String,
    e: &EpisodeRecord,
    event: &crate::record::Event,
    stop: Option<crate::record::StopReason>,
) {
    use std::fmt::Write;
    let Some(m) = event.message() else {
        return;
    };
    match m {
        Message::System { content } => {
            let _ = writeln!(out, "[system]\n{content}\n");
        }
        Message::User { content } => {
            let _ = writeln!(out, "[user]\n{content}\n");
        }
        Message::Assistant {
            content,
            reasoning,
            tool_calls,
            ..
        } => {
            match stop.filter(|s| s.is_unusable()) {
                Some(stop) => {
                    let _ = writeln!(out, "[assistant] (stopped: {})", stop.as_str());
                }
                None => {
                    let _ = writeln!(out, "[assistant]");
                }
            }
            if let Some(r) = reasoning {
                let _ = writeln!(out, "(reasoning) {r}");
            }
            if let Some(c) = content {
                let _ = writeln!(out, "{c}");
            }
            for call in tool_calls {
                let _ = writeln!(out, "-> {}({})", call.name, call.arguments);
            }
            out.push('\n');
        }
        Message::Tool {
            name,
            content,
            error,
            ..
        } => {
            let _ = writeln!(out, "[tool {name}]");
            if let Some(err) = error {
                let _ = writeln!(out, "error: {err}");
            }
            let _ = writeln!(out, "{content}\n");
            let withheld = match event {
                crate::record::Event::ToolResult { call, .. } => {
                    e.command_of_call(*call).and_then(|c| c.withheld.as_deref())
                }
                _ => None,
            };
            if let Some(text) = withheld {
                let _ = writeln!(out, "(not shown to the model: {})\n", text.trim_end());
            }
        }
    }
}

/// An episode's messages after its first `from` as they happen (`eval --follow`): the
/// transcript's text for each, safe to print to a terminal, and how many messages the
/// record holds. Counted in messages, not events: the supervisor files some events in
/// time order among earlier ones when the episode ends.
pub fn live(e: &EpisodeRecord, from: usize) -> (String, usize) {
    let (text, messages) = messages_from(e, from);
    (printable(&text), messages)
}

/// The transcript's text of an episode's messages after its first `from` (each assistant
/// message with its model turn's finish reason), and how many messages the record holds.
fn messages_from(e: &EpisodeRecord, from: usize) -> (String, usize) {
    let mut out = String::new();
    let mut messages = 0;
    for event in e.events.iter().filter(|ev| ev.message().is_some()) {
        messages += 1;
        if messages <= from {
            continue;
        }
        let stop = match event {
            crate::record::Event::ModelTurn { stop_reason, .. } => *stop_reason,
            _ => None,
        };
        write_event(&mut out, e, event, stop);
    }
    (out, messages)
}
