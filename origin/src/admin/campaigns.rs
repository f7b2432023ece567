//! `/admin/v1/campaigns`: create, read, list, update, delete (soft), and the lifecycle
//! `draft -> active (shown as scheduled before its start) -> paused -> ended`, whose rules are the core's
//! (`popup_core::lifecycle`): this module asks it before every write.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use popup_core::ids::Timestamp;
use popup_core::lifecycle::{self, Action, Dates, Shown, Status};
use popup_core::wire::ErrorResponse;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::db::campaign_spec::{CampaignSpec, ToCore};
use crate::db::campaigns::{self, CampaignRow};
use crate::db::{self, audit::Actor, segments};
use crate::http::page::{Page, PageQuery, Paged};
use crate::http::{ApiError, Editor, JsonBody, Path, Query, Viewer};
use crate::projection;
use crate::state::AppState;

/// A campaign as stored: the definition it was written with, and what the origin adds. Its schema is
/// written below rather than derived, see [`CampaignView::schema`].
#[derive(Debug, Serialize)]
pub struct CampaignView {
    pub id: i64,
    pub status: Shown,
    #[serde(flatten)]
    pub spec: CampaignSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl utoipa::PartialSchema for CampaignView {
    /// The definition's schema with the stored fields added. Derived, it would be the definition's schema
    /// and the stored fields side by side (`allOf`), and the definition, which refuses unknown fields as a
    /// request body (`additionalProperties: false`), would refuse the stored ones.
    fn schema() -> RefOr<Schema> {
        let mut object = match CampaignSpec::schema() {
            RefOr::T(Schema::Object(object)) => object,
            _ => Object::new(),
        };
        object.additional_properties = None;
        let timestamp = || {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        };
        let stored: [(&str, RefOr<Schema>); 4] = [
            (
                "id",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .into(),
            ),
            ("status", RefOr::Ref(Ref::from_schema_name(Shown::name()))),
            ("created_at", timestamp().into()),
            ("updated_at", timestamp().into()),
        ];
        for (name, schema) in stored {
            object.properties.insert(name.into(), schema);
            object.required.push(name.into());
        }
        RefOr::T(Schema::Object(object))
    }
}

impl utoipa::ToSchema for CampaignView {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((CampaignSpec::name().into(), CampaignSpec::schema()));
        CampaignSpec::schemas(schemas);
        schemas.push((Shown::name().into(), Shown::schema()));
    }
}

