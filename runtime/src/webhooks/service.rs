//! The webhook service: endpoint CRUD, secret rotation, the delivery log and redelivery
//! over the catalog store, with the dispatcher (`dispatcher.rs`) behind it. One per server
//! in `AppState`; [`Webhooks::acting_as`] names the caller in the admin events its changes
//! publish.

use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};
use tessera_config::WebhooksConfig;
use utoipa::ToSchema;

use super::delivery::{Delivery, DeliveryView, Status, endpoint_of, range_start, store_id};
use super::dispatcher::{CAS_TRIES, Dispatcher};
use super::endpoint::{
    CreatedEndpoint, Endpoint, EndpointPatch, EndpointView, MAX_ENDPOINTS, NewEndpoint,
    RotatedSecret, check_event_types,
};
use super::error::WebhookError;
use super::guard::{check_target, parse_url};
use super::secret::{DEFAULT_OVERLAP_SECS, MAX_OVERLAP_SECS, Secrets};
use crate::admin::events::{AdminEvent, AdminEvents};
use crate::events::{Events, NewEvent, Severity};
use crate::store::catalog::{CatalogKind, CatalogStore, Entry, numeric_id};

const ENDPOINTS: CatalogKind = CatalogKind::WebhookEndpoint;
const DELIVERIES: CatalogKind = CatalogKind::WebhookDelivery;

/// Default and largest page of a listing.
pub const DEFAULT_PAGE: usize = 50;
/// See [`DEFAULT_PAGE`].
pub const MAX_PAGE: usize = 500;

/// The webhook service. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    shared: Arc<Shared>,
    actor: Arc<str>,
    audit: Option<AdminEvents>,
}

struct Shared {
    store: Arc<dyn CatalogStore>,
    dispatcher: Arc<Dispatcher>,
    events: Events,
    config: WebhooksConfig,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("actor", &self.actor)
            .field("dispatcher", &self.shared.dispatcher)
            .finish()
    }
}

/// `GET /api/admin/webhooks` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointPage {
    /// Endpoints by id.
    pub items: Vec<EndpointView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// `GET /api/admin/webhooks/{id}/deliveries` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    /// Deliveries, newest first.
    pub items: Vec<DeliveryView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// An endpoint id from a path: the number, else not found.
fn endpoint_id(id: &str) -> Result<u64, WebhookError> {
    id.trim()
        .parse::<u64>()
        .map_err(|_| WebhookError::NotFound(id.to_owned()))
}

