//! One delivery attempt: a signed `POST` through a client that resolves names through the
//! SSRF guard, follows no redirect, uses no proxy and gives up after `webhooks.timeout_ms`.
//! A 2xx answer delivers; anything else (another status, a refused target, a timeout, a
//! connection error) is a failed attempt with its reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::{Client, Url};
use tessera_config::WebhooksConfig;

use super::delivery::Delivery;
use super::guard::{GuardedResolver, Refused, refuse_literal};
use super::secret::signature;

/// Response bytes read (and dropped) so the connection can be reused.
const READ_AT_MOST: usize = 64 * 1024;

/// What an attempt saw.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    /// The answer's status, if one came.
    pub(crate) status: Option<u16>,
    /// From start to answer (or failure).
    pub(crate) latency: Duration,
    /// Why it failed, if it did.
    pub(crate) error: Option<String>,
}

impl Outcome {
    /// A 2xx answer.
    pub(crate) fn delivered(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// The delivery client.
#[derive(Clone)]
pub(crate) struct Sender {
    client: Result<Client, Arc<str>>,
    timeout: Duration,
    allow_private: bool,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Sender {
    /// The client for `config`. A client that cannot be built (no TLS backend) is logged and
    /// fails every attempt with the reason, rather than stopping the server.
    pub(crate) fn new(config: &WebhooksConfig) -> Self {
        let client = Client::builder()
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: config.allow_private_targets,
            }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(config.timeout)
            .timeout(config.timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(2)
            .user_agent(concat!("Tessera-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                tracing::error!(error = %e, "webhook client not available; deliveries will fail");
                Arc::from(format!("webhook client not available: {e}"))
            });
        Self {
            client,
            timeout: config.timeout,
            allow_private: config.allow_private_targets,
        }
    }

    /// Sends `delivery` to `url`, signed with `secrets` (the current one first).
    pub(crate) async fn send(&self, url: &str, delivery: &Delivery, secrets: &[&str]) -> Outcome {
        let started = Instant::now();
        let failed = |error: String| Outcome {
            status: None,
            latency: started.elapsed(),
            error: Some(error),
        };
        let client = match &self.client {
            Ok(c) => c,
            Err(e) => return failed(e.to_string()),
        };
        let url = match Url::parse(url) {
            Ok(u) => u,
            Err(e) => return failed(format!("stored url does not parse: {e}")),
        };
        if let Err(Refused(why)) = refuse_literal(&url, self.allow_private) {
            return failed(format!("target refused: {why}"));
        }
        let timestamp = Utc::now().timestamp();
        let signed = match signature(secrets, &delivery.webhook_id, timestamp, &delivery.body) {
            Ok(s) => s,
            Err(e) => return failed(e),
        };
        let request = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &delivery.webhook_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signed)
            .body(delivery.body.clone());
        let exchange = async {
            let mut resp = request.send().await?;
            let status = resp.status().as_u16();
            let mut read = 0;
            while read < READ_AT_MOST {
                match resp.chunk().await? {
                    Some(chunk) => read += chunk.len(),
                    None => break,
                }
            }
            Ok::<u16, reqwest::Error>(status)
        };
        // The client's timeout covers the exchange; this one bounds it whatever happens.
        let result =
            tokio::time::timeout(self.timeout + Duration::from_millis(100), exchange).await;
        let latency = started.elapsed();
        match result {
            Ok(Ok(status)) => Outcome {
                status: Some(status),
                latency,
                error: (!(200..300).contains(&status)).then(|| {
                    if (300..400).contains(&status) {
                        format!("HTTP {status} (redirects are not followed)")
                    } else {
                        format!("HTTP {status}")
                    }
                }),
            },
            Ok(Err(e)) => Outcome {
                status: e.status().map(|s| s.as_u16()),
                latency,
                error: Some(describe(e)),
            },
            Err(_) => Outcome {
                status: None,
                latency,
                error: Some(format!("timed out after {} ms", self.timeout.as_millis())),
            },
        }
    }
}

/// The error and its causes, without the URL (it may carry a token, as Discord's do).
fn describe(e: reqwest::Error) -> String {
    let timeout = e.is_timeout();
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<Refused>() {
            return format!("target refused: {refused}");
        }
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if timeout {
        text = format!("timed out ({text})");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::delivery::Status;

    fn delivery() -> Delivery {
        Delivery {
            seq: 1,
            endpoint: 1,
            webhook_id: "msg_1".into(),
            event_id: "1-0".into(),
            event_type: "t.x".into(),
            body: "{}".into(),
            status: Status::Pending,
            attempts: 0,
            step: 0,
            created_at: Utc::now(),
            next_attempt_at: None,
            in_flight: false,
            last_attempt_at: None,
            last_status_code: None,
            last_latency_ms: None,
            last_error: None,
        }
    }

    #[tokio::test]
    async fn internal_targets_are_refused_at_the_attempt_before_any_connection() {
        let sender = Sender::new(&WebhooksConfig::default());
        let secret = crate::webhooks::secret::generate();
        for url in [
            "http://localhost:9/hook",
            "http://127.0.0.1:9/",
            "http://[::1]:9/",
        ] {
            let out = sender.send(url, &delivery(), &[&secret]).await;
            assert!(!out.delivered());
            let error = out.error.unwrap_or_default();
            assert!(error.starts_with("target refused"), "{url}: {error}");
        }
    }
}
