//! Seed 003's instance/session protocol under `/api/v2/`, mapped onto the same license
//! actors: an instance is an activation identified by its hardware fingerprint, a session
//! is a session, `extend_session` is a heartbeat.
//!
//! Requests are `{key, data}` envelopes ([`crate::api::instance_v2::envelope`]): `key` is the API key and
//! `data` the sealed JSON. With `[envelope] enabled = false`, `data` is the JSON text itself.
//! Failures answer `{success: false, time, error, code, status}`: the seed's shape plus our
//! stable code, a body the handler cannot read (not JSON, too large, wrong type) included;
//! `end_session` failures are 422 as the seed says. Rate limits, timeouts and 5xx keep the
//! standard `{error, code, status}` (with `Retry-After` on 429).

pub mod envelope;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tessera_actors::{
    Activation, DeviceRef, EndReason, Fingerprint, LicenseKey, LicenseView, Reply, Request,
    TokenHash,
};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::input;
use crate::api::license::{rfc3339, unexpected};
use crate::http::client_ip::ClientIp;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::{ApiJson, parse_json};
use crate::policy::HookClient;
use crate::state::AppState;

/// The envelope every v2 request is.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Envelope {
    /// The API key; it also derives the decryption key.
    pub key: String,
    /// The sealed request JSON (see `docs/api.md`, "Envelope").
    pub data: String,
}

/// A v2 failure: the seed's shape plus our code and status.
#[derive(Debug, Serialize, ToSchema)]
pub struct V2Failure {
    /// Always false.
    pub success: bool,
    /// Server time (RFC 3339).
    pub time: String,
    /// Human sentence.
    pub error: String,
    /// Stable code.
    pub code: String,
    /// HTTP status.
    pub status: u16,
}

/// A v2 error: an [`ApiError`] rendered in the v2 failure shape, optionally with a forced status.
#[derive(Debug)]
pub struct V2Error {
    error: ApiError,
    status: Option<StatusCode>,
}

impl From<ApiError> for V2Error {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            status: None,
        }
    }
}

impl From<tessera_actors::LicenseError> for V2Error {
    fn from(e: tessera_actors::LicenseError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        let code = self.error.code();
        let status = self.status.unwrap_or_else(|| code.status());
        if status.is_server_error() || matches!(self.error, ApiError::RateLimited { .. }) {
            // Keep logging, Retry-After and generic 5xx bodies of the standard path.
            let mut resp = self.error.into_response();
            *resp.status_mut() = status;
            return resp;
        }
        let message = match &self.error {
            ApiError::Code { message, .. } => message.to_string(),
            other => other.code().default_message().to_string(),
        };
        metrics::counter!("tessera_api_errors_total", "code" => code.as_str()).increment(1);
        let body = V2Failure {
            success: false,
            time: rfc3339(Utc::now()),
            error: message,
            code: code.as_str().to_string(),
            status: status.as_u16(),
        };
        (status, Json(body)).into_response()
    }
}

/// Applies the rate limit, then the policy's `on_request` hook for `route`, checks the
/// envelope's key and opens `data` into `T`.
async fn open<T: DeserializeOwned>(
    state: &AppState,
    ip: ClientIp,
    route: &str,
    env: &Envelope,
) -> Result<T, V2Error> {
    state.rate_limits.check_api(ip.0)?;
    crate::policy::request_hook(&state.policy, ip, &axum::http::Method::POST, Some(route)).await?;
    let valid = state
        .api_keys
        .verify(env.key.trim())
        .await
        .map_err(ApiError::store)?;
    if !valid {
        return Err(ApiError::invalid_api_key().into());
    }
    let plain = if state.config.envelope.enabled {
        envelope::open(env.key.trim(), &env.data).map_err(|e| ApiError::validation("data", e))?
    } else {
        env.data.as_bytes().to_vec()
    };
    Ok(parse_json(&plain)?)
}

/// Hardware components of a v2 request.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct Hardware {
    /// CPU id.
    #[serde(default)]
    pub cpu_id: Option<String>,
    /// Mainboard serial.
    #[serde(default)]
    pub mb_serial: Option<String>,
    /// MAC addresses.
    #[serde(default)]
    pub mac_addresses: Vec<String>,
    /// Volume hash.
    #[serde(default)]
    pub volume_hash: Option<String>,
    /// Host name.
    #[serde(default)]
    pub host_name: Option<String>,
}

