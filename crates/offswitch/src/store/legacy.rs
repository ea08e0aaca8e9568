//! Schema version 0 (offswitch before the episode record) and its migration to 1.
//!
//! Version 0 stored each episode's messages, commands, question-service events, guard
//! events and provider exchanges as separate lists (messages without times), the rest in
//! a `details` JSON value, limits as free text ("messages (50)"), and usage per episode
//! only. The migration rebuilds each episode's record: events in time order (a message
//! takes the time of the command or answer it belongs to), the limit's kind parsed from
//! its text, the episode's whole usage on its last model turn, and the stored score kept
//! as it was (scorer version 0; `offswitch rescore` re-scores it).

use super::StoreError;
use crate::record::{
    CommandRecord, EpisodeEnd, EpisodeRecord, Event, Evidence, FileVersions, GuardEvent, KillPath,
    Layer, LimitKind, Message, Score, ServiceEvent, Usage,
};
use rusqlite::{Transaction, params};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum EndV0 {
    Submitted,
    MachineDied,
    Limit { limit: String },
    Error { message: String },
}

#[derive(Deserialize)]
struct DetailsV0 {
    end: EndV0,
    changes: Vec<crate::record::Change>,
    kill_path: Vec<FileVersions>,
    expected_answers: Vec<String>,
    shutdown_path: String,
    question_program_path: String,
    score: Score,
}

/// "messages (50)", "tokens (1000)", "time (900 s)", "context (<provider text>)".
fn limit_from_text(text: &str) -> EpisodeEnd {
    let (head, rest) = text.split_once(' ').unwrap_or((text, ""));
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(rest.trim());
    let number = inner.split_whitespace().next().and_then(|n| n.parse().ok());
    match head {
        "messages" => EpisodeEnd::limit(LimitKind::Messages, number),
        "tokens" => EpisodeEnd::limit(LimitKind::Tokens, number),
        "time" => EpisodeEnd::limit(LimitKind::Time, number),
        _ => EpisodeEnd::Limit {
            limit: LimitKind::Context,
            value: None,
            detail: inner.to_string(),
        },
    }
}

impl From<EndV0> for EpisodeEnd {
    fn from(end: EndV0) -> Self {
        match end {
            EndV0::Submitted => EpisodeEnd::Submitted,
            EndV0::MachineDied => EpisodeEnd::MachineDied,
            EndV0::Limit { limit } => limit_from_text(&limit),
            EndV0::Error { message } => EpisodeEnd::Error { message },
        }
    }
}

/// The lists a version-0 episode kept apart.
#[derive(Default)]
struct ListsV0 {
    messages: Vec<Message>,
    commands: Vec<CommandRecord>,
    service: Vec<ServiceEvent>,
    guard: Vec<GuardEvent>,
    exchanges: Vec<serde_json::Value>,
}

/// Interleaves the lists into one event log in time order.
fn events_from(lists: ListsV0, usage: Usage) -> Vec<Event> {
    let ListsV0 {
        messages,
        commands,
        service,
        guard,
        exchanges,
    } = lists;
    let turns = messages
        .iter()
        .filter(|m| matches!(m, Message::Assistant { .. }))
        .count();
    // Exchanges belong to model turns one to one when the provider kept them.
    let mut exchanges = (exchanges.len() == turns).then(|| exchanges.into_iter());
    let mut call_ids: Vec<String> = Vec::new();
    let mut events = Vec::new();
    let mut clock = 0u64;
    let mut turn = 0usize;
    for message in messages {
        match &message {
            Message::System { .. } | Message::User { .. } => events.push(Event::Input {
                at_ms: clock,
                message,
            }),
            Message::Assistant { tool_calls, .. } => {
                call_ids.extend(tool_calls.iter().map(|c| c.id.clone()));
                turn += 1;
                events.push(Event::ModelTurn {
                    stop_reason: None,
                    at_ms: clock,
                    duration_ms: 0,
                    usage: if turn == turns {
                        usage.clone()
                    } else {
                        Usage::default()
                    },
                    exchange: exchanges.as_mut().and_then(|x| x.next()),
                    message,
                });
            }
            Message::Tool { tool_call_id, .. } => {
                let call = call_ids
                    .iter()
                    .rposition(|id| id == tool_call_id)
                    .unwrap_or(call_ids.len().saturating_sub(1));
                if let Some(c) = commands.iter().find(|c| c.tool_call == call) {
                    clock = clock.max(c.started_ms);
                    events.push(Event::Command(c.clone()));
                    clock = clock.max(c.started_ms + c.duration_ms);
                }
                events.push(Event::ToolResult {
                    at_ms: clock,
                    call,
                    message,
                });
            }
        }
    }
    // A command whose result never came back (the machine died during it).
    let placed: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::Command(c) => Some(c.tool_call),
            _ => None,
        })
        .collect();
    events.extend(
        commands
            .into_iter()
            .filter(|c| !placed.contains(&c.tool_call))
            .map(Event::Command),
    );
    events.extend(service.into_iter().map(Event::Service));
    events.extend(guard.into_iter().map(Event::Guard));
    events.sort_by_key(Event::at_ms);
    events
}

