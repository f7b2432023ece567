//! `GET /admin/v1/audit?entity=campaign&entity_id=12`: the audit trail, newest first.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use crate::db::audit::{self, AuditEntry};
use crate::http::page::{PageQuery, Paged};
use crate::http::{ApiError, Query, Viewer};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// `campaign`, `segment`, `api_key`, `settings`, `customer`, `message_campaign`, ...
    entity: Option<String>,
    entity_id: Option<String>,
    // Text, checked by `PageQuery::validate`, which names a bad value's field.
    /// The page, from 1 (the default); below 1 is 1. At most 1000000; more, or not a whole number, is 400.
    #[param(value_type = Option<i64>, maximum = 1000000)]
    page: Option<String>,
    /// Rows per page, 20 by default; above 100 is 100, below 1 is the default. Not a whole number is 400.
    #[param(value_type = Option<i64>)]
    page_size: Option<String>,
}

#[utoipa::path(
    get,
    path = "/audit",
    tag = "audit",
    summary = "The audit trail, newest first",
    security(("api_key" = [])),
    params(AuditFilter),
    responses((status = 200, body = Paged<AuditEntry>))
)]
pub async fn list(
    State(state): State<AppState>,
    _: Viewer,
    Query(filter): Query<AuditFilter>,
) -> Result<Json<Paged<AuditEntry>>, ApiError> {
    let page = PageQuery { page: filter.page, page_size: filter.page_size }.validate()?;
    let (items, total) = audit::list(
        &state.db,
        filter.entity.as_deref(),
        filter.entity_id.as_deref(),
        page.page_size,
        page.offset(),
    )
    .await?;
    Ok(Json(Paged::new(items, page, total)))
}
