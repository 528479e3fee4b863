//! Seed 003's instance/session API (`/api/v2/*`): every request is a `{key, data}` envelope
//! sealed with [`crate::envelope`]; replies are plain JSON.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::client::{Client, ClientInner, Idempotence};
use crate::envelope;
use crate::error::Error;
use crate::fingerprint::Fingerprint;
use crate::session::{Ack, EndReason, Protocol, Session, SessionOptions, Target};

/// `register_instance` data.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RegisterInstance {
    /// The license key.
    pub license_key: String,
    /// The product the license must belong to (optional).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_guid: Option<String>,
    /// The hardware components ([`crate::fingerprint()`]).
    #[serde(flatten)]
    pub hardware: Fingerprint,
    /// The user's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The user's e-mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// Seed 003 `control_options`: the session's timing.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct ControlOptions {
    /// Seconds a session lives without `extend_session` (the heartbeat timeout).
    pub session_duration: u64,
    /// Extra seconds of tolerance after that.
    pub validation_grace_period: u64,
}

/// The reply to [`Client::register_instance`].
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct Instance {
    /// The instance id for [`BeginSession::instance_guid`].
    pub guid: String,
    /// Session timing.
    pub control_options: ControlOptions,
    /// When the instance was first registered (RFC 3339).
    #[serde(default)]
    pub first_registered_at: String,
    /// Server time (RFC 3339).
    #[serde(default)]
    pub time: String,
}

/// `begin_session` data.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BeginSession {
    /// The license key.
    pub license_key: String,
    /// The instance id from [`Client::register_instance`].
    pub instance_guid: String,
    /// The product the license must belong to (optional).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_guid: Option<String>,
    /// The hardware components; they must match the registered instance.
    #[serde(flatten)]
    pub hardware: Fingerprint,
}

#[derive(Deserialize)]
struct BeginReply {
    token: String,
    control_options: ControlOptions,
}

#[derive(Deserialize)]
struct ExtendReply {
    control_options: ControlOptions,
}

#[derive(Serialize)]
struct TokenData<'a> {
    token: &'a str,
}

#[derive(Serialize)]
struct Envelope<'a> {
    key: &'a str,
    data: String,
}

async fn call<T: DeserializeOwned>(
    client: &ClientInner,
    op: &str,
    license_key: Option<&str>,
    data: &impl Serialize,
    timeout: Option<Duration>,
) -> Result<T, Error> {
    let json = serde_json::to_vec(data).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let body = Envelope {
        key: &client.api_key,
        data: envelope::seal(&client.api_key, &json)?,
    };
    let path = format!("/api/v2/{op}");
    match timeout {
        Some(t) => client
            .post_once(&path, license_key, &body, t)
            .await
            .map_err(|(e, _)| e),
        None => {
            let idem = if op == "begin_session" {
                Idempotence::Once
            } else {
                Idempotence::Idempotent
            };
            client.post(&path, license_key, &body, idem).await
        }
    }
}

fn lifetime(c: &ControlOptions) -> Duration {
    Duration::from_secs(c.session_duration.saturating_add(c.validation_grace_period))
}

/// Seed 003 announces no interval: heartbeat three times per session duration.
fn interval(c: &ControlOptions) -> Duration {
    Duration::from_secs(c.session_duration.max(1)) / 3
}

pub(crate) async fn extend(target: &Target, timeout: Duration) -> Result<Ack, Error> {
    let reply: ExtendReply = call(
        &target.client,
        "extend_session",
        Some(&target.license_key),
        &TokenData {
            token: &target.token,
        },
        Some(timeout),
    )
    .await?;
    Ok(Ack {
        interval: Some(interval(&reply.control_options)),
        lifetime: Some(lifetime(&reply.control_options)),
    })
}

pub(crate) async fn end(target: &Target, client: &ClientInner) -> Result<EndReason, Error> {
    let _: serde_json::Value = call(
        client,
        "end_session",
        Some(&target.license_key),
        &TokenData {
            token: &target.token,
        },
        None,
    )
    .await?;
    Ok(EndReason::ClientEnd)
}

impl Client {
    /// Seed 003 `register_instance`: activates the license on this hardware (again the same
    /// instance when it is already registered).
    pub async fn register_instance(&self, data: &RegisterInstance) -> Result<Instance, Error> {
        call(
            &self.inner,
            "register_instance",
            Some(&data.license_key),
            data,
            None,
        )
        .await
    }

    /// Seed 003 `begin_session`: a [`Session`] that heartbeats with `extend_session`.
    pub async fn begin_session(&self, data: &BeginSession) -> Result<Session, Error> {
        self.begin_session_with(data, SessionOptions::default())
            .await
    }

    /// [`Client::begin_session`] with options.
    pub async fn begin_session_with(
        &self,
        data: &BeginSession,
        options: SessionOptions,
    ) -> Result<Session, Error> {
        let reply: BeginReply = call(
            &self.inner,
            "begin_session",
            Some(&data.license_key),
            data,
            None,
        )
        .await?;
        let target = Target {
            client: Arc::clone(&self.inner),
            token: reply.token,
            license_key: data.license_key.trim().to_owned(),
            protocol: Protocol::V2,
            version: None,
        };
        Session::spawn(
            target,
            interval(&reply.control_options),
            lifetime(&reply.control_options),
            options,
            None,
        )
        .await
    }
}
