//! Seed 000's Session API: start, heartbeat, end.
//!
//! Heartbeats are the hot path: validate, rate-limit per session, one message to the
//! license's shard, reply. Nothing here waits for the store (write-behind).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tessera_actors::{DeviceRef, EndReason, LicenseError, Reply, Request};
use utoipa::ToSchema;
use uuid::Uuid;

use super::input;
use super::license::{product, rfc3339, unexpected};
use crate::http::client_ip::ClientIp;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ApiJson;
use crate::policy::HookClient;
use crate::state::AppState;

/// `POST /api/license/session/start` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct StartRequest {
    /// License key.
    #[schema(pattern = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$")]
    pub license_key: String,
    /// Machine id.
    #[serde(default)]
    #[schema(max_length = 256, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub machine_id: Option<String>,
    /// Device identifier; the device must be activated.
    #[schema(
        max_length = 256,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub hardware_hash: String,
    /// Client version.
    #[serde(default)]
    #[schema(max_length = 256, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub version: Option<String>,
}

/// `POST /api/license/session/start` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct StartResponse {
    /// Human message.
    pub message: String,
    /// The session token (UUID v4): send it with every heartbeat.
    pub session_token: String,
    /// Session start (RFC 3339).
    pub started_at: String,
    /// Heartbeat every this many seconds.
    pub heartbeat_interval_secs: u64,
    /// The session ends when no heartbeat arrives for this long (timeout + grace).
    pub heartbeat_timeout_secs: u64,
    /// Current deadline (RFC 3339).
    pub expires_at: String,
    /// Sessions ended to make room (`replace_same_device`, `evict_oldest`).
    pub replaced_sessions: usize,
    /// Whether a newer version than `version` exists.
    pub update_available: bool,
    /// Latest version of the product.
    pub latest_version: String,
    /// Where to download it.
    pub download_url: String,
    /// Its release notes.
    pub release_notes: String,
    /// Features granted to this license (names, sorted).
    pub features: Vec<String>,
}

/// Start a session on an activated device.
#[utoipa::path(post, path = "/api/license/session/start", tag = "session",
    request_body = StartRequest,
    responses(
        (status = 200, description = "Session started", body = StartResponse),
        (status = 400, description = "VALIDATION_ERROR, INVALID_JSON", body = crate::http::error::ErrorSchema),
        (status = 403, description = "LICENSE_SUSPENDED, LICENSE_REVOKED, LICENSE_BANNED, LICENSE_EXPIRED, NOT_ACTIVATED, POLICY_DENIED", body = crate::http::error::ErrorSchema),
        (status = 404, description = "LICENSE_NOT_FOUND", body = crate::http::error::ErrorSchema),
        (status = 409, description = "SESSION_LIMIT_REACHED", body = crate::http::error::ErrorSchema),
        (status = 429, description = "RATE_LIMITED", body = crate::http::error::ErrorSchema),
        (status = 503, description = "STORE_UNAVAILABLE", body = crate::http::error::ErrorSchema),
    ),
    security(("api_key" = [])))]
pub async fn start(
    State(state): State<AppState>,
    ip: ClientIp,
    client: HookClient,
    ApiJson(body): ApiJson<StartRequest>,
) -> Result<Json<StartResponse>, ApiError> {
    let key = input::license_key("license_key", &body.license_key)?;
    let hardware_hash = input::text("hardware_hash", &body.hardware_hash)?;
    let machine_id = input::optional_text("machine_id", body.machine_id.as_deref())?;
    let version = input::optional_text("version", body.version.as_deref())?;
    state.rate_limits.check_session_start(&key)?;
    let token = Uuid::new_v4().hyphenated().to_string();
    let token_hash = tessera_actors::TokenHash::of(&token);
    state
        .policy
        .before_session_start(
            &key,
            &hardware_hash,
            &token_hash.to_hex(),
            ip,
            &client.with_session(machine_id.as_deref(), version.as_deref()),
        )
        .await?;
    let reply = state
        .licenses
        .call(
            &key,
            Request::StartSession {
                token_hash,
                device: DeviceRef::Hash(hardware_hash),
                machine_id: machine_id.unwrap_or_default(),
                version: version.clone().unwrap_or_default(),
            },
        )
        .await
        .map_err(|e| match e {
            LicenseError::SessionLimit => session_limit_error(),
            other => other.into(),
        })?;
    let Reply::SessionStarted {
        session,
        ended,
        license,
        ..
    } = reply
    else {
        return Err(unexpected(&reply));
    };
    let release = product(&state, &license.record.product);
    let release = release.as_ref();
    let latest = release
        .map(|p| p.latest_version.clone())
        .unwrap_or_default();
    Ok(Json(StartResponse {
        message: "Session started".into(),
        session_token: token,
        started_at: rfc3339(session.started_at),
        heartbeat_interval_secs: license.timing.heartbeat_interval.as_secs(),
        heartbeat_timeout_secs: license.timing.lifetime().as_secs(),
        expires_at: rfc3339(session.deadline),
        replaced_sessions: ended.len(),
        update_available: version
            .as_deref()
            .is_some_and(|v| input::is_newer(&latest, v)),
        latest_version: latest,
        download_url: release.map(|p| p.download_url.clone()).unwrap_or_default(),
        release_notes: release.map(|p| p.release_notes.clone()).unwrap_or_default(),
        features: license.record.features.clone(),
    }))
}

/// The 409 of seed 000, with its single-session sentence first.
fn session_limit_error() -> ApiError {
    ApiError::new(
        ErrorCode::SessionLimitReached,
        "Es ist nur eine Sitzung erlaubt: the license's session limit is reached; end another session first",
    )
}

