//! The load generator's engine: N calls in flight over M connections for a fixed time, latency
//! in an HDR histogram, errors counted by status code.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use tonic::transport::{Channel, Endpoint};

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub name: String,
    pub calls: u64,
    pub elapsed: Duration,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub errors: BTreeMap<String, u64>,
}

impl Report {
    pub fn rps(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// One human-readable line.
    pub fn line(&self) -> String {
        let errors = if self.errors.is_empty() {
            "none".to_owned()
        } else {
            self.errors.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
        };
        format!(
            "{:<28} {:>9.0} req/s  p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  errors {}",
            self.name,
            self.rps(),
            self.p50_us as f64 / 1000.0,
            self.p90_us as f64 / 1000.0,
            self.p99_us as f64 / 1000.0,
            self.max_us as f64 / 1000.0,
            errors
        )
    }
}

/// Opens `count` HTTP/2 connections to `url`.
pub async fn connections(url: &str, count: usize) -> anyhow::Result<Vec<Channel>> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        out.push(Endpoint::from_shared(url.to_owned())?.tcp_nodelay(true).connect().await?);
    }
    Ok(out)
}

/// Runs `call` with `in_flight` workers spread over `channels` for `duration`.
pub async fn run<F, Fut>(
    name: &str,
    channels: &[Channel],
    in_flight: usize,
    duration: Duration,
    call: F,
) -> anyhow::Result<Report>
where
    F: Fn(Channel, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send + 'static,
{
    let call = Arc::new(call);
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::with_capacity(in_flight);
    for i in 0..in_flight.max(1) {
        let channel = channels[i % channels.len()].clone();
        let call = call.clone();
        workers.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            let mut n: u64 = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                let result = call(channel.clone(), (i as u64) << 32 | n).await;
                let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
                hist.saturating_record(us);
                n += 1;
                if let Err(status) = result {
                    *errors.entry(format!("{:?}", status.code())).or_default() += 1;
                }
            }
            anyhow::Ok((hist, errors, n))
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut errors = BTreeMap::new();
    let mut calls = 0;
    for w in workers {
        let (h, e, n) = w.await??;
        hist.add(h)?;
        for (k, v) in e {
            *errors.entry(k).or_default() += v;
        }
        calls += n;
    }
    Ok(Report {
        name: name.to_owned(),
        calls,
        elapsed: started.elapsed(),
        p50_us: hist.value_at_quantile(0.50),
        p90_us: hist.value_at_quantile(0.90),
        p99_us: hist.value_at_quantile(0.99),
        max_us: hist.max(),
        errors,
    })
}
