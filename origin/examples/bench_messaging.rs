//! Sends messages through the worker and the mock provider, end to end, and prints messages per second and
//! the number of sends in flight. Run by `scripts/bench-messaging`, which gives it a fresh database:
//!
//! ```text
//! DATABASE_URL=postgres://.../popup_bench_messaging cargo run --release -p popup-origin --example bench_messaging
//! ```
//!
//! Environment: `BENCH_MESSAGES` [100000], `BENCH_CONCURRENCY` [256], `BENCH_LATENCY_MS` [50-200],
//! `BENCH_FAILURE_RATE` [0].
//!
//! The clock runs from the worker's start to the campaign being `sent` in Postgres: every message claimed,
//! sent, and its outcome written.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use popup_origin::db::audit::Actor;
use popup_origin::db::messages::{queue, Recipients};
use popup_origin::messaging::provider::{MockOptions, MockProvider};
use popup_origin::messaging::worker::{self, WorkerMetrics, WorkerOptions};
use sqlx::postgres::PgPoolOptions;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(raw) => raw.parse().map_err(|_| anyhow::anyhow!("{name}={raw:?} is not valid")),
        Err(_) => Ok(default),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let database_url = std::env::var("DATABASE_URL").context("DATABASE_URL")?;
    let messages: i64 = env_or("BENCH_MESSAGES", 100_000)?;
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 256)?;
    let latency: String = env_or("BENCH_LATENCY_MS", "50-200".to_string())?;
    let failure_rate: f64 = env_or("BENCH_FAILURE_RATE", 0.0)?;
    let (min, max) = latency.split_once('-').context("BENCH_LATENCY_MS is min-max")?;
    let (min, max): (u64, u64) = (min.parse()?, max.parse()?);

    let db = PgPoolOptions::new().max_connections(8).connect(&database_url).await?;
    popup_origin::MIGRATOR.run(&db).await?;

    let started = Instant::now();
    sqlx::query(
        "INSERT INTO customers (phone, first_name, preferred_product)
         SELECT '+62813' || lpad(g::text, 8, '0'), 'Nasabah' || g, 'Tabungan Emas' FROM generate_series(1, $1) g
         ON CONFLICT (phone) DO NOTHING",
    )
    .bind(messages)
    .execute(&db)
    .await?;
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM customers WHERE phone LIKE '+62813%' ORDER BY id LIMIT $1")
            .bind(messages)
            .fetch_all(&db)
            .await?;
    let campaign: i64 = sqlx::query_scalar(
        "INSERT INTO message_campaigns (name, channel, base_template)
         VALUES ('bench', 'sms', 'Halo {first_name}, {preferred_product} menunggu Anda. Balas STOP untuk berhenti.')
         RETURNING id",
    )
    .fetch_one(&db)
    .await?;
    println!("customers ready: {} in {:.1} s", ids.len(), started.elapsed().as_secs_f64());

    let queued_at = Instant::now();
    let queued = queue(&db, &Actor::system(), campaign, &Recipients::Customers(ids)).await?;
    println!(
        "send (render + store {} messages in one transaction): {:.2} s",
        queued.messages_queued,
        queued_at.elapsed().as_secs_f64()
    );

    let provider = Arc::new(MockProvider::new(MockOptions {
        latency_min: Duration::from_millis(min),
        latency_max: Duration::from_millis(max),
        failure_rate,
        fail_attempts_up_to: 0,
        lose_first_answer: false,
    }));
    let metrics = Arc::new(WorkerMetrics::default());
    let options = WorkerOptions {
        concurrency,
        backoff_base: Duration::from_millis(200),
        poll_interval: Duration::from_millis(50),
        ..WorkerOptions::default()
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let running = tokio::spawn(worker::run(db.clone(), provider.clone(), options, metrics.clone(), stopped));

    // Samples of the sends in flight every 10 ms, while messages are left.
    let mut samples: Vec<usize> = Vec::new();
    let mut last_check = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        samples.push(metrics.in_flight.load(Ordering::Relaxed));
        if last_check.elapsed() >= Duration::from_millis(100) {
            last_check = Instant::now();
            let status: String = sqlx::query_scalar("SELECT status FROM message_campaigns WHERE id = $1")
                .bind(campaign)
                .fetch_one(&db)
                .await?;
            if status != "sending" {
                break;
            }
        }
        if start.elapsed() > Duration::from_secs(900) {
            anyhow::bail!("not done after 15 minutes");
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let _ = stop.send(true);
    running.await??;

    let (sent, failed): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status = 'failed')
         FROM messages WHERE campaign_id = $1",
    )
    .bind(campaign)
    .fetch_one(&db)
    .await?;
    let deliveries = provider.deliveries();
    let distinct: std::collections::HashSet<i64> = deliveries.iter().map(|d| d.message_id).collect();
    // Average over the time messages were being sent: the last sample or two fall after the end.
    let busy: Vec<usize> = samples.iter().copied().filter(|n| *n > 0).collect();
    let average = busy.iter().sum::<usize>() as f64 / busy.len().max(1) as f64;
    let peak = samples.iter().copied().max().unwrap_or(0);
    println!(
        "messages: {messages}, sent {sent}, failed {failed}, provider deliveries {} (distinct messages {})",
        deliveries.len(),
        distinct.len()
    );
    println!("mock latency {min}-{max} ms, failure rate {failure_rate}, concurrency {concurrency}");
    println!("elapsed (worker start to campaign sent in Postgres): {elapsed:.2} s");
    println!("throughput: {:.0} messages/s", (sent + failed) as f64 / elapsed);
    println!("in flight: peak {peak}, average {average:.0} (samples every 10 ms while sending)");
    println!("retries: {}", metrics.retried.load(Ordering::Relaxed));
    if deliveries.len() != distinct.len() || sent as usize != distinct.len() {
        anyhow::bail!("deliveries do not match: a message was lost or sent twice");
    }
    Ok(())
}
