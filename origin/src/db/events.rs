//! Events ingested from the Redis stream (see `popup_core::stream`): storing a batch exactly once, with
//! the daily counts and reach campaign stats read (migration 0005, `popup_core::reach`), the day partitions
//! and their retention, and the impressions the projection rebuilds caps from.

use std::ops::RangeInclusive;

use bit_vec::BitVec;
use chrono::{DateTime, Utc};
use popup_core::ids::Timestamp;
use popup_core::reach::{self, Sketch};
use popup_core::store::KeySpace;
use popup_core::stream::Record;
use sqlx::PgPool;

use super::DbResult;

/// Stores `records` (sorted by id, see the ingest module docs) with the daily counts of the new ones and
/// the customers of all of them (adding a customer twice changes nothing), in one transaction. Returns how
/// many were new, and the campaigns among those counted whose impressions reached their budget, with the
/// budget.
///
/// Three statements, in this order in every worker: the events with their campaign totals, then the daily
/// counts, then the reach. The last two update rows every worker shares (a busy campaign's day), so they
/// come last, each in key order: a worker holds those rows only from then to its commit, not while it
/// inserts its thousands of events, and workers never wait for each other in a circle.
pub async fn store(db: &PgPool, keys: &KeySpace, records: &[&Record]) -> DbResult<(i64, Vec<i64>, Vec<i64>)> {
    let mut tx = db.begin().await?;
    let stored: StoredBatch = sqlx::query_as(STORE)
        .bind(records.iter().map(|r| r.served.seconds()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.user.as_str()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.campaign.0 as i64).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.variant.as_str()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.at.seconds()).collect::<Vec<_>>())
        .bind(keys.day_offset_seconds())
        .fetch_one(&mut *tx)
        .await?;
    if !stored.campaigns.is_empty() {
        sqlx::query(ADD_DAYS)
            .bind(&stored.campaigns)
            .bind(&stored.days)
            .bind(&stored.variants)
            .bind(&stored.impressions)
            .bind(&stored.clicks)
            .bind(&stored.dismissals)
            .bind(&stored.conversions)
            .bind(&stored.holdouts)
            .execute(&mut *tx)
            .await?;
    }
    let reached = reach::of_records(records.iter().copied(), keys);
    if !reached.is_empty() {
        let (mut members, mut hashes) = (Vec::new(), Vec::new());
        for (n, customers) in reached.values().enumerate() {
            // Beyond the limit the day keeps only its sketch: no exact set is sent, and none is kept.
            if customers.len() <= reach::EXACT_LIMIT {
                members.extend(std::iter::repeat_n(n as i64 + 1, customers.len()));
                hashes.extend(customers.iter().map(|&hash| hash as i64));
            }
        }
        let sketches: Vec<BitVec> = reached
            .values()
            .map(|customers| BitVec::from_bytes(Sketch::of_hashes(customers).as_bytes()))
            .collect();
        sqlx::query(ADD_REACH)
            .bind(reached.keys().map(|key| key.campaign.0 as i64).collect::<Vec<_>>())
            .bind(reached.keys().map(|key| key.day).collect::<Vec<_>>())
            .bind(reached.keys().map(|key| key.variant).collect::<Vec<_>>())
            .bind(reached.keys().map(|key| key.kind).collect::<Vec<_>>())
            .bind(sketches)
            .bind(members)
            .bind(hashes)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok((stored.new, stored.exhausted, stored.budgets))
}

/// What [`STORE`] answers: how many events were new, the exhausted campaigns and their budgets, and the
/// new events' counts per (campaign, day, variant), as columns.
#[derive(sqlx::FromRow)]
struct StoredBatch {
    new: i64,
    exhausted: Vec<i64>,
    budgets: Vec<i64>,
    campaigns: Vec<i64>,
    days: Vec<i64>,
    variants: Vec<String>,
    impressions: Vec<i64>,
    clicks: Vec<i64>,
    dismissals: Vec<i64>,
    conversions: Vec<i64>,
    holdouts: Vec<i64>,
}

/// Stores a batch and counts its new impressions per campaign; answers how many events were new, the
/// campaigns among those counted whose impressions reached their budget, and the new events' counts per
/// campaign, day and variant (for [`ADD_DAYS`]).
const STORE: &str = "
WITH inserted AS (
    INSERT INTO events (served_at, event_id, kind, user_id, campaign_id, variant, at)
    SELECT to_timestamp(served), id, kind, user_id, campaign_id, variant, to_timestamp(at)
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[])
        AS batch (served, id, kind, user_id, campaign_id, variant, at)
    ON CONFLICT DO NOTHING
    RETURNING campaign_id, kind, variant, at
), counted AS (
    INSERT INTO campaign_totals (campaign_id, impressions)
    SELECT campaign_id, count(*) FROM inserted WHERE kind = 'impression' GROUP BY campaign_id ORDER BY campaign_id
    ON CONFLICT (campaign_id) DO UPDATE SET impressions = campaign_totals.impressions + excluded.impressions
    RETURNING campaign_id, impressions
), exhausted AS (
    SELECT counted.campaign_id, (campaigns.spec ->> 'budget')::bigint AS budget
    FROM counted JOIN campaigns ON campaigns.id = counted.campaign_id
    WHERE (campaigns.spec ->> 'budget')::bigint <= counted.impressions
), daily AS (
    SELECT campaign_id, floor((extract(epoch FROM at) + $8) / 86400)::bigint AS day, variant,
           count(*) FILTER (WHERE kind = 'impression') AS impressions,
           count(*) FILTER (WHERE kind = 'click') AS clicks,
           count(*) FILTER (WHERE kind = 'dismiss') AS dismissals,
           count(*) FILTER (WHERE kind = 'conversion') AS conversions,
           count(*) FILTER (WHERE kind = 'holdout') AS holdouts
    FROM inserted
    GROUP BY 1, 2, 3
)
SELECT
    (SELECT count(*) FROM inserted) AS new,
    (SELECT COALESCE(array_agg(campaign_id ORDER BY campaign_id), '{}') FROM exhausted) AS exhausted,
    (SELECT COALESCE(array_agg(budget ORDER BY campaign_id), '{}') FROM exhausted) AS budgets,
    COALESCE(array_agg(campaign_id), '{}') AS campaigns,
    COALESCE(array_agg(day), '{}') AS days,
    COALESCE(array_agg(variant), '{}') AS variants,
    COALESCE(array_agg(impressions), '{}') AS impressions,
    COALESCE(array_agg(clicks), '{}') AS clicks,
    COALESCE(array_agg(dismissals), '{}') AS dismissals,
    COALESCE(array_agg(conversions), '{}') AS conversions,
    COALESCE(array_agg(holdouts), '{}') AS holdouts
