//! `/admin/v1/keys`: API keys, for admins only. A key is shown once, when it is created.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use popup_core::access::Role;
use serde::{Deserialize, Serialize};

use crate::db::audit::Actor;
use crate::db::keys::{self, KeyView};
use crate::http::page::{PageQuery, Paged};
use crate::http::{Admin, ApiError, JsonBody, Path, Query};
use crate::state::AppState;
use popup_core::wire::ErrorResponse;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub view: KeyView,
    /// The secret; it is not stored and cannot be shown again.
    pub key: String,
}

#[utoipa::path(
    post,
    path = "/keys",
    tag = "keys",
    summary = "Create an API key; the secret is in this answer only",
    security(("api_key" = [])),
    request_body = NewKey,
    responses(
        (status = 201, body = CreatedKey),
        (status = 422, description = "A name that is blank or longer than 100 characters, or an unknown role.", body = ErrorResponse),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Admin(actor): Admin,
    JsonBody(new): JsonBody<NewKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    Ok((StatusCode::CREATED, Json(create_key(&state, &actor, &new).await?)))
}

/// Checks and creates a key as `actor`: for this API and the dashboard.
pub async fn create_key(state: &AppState, actor: &Actor, new: &NewKey) -> Result<CreatedKey, ApiError> {
    if new.name.trim().is_empty() || new.name.len() > 100 {
        return Err(ApiError::field("name", "must be 1-100 characters"));
    }
    let (view, key) = keys::create(&state.db, actor, &new.name, new.role).await?;
    Ok(CreatedKey { view, key })
}

#[utoipa::path(
    get,
    path = "/keys",
    tag = "keys",
    security(("api_key" = [])),
    params(PageQuery),
    responses((status = 200, body = Paged<KeyView>))
)]
pub async fn list(
    State(state): State<AppState>,
    _: Admin,
    Query(page): Query<PageQuery>,
) -> Result<Json<Paged<KeyView>>, ApiError> {
    let page = page.validate()?;
    let (items, total) = keys::list(&state.db, page.page_size, page.offset()).await?;
    Ok(Json(Paged::new(items, page, total)))
}

#[utoipa::path(
    delete,
    path = "/keys/{id}",
    tag = "keys",
    security(("api_key" = [])),
    params(("id" = i64, Path)),
    responses(
        (status = 204, description = "Revoked."),
        (status = 404, description = "No such key, or revoked already.", body = ErrorResponse),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    Admin(actor): Admin,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    if keys::revoke(&state.db, &actor, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("api key"))
    }
}
