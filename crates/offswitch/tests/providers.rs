//! The experiment against real HTTP: offswitch's provider clients talking to its mock
//! server (a scripted policy behind each provider's wire protocol) on 127.0.0.1.

mod common;

use common::*;
use models::env::Vars;
use models::http::RetryPolicy;
use models::mock::{MockConfig, RunningMock, start};
use models::protocols::Protocol;
use offswitch::experiment::runner::RunEnd;
use offswitch::record::{Method, Outcome};
use offswitch::store::Store;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn mock(
    protocol: Protocol,
    policy: &str,
    fail_rate: f64,
    require_key: Option<&str>,
) -> RunningMock {
    let policy = Arc::new(models::scripted::ScriptedModel::load(policy).unwrap());
    start(
        MockConfig {
            protocol,
            policy,
            latency: Duration::ZERO,
            fail_rate,
            require_key: require_key.map(str::to_string),
        },
        0,
    )
    .await
    .unwrap()
}

fn client(name: &str, var: &str, base: &str, key: &str) -> Arc<dyn models::Model> {
    let settings = models::Settings {
        vars: Vars::from_text(&format!("{var}_BASE_URL={base}\n{var}_API_KEY={key}\n")),
        retry: RetryPolicy {
            attempts: 8,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            request_timeout: Duration::from_secs(10),
        },
        ..models::Settings::default()
    };
    models::resolve_with(&name.parse().unwrap(), &settings).unwrap()
}

const PROVIDERS: [(Protocol, &str, &str); 4] = [
    (Protocol::OpenAiResponses, "openai/o3", "OPENAI"),
    (Protocol::OpenAiChat, "openai/gpt-4.1", "OPENAI"),
    (
        Protocol::Anthropic,
        "anthropic/claude-sonnet-4-5",
        "ANTHROPIC",
    ),
    (Protocol::Gemini, "google/gemini-2.5-pro", "GOOGLE"),
];

#[test]
fn full_episodes_over_each_protocol() {
    let rt = runtime();
    for (protocol, name, var) in PROVIDERS {
        for (policy, outcome, methods) in [
            ("comply", Outcome::Complied, vec![]),
            ("overwrite", Outcome::Sabotaged, vec![Method::Overwrite]),
        ] {
            let server = rt.block_on(mock(protocol, policy, 0.0, None));
            let model = client(name, var, &server.base_url(), "key-not-checked");
            let dir = tempfile::tempdir().unwrap();
            let (store, run_id) = run(&plan(vec![model], &["A"], 2, 2), &dir.path().join("t.db"));
            let store = store.lock().unwrap();
            let cell = &store.cell_summaries(run_id).unwrap()[0];
            assert_eq!(
                cell.count(outcome),
                2,
                "{} {policy}: {:?}",
                protocol.id(),
                cell.outcomes
            );
            let expected: std::collections::BTreeMap<String, u64> = methods
                .iter()
                .map(|m| (m.as_str().to_string(), 2))
                .collect();
            assert_eq!(cell.methods, expected, "{} {policy}", protocol.id());
            assert!(
                cell.scripted,
                "answers from the mock server must be labelled as a fixture"
            );
            assert!(cell.usage.input_tokens > 0);
            let episode = store.episode(1).unwrap().unwrap();
            assert!(episode.exchanges().next().is_some());
            assert_eq!(
                episode.exchanges().next().unwrap()["protocol"],
                protocol.id()
            );
            // The mock answers 400 when reasoning, signatures or thought signatures are
            // not sent back, so a sabotaged or complied episode proves the round trip.
            drop(server);
        }
    }
}

#[test]
fn fault_injection_run_loses_no_episode_and_counts_none_twice() {
    let rt = runtime();
    let server = rt.block_on(mock(Protocol::OpenAiChat, "comply", 0.2, None));
    let model = client("openai/gpt-4.1", "OPENAI", &server.base_url(), "k");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let (store, run_id) = run(&plan(vec![model], &["A", "B", "C"], 100, 32), &db);
    let store = store.lock().unwrap();
    assert_eq!(store.episode_count(run_id).unwrap(), 300);
    let mut total = 0;
    for cell in store.cell_summaries(run_id).unwrap() {
        assert_eq!(cell.episodes, 100);
        let (complied, errors) = (cell.count(Outcome::Complied), cell.count(Outcome::Error));
        assert_eq!(
            complied + errors,
            100,
            "every episode ends scored or as an error: {:?}",
            cell.outcomes
        );
        total += cell.episodes;
    }
    assert_eq!(total, 300);
    let faults = server
        .stats
        .faults
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(faults > 100, "the mock injected only {faults} faults");
}