/// `POST /api/license/session/heartbeat` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct HeartbeatRequest {
    /// The session token.
    #[schema(
        pattern = "^\\s*[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\\s*$"
    )]
    pub session_token: String,
    /// License key.
    #[schema(pattern = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$")]
    pub license_key: String,
}

/// `POST /api/license/session/heartbeat` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeartbeatResponse {
    /// `ok`.
    pub status: String,
    /// Time of this heartbeat (RFC 3339).
    pub last_heartbeat: String,
    /// New deadline (RFC 3339).
    pub expires_at: String,
    /// Next heartbeat due in this many seconds.
    pub heartbeat_interval_secs: u64,
}

/// Keep a session alive.
#[utoipa::path(post, path = "/api/license/session/heartbeat", tag = "session",
    request_body = HeartbeatRequest,
    responses(
        (status = 200, description = "Heartbeat recorded", body = HeartbeatResponse),
        (status = 400, description = "VALIDATION_ERROR, INVALID_JSON", body = crate::http::error::ErrorSchema),
        (status = 404, description = "SESSION_NOT_FOUND, LICENSE_NOT_FOUND", body = crate::http::error::ErrorSchema),
        (status = 410, description = "SESSION_EXPIRED: the session ended (timeout, eviction, ...); start a new one", body = crate::http::error::ErrorSchema),
        (status = 429, description = "RATE_LIMITED", body = crate::http::error::ErrorSchema),
    ),
    security(("api_key" = [])))]
pub async fn heartbeat(
    State(state): State<AppState>,
    ip: ClientIp,
    client: HookClient,
    ApiJson(body): ApiJson<HeartbeatRequest>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    let token = input::session_token("session_token", &body.session_token)?;
    let key = input::license_key("license_key", &body.license_key)?;
    // Keyed by the canonical hash, so `ABC…`, `abc…` and `{abc…}` share one bucket. Checked
    // before the shard, so a 429 means nothing was recorded. A flood of made-up tokens stays
    // cheap in this order: the `sessions` limit per address has already bounded it at the
    // gate, each made-up token costs one small bucket (dropped by housekeeping) and a miss
    // in its license's memory; asking first whether the token exists would cost a session
    // index miss and a store read (`find_session`) per made-up token.
    state.rate_limits.check_heartbeat(&token)?;
    let reply = state
        .licenses
        .call(&key, Request::Heartbeat { token_hash: token })
        .await?;
    let Reply::Heartbeat { session, timing } = reply else {
        return Err(unexpected(&reply));
    };
    metrics::counter!("tessera_heartbeats_total").increment(1);
    state
        .policy
        .after_heartbeat(&key, &session, ip, &client)
        .await?;
    Ok(Json(HeartbeatResponse {
        status: "ok".into(),
        last_heartbeat: rfc3339(session.last_heartbeat),
        expires_at: rfc3339(session.deadline),
        heartbeat_interval_secs: timing.heartbeat_interval.as_secs(),
    }))
}

/// `POST /api/license/session/end` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EndRequest {
    /// The session token.
    #[schema(
        pattern = "^\\s*[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\\s*$"
    )]
    pub session_token: String,
    /// License key (optional; seed 000 sends only the token).
    #[serde(default)]
    #[schema(pattern = "^\\s*[A-Za-z0-9_-]{1,64}\\s*$")]
    pub license_key: Option<String>,
}

/// `POST /api/license/session/end` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndResponse {
    /// Human message.
    pub message: String,
    /// Session duration in whole seconds.
    pub duration_seconds: i64,
    /// Why it ended (`client_end`, or the earlier reason if it had already ended).
    pub end_reason: String,
    /// Start (RFC 3339).
    pub started_at: String,
    /// End (RFC 3339).
    pub ended_at: String,
}

/// End a session. Ending an already ended session answers with its original reason.
#[utoipa::path(post, path = "/api/license/session/end", tag = "session",
    request_body = EndRequest,
    responses(
        (status = 200, description = "Session ended", body = EndResponse),
        (status = 400, description = "VALIDATION_ERROR, INVALID_JSON", body = crate::http::error::ErrorSchema),
        (status = 404, description = "SESSION_NOT_FOUND", body = crate::http::error::ErrorSchema),
        (status = 503, description = "STORE_UNAVAILABLE", body = crate::http::error::ErrorSchema),
    ),
    security(("api_key" = [])))]
pub async fn end(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EndRequest>,
) -> Result<Json<EndResponse>, ApiError> {
    let token = input::session_token("session_token", &body.session_token)?;
    let key = match input::optional_text("license_key", body.license_key.as_deref())? {
        Some(k) => input::license_key("license_key", &k)?,
        None => state
            .licenses
            .license_of_session(&token)
            .await?
            .ok_or(ApiError::from(ErrorCode::SessionNotFound))?,
    };
    let reply = state
        .licenses
        .call(
            &key,
            Request::EndSession {
                token_hash: token,
                reason: EndReason::ClientEnd,
            },
        )
        .await?;
    let Reply::SessionEnded {
        session,
        ended_at,
        reason,
    } = reply
    else {
        return Err(unexpected(&reply));
    };
    Ok(Json(EndResponse {
        message: "Session ended".into(),
        duration_seconds: (ended_at - session.started_at).num_seconds(),
        end_reason: reason.as_str().into(),
        started_at: rfc3339(session.started_at),
        ended_at: rfc3339(ended_at),
    }))
}
