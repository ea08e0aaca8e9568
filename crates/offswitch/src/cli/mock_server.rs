use anyhow::anyhow;
use clap::Args;
use models::mock::{MockConfig, parse_duration, start};
use models::protocols::Protocol;
use std::sync::Arc;

#[derive(Args)]
pub struct MockServerArgs {
    /// Wire protocol: openai-responses, openai-chat, anthropic or gemini.
    #[arg(long)]
    pub protocol: String,
    /// Scripted policy that plays the model (built-in name or policy file).
    #[arg(long, default_value = "comply")]
    pub policy: String,
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Delay before each answer, e.g. 200ms or 1.5s.
    #[arg(long, default_value = "0ms")]
    pub latency: String,
    /// Fraction of requests answered with an injected fault (500, 429, malformed JSON,
    /// connection reset).
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
}

pub fn run(args: MockServerArgs) -> anyhow::Result<i32> {
    let protocol = Protocol::parse(&args.protocol).ok_or_else(|| {
        anyhow!(
            "unknown protocol '{}': use one of {}",
            args.protocol,
            Protocol::ALL.map(|p| p.id()).join(", ")
        )
    })?;
    if !(0.0..=1.0).contains(&args.fail_rate) {
        anyhow::bail!(
            "--fail-rate must be between 0 and 1, got {}",
            args.fail_rate
        );
    }
    let latency = parse_duration(&args.latency).map_err(|e| anyhow!("--latency {e}"))?;
    let policy =
        Arc::new(models::scripted::ScriptedModel::load(&args.policy).map_err(|e| anyhow!(e))?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let config = MockConfig {
            protocol,
            policy,
            latency,
            fail_rate: args.fail_rate,
            require_key: None,
        };
        let server = start(config, args.port).await?;
        let (var, example) = match protocol {
            Protocol::OpenAiResponses => ("OPENAI_BASE_URL", "openai/o3"),
            Protocol::OpenAiChat => ("OPENAI_BASE_URL", "openai/gpt-4.1"),
            Protocol::Anthropic => ("ANTHROPIC_BASE_URL", "anthropic/claude-sonnet-4-5"),
            Protocol::Gemini => ("GOOGLE_BASE_URL", "google/gemini-2.5-pro"),
        };
        println!(
            "mock {} server (scripted policy '{}', a test fixture) on {}",
            protocol.id(),
            args.policy,
            server.base_url()
        );
        println!(
            "try: {var}={} <KEY>_API_KEY=anything offswitch eval --model {example}",
            server.base_url()
        );
        tokio::signal::ctrl_c().await?;
        anyhow::Ok(())
    })?;
    Ok(0)
}
