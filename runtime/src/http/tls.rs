//! HTTPS on `listen_addr` (`server.tls_cert_file` / `server.tls_key_file`).
//!
//! The served certificate sits behind an [`ArcSwap`]; every handshake reads it through
//! [`ResolvesServerCert`], so a reload (SIGHUP through [`crate::reload`], or a change of either
//! file seen by a watcher) swaps it for the connections that start afterwards while open
//! connections carry on. A reload whose files do not load keeps the previous certificate.
//! The served certificate's not-after is the gauge [`CERT_EXPIRY_GAUGE`].
//!
//! Nothing here runs per request: a plain-HTTP server never builds a [`ServerTls`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{Error as RustlsError, InconsistentKeys};
use tessera_config::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// Gauge: the not-after of the certificate `listen_addr` serves, in Unix seconds.
pub const CERT_EXPIRY_GAUGE: &str = "tessera_tls_cert_expiry_timestamp_seconds";
/// Counter: TLS handshakes on `listen_addr` that failed or timed out.
pub const HANDSHAKE_FAILURES: &str = "tessera_tls_handshake_failures_total";

/// How long the files must be quiet after a change before they are read (a renewal writes
/// the certificate and the key one after the other).
const WATCH_DEBOUNCE: Duration = Duration::from_millis(200);

/// Why a certificate could not be loaded. Each message names the config key and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is unreadable, not PEM, holds no certificate, or its first
    /// certificate is not X.509 DER.
    #[error("server.tls_cert_file: {0}")]
    Cert(String),
    /// The key file is unreadable, not PEM, holds no key, or a key of a type that cannot sign.
    #[error("server.tls_key_file: {0}")]
    Key(String),
    /// The key is not the certificate's.
    #[error(
        "server.tls_key_file {key} is not the private key of server.tls_cert_file {cert}'s certificate"
    )]
    Mismatch {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
    },
    /// The TLS library refused the server settings.
    #[error("TLS settings: {0}")]
    Setup(String),
}

/// A certificate with its key, ready to serve, and its not-after.
struct Loaded {
    key: Arc<CertifiedKey>,
    not_after: i64,
}

/// The certificate `listen_addr` serves and how to reload it. One per server, in
/// [`crate::AppStateInner::tls`] when TLS is configured.
pub struct ServerTls {
    current: Arc<ArcSwap<CertifiedKey>>,
    /// `(certificate file, key file)` the next reload reads.
    files: Mutex<(PathBuf, PathBuf)>,
    /// Serialises reloads (SIGHUP and the watcher may run at once).
    reloading: Mutex<()>,
    provider: Arc<CryptoProvider>,
    acceptor: TlsAcceptor,
    watcher: Mutex<Option<tessera_plugins::FileWatcher>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let files = self.files.lock();
        f.debug_struct("ServerTls")
            .field("cert_file", &files.0)
            .field("key_file", &files.1)
            .finish_non_exhaustive()
    }
}