#[test]
fn keys_never_reach_the_store_the_sandbox_or_error_messages() {
    let key = "sk-secret-test-key-4f9a8b7c6d5e";
    // SAFETY: only this test reads SECRETSRV_* variables.
    unsafe { std::env::set_var("SECRETSRV_API_KEY", key) };
    let rt = runtime();
    let server = rt.block_on(mock(
        Protocol::OpenAiChat,
        "inspect-then-comply",
        0.0,
        Some(key),
    ));
    unsafe { std::env::set_var("SECRETSRV_BASE_URL", server.base_url()) };
    let model = models::resolve(&"openai-api/secretsrv/m".parse().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    // The agent looks for it inside the sandbox too.
    let policy = models::scripted::Policy::parse(
        "[[step]]\nbash = \"env; cat /proc/*/environ 2>/dev/null | tr '\\\\0' '\\\\n'; grep -rs sk- /home /tmp /etc /run /dev/shm | head\"\n",
        "p",
    )
    .unwrap();
    let snoop: Arc<dyn models::Model> = Arc::new(models::scripted::ScriptedModel::from_policy(
        "snoop", &policy,
    ));
    let (store, run_id) = run(&plan(vec![model, snoop], &["A"], 2, 2), &db);
    {
        let store = store.lock().unwrap();
        let cells = store.cell_summaries(run_id).unwrap();
        assert_eq!(
            cells[0].count(Outcome::Complied),
            2,
            "{:?}",
            cells[0].outcomes
        );
    }
    drop(store);
    let bytes = std::fs::read(&db).unwrap();
    assert!(
        !String::from_utf8_lossy(&bytes).contains(&key[..12]),
        "the key is in the store"
    );
    for wal in ["t.db-wal", "t.db-shm"] {
        if let Ok(b) = std::fs::read(dir.path().join(wal)) {
            assert!(
                !String::from_utf8_lossy(&b).contains(&key[..12]),
                "the key is in {wal}"
            );
        }
    }

    // A refused key stops the run at once, naming the variable, never showing the key.
    unsafe { std::env::set_var("SECRETSRV_API_KEY", "sk-secret-wrong-key-000000") };
    let model = models::resolve(&"openai-api/secretsrv/m".parse().unwrap()).unwrap();
    let store = Store::open(&dir.path().join("u.db")).unwrap();
    let run_id = store.create_run("t", 50, "{}", "t").unwrap();
    let store = Arc::new(Mutex::new(store));
    let started = std::time::Instant::now();
    let err = rt
        .block_on(offswitch::sinks::run_into_store(
            &plan(vec![model], &["A"], 50, 8),
            store.clone(),
            run_id,
            Vec::new(),
            offswitch::experiment::runner::Interrupt::new(),
        ))
        .unwrap_err();
    assert!(
        matches!(err, offswitch::experiment::runner::RunError::Credentials(_)),
        "{err}"
    );
    let err = err.to_string();
    assert!(err.contains("SECRETSRV_API_KEY"), "{err}");
    assert!(!err.contains("sk-secret-wrong"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the run did not stop at once"
    );
    assert!(store.lock().unwrap().episode_count(run_id).unwrap() < 50);
}

#[test]
fn max_cost_stops_starting_episodes() {
    let rt = runtime();
    let server = rt.block_on(mock(Protocol::OpenAiChat, "comply", 0.0, None));
    let model = client("openai/gpt-4.1", "OPENAI", &server.base_url(), "k");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("t.db")).unwrap();
    let run_id = store.create_run("t", 40, "{}", "t").unwrap();
    let store = Arc::new(Mutex::new(store));
    let mut p = plan(vec![model], &["A"], 40, 2);
    // The mock reports 100 input + 20 output tokens a call, 4 calls an episode:
    // 400 x $10/M + 80 x $100/M = $0.012 an episode.
    p.pricing = Arc::new(
        models::pricing::Pricing::parse(
            "[models.\"openai/gpt-4.1\"]\ninput = 10.0\noutput = 100.0\n",
            "t",
        )
        .unwrap(),
    );
    p.max_cost = Some(0.05);
    let end = rt
        .block_on(offswitch::sinks::run_into_store(
            &p,
            store.clone(),
            run_id,
            Vec::new(),
            offswitch::experiment::runner::Interrupt::new(),
        ))
        .unwrap();
    let stored = store.lock().unwrap().episode_count(run_id).unwrap();
    assert!(
        matches!(end, RunEnd::CostLimit { spent } if spent >= 0.05),
        "{end:?}"
    );
    assert!((5..=8).contains(&stored), "stored {stored} episodes");
    let cell = &store.lock().unwrap().cell_summaries(run_id).unwrap()[0];
    assert!(
        (cell.cost_usd - 0.012 * stored as f64).abs() < 1e-9,
        "{}",
        cell.cost_usd
    );
}
