//! Events ingested from the Redis stream (see `popup_core::stream`): storing a batch exactly once, the day
//! partitions and their retention, the counts campaign stats are made of, and the impressions the
//! projection rebuilds caps from.

use chrono::{DateTime, Utc};
use popup_core::ids::Timestamp;
use popup_core::store::KeySpace;
use popup_core::stream::Record;
use sqlx::PgPool;

use super::DbResult;

/// Stores `records` (sorted by id, see the ingest module docs) in one statement. Returns how many were new,
/// and the campaigns among those counted whose impressions reached their budget, with the budget.
pub async fn store(db: &PgPool, records: &[&Record]) -> DbResult<(i64, Vec<i64>, Vec<i64>)> {
    Ok(sqlx::query_as(STORE)
        .bind(records.iter().map(|r| r.served.seconds()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.user.as_str()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.campaign.0 as i64).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.variant.as_str()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.at.seconds()).collect::<Vec<_>>())
        .fetch_one(db)
        .await?)
}

/// Stores a batch and counts its new impressions, in one statement. Returns how many events were new, and
/// the campaigns among those counted whose impressions reached their budget.
const STORE: &str = "
WITH inserted AS (
    INSERT INTO events (served_at, event_id, kind, user_id, campaign_id, variant, at)
    SELECT to_timestamp(served), id, kind, user_id, campaign_id, variant, to_timestamp(at)
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[])
        AS batch (served, id, kind, user_id, campaign_id, variant, at)
    ON CONFLICT DO NOTHING
    RETURNING campaign_id, kind
), counted AS (
    INSERT INTO campaign_totals (campaign_id, impressions)
    SELECT campaign_id, count(*) FROM inserted WHERE kind = 'impression' GROUP BY campaign_id ORDER BY campaign_id
    ON CONFLICT (campaign_id) DO UPDATE SET impressions = campaign_totals.impressions + excluded.impressions
    RETURNING campaign_id, impressions
)
SELECT
    (SELECT count(*) FROM inserted),
    COALESCE(array_agg(exhausted.campaign_id), '{}'),
    COALESCE(array_agg(exhausted.budget), '{}')
FROM (
    SELECT counted.campaign_id, (campaigns.spec ->> 'budget')::bigint AS budget
    FROM counted JOIN campaigns ON campaigns.id = counted.campaign_id
    WHERE (campaigns.spec ->> 'budget')::bigint <= counted.impressions
) AS exhausted";

/// The partition holding events served on `day` (in the deployment's day offset), created if missing.
pub async fn ensure_partition(db: &PgPool, keys: &KeySpace, day: i64) -> DbResult<()> {
    let (from, until) = (keys.day_start(day), keys.day_start(day + 1));
    let mut tx = db.begin().await?;
    // Two workers creating the same partition would otherwise race on the catalog.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('events partitions'))").execute(&mut *tx).await?;
    // Attaching a partition locks the table; behind a long report, fail and retry rather than stall ingest.
    sqlx::query("SET LOCAL lock_timeout = '5s'").execute(&mut *tx).await?;
    // Identifiers and bounds are formatted from numbers, never from input; DDL takes no parameters.
    let statement = format!(
        "CREATE TABLE IF NOT EXISTS {} PARTITION OF events FOR VALUES FROM ('{}') TO ('{}')",
        partition_name(day),
        utc(from).to_rfc3339(),
        utc(until).to_rfc3339(),
    );
    sqlx::query(&statement).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// `events_d<day number>`: days since the epoch in the deployment's offset.
fn partition_name(day: i64) -> String {
    format!("events_d{day}")
}

/// A core timestamp as chrono's; out of chrono's range (never for events that pass ingest) it is the epoch.
pub fn utc(at: Timestamp) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(at.seconds(), 0).unwrap_or_default()
}

/// Drops the partitions whose whole day is older than `retention_days` before `now`; returns their days.
pub async fn drop_expired_partitions(
    db: &PgPool,
    keys: &KeySpace,
    now: Timestamp,
    retention_days: u32,
) -> DbResult<Vec<i64>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT child.relname::text FROM pg_inherits
         JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
         JOIN pg_class child ON child.oid = pg_inherits.inhrelid
         WHERE parent.relname = 'events'",
    )
    .fetch_all(db)
    .await?;
    let oldest_kept = keys.day(now) - i64::from(retention_days);
    let mut dropped = Vec::new();
    for day in names.iter().filter_map(|name| name.strip_prefix("events_d")?.parse::<i64>().ok()) {
        if day < oldest_kept {
            // Detached concurrently first, so readers and ingest are not locked out while it goes.
            let name = partition_name(day);
            sqlx::raw_sql(&format!("ALTER TABLE events DETACH PARTITION {name} CONCURRENTLY"))
                .execute(db)
                .await?;
            sqlx::raw_sql(&format!("DROP TABLE IF EXISTS {name}")).execute(db).await?;
            dropped.push(day);
        }
    }
    dropped.sort_unstable();
    Ok(dropped)
}

