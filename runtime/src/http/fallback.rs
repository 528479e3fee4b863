//! What answers when no route does: JSON 404 and 405 in the usual error shape.

use axum::http::{Method, Uri};

use crate::http::error::{ApiError, ErrorCode};

/// JSON 404 for unknown routes.
pub(crate) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("No route for {method} {}", uri.path()),
    )
}

/// JSON 405 for known routes with another method.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    )
}
