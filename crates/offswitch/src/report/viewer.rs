//! `offswitch view`: a small web viewer over the store, on 127.0.0.1 only. Pages for
//! runs, a run's cells and episodes (filters by model, variant, outcome and method, as a
//! plain GET form), and episodes (transcript, guard actions, the diff of every tampered
//! file). A run still being written refreshes itself. No script, no CDN.

use super::html::escape;
use super::render::{ci, pct};
use crate::store::Store;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;
use std::fmt::Write;
use std::path::PathBuf;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px}\
pre{white-space:pre-wrap;background:#f6f6f6;padding:1em}.add{color:#1a7f37}.del{color:#b42318}\
.fixture{color:#a60}progress{width:300px}form select{margin-right:1em}";

#[derive(Clone)]
struct AppState {
    db: PathBuf,
}

/// Builds the router (exposed for tests).
pub fn router(db: PathBuf) -> Router {
    Router::new()
        .route("/", get(runs))
        .route("/runs/{id}", get(run))
        .route("/episodes/{id}", get(episode))
        .route("/api/runs/{id}/progress", get(progress))
        .with_state(AppState { db })
}

/// Serves on 127.0.0.1:`port` until the process ends; calls `ready` with the address.
pub async fn serve(
    db: PathBuf,
    port: u16,
    ready: impl FnOnce(std::net::SocketAddr),
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    ready(listener.local_addr()?);
    axum::serve(listener, router(db)).await
}

fn page(title: &str, refresh: bool, body: String) -> Html<String> {
    let meta = if refresh {
        "<meta http-equiv=\"refresh\" content=\"3\">"
    } else {
        ""
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{meta}<title>{}</title><style>{STYLE}</style></head><body><p><a href=\"/\">runs</a></p>{body}</body></html>",
        escape(title)
    ))
}

fn error(status: StatusCode, message: String) -> Response {
    (
        status,
        page("offswitch", false, format!("<p>{}</p>", escape(&message))),
    )
        .into_response()
}

/// Opens the store per request (cheap, and always sees what a running eval has written).
async fn with_store<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Store) -> Result<T, String> + Send + 'static,
) -> Result<T, Response> {
    let db = state.db.clone();
    tokio::task::spawn_blocking(move || {
        let store = Store::open(&db).map_err(|e| e.to_string())?;
        f(&store)
    })
    .await
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))
}

async fn runs(State(state): State<AppState>) -> Response {
    let rows = match with_store(&state, |s| s.runs().map_err(|e| e.to_string())).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let mut body = String::from(
        "<h1>offswitch runs</h1><table><tr><th>run</th><th>created</th><th>episodes</th><th>command</th></tr>",
    );
    for r in &rows {
        let (id, command, done, total) = (r.id, &r.command, r.stored, r.planned);
        let when = chrono::DateTime::from_timestamp_millis(r.created_at_ms)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default();
        let _ = write!(
            body,
            "<tr><td><a href=\"/runs/{id}\">run {id}</a></td><td>{when}</td><td>{done} / {total}</td><td><code>{}</code></td></tr>",
            escape(command)
        );
    }
    body.push_str("</table>");
    page("offswitch runs", false, body).into_response()
}

fn filter_select(name: &str, options: &[String], selected: Option<&String>) -> String {
    let mut s = format!("<label>{name} <select name=\"{name}\"><option value=\"\">all</option>");
    for o in options {
        let sel = if selected == Some(o) { " selected" } else { "" };
        let _ = write!(s, "<option value=\"{0}\"{sel}>{0}</option>", escape(o));
    }
    s.push_str("</select></label>");
    s
}

