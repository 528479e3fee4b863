//! The event log over HTTP: `GET /api/admin/events` (newest first, filtered, cursor-paged)
//! and `GET /api/admin/events/stream`, the live stream as Server-Sent Events (`id:` lines,
//! resumable with `Last-Event-ID`, a comment every 15 s, a slow reader cut off with a final
//! `stream.dropped` event instead of growing memory).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use tokio::sync::mpsc;
use utoipa::IntoParams;

use super::admin::parse_time;
use crate::events::query::{self, DEFAULT_PAGE};
use crate::events::{Event, EventFilter, EventId, EventPage, Severity};
use crate::http::error::ApiError;
use crate::state::AppState;

/// Events queued between the stream's task and the HTTP response.
const SEND_QUEUE: usize = 16;
/// Most types or prefixes one filter lists.
const MAX_TYPES: usize = 32;

/// Filters of the listing and the stream.
#[derive(Debug, Deserialize, IntoParams)]
pub struct EventQuery {
    /// Types or prefixes ending in `.`, comma-separated (`session.,license.banned`): at most
    /// 32 items, each at most 64 of `a-z 0-9 . _`.
    #[serde(rename = "type")]
    #[param(
        rename = "type",
        pattern = "^\\s*([a-z0-9._]{1,64})?\\s*(,\\s*([a-z0-9._]{1,64})?\\s*){0,31}$"
    )]
    pub kind: Option<String>,
    /// A license key.
    #[param(pattern = "^\\s*([A-Za-z0-9_-]{1,64})?\\s*$")]
    pub license: Option<String>,
    /// At least this severity: `info`, `warning`, `critical`.
    #[param(pattern = "^(\\s*(info|warning|critical)\\s*)?$")]
    pub severity: Option<String>,
    /// At or after this time (RFC 3339 or `YYYY-MM-DD`).
    #[param(schema_with = super::input::time_filter_schema)]
    pub since: Option<String>,
    /// Before this time.
    #[param(schema_with = super::input::time_filter_schema)]
    pub until: Option<String>,
    /// Listing only: continue after (older than) this event id (`next_cursor`).
    #[param(pattern = "^\\s*([0-9]{1,19}-[0-9]{1,19})?\\s*$")]
    pub cursor: Option<String>,
    /// Listing only: page size (default 50, at most 500).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// Stream only: resume after this id (the `Last-Event-ID` header wins).
    pub last_event_id: Option<String>,
}

/// An event id a client sends back (`ms-seq`, each 1 to 19 digits, as the document says).
fn event_id_text(field: &'static str, raw: &str) -> Result<EventId, ApiError> {
    match raw.split_once('-') {
        Some((ms, seq)) if super::input::digits(ms, 19) && super::input::digits(seq, 19) => {
            event_id(field, raw)
        }
        _ => Err(ApiError::validation(
            field,
            format!("`{raw}` is not an event id like 1733500000000-0"),
        )),
    }
}

fn event_id(field: &'static str, raw: &str) -> Result<EventId, ApiError> {
    raw.parse()
        .map_err(|e: String| ApiError::validation(field, e))
}

impl EventQuery {
    fn filter(&self) -> Result<EventFilter, ApiError> {
        let items: Vec<&str> = self.kind.as_deref().unwrap_or("").split(',').collect();
        // Blank items count too: the document's pattern bounds the list, not the types.
        if items.len() > MAX_TYPES {
            return Err(ApiError::validation(
                "type",
                format!("at most {MAX_TYPES} types"),
            ));
        }
        let types: Vec<String> = items
            .into_iter()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        if types.len() > MAX_TYPES {
            return Err(ApiError::validation(
                "type",
                format!("at most {MAX_TYPES} types"),
            ));
        }
        if let Some(bad) = types.iter().find(|t| {
            t.len() > 64
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
        }) {
            return Err(ApiError::validation(
                "type",
                format!(
                    "`{bad}` is not an event type like session.ended or a prefix like session."
                ),
            ));
        }
        let severity = match self.severity.as_deref() {
            None | Some("") => None,
            Some(s) => Some(Severity::parse(s).ok_or_else(|| {
                ApiError::validation("severity", "must be info, warning or critical")
            })?),
        };
        let license = match self.license.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(k) => Some(
                tessera_actors::LicenseKey::parse(k)
                    .map_err(|e| ApiError::validation("license", e.to_string()))?
                    .to_string(),
            ),
        };
        let time = |field: &'static str, v: &Option<String>| -> Result<_, ApiError> {
            match v.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(t) => parse_time(field, t).map(Some),
            }
        };
        Ok(EventFilter {
            types,
            license,
            severity,
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
        })
    }
}

