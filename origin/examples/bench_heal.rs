//! How long the projection takes to heal after Redis loses everything: loads a segment of `--members`
//! customers excluded by one campaign, and `--impressions` recorded impressions of a capped campaign, heals
//! once from cold, then flushes Redis and times the heal: until the first catalog is back, and until every
//! part is restored. Run by `scripts/bench-heal`, which gives it a database and a redis-server of its own
//! (it flushes that Redis); see that script for settings.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use clap::Parser;
use popup_core::ids::Timestamp;
use popup_origin::config::ExposeSecret;
use popup_origin::{AppState, Config};
use tower::ServiceExt;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: Config,
    /// Members of the excluded segment.
    #[arg(long, default_value_t = 1_000_000)]
    members: usize,
    /// Recorded impressions of the capped campaign, five per customer.
    #[arg(long, default_value_t = 500_000)]
    impressions: usize,
}

const ADMIN_KEY: &str = "bench-heal-admin-key-0123456789";

async fn call(
    router: &axum::Router,
    method: Method,
    uri: &str,
    body: Body,
) -> anyhow::Result<serde_json::Value> {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {ADMIN_KEY}"))
        .header("content-type", "application/json")
        .body(body)?;
    let response = router.clone().oneshot(request).await?;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
    anyhow::ensure!(status.is_success(), "{uri}: {status} {}", String::from_utf8_lossy(&bytes));
    Ok(if status == StatusCode::NO_CONTENT {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes)?
    })
}

async fn live_campaign(router: &axum::Router, spec: serde_json::Value) -> anyhow::Result<i64> {
    let created = call(router, Method::POST, "/admin/v1/campaigns", Body::from(spec.to_string())).await?;
    let id = created["id"].as_i64().ok_or_else(|| anyhow::anyhow!("no id in {created}"))?;
    call(router, Method::POST, &format!("/admin/v1/campaigns/{id}/activate"), Body::empty()).await?;
    Ok(id)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Each restored part is logged with its size and time.
    tracing_subscriber::fmt().with_env_filter("popup_origin::projection=info").with_target(false).init();
    let args = Args::parse();
    let config = args.config;
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(config.database_url.expose_secret())
        .await?;
    popup_origin::MIGRATOR.run(&db).await?;
    popup_origin::db::keys::bootstrap_admin_key(&db, ADMIN_KEY).await?;
    let state = AppState::new(&config, db.clone())?;
    let router = popup_origin::app(state.clone());
    let mut redis =
        redis::Client::open(config.redis_url.expose_secret())?.get_multiplexed_async_connection().await?;

    let ids: String = (0..args.members).map(|i| format!("cust-{i:08}\n")).collect();
    let started = Instant::now();
    call(&router, Method::PUT, "/admin/v1/segments/opted-out", Body::from(ids)).await?;
    println!("upload of {} members: {:.2} s", args.members, started.elapsed().as_secs_f64());
    let spec = |name: &str| {
        serde_json::json!({
            "name": name,
            "schedule": {"start": "2026-01-01T00:00:00Z"},
            "creative": {"title": name, "body": "Body"}
        })
    };
    let mut excluding = spec("Everyone but the opted out");
    excluding["audience"] = serde_json::json!({"exclude": ["opted-out"]});
    live_campaign(&router, excluding).await?;
    let mut capped = spec("Capped");
    capped["priority"] = serde_json::json!(1);
    capped["caps"] = serde_json::json!({"lifetime": 10});
    let capped = live_campaign(&router, capped).await?;

    // Impressions as ingest would have stored them, served and recorded today.
    let now = Timestamp(chrono::Utc::now().timestamp());
    popup_origin::db::events::ensure_partition(&db, &state.keys, state.keys.day(now)).await?;
    sqlx::query(
        "INSERT INTO events (served_at, event_id, kind, user_id, campaign_id, variant, at)
         SELECT now(), 'bench-' || n || ':impression', 'impression', 'cust-' || lpad((n / 5)::text, 8, '0'),
                $1, 'default', now()
         FROM generate_series(0, $2 - 1) AS n",
    )
    .bind(capped)
    .bind(args.impressions as i64)
    .execute(&db)
    .await?;
    sqlx::query("INSERT INTO campaign_totals (campaign_id, impressions) VALUES ($1, $2)")
        .bind(capped)
        .bind(args.impressions as i64)
        .execute(&db)
        .await?;
    popup_origin::projection::heal(&state).await?;

    let _: () = redis::cmd("FLUSHALL").query_async(&mut redis).await?;
    let flushed = Instant::now();
    let healer = {
        let state = state.clone();
        tokio::spawn(async move { popup_origin::projection::heal(&state).await })
    };
    let mut first_catalog = None;
    while !healer.is_finished() {
        if first_catalog.is_none() {
            let exists: bool = redis::cmd("EXISTS").arg(state.keys.catalog()).query_async(&mut redis).await?;
            if exists {
                first_catalog = Some(flushed.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let parts = healer.await??;
    let healed = flushed.elapsed();
    let catalog = popup_origin::projection::publish(&state).await?;
    anyhow::ensure!(catalog.restoring().is_empty(), "the catalog still waits for {:?}", catalog.restoring());
    let members = args.members as f64 / 1e6;
    println!("heal after FLUSHALL ({parts} parts restored):");
    println!(
        "  first catalog back (serving what needs nothing restored): {:.3} s",
        first_catalog.unwrap_or(healed).as_secs_f64()
    );
    println!(
        "  every part restored: {:.2} s for {} segment members and {} impressions of {} customers",
        healed.as_secs_f64(),
        args.members,
        args.impressions,
        args.impressions / 5
    );
    println!("heal: {:.2} s per million segment members (counters included)", healed.as_secs_f64() / members);
    Ok(())
}
