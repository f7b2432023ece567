//! `GET /admin/v1/audit?entity=campaign&entity_id=12`: the audit trail, newest first.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use crate::db::audit::{self, AuditEntry};
use crate::http::page::{PageQuery, Paged};
use crate::http::{ApiError, Query, Viewer};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct AuditFilter {
    entity: Option<String>,
    entity_id: Option<String>,
    // Text, checked by `PageQuery::validate`, which names a bad value's field.
    page: Option<String>,
    page_size: Option<String>,
}

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
