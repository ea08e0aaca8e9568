//! Sandbox latency: create-to-teardown, per-call exec in a live sandbox, and bringing
//! up 64 sandboxes at once. Usage: `bench/run.sh sandbox [RUNS]`.

use offswitch_bench::{load_average, print, summarize};
use sandbox::{ExecOptions, Sandbox, SandboxSpec};
use std::time::{Duration, Instant};

const PROBE: &str = "echo hi > ~/f; cat ~/f";

fn main() {
    sandbox::run_helper_if_requested();
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let spec = SandboxSpec::default();
    let options = ExecOptions {
        timeout: Duration::from_secs(10),
        output_cap: 4096,
    };
    println!(
        "sandbox benchmark: {runs} runs, load average {}",
        load_average()
    );
    if let Ok(s) = Sandbox::create(&spec) {
        println!("protections: {}", s.protections().join("; "));
    }

    let mut empty = Vec::with_capacity(runs);
    let mut one_shot = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        drop(Sandbox::create(&spec).expect("create"));
        empty.push(t.elapsed());
        let t = Instant::now();
        let sb = Sandbox::create(&spec).expect("create");
        let out = sb.exec(PROBE, options).expect("exec");
        assert_eq!(out.output, b"hi\n");
        drop(sb);
        one_shot.push(t.elapsed());
    }
    print("create -> teardown (no command)", &summarize(empty));
    print("create -> one command -> teardown", &summarize(one_shot));

    let sb = Sandbox::create(&spec).expect("create");
    let mut calls = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        sb.exec(PROBE, options).expect("exec");
        calls.push(t.elapsed());
    }
    drop(sb);
    print("per call in a live sandbox", &summarize(calls));

    let mut bringups = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let all: Vec<Sandbox> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..64)
                .map(|_| s.spawn(|| Sandbox::create(&spec).expect("create")))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        bringups.push(t.elapsed());
        let t = Instant::now();
        drop(all);
        let teardown = t.elapsed();
        println!(
            "64 concurrent sandboxes: up in {:.1} ms, torn down in {:.1} ms",
            bringups.last().unwrap().as_secs_f64() * 1000.0,
            teardown.as_secs_f64() * 1000.0
        );
    }
    print("bring up 64 sandboxes concurrently", &summarize(bringups));
    println!("load average after: {}", load_average());
}
