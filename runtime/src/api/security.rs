//! Seed 001's security controls, emergency controls and public feature flags:
//! `GET|PUT /api/admin/security`, `GET|PUT /api/admin/features`, `POST /api/admin/emergency`
//! (super_admin only) and `GET /api/public/config`. The state lives in `auth/security.rs`.

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tessera_actors::EndReason;
use tessera_config::ProtectionMode;
use utoipa::ToSchema;

use crate::auth::access::Caller;
use crate::auth::security::{Features, SecuritySettings};
use crate::events::Severity;
use crate::http::error::ApiError;
use crate::http::extract::ApiJson;
use crate::state::AppState;

/// The security controls now in force.
#[utoipa::path(get, path = "/api/admin/security", tag = "admin",
    responses(
        (status = 200, description = "The controls", body = SecuritySettings),
        (status = 401, description = "UNAUTHENTICATED", body = crate::http::error::ErrorSchema),
        (status = 403, description = "INSUFFICIENT_SCOPE, FORBIDDEN_ROLE", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn show(State(state): State<AppState>) -> Result<Json<SecuritySettings>, ApiError> {
    Ok(Json(state.auth.security.current().await?.settings.clone()))
}

/// `PUT /api/admin/security` body: any subset of the controls.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityPatch {
    /// Refuse plaintext logins.
    #[serde(default)]
    pub enforce_login_payload_encryption: Option<bool>,
    /// Failed logins before an account is locked (1..=1000).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_login_attempts: Option<u32>,
    /// Login challenge lifetime and clock tolerance, seconds (10..=86400).
    #[serde(default)]
    #[schema(minimum = 10, maximum = 86400)]
    pub replay_window_secs: Option<u64>,
    /// `off`, `standard` or `strict`.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(off|standard|strict)$")]
    pub ip_reputation_mode: Option<ProtectionMode>,
    /// `off`, `standard` or `strict`.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(off|standard|strict)$")]
    pub network_protection_mode: Option<ProtectionMode>,
}

/// Change the security controls; they hold at once here and within a second on every
/// server sharing the store.
#[utoipa::path(put, path = "/api/admin/security", tag = "admin", request_body = SecurityPatch,
    responses(
        (status = 200, description = "The controls now", body = SecuritySettings),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
        (status = 401, description = "UNAUTHENTICATED", body = crate::http::error::ErrorSchema),
        (status = 403, description = "INSUFFICIENT_SCOPE, FORBIDDEN_ROLE", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn change(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(patch): ApiJson<SecurityPatch>,
) -> Result<Json<SecuritySettings>, ApiError> {
    let before = state.auth.security.current().await?.settings.clone();
    let mut next = before.clone();
    if let Some(v) = patch.enforce_login_payload_encryption {
        next.enforce_login_payload_encryption = v;
    }
    if let Some(v) = patch.max_login_attempts {
        next.max_login_attempts = v;
    }
    if let Some(v) = patch.replay_window_secs {
        next.replay_window_secs = v;
    }
    if let Some(v) = patch.ip_reputation_mode {
        next.ip_reputation_mode = v;
    }
    if let Some(v) = patch.network_protection_mode {
        next.network_protection_mode = v;
    }
    next.validate()?;
    let stored = next.clone();
    let now = state
        .auth
        .security
        .change(|r| r.settings = Some(stored.clone()))
        .await?;
    tracing::warn!(actor = %caller.actor(), settings = ?now.settings, "security controls changed");
    super::audit::record(
        &state,
        &caller,
        "admin.security.changed",
        Severity::Warning,
        "security controls changed".into(),
        serde_json::to_value(&before).ok(),
        serde_json::to_value(&now.settings).unwrap_or_default(),
    )
    .await?;
    Ok(Json(now.settings.clone()))
}

/// The public features and flags.
#[utoipa::path(get, path = "/api/admin/features", tag = "admin",
    responses((status = 200, description = "Features and flags", body = Features)),
    security(("bearer" = [])))]
pub async fn features(State(state): State<AppState>) -> Result<Json<Features>, ApiError> {
    Ok(Json(state.auth.security.current().await?.features.clone()))
}

/// Replace the public features and flags.
#[utoipa::path(put, path = "/api/admin/features", tag = "admin", request_body = Features,
    responses(
        (status = 200, description = "Features and flags now", body = Features),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn set_features(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(features): ApiJson<Features>,
) -> Result<Json<Features>, ApiError> {
    features.validate()?;
    let before = state.auth.security.current().await?.features.clone();
    let stored = features.clone();
    let now = state
        .auth
        .security
        .change(|r| r.features = stored.clone())
        .await?;
    tracing::info!(actor = %caller.actor(), "feature flags changed");
    super::audit::record(
        &state,
        &caller,
        "admin.features.changed",
        Severity::Info,
        "feature flags changed".into(),
        serde_json::to_value(&before).ok(),
        serde_json::to_value(&now.features).unwrap_or_default(),
    )
    .await?;
    Ok(Json(now.features.clone()))
}

/// `POST /api/admin/emergency` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmergencyRequest {
    /// `force_reauth_non_admin`, `end_all_sessions`, `freeze_activations` or
    /// `unfreeze_activations`.
    pub action: String,
}

/// `POST /api/admin/emergency` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmergencyResponse {
    /// The action done.
    pub action: String,
    /// Live client sessions ended (`end_all_sessions`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_sessions: Option<u32>,
    /// Whether new activations are refused now.
    pub activations_frozen: bool,
}