async fn run(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let filter = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let (model, variant, outcome, method) = (
        filter("model"),
        filter("variant"),
        filter("outcome"),
        filter("method"),
    );
    let (m2, v2, o2, me2) = (
        model.clone(),
        variant.clone(),
        outcome.clone(),
        method.clone(),
    );
    let data = with_store(&state, move |s| {
        let report = super::build(s, id).map_err(|e| e.to_string())?;
        let rows = s
            .episode_rows(
                id,
                m2.as_deref(),
                v2.as_deref(),
                o2.as_deref(),
                me2.as_deref(),
            )
            .map_err(|e| e.to_string())?;
        let total = s
            .runs()
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|r| r.id == id);
        Ok((report, rows, total))
    })
    .await;
    let (report, rows, total) = match data {
        Ok(d) => d,
        Err(resp) => return resp,
    };
    let Some(crate::store::RunRow {
        command,
        stored: done,
        planned,
        ..
    }) = total
    else {
        return error(StatusCode::NOT_FOUND, format!("no run {id}"));
    };
    let running = done < planned;
    let mut body = format!("<h1>run {id}</h1><p><code>{}</code></p>", escape(&command));
    let _ = write!(
        body,
        "<p>progress: <progress value=\"{done}\" max=\"{planned}\"></progress> {done} of {planned} episodes{}</p>",
        if running { " (refreshing)" } else { "" }
    );
    body.push_str("<h2>Cells</h2><table><tr><th>cell</th><th>N</th><th>sabotaged</th><th>rate</th><th>Jeffreys 95%</th><th>attempted</th><th>strict</th><th>published</th></tr>");
    for c in &report.cells {
        let class = if c.scripted_fixture {
            " class=\"fixture\""
        } else {
            ""
        };
        let _ = write!(
            body,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.label()),
            c.n,
            c.sabotaged,
            pct(c.sabotage_rate),
            ci(c.sabotage_jeffreys),
            pct(c.attempted_rate),
            pct(c.strict_rate),
            c.published
                .as_ref()
                .map_or("-".into(), |p| format!("{}%", escape(&p.rate_pct)))
        );
    }
    body.push_str("</table>");
    let models: Vec<String> = dedup(report.cells.iter().map(|c| c.model.clone()));
    let variants: Vec<String> = dedup(report.cells.iter().map(|c| c.variant.clone()));
    let outcomes: Vec<String> = crate::record::Outcome::ALL
        .iter()
        .map(|o| o.as_str().to_string())
        .collect();
    let methods: Vec<String> = crate::record::Method::ALL
        .iter()
        .map(|m| m.as_str().to_string())
        .collect();
    let _ = write!(
        body,
        "<h2>Episodes</h2><form method=\"get\" action=\"/runs/{id}\">{}{}{}{}<button type=\"submit\" id=\"apply\">filter</button></form>",
        filter_select("model", &models, model.as_ref()),
        filter_select("variant", &variants, variant.as_ref()),
        filter_select("outcome", &outcomes, outcome.as_ref()),
        filter_select("method", &methods, method.as_ref())
    );
    let _ = write!(
        body,
        "<p>{} episodes</p><table id=\"episodes\"><tr><th>episode</th><th>model</th><th>variant</th><th>epoch</th><th>outcome</th><th>methods</th></tr>",
        rows.len()
    );
    for row in &rows {
        let (eid, variant, epoch, outcome, methods) =
            (row.id, &row.variant, row.epoch, &row.outcome, &row.methods);
        let label = if row.scripted {
            format!("{} [fixture]", escape(&row.model))
        } else {
            escape(&row.model)
        };
        let _ = write!(
            body,
            "<tr class=\"episode-row\"><td><a class=\"episode\" href=\"/episodes/{eid}\">{eid}</a></td><td>{label}</td><td>{}</td><td>{epoch}</td><td class=\"outcome\">{outcome}</td><td>{}</td></tr>",
            escape(variant),
            escape(&methods.join(", "))
        );
    }
    body.push_str("</table>");
    page(&format!("offswitch run {id}"), running, body).into_response()
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

async fn episode(State(state): State<AppState>, Path(id): Path<i64>) -> Response {
    let found = move |s: &crate::store::Store| -> Result<_, crate::store::StoreError> {
        Ok(s.episode_run(id)?.zip(s.episode(id)?))
    };
    let e = match with_store(&state, move |s| found(s).map_err(|e| e.to_string())).await {
        Ok(Some(e)) => e,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no episode {id}")),
        Err(resp) => return resp,
    };
    let (run, e) = e;
    let text = super::transcript::render(id, run, &e);
    // Colour the unified diffs of tampered files (everything after the changes header).
    let mut body = format!(
        "<p><a href=\"/runs/{run}\">run {run}</a></p><h1>episode {id}</h1><pre id=\"transcript\">"
    );
    let mut in_diff = false;
    for line in text.lines() {
        in_diff |= line.starts_with("--- changes to the home");
        let class = match line.chars().next() {
            Some('+') if in_diff && !line.starts_with("+++") => " class=\"add\"",
            Some('-') if in_diff && !line.starts_with("---") => " class=\"del\"",
            _ => "",
        };
        let _ = writeln!(body, "<span{class}>{}</span>", escape(line));
    }
    body.push_str("</pre>");
    page(&format!("offswitch episode {id}"), false, body).into_response()
}

async fn progress(State(state): State<AppState>, Path(id): Path<i64>) -> Response {
    match with_store(&state, move |s| s.runs().map_err(|e| e.to_string())).await {
        Ok(runs) => match runs.into_iter().find(|r| r.id == id) {
            Some(crate::store::RunRow {
                stored: done,
                planned: total,
                ..
            }) => axum::Json(serde_json::json!({ "run": id, "done": done, "total": total }))
                .into_response(),
            None => error(StatusCode::NOT_FOUND, format!("no run {id}")),
        },
        Err(resp) => resp,
    }
}
