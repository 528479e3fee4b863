//! Operator login under `/api/auth` (seed 001): challenge, encrypted login, logout, who am I,
//! and the public login keys. Thin: the work is in `auth/`.

use axum::extract::{Query, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::access::Caller;
use crate::auth::{LoginAttempt, login};
use crate::events::{NewEvent, Severity};
use crate::http::client_ip::ClientIp;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ApiJson;
use crate::state::AppState;

/// `GET /api/auth/challenge` query.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ChallengeQuery {
    /// The operator who will log in.
    #[param(max_length = 64, pattern = "\\S")]
    pub username: String,
}

/// `GET /api/auth/challenge` reply (seed 001, plus the public key).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChallengeResponse {
    /// Nonce to put in the encrypted payload and in `login_nonce`.
    pub nonce: String,
    /// Id of the key to encrypt to.
    pub key_id: String,
    /// Unix seconds after which the nonce is refused.
    pub expires_at: i64,
    /// The RSA public key of `key_id`, PEM SubjectPublicKeyInfo.
    pub public_key: String,
}

/// A login challenge; the same answer for unknown usernames.
#[utoipa::path(get, path = "/api/auth/challenge", tag = "auth", params(ChallengeQuery),
    responses(
        (status = 200, description = "A challenge", body = ChallengeResponse),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
        (status = 429, description = "RATE_LIMITED", body = crate::http::error::ErrorSchema),
    ))]
pub async fn challenge(
    State(state): State<AppState>,
    Query(q): Query<ChallengeQuery>,
) -> Result<Json<ChallengeResponse>, ApiError> {
    let username = q.username.trim();
    if username.is_empty() || username.chars().count() > 64 {
        return Err(ApiError::validation(
            "username",
            "must be 1 to 64 characters",
        ));
    }
    let (c, key_id, public_key) = state.auth.challenge(username).await?;
    Ok(Json(ChallengeResponse {
        nonce: c.nonce,
        key_id,
        expires_at: c.expires_at,
        public_key,
    }))
}

/// One login key.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginKey {
    /// Key id.
    pub key_id: String,
    /// PEM SubjectPublicKeyInfo.
    pub public_key: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Whether challenges name this key now.
    pub current: bool,
}

/// `GET /api/auth/keys` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeysResponse {
    /// Current and previous keys, newest last.
    pub keys: Vec<LoginKey>,
}

/// The login encryption keys: the current one and previous ones still accepted.
#[utoipa::path(get, path = "/api/auth/keys", tag = "auth",
    responses((status = 200, description = "The keys", body = KeysResponse)))]
pub async fn keys(State(state): State<AppState>) -> Result<Json<KeysResponse>, ApiError> {
    let keys = state.auth.login_keys().await?;
    let last = keys.keys.len().saturating_sub(1);
    Ok(Json(KeysResponse {
        keys: keys
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| LoginKey {
                key_id: k.key_id.clone(),
                public_key: k.public_pem.clone(),
                created_at: k.created_at,
                current: i == last,
            })
            .collect(),
    }))
}

/// `POST /api/auth/login` body: seed 001's encrypted form, or `{username, password}` when
/// `enforce_login_payload_encryption` is off.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Operator.
    #[schema(max_length = 64, pattern = "\\S")]
    pub username: String,
    /// base64 of RSA-OAEP (SHA-256, MGF1-SHA-256) over `"{login_nonce}:{challenge_ts}:{password}"`.
    #[serde(default)]
    pub encrypted_password: Option<String>,
    /// The challenge's nonce.
    #[serde(default)]
    pub login_nonce: Option<String>,
    /// The challenge's key id.
    #[serde(default)]
    pub key_id: Option<String>,
    /// Unix seconds, as in the encrypted payload; within `replay_window_secs` of the server.
    #[serde(default)]
    pub challenge_ts: Option<i64>,
    /// Plaintext password (only when encryption is not enforced).
    #[serde(default)]
    pub password: Option<String>,
}

/// `POST /api/auth/login` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Bearer token for `Authorization: Bearer ...`.
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// `admin` or `super_admin`.
    pub role: String,
}

fn required<T>(field: &'static str, v: Option<T>) -> Result<T, ApiError> {
    v.ok_or_else(|| ApiError::validation(field, "is required with encrypted_password"))
}

