//! Authorization checked inside a handler, for the routes not yet on the role extractors of
//! [`crate::http::auth`].

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use popup_core::access::Permission;
pub use popup_core::access::Role;

pub use crate::db::audit::Actor;
use crate::http::ApiError;
use crate::state::AppState;

pub trait Require {
    fn require(&self, role: Role) -> Result<(), ApiError>;
    fn require_conversions(&self) -> Result<(), ApiError>;
}

impl Require for Actor {
    fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    fn require_conversions(&self) -> Result<(), ApiError> {
        if self.role.permits(Permission::PostConversions) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Actor, ApiError> {
        let crate::http::Viewer(actor) = match crate::http::Viewer::from_request_parts(parts, state).await {
            Ok(viewer) => viewer,
            // A conversions key is authenticated too; the handler decides what it may do.
            Err(ApiError::Forbidden) => return crate::http::auth::any_role(parts, state).await,
            Err(error) => return Err(error),
        };
        Ok(actor)
    }
}
