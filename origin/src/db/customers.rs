//! Customers: the people messages go to, by phone (E.164, unique) and optionally the bank's id
//! (`external_id`, unique, the id segments name customers by). Blank optional fields are stored as NULL.
//!
//! The CSV import writes its rows itself, inside its own streamed transaction (`messaging::customers`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};

use super::audit::{self, Actor};
use super::{DbError, DbResult};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct CustomerView {
    pub id: i64,
    pub phone: String,
    pub external_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub location: Option<String>,
    pub preferred_product: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CustomerView {
    /// The customer's value for a template placeholder (see [`popup_core::template::CUSTOMER_PLACEHOLDERS`]).
    pub fn field(&self, name: &str) -> Option<&str> {
        match name {
            "phone" => Some(&self.phone),
            "first_name" => self.first_name.as_deref(),
            "last_name" => self.last_name.as_deref(),
            "email" => self.email.as_deref(),
            "location" => self.location.as_deref(),
            "preferred_product" => self.preferred_product.as_deref(),
            _ => None,
        }
    }
}

const SELECT: &str = "SELECT id, phone, external_id, first_name, last_name, email, location, \
                      preferred_product, created_at, updated_at FROM customers";

/// A customer to create, checked and trimmed by the caller (blank optional fields are `None`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NewCustomer<'a> {
    pub phone: &'a str,
    pub external_id: Option<&'a str>,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub location: Option<&'a str>,
    pub preferred_product: Option<&'a str>,
}

/// Why a customer was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Another customer holds that phone or external id: the name of the column that clashed.
    #[error("another customer has that {0}")]
    Taken(&'static str),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The unique column a violation is about: `external_id` when its constraint names it, else `phone`.
fn taken(error: sqlx::Error) -> CreateError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            let what = if db.constraint().is_some_and(|c| c.contains("external_id")) {
                "external_id"
            } else {
                "phone"
            };
            CreateError::Taken(what)
        }
        _ => CreateError::Db(error.into()),
    }
}

/// Creates a customer, audited in the same transaction.
pub async fn create(db: &PgPool, actor: &Actor, new: &NewCustomer<'_>) -> Result<CustomerView, CreateError> {
    let mut tx = db.begin().await.map_err(DbError::from)?;
    let row: CustomerView = sqlx::query_as(
        "INSERT INTO customers (phone, external_id, first_name, last_name, email, location, preferred_product)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING id, phone, external_id, first_name, last_name, email, location, preferred_product,
                   created_at, updated_at",
    )
    .bind(new.phone)
    .bind(new.external_id)
    .bind(new.first_name)
    .bind(new.last_name)
    .bind(new.email)
    .bind(new.location)
    .bind(new.preferred_product)
    .fetch_one(&mut *tx)
    .await
    .map_err(taken)?;
    audit::record(&mut tx, actor, "create", "customer", &row.id.to_string(), None, Some(json!(row))).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(row)
}

pub async fn get(db: &PgPool, id: i64) -> DbResult<Option<CustomerView>> {
    Ok(sqlx::query_as(&format!("{SELECT} WHERE id = $1")).bind(id).fetch_optional(db).await?)
}

/// The customer a person names by the bank's id (`external_id`), phone, or our id, in that order of
/// preference: a bank id may be all digits too.
pub async fn find(db: &PgPool, key: &str) -> DbResult<Option<CustomerView>> {
    let key = key.trim();
    Ok(sqlx::query_as(&format!(
        "{SELECT} WHERE external_id = $1 OR phone = $1 OR id = $2
         ORDER BY CASE WHEN external_id = $1 THEN 0 WHEN phone = $1 THEN 1 ELSE 2 END LIMIT 1"
    ))
    .bind(key)
    .bind(key.parse::<i64>().ok())
    .fetch_optional(db)
    .await?)
}

/// The newest customer's id (0 with none): the bound of a list's snapshot (see [`list`]).
pub async fn newest_id(db: &PgPool) -> DbResult<i64> {
    Ok(sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM customers").fetch_one(db).await?)
}

/// Customers with ids up to `as_of` (and `phone`, exactly), newest first: `limit` from `offset`, and how
/// many there are. Rows inserted after `as_of` neither shift the pages nor appear twice.
pub async fn list(
    db: &PgPool,
    as_of: i64,
    phone: Option<&str>,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<CustomerView>, i64)> {
    let condition = "id <= $1 AND ($2::text IS NULL OR phone = $2)";
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM customers WHERE {condition}"))
        .bind(as_of)
        .bind(phone)
        .fetch_one(db)
        .await?;
    let items = sqlx::query_as(&format!("{SELECT} WHERE {condition} ORDER BY id DESC LIMIT $3 OFFSET $4"))
        .bind(as_of)
        .bind(phone)
        .bind(limit)
        .bind(offset)
        .fetch_all(db)
        .await?;
    Ok((items, total))
}

/// The customers of `ids` (sorted, without duplicates) that exist, by id.
pub async fn by_ids<'e>(db: impl PgExecutor<'e>, ids: &[i64]) -> DbResult<Vec<CustomerView>> {
    Ok(sqlx::query_as(&format!("{SELECT} WHERE id = ANY($1) ORDER BY id")).bind(ids).fetch_all(db).await?)
}

/// The customers among the members of the served version of live segment `name` (a member is a customer
/// whose `external_id` it is), by id.
pub async fn in_segment<'e>(db: impl PgExecutor<'e>, name: &str) -> DbResult<Vec<CustomerView>> {
    Ok(sqlx::query_as(&format!(
        "{SELECT} WHERE external_id IN (
             SELECT unnest(m.user_ids) FROM segment_members m
             JOIN segments s ON s.id = m.segment_id AND m.version = s.version
             WHERE s.name = $1 AND s.deleted_at IS NULL)
         ORDER BY id"
    ))
    .bind(name)
    .fetch_all(db)
    .await?)
}

/// Creates or updates by phone each of `rows` (phones unique among them), keeping what a row leaves out
/// (`None`) as stored; in the import's transaction. Returns, per row, whether it was new.
pub async fn upsert<'a>(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[NewCustomer<'a>],
) -> Result<Vec<bool>, CreateError> {
    let column = |get: fn(&NewCustomer<'a>) -> Option<&'a str>| rows.iter().map(get).collect::<Vec<_>>();
    sqlx::query_scalar(
        "INSERT INTO customers (phone, external_id, first_name, last_name, email, location, preferred_product)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
         ON CONFLICT (phone) DO UPDATE SET
             external_id = COALESCE(EXCLUDED.external_id, customers.external_id),
             first_name = COALESCE(EXCLUDED.first_name, customers.first_name),
             last_name = COALESCE(EXCLUDED.last_name, customers.last_name),
             email = COALESCE(EXCLUDED.email, customers.email),
             location = COALESCE(EXCLUDED.location, customers.location),
             preferred_product = COALESCE(EXCLUDED.preferred_product, customers.preferred_product),
             updated_at = now()
         RETURNING (xmax = 0)",
    )
    .bind(column(|c| Some(c.phone)))
    .bind(column(|c| c.external_id))
    .bind(column(|c| c.first_name))
    .bind(column(|c| c.last_name))
    .bind(column(|c| c.email))
    .bind(column(|c| c.location))
    .bind(column(|c| c.preferred_product))
    .fetch_all(&mut **tx)
    .await
    .map_err(taken)
}