impl Hardware {
    fn fingerprint(&self) -> Result<Fingerprint, ApiError> {
        let field = |name: &str, v: &Option<String>| input::optional_text(name, v.as_deref());
        if self.mac_addresses.len() > 32 {
            return Err(ApiError::validation("mac_addresses", "at most 32 entries"));
        }
        let mut macs = Vec::with_capacity(self.mac_addresses.len());
        for m in &self.mac_addresses {
            if let Some(m) = input::optional_text("mac_addresses", Some(m))? {
                macs.push(m);
            }
        }
        let fp = Fingerprint {
            cpu_id: field("cpu_id", &self.cpu_id)?,
            mb_serial: field("mb_serial", &self.mb_serial)?,
            mac_addresses: macs,
            volume_hash: field("volume_hash", &self.volume_hash)?,
            host_name: field("host_name", &self.host_name)?,
        };
        if fp.is_empty() {
            return Err(ApiError::validation(
                "cpu_id",
                "at least one hardware component (cpu_id, mb_serial, mac_addresses, volume_hash, host_name) is required",
            ));
        }
        Ok(fp)
    }
}

/// Seed 003 `control_options`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ControlOptions {
    /// Seconds a session lives without `extend_session` (heartbeat timeout).
    pub session_duration: u64,
    /// Extra seconds of tolerance after that.
    pub validation_grace_period: u64,
}

fn control_options(license: &LicenseView) -> ControlOptions {
    ControlOptions {
        session_duration: license.timing.heartbeat_timeout.as_secs(),
        validation_grace_period: license.timing.grace.as_secs(),
    }
}

/// The instance id of an activation: a UUID derived from license key and device, stable
/// across re-registrations.
pub fn instance_guid(key: &LicenseKey, activation: &Activation) -> String {
    let digest = Sha256::digest(format!("{key}\0{}", activation.hardware_hash).as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// `register_instance` data.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterData {
    /// Product id.
    #[serde(default)]
    pub product_guid: Option<String>,
    /// License key.
    pub license_key: String,
    /// Client-reported address (informational).
    #[serde(default)]
    #[allow(dead_code)] // accepted for seed compatibility, not interpreted
    pub ip_address: Option<String>,
    /// Hardware components.
    #[serde(flatten)]
    pub hardware: Hardware,
    /// User name.
    #[serde(default)]
    pub name: Option<String>,
    /// User e-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Free user attributes (accepted, not interpreted).
    #[serde(default)]
    #[allow(dead_code)] // accepted for seed compatibility, not interpreted
    pub user_hash: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `register_instance` success.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterResponse {
    /// True.
    pub success: bool,
    /// Server time.
    pub time: String,
    /// Instance id for `begin_session`.
    pub guid: String,
    /// Session timing.
    pub control_options: ControlOptions,
    /// When the instance was first registered.
    pub first_registered_at: String,
}

async fn license_product(state: &AppState, key: &LicenseKey) -> Result<String, V2Error> {
    match state.licenses.call(key, Request::Info).await? {
        Reply::Info { license, .. } => Ok(license.record.product),
        other => Err(unexpected(&other).into()),
    }
}

fn check_product(requested: Option<&str>, actual: &str) -> Result<(), ApiError> {
    match requested.map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) if p != actual => Err(ApiError::validation(
            "product_guid",
            format!("this license belongs to product `{actual}`, not `{p}`"),
        )),
        _ => Ok(()),
    }
}

/// Register (activate) an instance; an instance with the same hardware is returned again.
#[utoipa::path(post, path = "/api/v2/register_instance", tag = "instance (seed 003)",
    request_body = Envelope,
    responses(
        (status = 200, description = "Registered", body = RegisterResponse),
        (status = 400, description = "VALIDATION_ERROR, INVALID_JSON", body = V2Failure),
        (status = 401, description = "INVALID_API_KEY", body = V2Failure),
        (status = 403, description = "LICENSE_SUSPENDED, LICENSE_REVOKED, LICENSE_BANNED, LICENSE_EXPIRED", body = V2Failure),
        (status = 404, description = "LICENSE_NOT_FOUND", body = V2Failure),
        (status = 409, description = "DEVICE_LIMIT_REACHED, ACTIVATION_LIMIT_REACHED", body = V2Failure),
    ))]
