//! The dashboard's own script, stylesheet and icon, compiled into the binary (nothing loads from
//! a CDN). Served with a long cache lifetime: their URLs carry the build's version. The icon is
//! also the API's `/favicon.ico`, which browsers ask for on any page (`/docs` too).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::extract::Path;

/// (file name, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/dashboard/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/dashboard/app.css"),
    ),
    ("icon.svg", "image/svg+xml", ICON),
];

const ICON: &[u8] = include_bytes!("../../assets/dashboard/icon.svg");

/// The version in asset URLs, so a new build is never served a cached old script.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `/favicon.ico`: the dashboard's icon.
pub async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        ICON,
    )
        .into_response()
}

pub async fn serve(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