/// Log in: one answer for every failure of the account (unknown, wrong password, locked).
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 400, description = "VALIDATION_ERROR, ENCRYPTION_REQUIRED", body = crate::http::error::ErrorSchema),
        (status = 401, description = "INVALID_CREDENTIALS, LOGIN_CHALLENGE_INVALID", body = crate::http::error::ErrorSchema),
        (status = 429, description = "RATE_LIMITED", body = crate::http::error::ErrorSchema),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    log_in(&state, ip, "/api/auth/login", body).await.map(Json)
}

/// Seed 001's login, for the API's bearer token and the panel's cookie alike (`route` names
/// which, for the failure hook): the checks, the event, the failure hook.
pub(crate) async fn log_in(
    state: &AppState,
    ip: ClientIp,
    route: &str,
    body: LoginRequest,
) -> Result<LoginResponse, ApiError> {
    let username = body.username.trim().to_string();
    if username.is_empty() || username.chars().count() > 64 {
        return Err(ApiError::validation(
            "username",
            "must be 1 to 64 characters",
        ));
    }
    let attempt = match (body.encrypted_password, body.password) {
        (Some(encrypted_password), None) => {
            if encrypted_password.len() > login::MAX_ENCRYPTED_LEN {
                return Err(ApiError::validation("encrypted_password", "is too long"));
            }
            LoginAttempt::Encrypted {
                username: username.clone(),
                encrypted_password,
                login_nonce: required("login_nonce", body.login_nonce)?,
                key_id: required("key_id", body.key_id)?,
                challenge_ts: required("challenge_ts", body.challenge_ts)?,
            }
        }
        (None, Some(password)) => LoginAttempt::Plain {
            username: username.clone(),
            password,
        },
        _ => {
            return Err(ApiError::validation(
                "encrypted_password",
                "send exactly one of encrypted_password and password",
            ));
        }
    };
    match state.auth.login(attempt, ip.0).await {
        Ok(ok) => {
            tracing::info!(operator = %ok.username, ip = %ip.0, "operator logged in");
            state.events.publish(
                NewEvent::new("login.succeeded", Severity::Info, "operator logged in")
                    .actor(format!("operator:{}", ok.username))
                    .ip(ip.0)
                    .data(serde_json::json!({ "role": ok.role.as_str() })),
            );
            Ok(LoginResponse {
                token: ok.token,
                expires_at: ok.expires_at,
                role: ok.role.as_str().into(),
            })
        }
        Err(e) => {
            metrics::counter!("tessera_login_failures_total").increment(1);
            tracing::info!(ip = %ip.0, error = %e, "operator login failed");
            let answer: ApiError = e.into();
            // The username tried is shown as given (bounded): it may be no operator at all.
            let tried: String = username
                .chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect();
            state.events.publish(
                NewEvent::new("login.failed", Severity::Warning, "operator login failed")
                    .ip(ip.0)
                    .data(serde_json::json!({ "username": tried, "code": answer.code().as_str() })),
            );
            crate::policy::operator_login_failed(
                &state.policy,
                ip,
                route,
                &username,
                answer.code(),
            )
            .await;
            Err(answer)
        }
    }
}

/// `POST /api/auth/logout` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogoutResponse {
    /// True.
    pub logged_out: bool,
}

/// End this token: it stops working on every server at once.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth",
    responses(
        (status = 200, description = "Logged out", body = LogoutResponse),
        (status = 401, description = "UNAUTHENTICATED", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn logout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<LogoutResponse>, ApiError> {
    let Caller::Operator(token) = caller else {
        return Err(ErrorCode::InsufficientScope.into());
    };
    crate::auth::tokens::revoke(state.auth.meta().as_ref(), &token.hash).await?;
    tracing::info!(operator = %token.username, "operator logged out");
    Ok(Json(LogoutResponse { logged_out: true }))
}

/// `GET /api/auth/me` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    /// Operator.
    pub username: String,
    /// `admin` or `super_admin`.
    pub role: String,
    /// Unix seconds when this token expires.
    pub expires_at: i64,
}

/// The logged-in operator.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth",
    responses(
        (status = 200, description = "The operator", body = MeResponse),
        (status = 401, description = "UNAUTHENTICATED", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn me(Extension(caller): Extension<Caller>) -> Result<Json<MeResponse>, ApiError> {
    let Caller::Operator(token) = caller else {
        return Err(ErrorCode::InsufficientScope.into());
    };
    Ok(Json(MeResponse {
        username: token.username,
        role: token.role.as_str().into(),
        expires_at: token.expires_at,
    }))
}
