//! The dashboard's stylesheet and script, compiled into the binary (no CDN: the dashboard works
//! offline). Served at `/ui/assets/{file}` without authentication: they hold no data.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The stylesheet.
pub const STYLE_CSS: &str = include_str!("assets/style.css");
/// The live tail's script (EventSource, pause and resume by event id).
pub const TAIL_JS: &str = include_str!("assets/tail.js");

/// `GET /ui/assets/{file}`.
pub async fn serve(Path(file): Path<String>) -> Response {
    let (body, ctype) = match file.as_str() {
        "style.css" => (STYLE_CSS, "text/css; charset=utf-8"),
        "tail.js" => (TAIL_JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}