pub fn view(row: CampaignRow, now: DateTime<Utc>) -> CampaignView {
    let status = row.status.shown(dates(&row), timestamp(now));
    CampaignView {
        id: row.id,
        status,
        spec: row.spec.0,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

fn dates(row: &CampaignRow) -> Dates {
    let schedule = &row.spec.0.schedule;
    Dates { start: timestamp(schedule.start), end: schedule.end.map(timestamp) }
}

/// What the lifecycle says of `action` on this campaign now: the status after it, or a 409.
fn check(row: &CampaignRow, action: Action) -> Result<Status, ApiError> {
    lifecycle::apply(row.status, action, dates(row), timestamp(Utc::now()))
        .map_err(|refused| ApiError::Conflict(refused.to_string()))
}

/// Why the lifecycle refuses `action` on this campaign now, if it does: the dashboard offers only the
/// actions it allows.
pub fn refusal(row: &CampaignRow, action: Action) -> Option<String> {
    check(row, action).err().map(|refused| refused.to_string())
}

/// Whole seconds, as the core (and so the resolver) reads every time.
fn timestamp(time: DateTime<Utc>) -> Timestamp {
    Timestamp(time.timestamp())
}

#[utoipa::path(
    post,
    path = "/campaigns",
    tag = "campaigns",
    summary = "Create a campaign (a draft)",
    security(("api_key" = [])),
    request_body = CampaignSpec,
    responses(
        (status = 201, description = "Created, as a draft.", body = CampaignView),
        (status = 422, description = "The body does not parse (`invalid_body`) or breaks rules (`validation_failed`, every field listed).", body = ErrorResponse),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Editor(actor): Editor,
    JsonBody(spec): JsonBody<CampaignSpec>,
) -> Result<(StatusCode, Json<CampaignView>), ApiError> {
    Ok((StatusCode::CREATED, Json(create_campaign(&state, &actor, &spec).await?)))
}

/// Creates a draft campaign from `spec` as `actor`: validated by the core against the live segments,
/// audited; for this API and the dashboard.
pub async fn create_campaign(
    state: &AppState,
    actor: &Actor,
    spec: &CampaignSpec,
) -> Result<CampaignView, ApiError> {
    let mut tx = db::begin(&state.db).await?;
    spec.to_core(0, &segments::ids_by_name(&mut *tx).await?)?;
    let row = campaigns::insert(&mut tx, actor, spec).await?;
    tx.commit().await?;
    Ok(view(row, Utc::now()))
}

#[utoipa::path(
    get,
    path = "/campaigns/{id}",
    tag = "campaigns",
    security(("api_key" = [])),
    params(("id" = i64, Path)),
    responses(
        (status = 200, body = CampaignView),
        (status = 404, description = "No such campaign.", body = ErrorResponse),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    _: Viewer,
    Path(id): Path<i64>,
) -> Result<Json<CampaignView>, ApiError> {
    let row = campaigns::get(&state.db, id).await?.ok_or(ApiError::NotFound("campaign"))?;
    Ok(Json(view(row, Utc::now())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListFilter {
    /// Stored status: draft, active, paused or ended.
    #[param(pattern = "^(draft|active|paused|ended)$")]
    status: Option<String>,
    /// Case-insensitive substring of the name.
    q: Option<String>,
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
    path = "/campaigns",
    tag = "campaigns",
    summary = "Campaigns, newest first",
    security(("api_key" = [])),
    params(ListFilter),
    responses((status = 200, body = Paged<CampaignView>))
)]
pub async fn list(
    State(state): State<AppState>,
    _: Viewer,
    Query(filter): Query<ListFilter>,
) -> Result<Json<Paged<CampaignView>>, ApiError> {
    let page: Page = PageQuery { page: filter.page, page_size: filter.page_size }.validate()?;
    Ok(Json(find(&state, filter.status.as_deref(), filter.q.as_deref(), page).await?))
}

/// Campaigns with the stored status `status` (draft, active, paused or ended) whose name holds `q`,
/// newest first: for this API and the dashboard's list.
pub async fn find(
    state: &AppState,
    status: Option<&str>,
    q: Option<&str>,
    page: Page,
) -> Result<Paged<CampaignView>, ApiError> {
    let status = match status {
        Some(raw) => Some(
            Status::parse(raw)
                .ok_or_else(|| ApiError::bad_field("status", "must be draft, active, paused or ended"))?,
        ),
        None => None,
    };
    let (rows, total) = campaigns::list(&state.db, status, q, page.page_size, page.offset()).await?;
    let now = Utc::now();
    Ok(Paged::new(rows.into_iter().map(|r| view(r, now)).collect(), page, total))
}

#[utoipa::path(
    put,
    path = "/campaigns/{id}",
    tag = "campaigns",
    summary = "Replace a campaign's definition",
    security(("api_key" = [])),
    params(("id" = i64, Path)),
    request_body = CampaignSpec,
    responses(
        (status = 200, body = CampaignView),
        (status = 404, description = "No such campaign.", body = ErrorResponse),
        (status = 409, description = "An ended campaign cannot change.", body = ErrorResponse),
        (status = 422, description = "The body does not parse or breaks rules.", body = ErrorResponse),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Editor(actor): Editor,
    Path(id): Path<i64>,
    JsonBody(spec): JsonBody<CampaignSpec>,
) -> Result<Json<CampaignView>, ApiError> {
    Ok(Json(update_campaign(&state, &actor, id, &spec).await?))
}

/// Replaces campaign `id`'s spec as `actor`: allowed by the lifecycle, validated by the core, audited,
/// published; for this API and the dashboard.
pub async fn update_campaign(
    state: &AppState,
    actor: &Actor,
    id: i64,
    spec: &CampaignSpec,
) -> Result<CampaignView, ApiError> {
    let mut tx = db::begin(&state.db).await?;
    let before = campaigns::lock(&mut tx, id).await?.ok_or(ApiError::NotFound("campaign"))?;
    check(&before, Action::Update)?;
    spec.to_core(id, &segments::ids_by_name(&mut *tx).await?)?;
    let row = campaigns::update_spec(&mut tx, actor, &before, spec).await?;
    tx.commit().await?;
    projection::publish_after_write(state).await;
    Ok(view(row, Utc::now()))
}

#[utoipa::path(
    delete,
    path = "/campaigns/{id}",
    tag = "campaigns",
    security(("api_key" = [])),
    params(("id" = i64, Path)),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such campaign.", body = ErrorResponse),
        (status = 409, description = "A live campaign cannot be deleted: pause or end it first.", body = ErrorResponse),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Editor(actor): Editor,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    delete_campaign(&state, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes campaign `id` (softly) as `actor`: allowed by the lifecycle, audited, published; for this API
/// and the dashboard.
pub async fn delete_campaign(state: &AppState, actor: &Actor, id: i64) -> Result<(), ApiError> {
    let mut tx = db::begin(&state.db).await?;
    let before = campaigns::lock(&mut tx, id).await?.ok_or(ApiError::NotFound("campaign"))?;
    check(&before, Action::Delete)?;
    campaigns::soft_delete(&mut tx, actor, &before).await?;
    tx.commit().await?;
    projection::publish_after_write(state).await;
    Ok(())
}

/// Applies lifecycle `action` to campaign `id` as `actor`: checked by the core, audited, published; for
/// this API and the dashboard.
pub async fn transition(
    state: &AppState,
    actor: &Actor,
    id: i64,
    action: Action,
) -> Result<Json<CampaignView>, ApiError> {
    let mut tx = db::begin(&state.db).await?;
    let before = campaigns::lock(&mut tx, id).await?.ok_or(ApiError::NotFound("campaign"))?;
    let to = check(&before, action)?;
    if action == Action::Activate {
        // Re-validate: a segment it names may have been deleted since it was saved.
        before.spec.0.to_core(id, &segments::ids_by_name(&mut *tx).await?)?;
    }
    let row = campaigns::set_status(&mut tx, actor, &before, to, action.as_str()).await?;
    tx.commit().await?;
    projection::publish_after_write(state).await;
    Ok(Json(view(row, Utc::now())))
}

#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Only its schema is used: the path is parsed by the core.
enum LifecycleAction {
    Activate,
    Pause,
    End,
}

#[derive(Debug, Deserialize)]
pub struct LifecyclePath {
    id: String,
    action: String,
}

/// `POST /admin/v1/campaigns/{id}/{activate|pause|end}`.
#[utoipa::path(
    post,
    path = "/campaigns/{id}/{action}",
    tag = "campaigns",
    summary = "Activate, pause or end a campaign",
    description = "`draft -> active (scheduled until its start) -> paused -> ended`.",
    security(("api_key" = [])),
    params(("id" = i64, Path), ("action" = inline(LifecycleAction), Path)),
    responses(
        (status = 200, body = CampaignView),
        (status = 404, description = "No such campaign, or not an action.", body = ErrorResponse),
        (status = 409, description = "The lifecycle does not allow it from the campaign's status.", body = ErrorResponse),
        (status = 422, description = "Activating a campaign whose segments were deleted since.", body = ErrorResponse),
    )
)]
pub async fn lifecycle(
    State(state): State<AppState>,
    Editor(actor): Editor,
    Path(path): Path<LifecyclePath>,
) -> Result<Json<CampaignView>, ApiError> {
    let action = Action::parse_transition(&path.action).ok_or(ApiError::NotFound("action"))?;
    let id = path.id.parse().map_err(|_| ApiError::bad_field("id", "the campaign id must be a number"))?;
    transition(&state, &actor, id, action).await
}
