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
use axum::routing::{get, post, put};
use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/campaigns", post(campaigns::create).get(campaigns::list))
        .route("/campaigns/{id}", get(campaigns::get).put(campaigns::update).delete(campaigns::delete))
        .route("/campaigns/{id}/preview", get(preview::campaign_preview))
        .route("/campaigns/{id}/stats", get(stats::campaign))
        .route("/campaigns/{id}/{action}", post(campaigns::lifecycle))
        .route("/preview", get(preview::preview))
        // Uploads are streamed and bounded by their own configurable limit.
        .route(
            "/segments/{name}",
            put(segments::upload)
                .get(segments::get)
                .delete(segments::delete)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/segments", get(segments::list))
        .route("/keys", post(keys::create).get(keys::list))
        .route("/keys/{id}", axum::routing::delete(keys::revoke))
        .route("/audit", get(audit::list))
        .route("/settings", get(settings::get).put(settings::put))
        .merge(crate::messaging::router())
}
