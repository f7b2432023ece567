//! Signing in and out, and the language switch. Sign-in is throttled per account and per address
//! ([`sessions::MAX_FAILURES`] failures within [`sessions::FAILURE_WINDOW`], then 429 with `Retry-After`),
//! and says only "wrong email or password", whichever it was.

use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Form;
use serde::Deserialize;

use super::{render, request_language, Chrome, PageResult};
use crate::db::people::{self, Language};
use crate::db::sessions;
use crate::http::session::{self, Refusal, SignedInViewer};
use crate::http::{ApiError, Query};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "ui/signin.html")]
struct SignInPage {
    c: Chrome,
    next: String,
    email: String,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Where to go after sign-in: a dashboard path of ours, never another site (`//evil`, `https://`).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next) if next.starts_with("/ui/") && !next.starts_with("//") && !next.contains('\\') => {
            next.into()
        }
        _ => "/ui/campaigns".into(),
    }
}

/// `GET /ui/signin`.
pub async fn page(headers: HeaderMap, query: Result<Query<NextQuery>, ApiError>) -> Response {
    let next = safe_next(query.as_ref().ok().and_then(|Query(q)| q.next.as_deref()));
    let c = Chrome::anonymous(request_language(&headers));
    render(&SignInPage { c, next, email: String::new(), error: None })
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// The address attempts are counted against: the peer's, when the server knows it.
fn address(peer: Option<Extension<ConnectInfo<SocketAddr>>>) -> String {
    peer.map_or_else(|| "unknown".into(), |Extension(ConnectInfo(addr))| addr.ip().to_string())
}

/// `POST /ui/signin`.
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    Form(form): Form<SignInForm>,
) -> PageResult {
    let address = address(peer);
    let email = form.email.trim().to_string();
    let next = safe_next(form.next.as_deref());
    if let Some(seconds) =
        sessions::throttled_for(&state.db, &email, &address).await.map_err(ApiError::from)?
    {
        return Err(Refusal::Throttled(seconds));
    }
    let person = people::authenticate(&state.db, &email, &form.password).await.map_err(ApiError::from)?;
    sessions::record_attempt(&state.db, &email, &address, person.is_some()).await.map_err(ApiError::from)?;
    let Some(person) = person else {
        let c = Chrome::anonymous(request_language(&headers));
        let error = Some(c.t("signin.wrong"));
        let mut response = render(&SignInPage { c, next, email, error });
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(response);
    };
    let token =
        sessions::create(&state.db, &person, state.dashboard.sessions).await.map_err(ApiError::from)?;
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, next), (header::SET_COOKIE, session::session_cookie(&state, &token))],
        [(header::SET_COOKIE, language_cookie(person.language))],
    )
        .into_response())
}

fn language_cookie(language: Language) -> String {
    format!("{}={}; Path=/; Max-Age=31536000; SameSite=Strict", session::LANGUAGE_COOKIE, language.as_str())
}

/// `POST /ui/signout`: ends the session whatever role it has.
pub async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> PageResult {
    if let Some(token) = session::session_token(&headers) {
        sessions::end(&state.db, &token).await.map_err(ApiError::from)?;
    }
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, "/ui/signin".to_string()), (header::SET_COOKIE, session::cleared_cookie(&state))],
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub struct LanguageForm {
    lang: String,
    next: Option<String>,
}

/// `POST /ui/language`: the person's language, kept on their account.
pub async fn language(
    State(state): State<AppState>,
    SignedInViewer(signed_in): SignedInViewer,
    Form(form): Form<LanguageForm>,
) -> PageResult {
    let language = Language::parse(&form.lang).ok_or_else(|| Refusal::BadRequest("lang: en or id".into()))?;
    people::set_language(&state.db, signed_in.person.id, language).await.map_err(ApiError::from)?;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, safe_next(form.next.as_deref())),
            (header::SET_COOKIE, language_cookie(language)),
        ],
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn sign_in_only_returns_to_our_own_pages() {
        assert_eq!(safe_next(Some("/ui/segments?page=2")), "/ui/segments?page=2");
        for bad in ["//evil.example/ui/", "https://evil.example", "/ui\\evil", "/admin/v1/keys"] {
            assert_eq!(safe_next(Some(bad)), "/ui/campaigns", "{bad}");
        }
        assert_eq!(safe_next(None), "/ui/campaigns");
    }
}
