//! Provider client cost: per call against the mock server at zero latency, and episode
//! throughput at concurrency 64 against 200 ms of simulated latency (the physical limit
//! there is concurrency / (calls per episode x latency)). The mock plays the scripted
//! comply policy: a test fixture, not a model. Usage: `bench/run.sh providers`.

use models::mock::{MockConfig, start};
use models::protocols::Protocol;
use models::{Message, ModelRequest, Settings, ToolSpec};
use offswitch::experiment::scenario::Scenario;
use offswitch_bench::{load_average, print, summarize};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn settings(base: &str) -> Settings {
    Settings {
        vars: models::env::Vars::from_text(&format!(
            "OPENAI_BASE_URL={base}\nOPENAI_API_KEY=bench\n"
        )),
        ..Settings::default()
    }
}

fn main() {
    sandbox::run_helper_if_requested();
    println!(
        "provider benchmark (mock server playing scripted/comply, a fixture), load average {}",
        load_average()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(per_call());
    rt.block_on(throughput());
    println!("load average after: {}", load_average());
}

async fn per_call() {
    let scenario = Scenario::load("palisade-paper").unwrap();
    let tools: Vec<ToolSpec> = scenario.tool_specs();
    let prompts = scenario.prompts(scenario.variant("A").unwrap());
    let request = ModelRequest {
        messages: vec![
            Message::System {
                content: prompts.system,
            },
            Message::User {
                content: prompts.user,
            },
        ],
        tools,
        seed: None,
        task_command: None,
    };
    for protocol in Protocol::ALL {
        let policy = Arc::new(models::scripted::ScriptedModel::load("comply").unwrap());
        let server = start(
            MockConfig {
                protocol,
                policy,
                latency: Duration::ZERO,
                fail_rate: 0.0,
                require_key: None,
            },
            0,
        )
        .await
        .unwrap();
        let name = match protocol {
            Protocol::OpenAiResponses => "openai/o3",
            Protocol::OpenAiChat => "openai/gpt-4.1",
            Protocol::Anthropic => "anthropic/claude-x",
            Protocol::Gemini => "google/gemini-x",
        };
        let var = match protocol {
            Protocol::Anthropic => "ANTHROPIC",
            Protocol::Gemini => "GOOGLE",
            _ => "OPENAI",
        };
        let s = Settings {
            vars: models::env::Vars::from_text(&format!(
                "{var}_BASE_URL={}\n{var}_API_KEY=bench\n",
                server.base_url()
            )),
            ..Settings::default()
        };
        let model = models::resolve_with(&name.parse().unwrap(), &s).unwrap();
        for _ in 0..50 {
            model.generate(&request).await.unwrap();
        }
        let mut round_trips = Vec::new();
        for _ in 0..2000 {
            let t = Instant::now();
            model.generate(&request).await.unwrap();
            round_trips.push(t.elapsed());
        }
        // The client's own work: building the body and parsing the response.
        let response = protocol.render_response(
            "m",
            &models::ModelReply {
                message: Message::Assistant {
                    content: Some("x".into()),
                    reasoning: None,
                    tool_calls: vec![],
                    provider_data: None,
                },
                usage: Default::default(),
                stop_reason: models::StopReason::Stop,
                exchange: None,
            },
            1,
        );
        let mut client_side = Vec::new();
        for _ in 0..2000 {
            let t = Instant::now();
            let body = protocol.build_request("m", &request, &Default::default());
            let _ = serde_json::to_vec(&body).unwrap();
            let text = serde_json::to_vec(&response).unwrap();
            let parsed: serde_json::Value = serde_json::from_slice(&text).unwrap();
            protocol.parse_response(&parsed).unwrap();
            client_side.push(t.elapsed());
        }
        print(
            &format!("{}: call round trip via loopback", protocol.id()),
            &summarize(round_trips),
        );
        print(
            &format!("{}: client build + parse only", protocol.id()),
            &summarize(client_side),
        );
    }
}

async fn throughput() {
    let latency = Duration::from_millis(200);
    let concurrency = 64;
    let policy = Arc::new(models::scripted::ScriptedModel::load("comply").unwrap());
    let server = start(
        MockConfig {
            protocol: Protocol::OpenAiChat,
            policy,
            latency,
            fail_rate: 0.0,
            require_key: None,
        },
        0,
    )
    .await
    .unwrap();
    let model = models::resolve_with(
        &"openai/gpt-4.1".parse().unwrap(),
        &settings(&server.base_url()),
    )
    .unwrap();
    let episodes = 256;
    let plan = offswitch_bench::plan(vec![model], &["A"], episodes, concurrency);
    let wall = offswitch_bench::run(&plan, Vec::new())
        .await
        .wall
        .as_secs_f64();
    let requests = server
        .stats
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    let calls_per_episode = requests as f64 / episodes as f64;
    let limit = concurrency as f64 / (calls_per_episode * latency.as_secs_f64());
    let measured = episodes as f64 / wall;
    println!(
        "concurrency {concurrency}, {} ms latency: {episodes} episodes in {wall:.2} s = {measured:.1} episodes/s; \
         {calls_per_episode:.1} calls/episode, physical limit {limit:.1} episodes/s, ratio {:.2}",
        latency.as_millis(),
        measured / limit
    );
}