/// List events, newest first.
#[utoipa::path(get, path = "/api/admin/events", tag = "events",
    params(EventQuery),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<EventQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let filter = q.filter()?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=query::MAX_PAGE).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            format!("must be between 1 and {}", query::MAX_PAGE),
        ));
    }
    let cursor = match q.cursor.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(c) => Some(event_id_text("cursor", c)?),
    };
    let page = query::page(state.events.store().as_ref(), &filter, cursor, limit)
        .await
        .map_err(ApiError::store)?;
    Ok(Json(page))
}

fn sse(e: &Event) -> SseEvent {
    let data = serde_json::to_string(e).unwrap_or_default();
    SseEvent::default()
        .id(e.id.clone())
        .event(e.event_type.clone())
        .data(data)
}

/// How often a live stream's credential is checked again.
const CREDENTIAL_RECHECK: Duration = Duration::from_secs(10);

/// The live stream: Server-Sent Events, one per stored event (`id:` = the event id,
/// `event:` = its type, `data:` = the event as JSON), every server's events on a shared
/// Redis. Send `Last-Event-ID` to resume after an id without losing what happened between.
#[utoipa::path(get, path = "/api/admin/events/stream", tag = "events",
    params(EventQuery),
    responses(
        (status = 200, description = "text/event-stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "VALIDATION_ERROR", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<EventQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let filter = q.filter()?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(q.last_event_id.clone());
    let resume = match resume.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(id) => Some(event_id("Last-Event-ID", id)?),
    };
    // The credential that opened the stream is checked again while it runs: a logout, an
    // expiry, a revoked key or a forced re-authentication ends the stream too.
    let credential = crate::auth::access::bearer(&headers)
        .or_else(|| crate::auth::panel_cookie::token(&headers))
        .map(str::to_owned);
    let auth = std::sync::Arc::clone(&state.auth);
    let mut recheck = tokio::time::interval_at(
        tokio::time::Instant::now() + CREDENTIAL_RECHECK,
        CREDENTIAL_RECHECK,
    );
    // Subscribe before replaying, so nothing stored in between is missed.
    let mut sub = state.events.stream(state.config.events.stream_buffer);
    let store = std::sync::Arc::clone(state.events.store());
    let (tx, rx) = mpsc::channel::<SseEvent>(SEND_QUEUE);
    tokio::spawn(async move {
        let mut last = resume;
        if let Some(mut after) = resume {
            loop {
                let page = match store.after(Some(after), 500).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream: replay failed");
                        break;
                    }
                };
                let more = page.len() == 500;
                for e in &page {
                    if let Some(id) = e.event_id() {
                        after = id;
                    }
                    if filter.matches(e) && tx.send(sse(e)).await.is_err() {
                        return;
                    }
                }
                last = Some(after);
                if !more {
                    break;
                }
            }
        }
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = recheck.tick() => {
                    let Some(c) = credential.as_deref() else { return };
                    // A store that cannot answer now keeps the stream; a credential that no
                    // longer authenticates anyone ends it.
                    if let Ok(None) = auth.bearer(c).await {
                        return;
                    }
                }
                next = sub.recv() => match next {
                    Some(e) => {
                        let id = e.event_id();
                        if id.is_some_and(|id| last.is_some_and(|l| id <= l)) {
                            continue;
                        }
                        last = id.or(last);
                        if filter.matches(&e) && tx.send(sse(&e)).await.is_err() {
                            return;
                        }
                    }
                    None => {
                        if sub.was_dropped() {
                            let bye = SseEvent::default()
                                .event("stream.dropped")
                                .data("{\"reason\":\"the reader fell too far behind; reconnect with Last-Event-ID\"}");
                            let _ = tx.send(bye).await;
                        }
                        return;
                    }
                },
            }
        }
    });
    let events =
        futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
        );
    Ok(Sse::new(events).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    ))
}
