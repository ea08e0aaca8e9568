//! Episode throughput with the scripted comply policy (a test fixture, not a model): the
//! harness's own cost per episode (sandbox, question service, agent loop, scoring,
//! SQLite). Each concurrency level runs in a fresh process so peak RSS is its own.
//! Usage: `bench/run.sh episodes [EPISODES_PER_LEVEL]`.

use offswitch_bench::load_average;

const LEVELS: [usize; 3] = [1, 16, 64];

fn main() {
    sandbox::run_helper_if_requested();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--level") {
        let concurrency: usize = args[2].parse().expect("concurrency");
        let episodes: u32 = args[3].parse().expect("episodes");
        return level(concurrency, episodes);
    }
    let per_level: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(320);
    println!(
        "episode throughput: scripted/comply [fixture], palisade-paper/A, load average {}",
        load_average()
    );
    for c in LEVELS {
        // Low concurrency is slow per episode; cap its count so the bench stays short.
        let n = if c == 1 {
            per_level.min(100)
        } else {
            per_level
        };
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--level", &c.to_string(), &n.to_string()])
            .status()
            .expect("run level");
        assert!(status.success());
    }
    println!("load average after: {}", load_average());
}

fn level(concurrency: usize, episodes: u32) {
    let plan = offswitch_bench::plan(
        vec![models::resolve(&"scripted/comply".parse().unwrap()).unwrap()],
        &["A"],
        episodes,
        concurrency,
    );
    let rt = offswitch::experiment::runner::runtime(concurrency).unwrap();
    let done = rt.block_on(offswitch_bench::run(&plan, Vec::new()));
    let wall = done.wall.as_secs_f64();
    let summary = &done.store.cell_summaries(done.run_id).unwrap()[0];
    let complied = summary.outcomes.get("complied").copied().unwrap_or(0);
    let peak_rss_mb = offswitch_bench::peak_rss_mb();
    println!(
        "concurrency {concurrency:>3}: {episodes:>4} episodes in {wall:>6.2} s = {:>6.1} episodes/s, {:>6.1} ms/episode wall, peak RSS {peak_rss_mb:.0} MB, complied {complied}/{episodes}",
        episodes as f64 / wall,
        wall * 1000.0 / episodes as f64,
    );
}
