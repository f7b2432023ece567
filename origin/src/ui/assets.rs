//! The dashboard's scripts and styles, embedded in the binary: ours (`origin/assets/ui/`) and the
//! vendored npm packages (`origin/assets/vendor/`, see `scripts/vendor-assets`). Each is served at
//! `/ui/assets/<hash>/<name>`, the hash being the first hex digits of its SHA-256, so a URL's content never
//! changes and browsers may keep it for a year; a new build changes the URL.

use std::sync::LazyLock;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::http::Path;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset { name: "ui.css", content_type: "text/css", bytes: include_bytes!("../../assets/ui/ui.css") },
    Asset { name: "ui.js", content_type: "text/javascript", bytes: include_bytes!("../../assets/ui/ui.js") },
    Asset {
        name: "editor.js",
        content_type: "text/javascript",
        bytes: include_bytes!("../../assets/ui/editor.js"),
    },
    Asset {
        name: "editor.css",
        content_type: "text/css",
        bytes: include_bytes!("../../assets/ui/editor.css"),
    },
    // The editor's WebAssembly (scripts/build-editor-wasm) and its wasm-bindgen glue.
    Asset {
        name: "popup_editor_wasm.js",
        content_type: "text/javascript",
        bytes: include_bytes!("../../assets/editor/popup_editor_wasm.js"),
    },
    Asset {
        name: "popup_editor_wasm_bg.wasm",
        content_type: "application/wasm",
        bytes: include_bytes!("../../assets/editor/popup_editor_wasm_bg.wasm"),
    },
    Asset {
        name: "stats.js",
        content_type: "text/javascript",
        bytes: include_bytes!("../../assets/ui/stats.js"),
    },
    Asset {
        name: "htmx.min.js",
        content_type: "text/javascript",
        bytes: include_bytes!("../../assets/vendor/htmx.org/dist/htmx.min.js"),
    },
    Asset {
        name: "uPlot.iife.min.js",
        content_type: "text/javascript",
        bytes: include_bytes!("../../assets/vendor/uplot/dist/uPlot.iife.min.js"),
    },
    Asset {
        name: "uPlot.min.css",
        content_type: "text/css",
        bytes: include_bytes!("../../assets/vendor/uplot/dist/uPlot.min.css"),
    },
];

static HASHES: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| Sha256::digest(asset.bytes)[..6].iter().map(|b| format!("{b:02x}")).collect())
        .collect()
});

/// The URL of asset `name`.
pub fn url(name: &str) -> String {
    match ASSETS.iter().position(|asset| asset.name == name) {
        Some(at) => format!("/ui/assets/{}/{name}", HASHES[at]),
        None => format!("/ui/assets/missing/{name}"),
    }
}

/// `GET /ui/assets/{hash}/{name}`.
pub async fn serve(Path((hash, name)): Path<(String, String)>) -> Response {
    let Some(at) = ASSETS.iter().position(|asset| asset.name == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if HASHES[at] != hash {
        // An old page asking for an asset of another build: a 404 rather than content its URL did not mean.
        return StatusCode::NOT_FOUND.into_response();
    }
    let asset = &ASSETS[at];
    (
        [
            (header::CONTENT_TYPE, format!("{}; charset=utf-8", asset.content_type)),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable".to_string()),
        ],
        asset.bytes,
    )
        .into_response()
}
