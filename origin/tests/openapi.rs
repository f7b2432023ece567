//! The OpenAPI document and the router agree: every route the router serves is in the document (or is one of
//! the routes outside the JSON API by design, `popup_origin::docs::OUTSIDE_THE_SPEC`), with exactly the
//! methods the document lists; and every operation of the document is routed. `/openapi.json` and `/docs`
//! are served, the page under a strict Content-Security-Policy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::TestApp;
use http_body_util::BodyExt;
use popup_origin::docs::OUTSIDE_THE_SPEC;
use serde_json::Value;
use sqlx::PgPool;
use tower::ServiceExt;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// The paths the router serves, read from its `Debug` form (axum lists every route's path there; it has no
/// other way to list them). Fails rather than passing silently if that form stops listing them.
fn router_paths(router: &axum::Router) -> BTreeSet<String> {
    let text = format!("{router:?}");
    // The routes; what follows is the fallback's own router (`/` and a catch-all).
    let routes = text.split("fallback_router").next().unwrap_or_default();
    let mut paths = BTreeSet::new();
    let mut rest = routes;
    while let Some(at) = rest.find("RouteId(") {
        rest = &rest[at..];
        let Some(start) = rest.find(": \"") else { break };
        let after = &rest[start + 3..];
        let Some(end) = after.find('"') else { break };
        let path = &after[..end];
        // axum's own routes for fallbacks and nesting.
        if !path.contains("__private__") {
            paths.insert(path.to_string());
        }
        rest = &after[end..];
    }
    assert!(
        paths.contains("/v1/campaigns/popup"),
        "the router's Debug form no longer lists routes: {paths:?}"
    );
    paths
}

fn spec_operations(document: &Value) -> BTreeMap<String, BTreeSet<String>> {
    document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            let methods = METHODS.iter().filter(|m| item.get(**m).is_some()).map(|m| m.to_string()).collect();
            (path.clone(), methods)
        })
        .collect()
}

fn outside_the_spec(path: &str) -> bool {
    OUTSIDE_THE_SPEC.iter().any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")))
}

async fn answer(app: &TestApp, method: &str, path: &str) -> (StatusCode, Value) {
    let uri = path.split('/').map(|part| if part.starts_with('{') { "1" } else { part }).collect::<Vec<_>>();
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    app.call(method, &uri.join("/"), None, Body::empty(), "application/json").await
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn every_route_is_in_the_spec_with_its_methods_and_every_operation_is_routed(db: PgPool) {
    let app = TestApp::new(db).await;
    let document = serde_json::to_value(popup_origin::openapi()).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let operations = spec_operations(&document);
    let routed = router_paths(&app.router);

    let undocumented: Vec<&String> =
        routed.iter().filter(|path| !operations.contains_key(*path) && !outside_the_spec(path)).collect();
    assert!(undocumented.is_empty(), "routes missing from the OpenAPI document: {undocumented:?}");
    let unrouted: Vec<&String> = operations.keys().filter(|path| !routed.contains(*path)).collect();
    assert!(unrouted.is_empty(), "operations the router does not serve: {unrouted:?}");

    for (path, methods) in &operations {
        for method in METHODS {
            let (status, body) = answer(&app, method, path).await;
            if methods.contains(method) {
                // Routed: whatever the handler answers, it is not the router's own "no such route".
                assert!(
                    !(status == StatusCode::NOT_FOUND && body["error"]["message"] == "route not found"),
                    "{method} {path} is in the document but not routed"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}, not in the document: {body}"
                );
            }
        }
    }
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn every_operation_says_its_answers_and_admin_ones_their_key(db: PgPool) {
    let _app = TestApp::new(db).await;
    let document = serde_json::to_value(popup_origin::openapi()).unwrap();
    assert!(document["components"]["securitySchemes"]["api_key"]["scheme"] == "bearer", "{document:#}");
    let edge: BTreeSet<String> =
        ["/v1/campaigns/popup", "/v1/campaigns/{id}/{kind}", "/healthz"].map(String::from).into();
    let mut tagged_edge = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(operation) = item.get(method) else { continue };
            let responses = operation["responses"].as_object().unwrap();
            assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path}: no success answer");
            assert!(responses.contains_key("400"), "{method} {path}: no 400");
            let secured = operation.get("security").is_some();
            assert_eq!(secured, path.starts_with("/admin/") || path == "/v1/conversions", "{method} {path}");
            if secured {
                assert!(responses.contains_key("401") && responses.contains_key("403"), "{method} {path}");
            }
            for (status, response) in responses {
                if status.starts_with('4') || status == "503" && path != "/readyz" {
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(schema, "#/components/schemas/ErrorResponse", "{method} {path} {status}");
                }
            }
            if operation["tags"].as_array().unwrap().iter().any(|t| t == "edge") {
                tagged_edge.insert(path.clone());
            }
        }
    }
    assert_eq!(tagged_edge, edge, "the operations the edge serves");
}

async fn fetch(app: &TestApp, uri: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
}

#[sqlx::test(migrator = "popup_origin::MIGRATOR")]
async fn the_document_and_its_ui_are_served_from_the_binary(db: PgPool) {
    let app = TestApp::new(db).await;
    let (status, headers, body) = fetch(&app, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let served: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(served, serde_json::to_value(popup_origin::openapi()).unwrap());

    let (status, headers, page) = fetch(&app, "/docs").await;
    assert_eq!(status, StatusCode::OK);
    let page = String::from_utf8(page).unwrap();
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self';") && !csp.contains("unsafe"), "{csp}");
    assert!(
        !page.contains("<script>") && !page.contains("http"),
        "no inline script, nothing from elsewhere: {page}"
    );
    for asset in ["/docs/docs.js", "/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js"] {
        assert!(page.contains(asset), "{asset}");
        let (status, headers, body) = fetch(&app, asset).await;
        assert_eq!(status, StatusCode::OK, "{asset}");
        assert!(!body.is_empty() && headers.contains_key("content-security-policy"), "{asset}");
    }
}
