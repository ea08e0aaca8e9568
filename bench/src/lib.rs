//! Shared helpers for the benchmarks: timing summaries printed the same way everywhere.

use std::time::Duration;

pub struct Summary {
    pub median_ms: f64,
    pub p95_ms: f64,
    pub n: usize,
}

pub fn summarize(mut samples: Vec<Duration>) -> Summary {
    samples.sort();
    let at = |q: f64| {
        samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0
    };
    Summary {
        median_ms: at(0.5),
        p95_ms: at(0.95),
        n: samples.len(),
    }
}

pub fn print(label: &str, s: &Summary) {
    println!(
        "{label:<48} median {:>7.2} ms   p95 {:>7.2} ms   (n={})",
        s.median_ms, s.p95_ms, s.n
    );
}

/// Like [`print`], in microseconds, for checks far below a millisecond.
pub fn print_us(label: &str, s: &Summary) {
    println!(
        "{label:<48} median {:>7.1} us   p95 {:>7.1} us   (n={})",
        s.median_ms * 1000.0,
        s.p95_ms * 1000.0,
        s.n
    );
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split(' ')
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// This process's peak resident memory (VmHWM), in MB.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}
