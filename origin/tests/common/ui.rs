//! A browser-like client of the dashboard for HTTP-level tests: it signs in with a form, keeps the session
//! cookie, reads the CSRF token from the page as a browser's script would, and sends forms with it.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use popup_core::access::Role;
use popup_origin::db::audit::Actor;
use popup_origin::db::people::{self, Language, NewPerson, Person};
use tower::ServiceExt;

use super::TestApp;

pub const PASSWORD: &str = "correct horse battery staple";

/// An answer: status, headers and the body as text.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The value of `<meta name="csrf-token" content="...">`.
    pub fn csrf(&self) -> String {
        let at = self.body.find("name=\"csrf-token\" content=\"").expect("a page with a CSRF token");
        let rest = &self.body[at + "name=\"csrf-token\" content=\"".len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

pub async fn person(app: &TestApp, email: &str, role: Role, language: Language) -> Person {
    let new =
        NewPerson { email, display_name: &format!("{role:?} person"), role, language, password: PASSWORD };
    people::create(&app.state.db, &Actor::system(), &new).await.unwrap()
}

/// One browser: a cookie jar of one session cookie.
pub struct Browser<'a> {
    pub app: &'a TestApp,
    pub cookie: Option<String>,
    pub csrf: String,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Browser<'a> {
        Browser { app, cookie: None, csrf: String::new() }
    }

    /// Signs in as `email` with [`PASSWORD`]; panics unless it works.
    pub async fn signed_in(app: &'a TestApp, email: &str) -> Browser<'a> {
        let mut browser = Browser::new(app);
        let answer = browser.sign_in(email, PASSWORD).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        let page = browser.get("/ui/campaigns").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        browser.csrf = page.csrf();
        browser
    }

    pub async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        let body = serde_urlencoded::to_string([("email", email), ("password", password)]).unwrap();
        let page = self.send(Method::POST, "/ui/signin", form(body), &[]).await;
        for value in page.headers.get_all(header::SET_COOKIE) {
            let value = value.to_str().unwrap();
            if value.contains("popup_session=") {
                self.cookie = Some(value.split(';').next().unwrap().to_string());
            }
        }
        page
    }

    pub async fn get(&self, uri: &str) -> Page {
        self.send(Method::GET, uri, (Body::empty(), "text/html"), &[]).await
    }

    /// A form post with this session's CSRF token in its `csrf` field.
    pub async fn post_form(&self, uri: &str, fields: &[(&str, &str)]) -> Page {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        let body = serde_urlencoded::to_string(&all).unwrap();
        self.send(Method::POST, uri, form(body), &[]).await
    }

    pub async fn send(&self, method: Method, uri: &str, body: (Body, &str), extra: &[(&str, &str)]) -> Page {
        let (body, content_type) = body;
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "backoffice.example")
            .header(header::CONTENT_TYPE, content_type);
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let response = self.app.router.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Page { status, headers, body: String::from_utf8_lossy(&bytes).into() }
    }
}

pub fn form(body: String) -> (Body, &'static str) {
    (Body::from(body), "application/x-www-form-urlencoded")
}
