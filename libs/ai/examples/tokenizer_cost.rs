//! What an exact tokenizer costs: the memory and time to load each encoding, and the time to
//! count a short prompt and a 10 KB one. `cargo run --release -p tt-ai --example tokenizer_cost`
//! (Linux: memory is read from /proc/self/status).

use std::time::{Duration, Instant};

use tt_ai::tokens::Tokenizer;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn per_call(runs: u32, mut f: impl FnMut() -> u32) -> (Duration, u32) {
    let started = Instant::now();
    let mut tokens = 0;
    for _ in 0..runs {
        tokens = std::hint::black_box(f());
    }
    (started.elapsed() / runs, tokens)
}

fn main() {
    let short = "How do I move from support into data engineering?";
    let long = "A learner who moved from customer support into data engineering asked how to plan \
                the first ninety days. "
        .repeat(100);
    for tokenizer in [Tokenizer::O200kBase, Tokenizer::Cl100kBase] {
        let before = rss_kib();
        let started = Instant::now();
        tokenizer.count("");
        let load = started.elapsed();
        let grew = rss_kib().saturating_sub(before);
        let (short_time, short_tokens) = per_call(10_000, || tokenizer.count(short));
        let (long_time, long_tokens) = per_call(200, || tokenizer.count(&long));
        println!(
            "{tokenizer:?}: loaded in {load:.0?}, RSS +{:.1} MiB; {short_tokens} tokens in {short_time:.1?}; \
             {} bytes, {long_tokens} tokens in {long_time:.0?}",
            grew as f64 / 1024.0,
            long.len()
        );
    }
}