/// The host of a URL, for events and logs (a path may carry a token, as Discord's do).
fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Webhooks {
    /// Subscribes to this server's events and starts delivering; call right after the event
    /// fan-out starts, so no event is missed.
    pub async fn start(
        store: Arc<dyn CatalogStore>,
        events: Events,
        config: &WebhooksConfig,
    ) -> Self {
        let dispatcher = Dispatcher::start(Arc::clone(&store), events.clone(), config).await;
        Self {
            shared: Arc::new(Shared {
                store,
                dispatcher,
                events,
                config: config.clone(),
            }),
            actor: Arc::from("system"),
            audit: None,
        }
    }

    /// The same service, acting for `actor` (`key:<name>`, `operator:<name>`), its changes
    /// published on `audit` (the admin service's fan-out) like every admin action.
    pub fn acting_as(&self, actor: impl Into<String>, audit: &AdminEvents) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            actor: Arc::from(actor.into()),
            audit: Some(audit.clone()),
        }
    }

    /// Stops delivering (the server is shutting down); pending deliveries stay stored.
    pub async fn shutdown(&self) {
        self.shared.dispatcher.shutdown().await;
    }

    fn emit(&self, event_type: &'static str, summary: String, data: Value) {
        match &self.audit {
            Some(audit) => audit.publish(AdminEvent {
                event_type,
                actor: self.actor.to_string(),
                license: None,
                summary,
                data,
                created_at: Utc::now(),
            }),
            None => self.shared.events.publish(
                NewEvent::new(event_type, Severity::Info, summary)
                    .actor(self.actor.to_string())
                    .data(data),
            ),
        }
    }

    async fn load(&self, id: u64) -> Result<(Endpoint, Vec<u8>), WebhookError> {
        let bytes = self
            .shared
            .store
            .get(ENDPOINTS, &numeric_id(id))
            .await?
            .ok_or_else(|| WebhookError::NotFound(id.to_string()))?;
        let ep = Endpoint::decode(&bytes)?;
        if ep.deleted {
            return Err(WebhookError::NotFound(id.to_string()));
        }
        Ok((ep, bytes))
    }

    async fn store_endpoint(
        &self,
        ep: &Endpoint,
        expected: Option<&[u8]>,
    ) -> Result<bool, WebhookError> {
        let bytes = ep.encode();
        let entry = Entry {
            value: &bytes,
            terms: &[],
        };
        Ok(self
            .shared
            .store
            .swap(ENDPOINTS, &numeric_id(ep.id), expected, Some(entry))
            .await?)
    }

    /// Changes endpoint `id` with `change` by compare-and-swap, retried when another writer
    /// came first; refreshes the dispatcher's copy.
    async fn change(
        &self,
        id: &str,
        mut change: impl FnMut(&mut Endpoint) -> Result<(), WebhookError>,
    ) -> Result<Endpoint, WebhookError> {
        let id = endpoint_id(id)?;
        for _ in 0..CAS_TRIES {
            let (mut ep, bytes) = self.load(id).await?;
            change(&mut ep)?;
            if self.store_endpoint(&ep, Some(&bytes)).await? {
                self.shared.dispatcher.refresh().await;
                return Ok(ep);
            }
        }
        Err(WebhookError::Conflict(format!(
            "webhook {id} kept changing; try again"
        )))
    }

    /// Creates an endpoint; its secret is in the answer and nowhere else.
    pub async fn create(&self, input: NewEndpoint) -> Result<CreatedEndpoint, WebhookError> {
        let url = parse_url(&input.url)?;
        check_target(&url, self.shared.config.allow_private_targets).await?;
        let event_types = check_event_types(&input.event_types)?;
        let existing = self
            .shared
            .store
            .list(ENDPOINTS, None, MAX_ENDPOINTS * 2)
            .await?
            .iter()
            .filter(|(_, b)| Endpoint::decode(b).is_ok_and(|e| !e.deleted))
            .count();
        if existing >= MAX_ENDPOINTS {
            return Err(WebhookError::Conflict(format!(
                "at most {MAX_ENDPOINTS} webhooks; delete one first"
            )));
        }
        let now = Utc::now();
        let ep = Endpoint {
            id: self.shared.store.next_id(ENDPOINTS).await?,
            url: url.to_string(),
            event_types,
            format: input.format,
            enabled: true,
            created_at: now,
            updated_at: now,
            secrets: Secrets::generate(),
            failing_since: None,
            disabled_reason: None,
            deleted: false,
        };
        if !self.store_endpoint(&ep, None).await? {
            return Err(WebhookError::Conflict(format!(
                "webhook id {} is already taken",
                ep.id
            )));
        }
        self.shared.dispatcher.refresh().await;
        self.emit(
            "admin.webhook.created",
            format!("webhook {} created for {}", ep.id, host_of(&ep.url)),
            json!({
                "webhook_id": ep.id,
                "host": host_of(&ep.url),
                "event_types": ep.event_types,
                "format": ep.format,
            }),
        );
        Ok(CreatedEndpoint {
            secret: ep.secrets.current().to_owned(),
            endpoint: ep.view(now),
        })
    }

    /// Endpoints by id, `limit` at a time after `cursor` (an id).
    pub async fn list(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<EndpointPage, WebhookError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let after = match cursor.map(str::trim).filter(|c| !c.is_empty()) {
            Some(c) => Some(numeric_id(c.parse::<u64>().map_err(|_| {
                WebhookError::invalid("cursor", "is not a cursor from a previous page")
            })?)),
            None => None,
        };
        let now = Utc::now();
        let (mut items, mut after) = (Vec::new(), after);
        // Deleted endpoints are skipped, so a page may need more than one read.
        loop {
            let rows = self
                .shared
                .store
                .list(ENDPOINTS, after.as_deref(), limit + 1 - items.len())
                .await?;
            let exhausted = rows.len() < limit + 1 - items.len();
            for (id, bytes) in rows {
                after = Some(id);
                let ep = Endpoint::decode(&bytes)?;
                if !ep.deleted {
                    items.push(ep.view(now));
                }
            }
            if items.len() > limit {
                items.truncate(limit);
                let next = items.last().map(|e| e.id.to_string());
                return Ok(EndpointPage {
                    items,
                    next_cursor: next,
                });
            }
            if exhausted {
                return Ok(EndpointPage {
                    items,
                    next_cursor: None,
                });
            }
        }
    }

    /// One endpoint.
    pub async fn get(&self, id: &str) -> Result<EndpointView, WebhookError> {
        let (ep, _) = self.load(endpoint_id(id)?).await?;
        Ok(ep.view(Utc::now()))
    }

    /// Changes an endpoint (absent fields stay). A new URL is checked like at creation;
    /// enabling clears the failure streak.
    pub async fn edit(&self, id: &str, patch: EndpointPatch) -> Result<EndpointView, WebhookError> {
        let url = match &patch.url {
            Some(raw) => {
                let url = parse_url(raw)?;
                check_target(&url, self.shared.config.allow_private_targets).await?;
                Some(url.to_string())
            }
            None => None,
        };
        let event_types = patch
            .event_types
            .as_deref()
            .map(check_event_types)
            .transpose()?;
        let now = Utc::now();
        let ep = self
            .change(id, |ep| {
                if let Some(u) = &url {
                    ep.url.clone_from(u);
                }
                if let Some(t) = &event_types {
                    ep.event_types.clone_from(t);
                }
                if let Some(f) = patch.format {
                    ep.format = f;
                }
                match patch.enabled {
                    Some(true) if !ep.enabled => {
                        ep.enabled = true;
                        ep.failing_since = None;
                        ep.disabled_reason = None;
                    }
                    Some(false) => {
                        ep.enabled = false;
                        ep.disabled_reason = None;
                    }
                    _ => {}
                }
                ep.updated_at = now;
                Ok(())
            })
            .await?;
        self.emit(
            "admin.webhook.edited",
            format!("webhook {} edited", ep.id),
            json!({
                "webhook_id": ep.id,
                "host": host_of(&ep.url),
                "event_types": ep.event_types,
                "format": ep.format,
                "enabled": ep.enabled,
            }),
        );
        Ok(ep.view(now))
    }

    /// Deletes an endpoint: it disappears at once; its deliveries are removed in the
    /// background (pending ones are not sent).
    pub async fn delete(&self, id: &str) -> Result<(), WebhookError> {
        let now = Utc::now();
        let ep = self
            .change(id, |ep| {
                ep.deleted = true;
                ep.enabled = false;
                ep.updated_at = now;
                Ok(())
            })
            .await?;
        self.shared.dispatcher.purge_later();
        self.emit(
            "admin.webhook.deleted",
            format!("webhook {} deleted", ep.id),
            json!({ "webhook_id": ep.id, "host": host_of(&ep.url) }),
        );
        Ok(())
    }

    /// Replaces the signing secret; the old one keeps signing for `overlap_secs` (default
    /// 24 h, at most 30 days, 0 for none), so deliveries carry both signatures meanwhile.
    pub async fn rotate_secret(
        &self,
        id: &str,
        overlap_secs: Option<u64>,
    ) -> Result<RotatedSecret, WebhookError> {
        let overlap = overlap_secs.unwrap_or(DEFAULT_OVERLAP_SECS);
        if overlap > MAX_OVERLAP_SECS {
            return Err(WebhookError::invalid(
                "overlap_secs",
                format!("at most {MAX_OVERLAP_SECS} (30 days)"),
            ));
        }
        let overlap = chrono::Duration::seconds(i64::try_from(overlap).unwrap_or(i64::MAX));
        let now = Utc::now();
        let mut rotated = None;
        let ep = self
            .change(id, |ep| {
                rotated = Some(ep.secrets.rotate(now, overlap));
                ep.updated_at = now;
                Ok(())
            })
            .await?;
        let Some((secret, previous_valid_until)) = rotated else {
            return Err(WebhookError::Conflict("the secret was not rotated".into()));
        };
        self.emit(
            "admin.webhook.secret_rotated",
            format!("webhook {} secret rotated", ep.id),
            json!({ "webhook_id": ep.id, "previous_valid_until": previous_valid_until }),
        );
        Ok(RotatedSecret {
            secret,
            previous_valid_until,
        })
    }

    /// An endpoint's deliveries, newest first, `limit` at a time after `cursor` (a delivery
    /// id).
    pub async fn deliveries(
        &self,
        id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<DeliveryPage, WebhookError> {
        let (ep, _) = self.load(endpoint_id(id)?).await?;
        let limit = limit.clamp(1, MAX_PAGE);
        let after = match cursor.map(str::trim).filter(|c| !c.is_empty()) {
            Some(c) => store_id(
                ep.id,
                c.parse::<u64>().map_err(|_| {
                    WebhookError::invalid("cursor", "is not a cursor from a previous page")
                })?,
            ),
            None => range_start(ep.id),
        };
        let rows = self
            .shared
            .store
            .list(DELIVERIES, Some(&after), limit)
            .await?;
        let full = rows.len() == limit;
        let mut items = Vec::with_capacity(rows.len());
        for (sid, bytes) in rows {
            if endpoint_of(&sid) != Some(ep.id) {
                return Ok(DeliveryPage {
                    items,
                    next_cursor: None,
                });
            }
            items.push(Delivery::decode(&bytes)?.view());
        }
        let next_cursor = if full {
            items.last().map(|d| d.id.to_string())
        } else {
            None
        };
        Ok(DeliveryPage { items, next_cursor })
    }

    /// Queues a delivery again, with a fresh schedule and its `webhook-id`, and starts it now
    /// if there is room.
    pub async fn redeliver(
        &self,
        id: &str,
        delivery_id: &str,
    ) -> Result<DeliveryView, WebhookError> {
        let (ep, _) = self.load(endpoint_id(id)?).await?;
        if !ep.enabled {
            return Err(WebhookError::Conflict(format!(
                "webhook {} is disabled; enable it first",
                ep.id
            )));
        }
        let not_found = || WebhookError::DeliveryNotFound {
            endpoint: ep.id,
            delivery: delivery_id.to_owned(),
        };
        let seq = delivery_id.trim().parse::<u64>().map_err(|_| not_found())?;
        let sid = store_id(ep.id, seq);
        for _ in 0..CAS_TRIES {
            let bytes = self
                .shared
                .store
                .get(DELIVERIES, &sid)
                .await?
                .ok_or_else(not_found)?;
            let old = Delivery::decode(&bytes)?;
            let now = Utc::now();
            if old.in_flight && !old.is_due(now) {
                return Err(WebhookError::Conflict(format!(
                    "an attempt of delivery {seq} is running; try again when it ends"
                )));
            }
            let mut d = old;
            d.status = Status::Pending;
            d.step = 0;
            d.in_flight = false;
            d.next_attempt_at = Some(now);
            let new = d.encode();
            let terms = d.terms();
            let entry = Entry {
                value: &new,
                terms: &terms,
            };
            if self
                .shared
                .store
                .swap(DELIVERIES, &sid, Some(&bytes), Some(entry))
                .await?
            {
                let view = d.view();
                self.shared.dispatcher.try_dispatch(d, new);
                self.emit(
                    "admin.webhook.redelivered",
                    format!("webhook {} delivery {seq} queued again", ep.id),
                    json!({ "webhook_id": ep.id, "delivery_id": seq, "event_type": view.event_type }),
                );
                return Ok(view);
            }
        }
        Err(WebhookError::Conflict(format!(
            "delivery {seq} kept changing; try again"
        )))
    }

    /// Trims every endpoint's delivery log now (the dispatcher does it each minute).
    pub async fn trim_now(&self) -> Result<(), WebhookError> {
        self.shared.dispatcher.trim().await
    }
}
