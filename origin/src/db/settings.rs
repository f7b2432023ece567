//! Rules that span campaigns: one row.

use sqlx::PgPool;

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
