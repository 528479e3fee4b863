//! The bare baseline: a minimal hyper server that reads each request body and answers with
//! a constant JSON body shaped like Tessera's heartbeat reply. It is what "as fast as an
//! HTTP server on this machine can answer this request" means in the results.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The constant heartbeat reply (same fields and length class as Tessera's).
pub const HEARTBEAT_BODY: &[u8] = br#"{"status":"ok","last_heartbeat":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T00:02:00Z","heartbeat_interval_secs":30}"#;

const HEALTH_BODY: &[u8] = br#"{"status":"healthy"}"#;

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let health = req.uri().path() == "/health";
    // Read the whole body, as any real handler must.
    let _ = req.into_body().collect().await;
    let body = if health { HEALTH_BODY } else { HEARTBEAT_BODY };
    let mut resp = Response::new(Full::new(Bytes::from_static(body)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

/// Serves the baseline on `listener` until the process ends.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}

/// Binds `addr` and serves the baseline.
pub async fn run(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    eprintln!("baseline listening on {}", listener.local_addr()?);
    serve(listener).await?;
    Ok(())
}