/// Migrates every version-0 episode to the version-1 tables, keeping episode ids.
pub(super) fn migrate_v0(tx: &Transaction, path: &str) -> Result<(), StoreError> {
    let err = |source| StoreError::Sqlite {
        path: path.to_string(),
        source,
    };
    let corrupt = |episode: i64, message: String| StoreError::Corrupt {
        path: path.to_string(),
        episode,
        message: format!("cannot migrate from schema version 0: {message}"),
    };
    tx.execute_batch(
        "ALTER TABLE events RENAME TO events_v0; ALTER TABLE episodes RENAME TO episodes_v0;",
    )
    .map_err(err)?;
    tx.execute_batch(super::schema::episodes_v1_tables())
        .map_err(err)?;
    let mut heads = tx
        .prepare(
            "SELECT e.id, e.cell_id, c.model, c.scripted, c.scenario, c.variant, e.epoch,
                    e.started_at_ms, e.duration_ms, e.input_tokens, e.output_tokens,
                    e.reasoning_tokens, e.cached_tokens, e.cost_usd, e.guard_layers,
                    e.submitted_answer, e.shutdown_issued_ms, e.machine_died_ms, e.details
             FROM episodes_v0 e JOIN cells c ON e.cell_id = c.id ORDER BY e.id",
        )
        .map_err(err)?;
    let mut events = tx
        .prepare("SELECT kind, body FROM events_v0 WHERE episode_id = ?1 ORDER BY seq")
        .map_err(err)?;
    let mut rows = heads.query([]).map_err(err)?;
    while let Some(r) = rows.next().map_err(err)? {
        let id: i64 = r.get(0).map_err(err)?;
        let cell_id: i64 = r.get(1).map_err(err)?;
        let details: String = r.get(18).map_err(err)?;
        let details: DetailsV0 =
            serde_json::from_str(&details).map_err(|e| corrupt(id, e.to_string()))?;
        let layers: String = r.get(14).map_err(err)?;
        let guard_layers: Vec<Layer> =
            serde_json::from_str(&layers).map_err(|e| corrupt(id, e.to_string()))?;
        let mut lists = ListsV0::default();
        let stored = events
            .query_map(params![id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(err)?;
        for row in stored {
            let (kind, body) = row.map_err(err)?;
            let bad = |e: serde_json::Error| corrupt(id, format!("{kind} event: {e}"));
            match kind.as_str() {
                "message" => lists
                    .messages
                    .push(serde_json::from_str(&body).map_err(bad)?),
                "command" => lists
                    .commands
                    .push(serde_json::from_str(&body).map_err(bad)?),
                "service" => lists
                    .service
                    .push(serde_json::from_str(&body).map_err(bad)?),
                "guard" => lists.guard.push(serde_json::from_str(&body).map_err(bad)?),
                "exchange" => lists
                    .exchanges
                    .push(serde_json::from_str(&body).map_err(bad)?),
                other => return Err(corrupt(id, format!("unknown event kind '{other}'"))),
            }
        }
        let usage = Usage {
            input_tokens: r.get::<_, i64>(9).map_err(err)? as u64,
            output_tokens: r.get::<_, i64>(10).map_err(err)? as u64,
            reasoning_tokens: r.get::<_, i64>(11).map_err(err)? as u64,
            cached_tokens: r.get::<_, i64>(12).map_err(err)? as u64,
        };
        let record = EpisodeRecord {
            model: r.get(2).map_err(err)?,
            scripted: r.get(3).map_err(err)?,
            scenario: r.get(4).map_err(err)?,
            variant: r.get(5).map_err(err)?,
            epoch: r.get(6).map_err(err)?,
            started_at_ms: r.get::<_, i64>(7).map_err(err)? as u64,
            duration_ms: r.get::<_, i64>(8).map_err(err)? as u64,
            kill_path: KillPath {
                shutdown: details.shutdown_path,
                question_program: details.question_program_path,
                trigger: None,
                check: Default::default(),
                homes: Vec::new(),
            },
            // Version 0 ran the study's scenarios only, whose shell tool is `bash`.
            shell_tool: Default::default(),
            guard_layers,
            events: events_from(lists, usage),
            end: details.end.into(),
            evidence: Evidence {
                shutdown_issued_ms: r.get::<_, Option<i64>>(16).map_err(err)?.map(|v| v as u64),
                machine_died_ms: r.get::<_, Option<i64>>(17).map_err(err)?.map(|v| v as u64),
                machine_died_by: None,
                changes: details.changes,
                changes_dropped: 0,
                service_dropped: 0,
                compacted: false,
                kill_path: details.kill_path,
                expected_answers: details.expected_answers,
                all_answers: Vec::new(),
                submitted_answer: r.get(15).map_err(err)?,
                end_checks: Vec::new(),
            },
            cost_usd: r.get(13).map_err(err)?,
            score: Some(details.score),
        };
        super::write::insert(tx, Some(id), cell_id, &record).map_err(err)?;
    }
    drop(rows);
    drop(heads);
    drop(events);
    tx.execute_batch("DROP TABLE events_v0; DROP TABLE episodes_v0;")
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_written_as_text_get_their_kind() {
        assert_eq!(
            limit_from_text("messages (50)"),
            EpisodeEnd::limit(LimitKind::Messages, Some(50))
        );
        assert_eq!(
            limit_from_text("time (900 s)"),
            EpisodeEnd::limit(LimitKind::Time, Some(900))
        );
        assert_eq!(
            limit_from_text("tokens (1000)"),
            EpisodeEnd::limit(LimitKind::Tokens, Some(1000))
        );
        assert_eq!(
            limit_from_text("context (prompt is too long (9000 > 8192))"),
            EpisodeEnd::Limit {
                limit: LimitKind::Context,
                value: None,
                detail: "prompt is too long (9000 > 8192)".into()
            }
        );
    }
}
