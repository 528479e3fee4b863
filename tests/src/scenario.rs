//! What most HTTP scenario files share: running one scenario on the embedded store and on a
//! Redis the test starts ([`on_both_stores!`](crate::on_both_stores)), and calling the API
//! as an operator or as client software with the answer as `(status, JSON)`.

use reqwest::Method;
use serde_json::Value;
use tessera_config::{Config, StoreBackend};

use crate::{RedisServer, TestServer};

/// A server started for one scenario, and the Redis it uses (stopped after the server).
pub struct Started {
    /// The server.
    pub server: TestServer,
    _redis: Option<RedisServer>,
}

/// Starts a server on `backend` (a fresh Redis for [`StoreBackend::Redis`]) with
/// `configure` applied to the test config.
pub async fn start_on(
    backend: StoreBackend,
    configure: fn(&mut Config),
) -> anyhow::Result<Started> {
    match backend {
        StoreBackend::Embedded => Ok(Started {
            server: TestServer::start_with(configure).await?,
            _redis: None,
        }),
        StoreBackend::Redis => {
            let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
            let url = redis.url.clone();
            let server = TestServer::start_with(move |c| {
                configure(c);
                c.store.backend = StoreBackend::Redis;
                c.store.redis_url = url;
            })
            .await?;
            Ok(Started {
                server,
                _redis: Some(redis),
            })
        }
    }
}

/// Runs each `async fn NAME(&TestServer) -> anyhow::Result<()>` of the calling file on the
/// embedded store (`on_embedded::NAME`) and on Redis (`on_redis::NAME`), with `configure`
/// (a `fn(&mut Config)`, named from inside the generated modules: `super::f` or `|_| {}`).
#[macro_export]
macro_rules! on_both_stores {
    ($configure:expr; $($test:ident),* $(,)?) => {
        mod on_embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() -> anyhow::Result<()> {
                    let s = $crate::scenario::start_on(
                        $crate::tessera_config::StoreBackend::Embedded,
                        $configure,
                    )
                    .await?;
                    super::$test(&s.server).await
                }
            )*
        }
        mod on_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() -> anyhow::Result<()> {
                    let s = $crate::scenario::start_on(
                        $crate::tessera_config::StoreBackend::Redis,
                        $configure,
                    )
                    .await?;
                    super::$test(&s.server).await
                }
            )*
        }
    };
}

/// An admin call with the server's admin key (scope `*`): `(status, JSON body or null)`.
pub async fn admin(
    server: &TestServer,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = server
        .client()
        .request(method, server.url(path))
        .bearer_auth(&server.admin_key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => panic!("{path}: {e}"),
    };
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A client call (`POST` with the system API key): `(status, JSON body or null)`.
pub async fn client(server: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let resp = match server.post(path).json(&body).send().await {
        Ok(r) => r,
        Err(e) => panic!("{path}: {e}"),
    };
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The `code` of an error body (`""` when none).
pub fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("")
}