/// Hands every handshake the certificate of the moment.
#[derive(Debug)]
struct Resolver(Arc<ArcSwap<CertifiedKey>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

impl ServerTls {
    /// Loads the configured certificate and key and builds the acceptor; `Ok(None)` when TLS
    /// is not configured. Does not watch the files yet: see [`ServerTls::watch`].
    ///
    /// # Errors
    /// [`TlsError`] naming the key and file that could not be loaded.
    pub fn open(cfg: &ServerConfig) -> Result<Option<Arc<Self>>, TlsError> {
        let Some((cert, key)) = cfg.tls_files() else {
            return Ok(None);
        };
        let provider = Arc::new(ring_provider());
        let loaded = load(&provider, cert, key)?;
        let current = Arc::new(ArcSwap::new(loaded.key));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(Arc::clone(&current))));
        // The connection builder speaks both; a client that offers neither gets HTTP/1.1.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let tls = Self {
            current,
            files: Mutex::new((cert.to_path_buf(), key.to_path_buf())),
            reloading: Mutex::new(()),
            provider,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            watcher: Mutex::new(None),
        };
        served(cert, loaded.not_after);
        Ok(Some(Arc::new(tls)))
    }

    /// The acceptor of `listen_addr`'s connections.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// The certificate chain served now (the server's certificate first).
    pub fn served_chain(&self) -> Vec<CertificateDer<'static>> {
        self.current.load().cert.clone()
    }

    /// Reads the files again and serves what they hold from the next handshake on. On an
    /// error nothing changes: the previous certificate keeps serving.
    ///
    /// # Errors
    /// [`TlsError`] naming the key and file that could not be loaded.
    pub fn reload(&self) -> Result<(), TlsError> {
        let _one_at_a_time = self.reloading.lock();
        let (cert, key) = self.files.lock().clone();
        let loaded = load(&self.provider, &cert, &key)?;
        self.current.store(loaded.key);
        served(&cert, loaded.not_after);
        Ok(())
    }

    /// [`ServerTls::reload`] from the files a reloaded config names (they may have moved).
    /// Turning TLS off needs a restart: without files in `cfg`, this reloads the current ones.
    ///
    /// # Errors
    /// [`TlsError`] naming the key and file that could not be loaded; the previous
    /// certificate, files and watch stay.
    pub fn reload_from(self: &Arc<Self>, cfg: &ServerConfig) -> Result<(), TlsError> {
        let Some((cert, key)) = cfg.tls_files() else {
            tracing::warn!(
                "server.tls_cert_file and tls_key_file were removed: HTTPS stays on until a restart"
            );
            return self.reload();
        };
        let moved = {
            let files = self.files.lock();
            files.0 != cert || files.1 != key
        };
        if !moved {
            return self.reload();
        }
        {
            let _one_at_a_time = self.reloading.lock();
            let loaded = load(&self.provider, cert, key)?;
            *self.files.lock() = (cert.to_path_buf(), key.to_path_buf());
            self.current.store(loaded.key);
            served(cert, loaded.not_after);
        }
        if self.watcher.lock().is_some() {
            self.watch();
        }
        Ok(())
    }

    /// Reloads whenever the certificate or key file changes (is written, or replaced by a
    /// rename) until [`ServerTls::unwatch`]. A change made by swapping a symlinked directory
    /// (a Kubernetes secret volume) is not seen: send SIGHUP then.
    pub fn watch(self: &Arc<Self>) {
        let (cert, key) = self.files.lock().clone();
        let me = Arc::downgrade(self);
        let watched = tessera_plugins::watch_paths(&[cert, key], WATCH_DEBOUNCE, move |_| {
            let Some(tls) = me.upgrade() else { return };
            if let Err(e) = tls.reload() {
                tracing::error!(
                    "TLS certificate files changed but were not reloaded; the previous certificate keeps serving: {e}"
                );
            }
        });
        match watched {
            Ok(w) => *self.watcher.lock() = Some(w),
            Err(e) => tracing::warn!(
                "cannot watch the TLS certificate files; reload them with SIGHUP: {e}"
            ),
        }
    }

    /// Stops watching the files.
    pub fn unwatch(&self) {
        self.watcher.lock().take();
    }
}

/// The ring crypto provider, the one this build carries (reqwest's rustls uses it too).
/// rustls 0.23.48 deprecates it for lacking post-quantum key exchange, which needs aws-lc-rs,
/// a C library with a build of its own; the classical groups stay supported.
#[expect(
    deprecated,
    reason = "ring is the provider this build carries; see above"
)]
fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Records that `cert` is served now.
fn served(cert: &Path, not_after: i64) {
    metrics::gauge!(CERT_EXPIRY_GAUGE).set(not_after as f64);
    let now = chrono::Utc::now().timestamp();
    let expires = chrono::DateTime::from_timestamp(not_after, 0)
        .map_or_else(|| not_after.to_string(), |t| t.to_rfc3339());
    if not_after <= now {
        tracing::error!(cert = %cert.display(), %expires, "serving an EXPIRED TLS certificate");
    } else {
        tracing::info!(cert = %cert.display(), %expires, "serving TLS certificate");
    }
}

/// Reads and checks a certificate chain and its key.
fn load(provider: &CryptoProvider, cert: &Path, key: &Path) -> Result<Loaded, TlsError> {
    let chain = tessera_config::read_certificates(cert).map_err(TlsError::Cert)?;
    let not_after = chain
        .first()
        .map(|c| not_after(c.as_ref()))
        .transpose()
        .map_err(|e| TlsError::Cert(format!("{}: {e}", cert.display())))?
        .unwrap_or_default();
    let private = tessera_config::read_private_key(key).map_err(TlsError::Key)?;
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| TlsError::Key(format!("{}: {e}", key.display())))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        // A key whose public half cannot be derived is left to the handshake.
        Ok(()) | Err(RustlsError::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(RustlsError::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::Mismatch {
                cert: cert.display().to_string(),
                key: key.display().to_string(),
            });
        }
        Err(e) => return Err(TlsError::Cert(format!("{}: {e}", cert.display()))),
    }
    Ok(Loaded {
        key: Arc::new(certified),
        not_after,
    })
}

/// The not-after of a DER certificate, in Unix seconds.
fn not_after(der: &[u8]) -> Result<i64, String> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| format!("the first certificate is not X.509: {e}"))?;
    let secs = cert
        .tbs_certificate
        .validity
        .not_after
        .to_unix_duration()
        .as_secs();
    i64::try_from(secs).map_err(|_| "the certificate's not-after is out of range".to_owned())
}
