//! The audit log over HTTP (`GET /api/admin/audit`, `GET /api/admin/audit/verify`), and
//! [`record`] and [`record_entry`], which the operator routes outside the admin service
//! (security controls, feature flags, emergency controls, operators, admin keys, plugin
//! reloads) use to audit and publish what they did.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::audit::{AuditEntry, AuditPage, VerifyReport};
use crate::auth::access::Caller;
use crate::events::{NewEvent, Severity};
use crate::http::error::ApiError;
use crate::state::AppState;

/// `GET /api/admin/audit` query.
#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Continue with records older than this sequence number.
    pub cursor: Option<u64>,
    /// Page size (default 50, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/admin/audit", tag = "events",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of audit records", body = AuditPage),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=crate::store::audit::MAX_READ).contains(&limit) {
        return Err(ApiError::validation("limit", "must be between 1 and 1000"));
    }
    let cursor = q
        .cursor
        .map(|c| super::input::id("cursor", c))
        .transpose()?;
    let page = state
        .admin
        .audit()
        .page(cursor, limit)
        .await
        .map_err(ApiError::store)?;
    Ok(Json(page))
}

/// Walk the whole chain: `ok`, or the first record that was changed, removed or reordered.
#[utoipa::path(get, path = "/api/admin/audit/verify", tag = "events",
    responses((status = 200, description = "The verification", body = VerifyReport)),
    security(("bearer" = [])))]
pub async fn verify(State(state): State<AppState>) -> Result<Json<VerifyReport>, ApiError> {
    let report = state
        .admin
        .audit()
        .verify()
        .await
        .map_err(ApiError::store)?;
    Ok(Json(report))
}

/// Audits (durably, before the caller is answered) an operator action whose event its own
/// service publishes (webhook endpoints).
pub(crate) async fn audit_only(
    state: &AppState,
    caller: &Caller,
    action: &'static str,
    target: String,
    summary: String,
    after: serde_json::Value,
) -> Result<(), ApiError> {
    state
        .admin
        .audit()
        .record(AuditEntry {
            actor: caller.actor(),
            ip: crate::audit::context::client_ip().map(|i| i.to_string()),
            action: action.to_owned(),
            target: Some(target),
            summary,
            before: None,
            after,
        })
        .await
        .map(|_| ())
        .map_err(ApiError::store)
}

/// Audits (durably, before the caller is answered) and publishes an operator action taken
/// outside the admin service.
pub(crate) async fn record(
    state: &AppState,
    caller: &Caller,
    action: &'static str,
    severity: Severity,
    summary: String,
    before: Option<serde_json::Value>,
    after: serde_json::Value,
) -> Result<(), ApiError> {
    let ip = crate::audit::context::client_ip();
    let audited = state
        .admin
        .audit()
        .record(AuditEntry {
            actor: caller.actor(),
            ip: ip.map(|i| i.to_string()),
            action: action.to_owned(),
            target: None,
            summary: summary.clone(),
            before,
            after: after.clone(),
        })
        .await;
    let mut event = NewEvent::new(action, severity, summary)
        .actor(caller.actor())
        .data(after);
    if let Some(ip) = ip {
        event = event.ip(ip);
    }
    state.events.publish(event);
    audited.map(|_| ()).map_err(ApiError::store)
}

/// Audits (durably, before the caller is answered) and publishes an action whose record was
/// prepared elsewhere (a credential command's, `auth::commands`), as `caller` from the
/// request's address.
pub(crate) async fn record_entry(
    state: &AppState,
    caller: &Caller,
    mut entry: AuditEntry,
    severity: Severity,
) -> Result<(), ApiError> {
    let ip = crate::audit::context::client_ip();
    entry.actor = caller.actor();
    entry.ip = ip.map(|i| i.to_string());
    let mut event = NewEvent::new(entry.action.clone(), severity, entry.summary.clone())
        .actor(caller.actor())
        .data(entry.after.clone());
    if let Some(ip) = ip {
        event = event.ip(ip);
    }
    let audited = state.admin.audit().record(entry).await;
    state.events.publish(event);
    audited.map(|_| ()).map_err(ApiError::store)
}
