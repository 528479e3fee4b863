//! How connections to Redis trust its certificate (`store.redis_ca_file` or the system's
//! roots), shared by every kind of connection.

use redis::TlsCertificates;

/// How `rediss://` connections check the server's certificate.
#[derive(Clone)]
pub(crate) struct Tls {
    /// PEM certificates the server's must chain to (`store.redis_ca_file`); `None`: the
    /// system's trust store.
    pub(crate) ca_pem: Option<Vec<u8>>,
}

impl Tls {
    pub(crate) fn certificates(&self) -> Option<TlsCertificates> {
        self.ca_pem.as_ref().map(|pem| TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        })
    }
}

/// rustls needs one process-wide crypto provider for the clients the redis crate builds;
/// ring is the one this build carries (rustls deprecates it for lacking post-quantum key
/// exchange, which needs aws-lc-rs and its C build). Installing twice is harmless (the
/// first one stays).
#[expect(deprecated, reason = "ring is the provider this build carries")]
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
