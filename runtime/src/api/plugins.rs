//! Plugins over HTTP: `GET /api/admin/plugins` shows each configured plugin (its file,
//! hooks, calls, failures, p99 latency and last reload error, from `policy::status`);
//! `POST /api/admin/plugins/reload` reloads the chain as a SIGHUP does (`reload`), audited;
//! `GET /api/admin/plugins/record` streams the hook events of the running server as JSON
//! lines, in the events-file format `tessera plugin run --events` reads, license keys
//! replaced by pseudonyms (see `policy::record`). `tessera plugin record` is its client.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tessera_plugins::Hook;
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};

use crate::auth::access::Caller;
use crate::events::Severity;
use crate::http::error::ApiError;
use crate::policy::status::{PluginView, ReloadView};
use crate::state::AppState;

/// `GET /api/admin/plugins` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginList {
    /// Every configured plugin, in config order (disabled ones and ones that failed to load
    /// included).
    pub plugins: Vec<PluginView>,
}

/// The configured plugins: the file each serving version came from, its hooks, its calls
/// by result, failures by kind and p99 latency since it was loaded, and the last reload
/// that failed to load it. Counters of this server only, read without waiting for calls.
#[utoipa::path(get, path = "/api/admin/plugins", tag = "plugins",
    responses((status = 200, description = "The plugins", body = PluginList)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>) -> Json<PluginList> {
    Json(PluginList {
        plugins: state
            .policy
            .host()
            .status()
            .into_iter()
            .map(Into::into)
            .collect(),
    })
}

/// Reload the plugins as a SIGHUP does: every file of the running `[[plugins]]` is read
/// again and a changed one compiled and swapped in; one that fails to load keeps its
/// previous version serving (`ok` is false and its entry says why). Nothing else of the
/// config is reloaded. Audited as `admin.plugins.reloaded`.
#[utoipa::path(post, path = "/api/admin/plugins/reload", tag = "plugins",
    responses((status = 200, description = "What the reload did to each plugin", body = ReloadView)),
    security(("bearer" = [])))]
pub async fn reload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<ReloadView>, ApiError> {
    let report = crate::reload::reload_plugins(&state).await;
    let view = ReloadView::from(&report);
    let severity = if view.ok {
        Severity::Info
    } else {
        Severity::Warning
    };
    super::audit::record(
        &state,
        &caller,
        "admin.plugins.reloaded",
        severity,
        format!("plugins reloaded: {report}"),
        None,
        serde_json::to_value(&view).unwrap_or_default(),
    )
    .await?;
    Ok(Json(view))
}

/// Default and largest number of events one recording returns.
const DEFAULT_LIMIT: u32 = 1000;
const MAX_LIMIT: u32 = 100_000;
/// Default and longest recording, seconds.
const DEFAULT_SECONDS: u32 = 60;
const MAX_SECONDS: u32 = 3600;

/// What to record.
#[derive(Debug, Deserialize, IntoParams)]
pub struct RecordQuery {
    /// Hooks, comma-separated (`on_activate,on_session_start`); every hook when absent.
    pub hooks: Option<String>,
    /// Stop after this many events (default 1000, at most 100000).
    pub limit: Option<u32>,
    /// Stop after this many seconds (default 60, at most 3600).
    pub seconds: Option<u32>,
}

impl RecordQuery {
    fn hooks(&self) -> Result<BTreeSet<Hook>, ApiError> {
        let mut hooks = BTreeSet::new();
        for name in self.hooks.as_deref().unwrap_or("").split(',') {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            let hook = name.parse::<Hook>().map_err(|_| {
                let known: Vec<&str> = Hook::ALL.iter().map(|h| h.name()).collect();
                ApiError::validation(
                    "hooks",
                    format!("unknown hook `{name}`; known: {}", known.join(", ")),
                )
            })?;
            hooks.insert(hook);
        }
        Ok(hooks)
    }
}

fn bounded(field: &'static str, v: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match v.unwrap_or(default) {
        n if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::validation(
            field,
            format!("must be between 1 and {max}"),
        )),
    }
}

/// Record hook events: one JSON line per hook call (`{"hook": ..., "event": {...}}`) as it
/// happens, until `limit` events or `seconds` have passed. Events are recorded whether or
/// not a plugin exports the hook. License keys appear as pseudonyms (`REC-` + 16 hex).
#[utoipa::path(get, path = "/api/admin/plugins/record", tag = "plugins",
    params(RecordQuery),
    responses(
        (status = 200, description = "application/x-ndjson: one events-file line per hook call", content_type = "application/x-ndjson", body = String),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn record(
    State(state): State<AppState>,
    Query(q): Query<RecordQuery>,
) -> Result<Response, ApiError> {
    let hooks = q.hooks()?;
    let limit = bounded("limit", q.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let seconds = bounded("seconds", q.seconds, DEFAULT_SECONDS, MAX_SECONDS)?;
    let mut recording = state.policy.recorder().subscribe(hooks);
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let until = tokio::time::sleep(Duration::from_secs(u64::from(seconds)));
        tokio::pin!(until);
        for _ in 0..limit {
            let line = tokio::select! {
                () = &mut until => break,
                () = tx.closed() => break,
                line = recording.next() => line,
            };
            let Some(line) = line else { break };
            let mut bytes = Vec::with_capacity(line.len() + 1);
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
            if tx.send(Bytes::from(bytes)).await.is_err() {
                break;
            }
        }
    });
    let body =
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|b| b.map(Ok::<_, Infallible>)));
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(body),
    )
        .into_response())
}
