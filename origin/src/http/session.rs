//! The dashboard's sessions: the cookie, and authorization by type for pages. A page handler names the
//! role it needs in its signature ([`SignedInViewer`], [`SignedInEditor`], [`SignedInAdmin`]); the
//! extractor finds the session behind the cookie and checks the person's role before the handler runs.
//!
//! Without a session, a page (`GET`) redirects to the sign-in page and comes back after it; a write is
//! refused with 403, as is anything the person's role does not allow. Refusals carry a [`Refusal`] in the
//! response's extensions, which the dashboard renders as a page in the person's language.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use popup_core::access::Permission;

use super::error::ApiError;
use crate::db::people::Person;
use crate::db::sessions;
use crate::state::AppState;

/// The cookie's name when it is `Secure`: the `__Host-` prefix makes browsers refuse it unless it is
/// Secure, has no Domain and the path `/`, so no sibling host can set or shadow it.
pub const SECURE_COOKIE: &str = "__Host-popup_session";
/// The cookie's name over plain http in local development, where `__Host-` cookies are refused.
pub const INSECURE_COOKIE: &str = "popup_session";
/// The language of pages shown before sign-in (and of error pages); not a secret.
pub const LANGUAGE_COOKIE: &str = "popup_lang";

/// Why a dashboard request was refused; the dashboard renders it as a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Signed in, but the role does not allow it.
    Forbidden,
    /// A write without a valid CSRF token, or from another site.
    Csrf,
    /// A write without a session.
    SignedOut,
    /// Sign-in attempts throttled, for this many seconds.
    Throttled(u64),
    NotFound,
    /// Something the request sent cannot be read.
    BadRequest(String),
    /// Postgres or Redis cannot answer now.
    Unavailable,
    Internal,
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Forbidden | Refusal::Csrf | Refusal::SignedOut => StatusCode::FORBIDDEN,
            Refusal::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            Refusal::NotFound => StatusCode::NOT_FOUND,
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Refusal {
        match error {
            ApiError::Unavailable => Refusal::Unavailable,
            ApiError::NotFound(_) => Refusal::NotFound,
            ApiError::Forbidden => Refusal::Forbidden,
            ApiError::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "internal error");
                Refusal::Internal
            }
            other => Refusal::BadRequest(other.to_string()),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (self.status(), self.status().canonical_reason().unwrap_or("")).into_response();
        if let Refusal::Throttled(seconds) = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// A session extractor's refusal: to the sign-in page, or a [`Refusal`].
#[derive(Debug)]
pub enum SessionRejection {
    SignIn { next: String },
    Refused(Refusal),
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        match self {
            SessionRejection::SignIn { next } => {
                let next: String = form_urlencoded_byte_serialize(&next);
                let location = format!("/ui/signin?next={next}");
                (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
            }
            SessionRejection::Refused(refusal) => refusal.into_response(),
        }
    }
}

/// Percent-encodes a path for a query value.
fn form_urlencoded_byte_serialize(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A person with an open session, and the CSRF token of that session (for forms and htmx).
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub person: Person,
    pub csrf: String,
}

/// The session token the request's cookie carries, if any.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SECURE_COOKIE).or_else(|| cookie(headers, INSECURE_COOKIE))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

/// The CSRF token of a session: derived from the session's secret token, so nothing more is stored, and
/// it cannot be known without the cookie, which no other site can read.
pub fn csrf_token(session_token: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("popup dashboard csrf\0{session_token}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// The `Set-Cookie` value that opens a session.
pub fn session_cookie(state: &AppState, token: &str) -> String {
    let lifetime = state.dashboard.sessions.absolute.as_secs();
    if state.dashboard.secure_cookies {
        format!("{SECURE_COOKIE}={token}; Path=/; Max-Age={lifetime}; HttpOnly; Secure; SameSite=Strict")
    } else {
        format!("{INSECURE_COOKIE}={token}; Path=/; Max-Age={lifetime}; HttpOnly; SameSite=Strict")
    }
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn cleared_cookie(state: &AppState) -> String {
    if state.dashboard.secure_cookies {
        format!("{SECURE_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
    } else {
        format!("{INSECURE_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")
    }
}

/// The signed-in person, whatever their role.
async fn signed_in(parts: &Parts, state: &AppState) -> Result<SignedIn, SessionRejection> {
    let refuse = || {
        if parts.method == Method::GET || parts.method == Method::HEAD {
            // Inside the nested router the URI has lost its `/ui` prefix; the original one has it.
            let uri = parts.extensions.get::<axum::extract::OriginalUri>().map_or(&parts.uri, |o| &o.0);
            let next = uri.path_and_query().map_or("/ui/", |p| p.as_str()).to_string();
            SessionRejection::SignIn { next }
        } else {
            SessionRejection::Refused(Refusal::SignedOut)
        }
    };
    let token = session_token(&parts.headers).ok_or_else(refuse)?;
    let person = sessions::touch(&state.db, &token, state.dashboard.sessions)
        .await
        .map_err(|e| SessionRejection::Refused(ApiError::from(e).into()))?
        .ok_or_else(refuse)?;
    Ok(SignedIn { person, csrf: csrf_token(&token) })
}

macro_rules! person_extractor {
    ($(#[$doc:meta])* $name:ident, $permission:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name(pub SignedIn);

        impl FromRequestParts<AppState> for $name {
            type Rejection = SessionRejection;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, SessionRejection> {
                let signed_in = signed_in(parts, state).await?;
                if signed_in.person.role.permits($permission) {
                    Ok($name(signed_in))
                } else {
                    Err(SessionRejection::Refused(Refusal::Forbidden))
                }
            }
        }
    };
}

person_extractor!(
    /// A signed-in person who may read: viewers, editors, admins.
    SignedInViewer,
    Permission::Read
);
person_extractor!(
    /// A signed-in person who may write campaigns, segments, messages and settings: editors, admins.
    SignedInEditor,
    Permission::Write
);
person_extractor!(
    /// A signed-in person who may manage people and API keys: admins.
    SignedInAdmin,
    Permission::ManageKeys
);