/// A campaign's counts of one day and variant, or, with no day, of a variant over the whole range:
/// (day, variant, impressions, unique users, clicks, dismissals, conversions, converted users, holdouts).
pub type CountsRow = (Option<i64>, String, i64, i64, i64, i64, i64, i64, i64);

/// Counts per (day, variant) and per variant over the events of one campaign, in one pass: the grouping
/// sets give the range totals (day NULL) beside the daily rows, with users counted once across days. `$5`
/// is the day offset in seconds; events are selected by when they happened (`at`), and by `served_at`
/// (`$4` to `$6`) too so that only partitions that can hold them are planned and read: a year's range
/// spans 366 day partitions, and planning them all costs more than reading a short campaign's events.
const COUNTS: &str = "
SELECT floor((extract(epoch FROM at) + $5) / 86400)::bigint AS day, variant,
    count(*) FILTER (WHERE kind = 'impression'),
    count(DISTINCT user_id) FILTER (WHERE kind = 'impression'),
    count(*) FILTER (WHERE kind = 'click'),
    count(*) FILTER (WHERE kind = 'dismiss'),
    count(*) FILTER (WHERE kind = 'conversion'),
    count(DISTINCT user_id) FILTER (WHERE kind = 'conversion'),
    count(DISTINCT user_id) FILTER (WHERE kind = 'holdout')
FROM events
WHERE campaign_id = $1 AND at >= $2 AND at < $3 AND served_at >= $4 AND served_at < $6
GROUP BY GROUPING SETS ((day, variant), (variant))
ORDER BY day NULLS LAST, variant";

/// The counts of `campaign`'s events between `start` and `end`, for popups served from `served.0` until
/// before `served.1`, with days starting at `day_offset_seconds`.
pub async fn campaign_counts(
    db: &PgPool,
    campaign: i64,
    (start, end): (Timestamp, Timestamp),
    served: (Timestamp, Timestamp),
    day_offset_seconds: i64,
) -> DbResult<Vec<CountsRow>> {
    Ok(sqlx::query_as(COUNTS)
        .bind(campaign)
        .bind(utc(start))
        .bind(utc(end))
        .bind(utc(served.0))
        .bind(day_offset_seconds)
        .bind(utc(served.1))
        .fetch_all(db)
        .await?)
}

/// One customer's impressions of a campaign: (customer, lifetime, last impression in unix seconds,
/// impressions since the start of today).
pub type CustomerImpressions = (String, i64, i64, i64);

/// Every customer's impressions of `campaign`, for rebuilding caps; streamed, one row per customer.
pub fn impressions_by_customer(
    db: &PgPool,
    campaign: i64,
    today_start: Timestamp,
) -> impl futures_util::Stream<Item = DbResult<CustomerImpressions>> + '_ {
    use futures_util::TryStreamExt;
    sqlx::query_as(
        "SELECT user_id, count(*), extract(epoch FROM max(at))::bigint, count(*) FILTER (WHERE at >= $2)
         FROM events WHERE campaign_id = $1 AND kind = 'impression' GROUP BY user_id",
    )
    .bind(campaign)
    .bind(utc(today_start))
    .fetch(db)
    .map_err(super::DbError::from)
}

/// Every customer's impressions today across campaigns, for the global daily cap; streamed. Impressions of
/// popups served before `served_since` are not looked for (a token is accepted for its lifetime only), so
/// Postgres reads only the partitions that can hold them.
pub fn impressions_today_by_customer(
    db: &PgPool,
    today_start: Timestamp,
    served_since: Timestamp,
) -> impl futures_util::Stream<Item = DbResult<(String, i64)>> + '_ {
    use futures_util::TryStreamExt;
    sqlx::query_as(
        "SELECT user_id, count(*) FROM events
         WHERE kind = 'impression' AND at >= $1 AND served_at >= $2 GROUP BY user_id",
    )
    .bind(utc(today_start))
    .bind(utc(served_since))
    .fetch(db)
    .map_err(super::DbError::from)
}

/// Whether any impression was recorded since `today_start` (of a popup served since `served_since`).
pub async fn anyone_shown_since(
    db: &PgPool,
    today_start: Timestamp,
    served_since: Timestamp,
) -> DbResult<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM events WHERE kind = 'impression' AND at >= $1 AND served_at >= $2)",
    )
    .bind(utc(today_start))
    .bind(utc(served_since))
    .fetch_one(db)
    .await?)
}

/// Those of `campaigns` with at least one impression stored.
pub async fn campaigns_shown(db: &PgPool, campaigns: &[i64]) -> DbResult<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT campaign_id FROM campaign_totals WHERE campaign_id = ANY($1) AND impressions > 0",
    )
    .bind(campaigns)
    .fetch_all(db)
    .await?)
}
