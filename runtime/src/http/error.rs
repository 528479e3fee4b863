//! The one error type of the HTTP API and the one enum of error codes.
//!
//! Every error a client sees is `{"error": "<sentence>", "code": "<UPPER_SNAKE>", "status": N}`.
//! The sentence may change; a code never does once released. 5xx bodies stay generic while the
//! cause is logged.

use std::borrow::Cow;
use std::fmt;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tessera_actors::{LicenseError, StoreError};

/// Every error code of the API, each with its HTTP status (see `docs/api.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    /// 404: no license with that key.
    LicenseNotFound,
    /// 403: the license is suspended.
    LicenseSuspended,
    /// 403: the license is revoked.
    LicenseRevoked,
    /// 403: the license is banned.
    LicenseBanned,
    /// 403: the license's `valid_until` has passed.
    LicenseExpired,
    /// 409: the license already has `max_devices` active devices.
    DeviceLimitReached,
    /// 409: the license has used its `max_activations`.
    ActivationLimitReached,
    /// 409: the license already has `max_sessions` live sessions.
    SessionLimitReached,
    /// 404: no session with that token.
    SessionNotFound,
    /// 410: the session has ended (timed out or otherwise); start a new one.
    SessionExpired,
    /// 403: the device is not activated for this license.
    NotActivated,
    /// 400: a field is missing or invalid; the message names it.
    ValidationError,
    /// 400: the body is not well-formed JSON; the message says where.
    InvalidJson,
    /// 401: the `X-API-Key` header is missing or wrong.
    InvalidApiKey,
    /// 429: too many requests; see `Retry-After`.
    RateLimited,
    /// 413: the body exceeds `server.body_limit_bytes`.
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 404: no such route.
    NotFound,
    /// 405: the route exists but not for this method.
    MethodNotAllowed,
    /// 503: the store did not answer in time; nothing was changed.
    StoreUnavailable,
    /// 403: a policy plugin denied the request.
    PolicyDenied,
    /// 500: a bug on our side; the cause is in the server log.
    InternalError,
    /// 408: the request took longer than `server.request_timeout_ms`.
    RequestTimeout,
    /// 401: an admin route without a valid admin key or operator token (or with an expired, revoked or logged-out one).
    Unauthenticated,
    /// 403: the credential is valid but lacks the route's scope (admin keys; also the system API key on any admin route).
    InsufficientScope,
    /// 403: the operator is logged in but their role does not allow the route.
    ForbiddenRole,
    /// 403: a change made with the panel's cookie without its session's `X-CSRF-Token`, or from another origin.
    CsrfFailed,
    /// 401: a login failed; the same answer for an unknown user, a wrong password and a locked or disabled account.
    InvalidCredentials,
    /// 401: the login's nonce, key id, timestamp or encrypted payload does not check out; get a new challenge.
    LoginChallengeInvalid,
    /// 400: a plaintext login while `enforce_login_payload_encryption` is on.
    EncryptionRequired,
    /// 403: an operator froze new activations (emergency control); existing activations keep working.
    ActivationsFrozen,
    /// 409: what the request would create exists already.
    Conflict,
    /// 404: no resource with that id (resource pools).
    ResourceNotFound,
    /// 409: the resource is allocated to a license (an allocation or a delete needs it free).
    ResourceUnavailable,
    /// 409: a release names a resource the license does not hold.
    ResourceNotAllocated,
    /// 404: the license has no device with that id.
    DeviceNotFound,
    /// 400: a destructive operation was sent without its confirmation (the license key).
    ConfirmationRequired,
    /// 404: no customer with that id.
    CustomerNotFound,
    /// 404: no product with that id.
    ProductNotFound,
    /// 404: no plan with that name.
    PlanNotFound,
    /// 404: no webhook endpoint with that id.
    WebhookNotFound,
    /// 404: the webhook endpoint has no delivery with that id.
    WebhookDeliveryNotFound,
    /// 400: the webhook URL's host is, or resolves to, an internal address while
    /// `webhooks.allow_private_targets` is off (or does not resolve).
    WebhookTargetRefused,
    /// 404: no operator with that username.
    OperatorNotFound,
    /// 404: no active admin key with that id.
    AdminKeyNotFound,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: &'static [ErrorCode] = &[
        Self::LicenseNotFound,
        Self::LicenseSuspended,
        Self::LicenseRevoked,
        Self::LicenseBanned,
        Self::LicenseExpired,
        Self::DeviceLimitReached,
        Self::ActivationLimitReached,
        Self::SessionLimitReached,
        Self::SessionNotFound,
        Self::SessionExpired,
        Self::NotActivated,
        Self::ValidationError,
        Self::InvalidJson,
        Self::InvalidApiKey,
        Self::RateLimited,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::StoreUnavailable,
        Self::PolicyDenied,
        Self::InternalError,
        Self::RequestTimeout,
        Self::Unauthenticated,
        Self::InsufficientScope,
        Self::ForbiddenRole,
        Self::CsrfFailed,
        Self::InvalidCredentials,
        Self::LoginChallengeInvalid,
        Self::EncryptionRequired,
        Self::ActivationsFrozen,
        Self::Conflict,
        Self::ResourceNotFound,
        Self::ResourceUnavailable,
        Self::ResourceNotAllocated,
        Self::DeviceNotFound,
        Self::ConfirmationRequired,
        Self::CustomerNotFound,
        Self::ProductNotFound,
        Self::PlanNotFound,
        Self::WebhookNotFound,
        Self::WebhookDeliveryNotFound,
        Self::WebhookTargetRefused,
        Self::OperatorNotFound,
        Self::AdminKeyNotFound,
    ];

    /// The HTTP status this code is always sent with.
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            LicenseNotFound
            | SessionNotFound
            | NotFound
            | ResourceNotFound
            | DeviceNotFound
            | CustomerNotFound
            | ProductNotFound
            | PlanNotFound
            | WebhookNotFound
            | WebhookDeliveryNotFound
            | OperatorNotFound
            | AdminKeyNotFound => StatusCode::NOT_FOUND,
            LicenseSuspended | LicenseRevoked | LicenseBanned | LicenseExpired | NotActivated
            | PolicyDenied => StatusCode::FORBIDDEN,
            DeviceLimitReached | ActivationLimitReached | SessionLimitReached => {
                StatusCode::CONFLICT
            }
            SessionExpired => StatusCode::GONE,
            ValidationError | InvalidJson => StatusCode::BAD_REQUEST,
            InvalidApiKey => StatusCode::UNAUTHORIZED,
            RateLimited => StatusCode::TOO_MANY_REQUESTS,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Unauthenticated | InvalidCredentials | LoginChallengeInvalid => {
                StatusCode::UNAUTHORIZED
            }
            InsufficientScope | ForbiddenRole | CsrfFailed | ActivationsFrozen => {
                StatusCode::FORBIDDEN
            }
            EncryptionRequired | ConfirmationRequired | WebhookTargetRefused => {
                StatusCode::BAD_REQUEST
            }
            Conflict | ResourceUnavailable | ResourceNotAllocated => StatusCode::CONFLICT,
        }
    }

    /// The wire form, e.g. `"LICENSE_NOT_FOUND"`.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            LicenseNotFound => "LICENSE_NOT_FOUND",
            LicenseSuspended => "LICENSE_SUSPENDED",
            LicenseRevoked => "LICENSE_REVOKED",
            LicenseBanned => "LICENSE_BANNED",
            LicenseExpired => "LICENSE_EXPIRED",
            DeviceLimitReached => "DEVICE_LIMIT_REACHED",
            ActivationLimitReached => "ACTIVATION_LIMIT_REACHED",
            SessionLimitReached => "SESSION_LIMIT_REACHED",
            SessionNotFound => "SESSION_NOT_FOUND",
            SessionExpired => "SESSION_EXPIRED",
            NotActivated => "NOT_ACTIVATED",
            ValidationError => "VALIDATION_ERROR",
            InvalidJson => "INVALID_JSON",
            InvalidApiKey => "INVALID_API_KEY",
            RateLimited => "RATE_LIMITED",
            PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            NotFound => "NOT_FOUND",
            MethodNotAllowed => "METHOD_NOT_ALLOWED",
            StoreUnavailable => "STORE_UNAVAILABLE",
            PolicyDenied => "POLICY_DENIED",
            InternalError => "INTERNAL_ERROR",
            RequestTimeout => "REQUEST_TIMEOUT",
            Unauthenticated => "UNAUTHENTICATED",
            InsufficientScope => "INSUFFICIENT_SCOPE",
            ForbiddenRole => "FORBIDDEN_ROLE",
            CsrfFailed => "CSRF_FAILED",
            InvalidCredentials => "INVALID_CREDENTIALS",
            LoginChallengeInvalid => "LOGIN_CHALLENGE_INVALID",
            EncryptionRequired => "ENCRYPTION_REQUIRED",
            ActivationsFrozen => "ACTIVATIONS_FROZEN",
            Conflict => "CONFLICT",
            ResourceNotFound => "RESOURCE_NOT_FOUND",
            ResourceUnavailable => "RESOURCE_UNAVAILABLE",
            ResourceNotAllocated => "RESOURCE_NOT_ALLOCATED",
            DeviceNotFound => "DEVICE_NOT_FOUND",
            ConfirmationRequired => "CONFIRMATION_REQUIRED",
            CustomerNotFound => "CUSTOMER_NOT_FOUND",
            ProductNotFound => "PRODUCT_NOT_FOUND",
            PlanNotFound => "PLAN_NOT_FOUND",
            WebhookNotFound => "WEBHOOK_NOT_FOUND",
            WebhookDeliveryNotFound => "WEBHOOK_DELIVERY_NOT_FOUND",
            WebhookTargetRefused => "WEBHOOK_TARGET_REFUSED",
            OperatorNotFound => "OPERATOR_NOT_FOUND",
            AdminKeyNotFound => "ADMIN_KEY_NOT_FOUND",
        }
    }

    /// The sentence sent when the caller gives none.
    pub fn default_message(self) -> &'static str {
        use ErrorCode::*;
        match self {
            LicenseNotFound => "License not found",
            LicenseSuspended => "License is suspended",
            LicenseRevoked => "License has been revoked",
            LicenseBanned => "License is banned",
            LicenseExpired => "License has expired",
            DeviceLimitReached => "Device limit reached for this license",
            ActivationLimitReached => "Activation limit reached for this license",
            SessionLimitReached => "Session limit reached for this license",
            SessionNotFound => "Session not found",
            SessionExpired => "Session has expired",
            NotActivated => "License is not activated on this device",
            ValidationError => "Invalid request",
            InvalidJson => "Request body is not valid JSON",
            InvalidApiKey => "Invalid or missing API key",
            RateLimited => "Too many requests",
            PayloadTooLarge => "Request body is too large",
            UnsupportedMediaType => "Expected Content-Type: application/json",
            NotFound => "Not found",
            MethodNotAllowed => "Method not allowed",
            StoreUnavailable => "Storage is temporarily unavailable",
            PolicyDenied => "Request denied by policy",
            InternalError => "Internal server error",
            RequestTimeout => "Request timed out",
            Unauthenticated => "Admin credentials are missing, invalid, expired or revoked",
            InsufficientScope => "This credential does not grant the scope this route needs",
            ForbiddenRole => "The operator's role does not allow this route",
            CsrfFailed => "The panel's change was not sent by the panel (CSRF token or origin)",
            InvalidCredentials => "Invalid username or password",
            LoginChallengeInvalid => "The login challenge is invalid, expired or already used",
            EncryptionRequired => "Only encrypted login payloads are accepted",
            ActivationsFrozen => "New activations are frozen by an operator",
            Conflict => "It exists already",
            ResourceNotFound => "Resource not found",
            ResourceUnavailable => "The resource is allocated to a license",
            ResourceNotAllocated => "The resource is not allocated to this license",
            DeviceNotFound => "The license has no such active device",
            ConfirmationRequired => "This operation needs its confirmation field",
            CustomerNotFound => "Customer not found",
            ProductNotFound => "Product not found",
            PlanNotFound => "Plan not found",
            WebhookNotFound => "Webhook not found",
            WebhookDeliveryNotFound => "Webhook delivery not found",
            WebhookTargetRefused => "The webhook URL points at an address webhooks may not reach",
            OperatorNotFound => "Operator not found",
            AdminKeyNotFound => "No active admin key with this id",
        }
    }

    /// The code a bare HTTP error status maps to (for responses produced outside our handlers).
    pub fn for_status(status: StatusCode) -> ErrorCode {
        match status {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => Self::ValidationError,
            StatusCode::UNAUTHORIZED => Self::InvalidApiKey,
            StatusCode::FORBIDDEN => Self::PolicyDenied,
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::REQUEST_TIMEOUT => Self::RequestTimeout,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::TOO_MANY_REQUESTS => Self::RateLimited,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => Self::StoreUnavailable,
            _ => Self::InternalError,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An API error: a code plus a human sentence, turned into the JSON error response.
///
/// Build one with [`ApiError::new`] (any code, own sentence), `ApiError::from(code)` (default
/// sentence), [`ApiError::validation`], [`ApiError::rate_limited`], [`ApiError::store`] or
/// [`ApiError::internal`]. Handlers return `Result<impl IntoResponse, ApiError>`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A client-facing error with its own sentence (any 4xx code, or a 5xx with a safe message).
    #[error("{code}: {message}")]
    Code {
        /// The code (and so the status).
        code: ErrorCode,
        /// The sentence sent as `error`.
        message: Cow<'static, str>,
    },
    /// 429 `RATE_LIMITED` with `Retry-After: retry_after_secs`.
    #[error("rate limited; retry after {retry_after_secs} s")]
    RateLimited {
        /// Whole seconds until a request would be accepted (at least 1).
        retry_after_secs: u64,
    },
    /// A policy plugin denied the request with its own code (`UPPER_SNAKE`) and message;
    /// 403 unless the plugin asked for 429.
    #[error("policy denied: {code}: {message}")]
    Policy {
        /// The plugin's code.
        code: String,
        /// The plugin's message.
        message: String,
        /// 403 or 429.
        status: StatusCode,
    },
    /// 503 `STORE_UNAVAILABLE`; the cause is logged, never sent.
    #[error("store unavailable: {0:#}")]
    Store(#[source] anyhow::Error),
    /// 500 `INTERNAL_ERROR`; the cause is logged, never sent.
    #[error("internal error: {0:#}")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// An error with `code` and its own sentence.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self::Code {
            code,
            message: message.into(),
        }
    }

    /// 400 `VALIDATION_ERROR` naming `field`: `"<field>: <problem>"`.
    pub fn validation(field: &str, problem: impl fmt::Display) -> Self {
        Self::new(ErrorCode::ValidationError, format!("{field}: {problem}"))
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::RateLimited {
            retry_after_secs: retry_after_secs.max(1),
        }
    }

    /// 503 `STORE_UNAVAILABLE` caused by `e`.
    pub fn store(e: impl Into<anyhow::Error>) -> Self {
        Self::Store(e.into())
    }

    /// 500 `INTERNAL_ERROR` caused by `e`.
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }

    /// The missing-or-wrong API key error, with seed 000's exact sentence.
    pub fn invalid_api_key() -> Self {
        ErrorCode::InvalidApiKey.into()
    }

    /// This error's code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Code { code, .. } => *code,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Policy { .. } => ErrorCode::PolicyDenied,
            Self::Store(_) => ErrorCode::StoreUnavailable,
            Self::Internal(_) => ErrorCode::InternalError,
        }
    }

    /// This error's HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Policy { status, .. } => *status,
            other => other.code().status(),
        }
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        Self::new(code, code.default_message())
    }
}

