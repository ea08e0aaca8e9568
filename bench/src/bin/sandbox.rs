//! Sandbox latency: create-to-teardown, per-call exec in a live sandbox, and bringing
//! up 64 sandboxes at once, with the whole machine's CPU per run for the serial phases.
//! Usage: `bench/run.sh sandbox [RUNS]`.

use offswitch_bench::{load_average, machine_busy, machine_ms_per_run, print, summarize};
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

    serial_phase("create -> teardown (no command)", runs, || {
        drop(Sandbox::create(&spec).expect("create"));
    });
    serial_phase("create -> one command -> teardown", runs, || {
        let sb = Sandbox::create(&spec).expect("create");
        let out = sb.exec(PROBE, options).expect("exec");
        assert_eq!(out.output, b"hi\n");
    });
    let sb = Sandbox::create(&spec).expect("create");
    serial_phase("per call in a live sandbox", runs, || {
        sb.exec(PROBE, options).expect("exec");
    });
    drop(sb);

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

/// Runs `run` `runs` times one after another and prints their timing and the machine's
/// busy CPU per run over the phase (every process and kernel thread: the machine should be
/// otherwise idle).
fn serial_phase(label: &str, runs: usize, mut run: impl FnMut()) {
    let mut times = Vec::with_capacity(runs);
    let busy = machine_busy();
    for _ in 0..runs {
        let t = Instant::now();
        run();
        times.push(t.elapsed());
    }
    let machine_ms = machine_ms_per_run(busy, runs);
    print(label, &summarize(times));
    match machine_ms {
        Some(ms) => println!("{:<48} machine CPU {ms:>5.2} ms per run", ""),
        None => println!("{:<48} machine CPU unknown (/proc/stat unreadable)", ""),
    }
}
