//! The embeddable chat widget: a page, a script and a style sheet, built into the binary and
//! served under `/chat/`. Plain JavaScript without a build step; a company embeds it with
//! `<script src="https://chat.example/chat/widget.js" data-tenant="acme"></script>`.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::json;

use crate::listener::json_response;

/// Where the widget's files are served (the WebSocket endpoint is under it too).
pub const PREFIX: &str = "/chat/";

const PAGE: &str = include_str!("widget/index.html");
const SCRIPT: &str = include_str!("widget/widget.js");
const STYLE: &str = include_str!("widget/widget.css");

/// Answers `GET /chat/...`: the page, the script, the style sheet, or 404.
pub(crate) fn serve(path: &str) -> Response<Full<Bytes>> {
    let (body, content_type) = match path {
        "/chat/" | "/chat/index.html" => (PAGE, "text/html; charset=utf-8"),
        "/chat/widget.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "/chat/widget.css" => (STYLE, "text/css; charset=utf-8"),
        _ => {
            return json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": "not_found", "message": "no such widget file", "fields": []}),
            );
        }
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Revalidated on each load, so a new version reaches every site at once.
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