/// The JSON body of every error response.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    /// Human sentence.
    pub error: &'a str,
    /// Stable machine code.
    pub code: ErrorCode,
    /// HTTP status, repeated for clients that only see the body.
    pub status: u16,
}

/// Builds the JSON error response for `code` with `message`.
pub(crate) fn error_response(code: ErrorCode, message: &str) -> Response {
    let status = code.status();
    let body = ErrorBody {
        error: message,
        code,
        status: status.as_u16(),
    };
    metrics::counter!("tessera_api_errors_total", "code" => code.as_str()).increment(1);
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Code { code, message } => {
                if code.status().is_server_error() {
                    tracing::error!(code = code.as_str(), "{message}");
                }
                error_response(code, &message)
            }
            Self::RateLimited { retry_after_secs } => {
                let mut resp = error_response(
                    ErrorCode::RateLimited,
                    &format!("Too many requests; retry in {retry_after_secs} s"),
                );
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                resp
            }
            Self::Policy {
                code,
                message,
                status,
            } => {
                metrics::counter!("tessera_api_errors_total", "code" => "POLICY_DENIED")
                    .increment(1);
                let body =
                    serde_json::json!({"error": message, "code": code, "status": status.as_u16()});
                (status, axum::Json(body)).into_response()
            }
            Self::Store(e) => {
                tracing::warn!(code = "STORE_UNAVAILABLE", error = %format!("{e:#}"), "store unavailable");
                error_response(
                    ErrorCode::StoreUnavailable,
                    ErrorCode::StoreUnavailable.default_message(),
                )
            }
            Self::Internal(e) => {
                tracing::error!(code = "INTERNAL_ERROR", error = %format!("{e:#}"), "internal error");
                error_response(
                    ErrorCode::InternalError,
                    ErrorCode::InternalError.default_message(),
                )
            }
        }
    }
}