pub async fn register_instance(
    State(state): State<AppState>,
    ip: ClientIp,
    client: HookClient,
    body: Result<ApiJson<Envelope>, ApiError>,
) -> Result<Json<RegisterResponse>, V2Error> {
    let ApiJson(env) = body?;
    let data: RegisterData = open(&state, ip, "/api/v2/register_instance", &env).await?;
    let key = input::license_key("license_key", &data.license_key)?;
    let fp = data.hardware.fingerprint()?;
    let name = input::optional_text("name", data.name.as_deref())?;
    input::optional_text("email", data.email.as_deref())?;
    check_product(
        data.product_guid.as_deref(),
        &license_product(&state, &key).await?,
    )?;
    crate::api::license::refuse_if_frozen(&state, &key, &DeviceRef::Fingerprint(fp.clone()))
        .await?;
    let machine_name = fp.host_name.clone().or(name).unwrap_or_default();
    // Asked before the write: a denied registration must not use up a lifetime activation.
    let asked = state
        .policy
        .before_activate(&key, &fp.device_hash(), &machine_name, "", ip, &client)
        .await?;
    let result = state
        .licenses
        .call(
            &key,
            Request::Activate {
                device: DeviceRef::Fingerprint(fp.clone()),
                machine_name,
                app_version: String::new(),
            },
        )
        .await;
    state
        .policy
        .after_activate(&key, &fp.device_hash(), ip, &client, asked, &result)
        .await?;
    let reply = result?;
    let Reply::Activated {
        activation,
        license,
        ..
    } = reply
    else {
        return Err(unexpected(&reply).into());
    };
    Ok(Json(RegisterResponse {
        success: true,
        time: rfc3339(Utc::now()),
        guid: instance_guid(&key, &activation),
        control_options: control_options(&license),
        first_registered_at: rfc3339(activation.activated_at),
    }))
}

/// `begin_session` data.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BeginData {
    /// Product id.
    #[serde(default)]
    pub product_guid: Option<String>,
    /// License key.
    pub license_key: String,
    /// Instance id from `register_instance`.
    pub instance_guid: String,
    /// Client-reported address (informational).
    #[serde(default)]
    #[allow(dead_code)] // accepted for seed compatibility, not interpreted
    pub ip_address: Option<String>,
    /// Hardware components.
    #[serde(flatten)]
    pub hardware: Hardware,
    /// Free user attributes (accepted, not interpreted).
    #[serde(default)]
    #[allow(dead_code)] // accepted for seed compatibility, not interpreted
    pub user_hash: Option<serde_json::Map<String, serde_json::Value>>,
    /// Requested duration; the product's configured timing applies instead.
    #[serde(default)]
    #[allow(dead_code)] // accepted for seed compatibility, not interpreted
    pub duration: Option<f64>,
}

/// `begin_session` success.
#[derive(Debug, Serialize, ToSchema)]
pub struct BeginResponse {
    /// 200.
    pub status: u16,
    /// Server time.
    pub time: String,
    /// The session's id (SHA-256 of the token, hex): safe to log.
    pub session_key: String,
    /// The session token for `extend_session` / `end_session`.
    pub token: String,
    /// The features granted to the license: their names, comma-separated (seed 003 gives a
    /// string here), empty when none.
    pub features: String,
    /// Session timing.
    pub control_options: ControlOptions,
}

/// Begin a session on a registered instance.
#[utoipa::path(post, path = "/api/v2/begin_session", tag = "instance (seed 003)",
    request_body = Envelope,
    responses(
        (status = 200, description = "Session started", body = BeginResponse),
        (status = 400, description = "VALIDATION_ERROR, INVALID_JSON", body = V2Failure),
        (status = 403, description = "NOT_ACTIVATED (unknown instance or hardware), LICENSE_*", body = V2Failure),
        (status = 409, description = "SESSION_LIMIT_REACHED", body = V2Failure),
    ))]
pub async fn begin_session(
    State(state): State<AppState>,
    ip: ClientIp,
    client: HookClient,
    body: Result<ApiJson<Envelope>, ApiError>,
) -> Result<Json<BeginResponse>, V2Error> {
    let ApiJson(env) = body?;
    let data: BeginData = open(&state, ip, "/api/v2/begin_session", &env).await?;
    let key = input::license_key("license_key", &data.license_key)?;
    let instance = input::text("instance_guid", &data.instance_guid)?;
    let fp = data.hardware.fingerprint()?;
    let device = DeviceRef::Fingerprint(fp);
    let reply = state
        .licenses
        .call(
            &key,
            Request::Verify {
                device: Some(device.clone()),
            },
        )
        .await?;
    let Reply::Verified {
        activation: Some(activation),
        license,
    } = reply
    else {
        return Err(unexpected(&reply).into());
    };
    check_product(data.product_guid.as_deref(), &license.record.product)?;
    if !instance.eq_ignore_ascii_case(&instance_guid(&key, &activation)) {
        return Err(ApiError::new(
            ErrorCode::NotActivated,
            "instance_guid does not belong to this hardware; call register_instance first",
        )
        .into());
    }
    let token = Uuid::new_v4().hyphenated().to_string();
    let token_hash = TokenHash::of(&token);
    state
        .policy
        .before_session_start(
            &key,
            &activation.hardware_hash,
            &token_hash.to_hex(),
            ip,
            &client,
        )
        .await?;
    let reply = state
        .licenses
        .call(
            &key,
            Request::StartSession {
                token_hash,
                device: DeviceRef::Hash(activation.hardware_hash.clone()),
                machine_id: instance,
                version: String::new(),
            },
        )
        .await?;
    let Reply::SessionStarted { license, .. } = reply else {
        return Err(unexpected(&reply).into());
    };
    Ok(Json(BeginResponse {
        status: 200,
        time: rfc3339(Utc::now()),
        session_key: token_hash.to_hex(),
        token,
        features: license.record.features.join(","),
        control_options: control_options(&license),
    }))
}

