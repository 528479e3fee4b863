//! The panel's files (`runtime/panel/`), compiled into the binary so `cargo build` alone
//! makes a server with a working panel and no request ever leaves for a CDN. Every answer
//! carries a strict Content-Security-Policy: scripts, styles and connections from this
//! origin only, no inline script, no framing.

use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::http::error::{ApiError, ErrorCode};

/// The panel's source folder, as it was when the binary was built.
#[derive(RustEmbed)]
#[folder = "panel/"]
struct Files;

/// The policy of every panel answer.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `GET /panel`: the page every view of the panel starts from.
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /panel/{*file}`: one of the panel's files.
pub async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    if path.is_empty() {
        return serve("index.html", &headers);
    }
    serve(&path, &headers)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Files::get(path) else {
        return ApiError::new(ErrorCode::NotFound, format!("no panel file {path:?}"))
            .into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(CONTENT_TYPE, HeaderValue::from_static(content_type(path)))],
            file.data.into_owned(),
        )
            .into_response()
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, v);
    }
    // Revalidated on every load: a new binary's panel is seen at once.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

/// Every file the panel has, for tests.
pub fn names() -> Vec<String> {
    Files::iter().map(|n| n.into_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_a_known_type_and_the_page_names_only_its_own_files() {
        let names = names();
        assert!(names.iter().any(|n| n == "index.html"), "{names:?}");
        for n in &names {
            assert_ne!(
                content_type(n),
                "application/octet-stream",
                "{n}: add its type to content_type"
            );
        }
        let page = Files::get("index.html")
            .map(|f| f.data.into_owned())
            .unwrap_or_default();
        let page = String::from_utf8_lossy(&page);
        assert!(!page.contains("<script>"), "no inline script: {page}");
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no third-party request"
        );
    }
}
