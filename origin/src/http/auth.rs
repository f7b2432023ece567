//! Authorization by type: a handler names the permission it needs in its signature ([`Viewer`], [`Editor`],
//! [`Admin`], [`PostsConversions`]), and the extractor authenticates the caller's API key
//! (`Authorization: Bearer <key>`) and checks the role before the handler runs, so no handler can forget.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use popup_core::access::Permission;

use super::error::ApiError;
use crate::db::audit::Actor;
use crate::db::keys;
use crate::state::AppState;

/// The caller, authenticated, whatever their role.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<Actor, ApiError> {
    let header = parts.headers.get(axum::http::header::AUTHORIZATION).ok_or(ApiError::Unauthorized)?;
    let key = header.to_str().ok().and_then(|h| h.strip_prefix("Bearer ")).ok_or(ApiError::Unauthorized)?;
    keys::find(&state.db, key.trim()).await?.ok_or(ApiError::Unauthorized)
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $permission:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name(pub Actor);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
                let actor = authenticate(parts, state).await?;
                if actor.role.permits($permission) {
                    Ok($name(actor))
                } else {
                    Err(ApiError::Forbidden)
                }
            }
        }
    };
}

role_extractor!(
    /// A caller who may read: viewers, editors, admins.
    Viewer,
    Permission::Read
);
role_extractor!(
    /// A caller who may write campaigns, segments and messages: editors, admins.
    Editor,
    Permission::Write
);
role_extractor!(
    /// A caller who may manage API keys: admins.
    Admin,
    Permission::ManageKeys
);
role_extractor!(
    /// A caller who may post conversions: the bank's backend (`conversions`), editors, admins.
    PostsConversions,
    Permission::PostConversions
);
