//! Pushes events onto the Redis stream, then moves them into Postgres with the ingest workers, and prints
//! events/s from the stream to Postgres (the ingest rate: from the workers' start to the last event
//! committed), and for the appends and the whole run. Run by `scripts/bench-events`, which gives it a database of its own; see that script for settings.

use std::time::{Duration, Instant};

use clap::Parser;
use popup_core::ids::{CampaignId, Timestamp, UserId};
use popup_core::store::EventKind;
use popup_core::stream::Record;
use popup_origin::config::ExposeSecret;
use popup_origin::ingest::{IngestSettings, Ingester};
use popup_origin::redis_store::to_cmd;
use popup_origin::{AppState, Config};
use redis::streams::StreamInfoGroupsReply;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: Config,
    /// Events to push.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Ingest workers.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Events appended per pipeline by the producer.
    #[arg(long, default_value_t = 10_000)]
    append_batch: usize,
}

/// The allocator of the origin's binary, which runs the ingest workers in production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = args.config;
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(config.database_url.expose_secret())
        .await?;
    popup_origin::MIGRATOR.run(&db).await?;
    let state = AppState::new(&config, db.clone())?;
    let mut redis =
        redis::Client::open(config.redis_url.expose_secret())?.get_multiplexed_async_connection().await?;
    let _: () = redis::cmd("DEL").arg(state.keys.events()).query_async(&mut redis).await?;

    let settings = IngestSettings {
        batch: config.ingest_batch,
        claim_idle: Duration::from_secs(30),
        block: Duration::from_millis(100),
        retention_days: 30,
    };
    let now = chrono::Utc::now().timestamp();
    let kinds = [EventKind::Impression, EventKind::Impression, EventKind::Click, EventKind::Dismiss];
    let started = Instant::now();
    let producer = {
        let keys = state.keys.clone();
        let (total, batch) = (args.events, args.append_batch.max(1));
        tokio::spawn(async move {
            let mut next = 0;
            while next < total {
                let mut pipe = redis::pipe();
                for i in next..(next + batch).min(total) {
                    let kind = kinds[i % kinds.len()];
                    let record = Record {
                        id: format!("bench{i:09}:{}", kind.as_str()),
                        kind,
                        user: UserId::parse(&format!("cust-{:06}", i % 100_000))?,
                        campaign: CampaignId(1 + (i % 20) as u64),
                        variant: ["a", "b"][i % 2].into(),
                        at: Timestamp(now),
                        // Served over the last hour in arrival order, as a live stream is, and one event
                        // in ten a day earlier (a late click on yesterday's popup): two partitions.
                        served: Timestamp(
                            now - 3600 + (i as i64 * 3600) / total as i64
                                - if i % 10 == 0 { 86_400 } else { 0 },
                        ),
                    };
                    pipe.add_command(to_cmd(&record.append(&keys))).ignore();
                }
                let _: () = pipe.query_async(&mut redis).await?;
                next += batch;
            }
            anyhow::Ok(started.elapsed())
        })
    };
    let appended_in = producer.await??;

    // Then the ingest workers move the stream into Postgres.
    let ingest_started = Instant::now();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for n in 0..args.workers {
        let ingester = Ingester::connect(
            state.clone(),
            config.redis_url.expose_secret(),
            format!("bench-{n}"),
            settings.clone(),
        )
        .await?;
        workers.push(tokio::spawn(ingester.run(stopped.clone())));
    }

    // Done when the group has read every entry and has none pending: all acknowledged, so all committed.
    // Asked of Redis, which answers at once; counting the table meanwhile would load Postgres.
    let expected = args.events as i64;
    let mut probe =
        redis::Client::open(config.redis_url.expose_secret())?.get_multiplexed_async_connection().await?;
    while started.elapsed() < Duration::from_secs(600) {
        let groups: StreamInfoGroupsReply =
            redis::cmd("XINFO").arg("GROUPS").arg(state.keys.events()).query_async(&mut probe).await?;
        let done = groups.groups.iter().any(|g| g.entries_read == Some(args.events) && g.pending == 0);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let ingest_elapsed = ingest_started.elapsed();
    let _ = stop.send(true);
    for worker in workers {
        worker.await?;
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&db).await?;
    let distinct: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT event_id) FROM events").fetch_one(&db).await?;
    let rate = stored as f64 / ingest_elapsed.as_secs_f64();
    println!("events posted:              {expected}");
    println!(
        "appended to the stream in:  {:.2} s ({:.0} events/s)",
        appended_in.as_secs_f64(),
        expected as f64 / appended_in.as_secs_f64()
    );
    println!("stored in postgres:         {stored} ({distinct} distinct ids)");
    println!("stream to postgres:         {:.2} s", ingest_elapsed.as_secs_f64());
    println!(
        "ingest rate:                {rate:.0} events/s (target >= 150000: {})",
        if rate >= 150_000.0 { "met" } else { "missed" }
    );
    println!(
        "appends, then ingest:       {:.2} s ({:.0} events/s)",
        elapsed.as_secs_f64(),
        stored as f64 / elapsed.as_secs_f64()
    );
    println!("workers / batch:            {} / {}", args.workers, config.ingest_batch);
    if stored != expected || distinct != expected {
        anyhow::bail!("postgres holds {stored} events ({distinct} distinct), {expected} were posted");
    }
    Ok(())
}