/// The error body every failure uses.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorSchema {
    /// Human sentence (may change).
    pub error: String,
    /// Stable machine-readable code (`UPPER_SNAKE`), listed in `docs/api.md`.
    pub code: String,
    /// The HTTP status, repeated.
    pub status: u16,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) | StoreError::Timeout(_) => ApiError::store(e),
            StoreError::LicenseNotFound => ErrorCode::LicenseNotFound.into(),
            StoreError::Corrupt(_) | StoreError::Locked(_) | StoreError::AlreadyExists => {
                ApiError::internal(e)
            }
        }
    }
}

impl From<LicenseError> for ApiError {
    fn from(e: LicenseError) -> Self {
        let code = match e {
            LicenseError::NotFound => ErrorCode::LicenseNotFound,
            LicenseError::Suspended => ErrorCode::LicenseSuspended,
            LicenseError::Revoked => ErrorCode::LicenseRevoked,
            LicenseError::Banned => ErrorCode::LicenseBanned,
            LicenseError::Expired => ErrorCode::LicenseExpired,
            LicenseError::DeviceLimit => ErrorCode::DeviceLimitReached,
            LicenseError::ActivationLimit => ErrorCode::ActivationLimitReached,
            LicenseError::SessionLimit => ErrorCode::SessionLimitReached,
            LicenseError::SessionNotFound => ErrorCode::SessionNotFound,
            LicenseError::SessionExpired => ErrorCode::SessionExpired,
            LicenseError::NotActivated => ErrorCode::NotActivated,
            LicenseError::StoreUnavailable | LicenseError::Busy => ErrorCode::StoreUnavailable,
            LicenseError::Internal => ErrorCode::InternalError,
        };
        ApiError::from(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde() {
        for &code in ErrorCode::ALL {
            let json = serde_json::to_value(code).ok();
            assert_eq!(json, Some(serde_json::Value::from(code.as_str())));
        }
    }

    #[test]
    fn client_errors_are_never_5xx_except_dependency_and_bug() {
        for &code in ErrorCode::ALL {
            let server_side =
                matches!(code, ErrorCode::StoreUnavailable | ErrorCode::InternalError);
            assert_eq!(code.status().is_server_error(), server_side, "{code}");
        }
    }
}