/// `extend_session` data.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ExtendData {
    /// Session token.
    pub token: String,
    /// Requested duration; the product's configured timing applies instead.
    #[serde(default)]
    #[allow(dead_code)] // accepted for seed compatibility, not interpreted
    pub duration: Option<f64>,
}

/// `extend_session` success.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExtendResponse {
    /// 200.
    pub status: u16,
    /// Server time.
    pub time: String,
    /// The session token.
    pub token: String,
    /// Session timing.
    pub control_options: ControlOptions,
}

async fn license_of(state: &AppState, token: &TokenHash) -> Result<LicenseKey, ApiError> {
    state
        .licenses
        .license_of_session(token)
        .await?
        .ok_or_else(|| ErrorCode::SessionNotFound.into())
}

/// Extend (heartbeat) a session.
#[utoipa::path(post, path = "/api/v2/extend_session", tag = "instance (seed 003)",
    request_body = Envelope,
    responses(
        (status = 200, description = "Extended", body = ExtendResponse),
        (status = 404, description = "SESSION_NOT_FOUND", body = V2Failure),
        (status = 410, description = "SESSION_EXPIRED", body = V2Failure),
    ))]
pub async fn extend_session(
    State(state): State<AppState>,
    ip: ClientIp,
    client: HookClient,
    body: Result<ApiJson<Envelope>, ApiError>,
) -> Result<Json<ExtendResponse>, V2Error> {
    let ApiJson(env) = body?;
    let data: ExtendData = open(&state, ip, "/api/v2/extend_session", &env).await?;
    let token = input::session_token("token", &data.token)?;
    // The token's license is looked up anyway (routing needs it), so the bucket is taken
    // only for a token known to exist, keyed by its canonical hash, before the shard.
    let key = license_of(&state, &token).await?;
    state.rate_limits.check_heartbeat(&token)?;
    let reply = state
        .licenses
        .call(&key, Request::Heartbeat { token_hash: token })
        .await?;
    let Reply::Heartbeat { timing, session } = reply else {
        return Err(unexpected(&reply).into());
    };
    metrics::counter!("tessera_heartbeats_total").increment(1);
    state
        .policy
        .after_heartbeat(&key, &session, ip, &client)
        .await?;
    Ok(Json(ExtendResponse {
        status: 200,
        time: rfc3339(Utc::now()),
        token: data.token.trim().to_string(),
        control_options: ControlOptions {
            session_duration: timing.heartbeat_timeout.as_secs(),
            validation_grace_period: timing.grace.as_secs(),
        },
    }))
}

/// `end_session` data.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EndData {
    /// Session token.
    pub token: String,
}

/// `end_session` success.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndResponse {
    /// Server time.
    pub time: String,
}

/// End a session. Any failure is 422, as the seed says.
#[utoipa::path(post, path = "/api/v2/end_session", tag = "instance (seed 003)",
    request_body = Envelope,
    responses(
        (status = 200, description = "Ended", body = EndResponse),
        (status = 422, description = "Any failure (code tells which)", body = V2Failure),
    ))]
pub async fn end_session(
    State(state): State<AppState>,
    ip: ClientIp,
    body: Result<ApiJson<Envelope>, ApiError>,
) -> Result<Json<EndResponse>, V2Error> {
    let result: Result<(), V2Error> = async {
        let ApiJson(env) = body?;
        let data: EndData = open(&state, ip, "/api/v2/end_session", &env).await?;
        let token = input::session_token("token", &data.token)?;
        let key = license_of(&state, &token).await?;
        state
            .licenses
            .call(
                &key,
                Request::EndSession {
                    token_hash: token,
                    reason: EndReason::ClientEnd,
                },
            )
            .await?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => Ok(Json(EndResponse {
            time: rfc3339(Utc::now()),
        })),
        Err(mut e) => {
            if !e.error.status().is_server_error() && e.error.code() != ErrorCode::RateLimited {
                e.status = Some(StatusCode::UNPROCESSABLE_ENTITY);
            }
            Err(e)
        }
    }
}