FROM daily";

/// Adds a batch's new events to their days' counts, taking the rows in key order.
const ADD_DAYS: &str = "
INSERT INTO event_days (campaign_id, day, variant, impressions, clicks, dismissals, conversions, holdout_events)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[])
ORDER BY 1, 2, 3
ON CONFLICT (campaign_id, day, variant) DO UPDATE SET
    impressions = event_days.impressions + excluded.impressions,
    clicks = event_days.clicks + excluded.clicks,
    dismissals = event_days.dismissals + excluded.dismissals,
    conversions = event_days.conversions + excluded.conversions,
    holdout_events = event_days.holdout_events + excluded.holdout_events";

/// Adds a batch's customers to their days' reach (`$6`, `$7`: each day key's position and its customers'
/// hashes, for the keys that keep an exact set), taking the rows in key order.
const ADD_REACH: &str = "
INSERT INTO event_reach (campaign_id, day, variant, kind, exact, sketch)
SELECT day_key.campaign_id, day_key.day, day_key.variant, day_key.kind, members.exact, day_key.sketch
FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::varbit[]) WITH ORDINALITY
    AS day_key (campaign_id, day, variant, kind, sketch, n)
LEFT JOIN (
    SELECT n, array_agg(hash ORDER BY hash) AS exact FROM unnest($6::bigint[], $7::bigint[]) AS member (n, hash)
    GROUP BY n
) AS members USING (n)
ORDER BY 1, 2, 3, 4
ON CONFLICT (campaign_id, day, variant, kind) DO UPDATE SET
    exact = reach_union(event_reach.exact, excluded.exact),
    sketch = event_reach.sketch | excluded.sketch";

/// Rebuilds the daily counts and reach from the stored events when they were built with another day offset
/// than `keys`' or never (the first start after migration 0005). Returns whether it rebuilt them.
pub async fn ensure_rollup(db: &PgPool, keys: &KeySpace) -> DbResult<bool> {
    let offset = keys.day_offset_seconds();
    let built: Option<i32> =
        sqlx::query_scalar("SELECT day_offset_seconds FROM event_rollup").fetch_optional(db).await?;
    if built == Some(offset) {
        return Ok(false);
    }
    sqlx::query("SELECT rebuild_event_rollup($1)").bind(offset).execute(db).await?;
    Ok(true)
}

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

/// A campaign's counts of one day and variant: (day, variant, impressions, clicks, dismissals,
/// conversions, holdout events).
pub type DayCounts = (i64, String, i64, i64, i64, i64, i64);

/// The daily counts of `campaign` on `days`, in day then variant order.
pub async fn campaign_days(
    db: &PgPool,
    campaign: i64,
    days: RangeInclusive<i64>,
) -> DbResult<Vec<DayCounts>> {
    Ok(sqlx::query_as(
        "SELECT day, variant, impressions, clicks, dismissals, conversions, holdout_events FROM event_days
         WHERE campaign_id = $1 AND day BETWEEN $2 AND $3
         ORDER BY day, variant",
    )
    .bind(campaign)
    .bind(days.start())
    .bind(days.end())
    .fetch_all(db)
    .await?)
}

/// The customers of one day, variant and kind of event (`popup_core::reach::COUNTED_KINDS`).
#[derive(Debug)]
pub struct DayReach {
    pub day: i64,
    pub variant: String,
    pub kind: String,
    pub reach: reach::Reach,
}

/// (day, variant, kind, exact set, sketch when there is no exact set), as stored.
type ReachRow = (i64, String, String, Option<Vec<i64>>, Option<BitVec>);

/// The reach of `campaign` on `days`. A sketch is read only where the exact set is gone: a small day's
/// is never needed, its set says more.
pub async fn campaign_reach(
    db: &PgPool,
    campaign: i64,
    days: RangeInclusive<i64>,
) -> DbResult<Vec<DayReach>> {
    let rows: Vec<ReachRow> = sqlx::query_as(
        "SELECT day, variant, kind, exact, CASE WHEN exact IS NULL THEN sketch END FROM event_reach
         WHERE campaign_id = $1 AND day BETWEEN $2 AND $3",
    )
    .bind(campaign)
    .bind(days.start())
    .bind(days.end())
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(day, variant, kind, exact, sketch)| DayReach {
            day,
            variant,
            kind,
            reach: reach::Reach::stored(
                exact.map(|hashes| hashes.into_iter().map(|hash| hash as u64)),
                // The table's CHECK keeps every sketch at the layout's length.
                sketch.and_then(|bits| Sketch::from_bytes(bits.to_bytes())),
            ),
        })
        .collect())
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
