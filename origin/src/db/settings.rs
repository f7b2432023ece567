//! Rules that span campaigns: one row.

use serde_json::json;
use sqlx::PgPool;

use super::audit::{self, Actor};
use super::DbResult;

/// The most popups one customer sees per day, all campaigns together, if capped.
pub async fn max_popups_per_day(db: &PgPool) -> DbResult<Option<u32>> {
    let max: Option<i32> =
        sqlx::query_scalar("SELECT max_popups_per_day FROM settings").fetch_one(db).await?;
    Ok(max.map(|n| n as u32))
}

/// A new catalog version, higher than every one handed out before (resolvers compare versions for
/// equality, writers for order).
pub async fn next_catalog_version(db: &PgPool) -> DbResult<i64> {
    Ok(sqlx::query_scalar("SELECT nextval('catalog_version')").fetch_one(db).await?)
}

/// Sets the cap of popups per customer per day across campaigns (`None`: no cap), with an audit row.
pub async fn set_max_popups_per_day(db: &PgPool, actor: &Actor, max: Option<u32>) -> DbResult<()> {
    let mut tx = db.begin().await?;
    let before: Option<i32> =
        sqlx::query_scalar("SELECT max_popups_per_day FROM settings FOR UPDATE").fetch_one(&mut *tx).await?;
    let max = max.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    sqlx::query("UPDATE settings SET max_popups_per_day = $1").bind(max).execute(&mut *tx).await?;
    let (before, after) = (json!({"max_popups_per_day": before}), json!({"max_popups_per_day": max}));
    audit::record(&mut tx, actor, "update", "settings", "global", Some(before), Some(after)).await?;
    tx.commit().await?;
    Ok(())
}
