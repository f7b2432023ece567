//! The admin API under `/admin/v1`, authenticated by API key with the role each route names (see
//! [`crate::http::auth`]).

pub mod audit;
pub mod campaigns;
pub mod keys;
pub mod preview;
pub mod segments;
pub mod settings;
pub mod stats;

use axum::extract::DefaultBodyLimit;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::state::AppState;

/// The admin routes; each handler's `#[utoipa::path]` gives its path, under `/admin/v1`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(campaigns::create, campaigns::list))
        .routes(routes!(campaigns::get, campaigns::update, campaigns::delete))
        .routes(routes!(preview::campaign_preview))
        .routes(routes!(stats::campaign))
        .routes(routes!(campaigns::lifecycle))
        .routes(routes!(preview::preview))
        // Uploads are streamed and bounded by their own configurable limit.
        .routes(routes!(segments::upload).layer(DefaultBodyLimit::disable()))
        .routes(routes!(segments::get, segments::delete))
        .routes(routes!(segments::list))
        .routes(routes!(keys::create, keys::list))
        .routes(routes!(keys::revoke))
        .routes(routes!(audit::list))
        .routes(routes!(settings::get, settings::put))
        .merge(crate::messaging::router())
}
