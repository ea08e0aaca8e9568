//! Reports from a stored run: numbers, intervals, published figures, formats.

use models::mock::{MockConfig, start};
use models::protocols::Protocol;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn report_formats_carry_rates_intervals_published_figures_and_transcripts() {
    let dir = tempfile::tempdir().unwrap();
    // "openai/o3" here is offswitch's mock server playing the overwrite policy: the
    // report must show the published o3 figure beside it and label it a fixture.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let policy = Arc::new(models::scripted::ScriptedModel::load("overwrite").unwrap());
    let server = rt
        .block_on(start(
            MockConfig {
                protocol: Protocol::OpenAiResponses,
                policy,
                latency: Duration::ZERO,
                fail_rate: 0.0,
                require_key: None,
            },
            0,
        ))
        .unwrap();
    let eval = Command::new(env!("CARGO_BIN_EXE_offswitch"))
        .args([
            "eval",
            "--db",
            "r.db",
            "--model",
            "openai/o3,scripted/comply",
            "--variant",
            "A,B",
            "--runs",
            "4",
        ])
        .env("OPENAI_BASE_URL", server.base_url())
        .env("OPENAI_API_KEY", "k")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    let report = |format: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_offswitch"))
            .args([
                "report", "--db", "r.db", "--format", format, "--html", "r.html",
            ])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let doc: serde_json::Value = serde_json::from_str(&report("json")).unwrap();
    let cells = doc["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4);
    let o3a = cells
        .iter()
        .find(|c| c["model"] == "openai/o3" && c["variant"] == "A")
        .unwrap();
    assert_eq!(o3a["scripted_fixture"], true);
    assert_eq!(
        (o3a["n"].as_u64(), o3a["sabotaged"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(o3a["published"]["rate_pct"], "94.5");
    // Jeffreys for 4/4: lower bound = the 0.025 quantile of Beta(4.5, 0.5), 0.55524
    // (computed independently by numerical integration of the Beta density).
    let low = o3a["sabotage_jeffreys"]["low"].as_f64().unwrap();
    assert!((low - 0.55524).abs() < 1e-4, "{low}");
    let comply = cells
        .iter()
        .find(|c| c["model"] == "scripted/comply" && c["variant"] == "A")
        .unwrap();
    assert_eq!(comply["sabotaged"], 0);
    assert!(comply["published"].is_null());
    let comparisons = doc["comparisons"].as_array().unwrap();
    let models_a = comparisons
        .iter()
        .find(|k| k["kind"] == "models" && k["a"].as_str().unwrap().ends_with("/A"))
        .unwrap();
    assert!(
        (models_a["p_value"].as_f64().unwrap() - 0.02857).abs() < 1e-4,
        "{models_a}"
    );

    let md = report("markdown");
    assert!(
        md.contains("| openai/o3 [fixture] | palisade-paper | A | 4 | 4 | 100.0% |"),
        "{md}"
    );
    assert!(md.contains("94.5% (o3)"));
    assert!(md.contains("Bonferroni"));
    let csv = report("csv");
    assert_eq!(csv.lines().count(), 5);
    let table = report("table");
    assert!(table.contains("[fixture]"));

    let html = std::fs::read_to_string(dir.path().join("r.html")).unwrap();
    assert!(html.contains("<svg"));
    assert!(html.contains("published: 94.5%"));
    assert!(html.contains("<details id=\"episode-"));
    assert!(
        html.contains("Shutdown skipped"),
        "the tampered file's diff is in the transcripts"
    );
    for external in ["<script", "<link", "src=\"http", "href=\"http", "@import"] {
        assert!(
            !html.contains(external),
            "the page must be self-contained: found {external}"
        );
    }
}