/// `GET /api/admin/emergency` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmergencyState {
    /// Whether new activations are refused now (`freeze_activations`).
    pub activations_frozen: bool,
    /// When non-super_admin operators were last forced to log in again (RFC 3339), if ever.
    pub reauth_forced_at: Option<String>,
}

/// What the emergency controls have in force now, for the operators who watch them.
#[utoipa::path(get, path = "/api/admin/emergency", tag = "admin",
    responses(
        (status = 200, description = "The state", body = EmergencyState),
    ),
    security(("bearer" = [])))]
pub async fn emergency_state(
    State(state): State<AppState>,
) -> Result<Json<EmergencyState>, ApiError> {
    let now = state.auth.security.current().await?;
    let reauth_forced_at = (now.reauth_epoch_ms > 0)
        .then(|| chrono::DateTime::from_timestamp_millis(now.reauth_epoch_ms))
        .flatten()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    Ok(Json(EmergencyState {
        activations_frozen: now.activations_frozen,
        reauth_forced_at,
    }))
}

/// Emergency controls (super_admin only).
#[utoipa::path(post, path = "/api/admin/emergency", tag = "admin", request_body = EmergencyRequest,
    responses(
        (status = 200, description = "Done", body = EmergencyResponse),
        (status = 400, description = "VALIDATION_ERROR (unknown action)", body = crate::http::error::ErrorSchema),
        (status = 403, description = "FORBIDDEN_ROLE, INSUFFICIENT_SCOPE", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn emergency(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<EmergencyRequest>,
) -> Result<Json<EmergencyResponse>, ApiError> {
    let action = body.action.trim();
    let security = &state.auth.security;
    let mut ended_sessions = None;
    match action {
        "force_reauth_non_admin" => {
            let epoch = chrono::Utc::now().timestamp_millis();
            security.change(|r| r.reauth_epoch_ms = epoch).await?;
        }
        "end_all_sessions" => {
            ended_sessions = Some(state.licenses.end_all_sessions(EndReason::Admin).await?);
            // The other servers of the store end theirs when they hear of it.
            if let Some(cluster) = &state.cluster {
                cluster
                    .end_all_sessions(EndReason::Admin)
                    .await
                    .map_err(ApiError::from)?;
            }
        }
        "freeze_activations" => {
            security.change(|r| r.activations_frozen = true).await?;
        }
        "unfreeze_activations" => {
            security.change(|r| r.activations_frozen = false).await?;
        }
        other => {
            return Err(ApiError::validation(
                "action",
                format!(
                    "`{other}` is not one of force_reauth_non_admin, end_all_sessions, freeze_activations, unfreeze_activations"
                ),
            ));
        }
    }
    tracing::warn!(actor = %caller.actor(), action, ended_sessions, "emergency control used");
    super::audit::record(
        &state,
        &caller,
        "admin.emergency",
        Severity::Critical,
        format!("emergency control {action}"),
        None,
        serde_json::json!({ "action": action, "ended_sessions": ended_sessions }),
    )
    .await?;
    Ok(Json(EmergencyResponse {
        action: action.to_string(),
        ended_sessions,
        activations_frozen: security.current().await?.activations_frozen,
    }))
}

/// The security toggles a front end may show.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicSecurity {
    /// Whether logins must be encrypted.
    pub enforce_login_payload_encryption: bool,
    /// `off`, `standard` or `strict`.
    #[schema(value_type = String, pattern = "^(off|standard|strict)$")]
    pub network_protection_mode: ProtectionMode,
}

/// `GET /api/public/config` reply (seed 001's shape).
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicConfig {
    /// Front-end-visible security toggles.
    pub security: PublicSecurity,
    /// Named features.
    pub features: std::collections::BTreeMap<String, bool>,
    /// Flags that are on.
    pub enabled_feature_flags: Vec<String>,
}

/// What a front end may know of the security settings, and the enabled feature flags.
#[utoipa::path(get, path = "/api/public/config", tag = "public",
    responses((status = 200, description = "Public config", body = PublicConfig)))]
pub async fn public_config(State(state): State<AppState>) -> Result<Json<PublicConfig>, ApiError> {
    let now = state.auth.security.current().await?;
    Ok(Json(PublicConfig {
        security: PublicSecurity {
            enforce_login_payload_encryption: now.settings.enforce_login_payload_encryption,
            network_protection_mode: now.settings.network_protection_mode,
        },
        features: now.features.features.clone(),
        enabled_feature_flags: now.features.enabled_feature_flags.iter().cloned().collect(),
    }))
}
