//! Issue 20, item 1: HTTPS on `listen_addr` (`server.tls_cert_file` / `tls_key_file`) with
//! the certificate reloaded — on a change of the files and by the SIGHUP reload — without
//! dropping open connections, a reload that cannot load keeping the old certificate, the
//! expiry gauge following the served certificate; and `rediss://` to a Redis that serves TLS
//! with a private CA (`store.redis_ca_file`). Every certificate is made here with rcgen.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use reqwest::Method;
use serde_json::json;
use tessera::store::redis::RedisStore;
use tessera_config::StoreBackend;
use tessera_integration_tests::scenario::{admin, client};
use tessera_integration_tests::{RedisServer, RedisTlsFiles, TestServer};

const GAUGE: &str = "tessera_tls_cert_expiry_timestamp_seconds";

/// A private certificate authority.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate for 127.0.0.1 and localhost, with its key.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
    not_after: i64,
}

fn dn(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.distinguished_name = dn(name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for 127.0.0.1 and localhost with `serial`, valid until `(y, m, d)`.
    fn leaf(&self, serial: u64, (y, m, d): (i32, u8, u8)) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params.distinguished_name = dn("tessera test server");
        params.serial_number = Some(SerialNumber::from(serial));
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(y, m, d);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
            not_after: params.not_after.unix_timestamp(),
        }
    }
}

/// Replaces `path` the way renewal tools do: write a new file beside it, rename it over.
fn replace(path: &Path, contents: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Files {
    cert: PathBuf,
    key: PathBuf,
    config: PathBuf,
}

impl Files {
    /// Writes `leaf` and a config file naming it (what a SIGHUP re-reads) into `dir`.
    fn new(dir: &Path, leaf: &Leaf) -> Self {
        let files = Self {
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
            config: dir.join("tessera.toml"),
        };
        files.install(leaf);
        std::fs::write(
            &files.config,
            format!(
                "[server]\nlisten_addr = \"127.0.0.1:0\"\ntls_cert_file = {:?}\ntls_key_file = {:?}\n\n[store]\ndata_dir = {:?}\n\n[log]\nlevel = \"warn\"\n",
                files.cert,
                files.key,
                dir.join("unused-data"),
            ),
        )
        .unwrap();
        files
    }

    fn install(&self, leaf: &Leaf) {
        replace(&self.cert, &leaf.cert_pem);
        replace(&self.key, &leaf.key_pem);
    }
}

/// A client that trusts `ca` (and reports the certificate each connection was served).
fn tls_client(ca: &Ca) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .tls_info(true)
        .pool_idle_timeout(Duration::from_secs(600))
        .build()
        .unwrap()
}

/// `GET /health` through `client`: the certificate its connection was served (DER).
async fn served_by(client: &reqwest::Client, server: &TestServer) -> Vec<u8> {
    let resp = client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("the response carries the connection's TLS info")
        .to_vec()
}

/// The expiry gauge as `/metrics` shows it.
async fn expiry_gauge(server: &TestServer) -> Option<i64> {
    let text = server
        .client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(GAUGE)?.strip_prefix(' '))
        .map(|v| v.trim().parse::<f64>().unwrap() as i64)
}

/// Opens a fresh connection (a new client) until it is served `want`, or `within` passes.
async fn new_connections_see(ca: &Ca, server: &TestServer, want: &Leaf, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if served_by(&tls_client(ca), server).await == want.der {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Issues a license with the admin key and activates `hw` on it: a whole admin and client
/// round over the server's transport. Returns the license key.
async fn issue_and_activate(server: &TestServer, hw: &str) -> String {
    let (status, out) = admin(server, Method::POST, "/api/admin/licenses", Some(json!({}))).await;
    assert_eq!(status, 201, "{out}");
    let license = out["licenses"][0]["license_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = client(
        server,
        "/api/license/activate",
        json!({"license_key": license, "hardware_hash": hw, "machine_name": "M", "app_version": "1.0.0"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    license
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_reloads_certificates_and_keeps_open_connections() {
    let ca = Ca::new("tessera test CA");
    let dir = tempfile::tempdir().unwrap();
    let first = ca.leaf(1, (2031, 1, 1));
    let files = Files::new(dir.path(), &first);
    let (cert, key) = (files.cert.clone(), files.key.clone());
    let server = TestServer::start_with_client(
        move |c| {
            c.server.tls_cert_file = Some(cert);
            c.server.tls_key_file = Some(key);
        },
        tls_client(&ca),
    )
    .await
    .unwrap();
    assert!(server.url("/").starts_with("https://127.0.0.1:"));

    // (a) HTTPS with the CA: /health, and a whole issue + activate over it.
    let kept = tls_client(&ca);
    assert_eq!(served_by(&kept, &server).await, first.der);
    issue_and_activate(&server, "hw-tls").await;
    assert_eq!(expiry_gauge(&server).await, Some(first.not_after));
    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/health", server.addr))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");

    // (b) New files: the watcher reloads them; a new connection is served the new
    // certificate, the open keep-alive connection keeps working on the old one.
    let second = ca.leaf(2, (2032, 6, 1));
    files.install(&second);
    assert!(
        new_connections_see(&ca, &server, &second, Duration::from_secs(10)).await,
        "a changed certificate file was not picked up"
    );
    assert_eq!(
        served_by(&kept, &server).await,
        first.der,
        "the open connection was replaced"
    );
    assert_eq!(expiry_gauge(&server).await, Some(second.not_after));

    // ... and the SIGHUP reload (the function the handler calls) swaps at once.
    let third = ca.leaf(3, (2033, 3, 3));
    files.install(&third);
    tessera::reload::reload(&server.state, Some(&files.config))
        .await
        .unwrap();
    assert_eq!(served_by(&tls_client(&ca), &server).await, third.der);
    assert_eq!(expiry_gauge(&server).await, Some(third.not_after));

    // (c) Files that do not load keep the old certificate, and the reload says why.
    replace(&files.cert, "not a certificate\n");
    let err = tessera::reload::reload(&server.state, Some(&files.config))
        .await
        .unwrap_err();
    assert!(err.contains("server.tls_cert_file"), "{err}");
    assert_eq!(served_by(&tls_client(&ca), &server).await, third.der);
    // A certificate whose key is another one's passes the config check but not the load.
    let fourth = ca.leaf(4, (2034, 4, 4));
    replace(&files.cert, &fourth.cert_pem);
    let err = tessera::reload::reload(&server.state, Some(&files.config))
        .await
        .unwrap_err();
    assert!(
        err.contains("server.tls_key_file") && err.contains("not the private key"),
        "{err}"
    );
    assert_eq!(served_by(&tls_client(&ca), &server).await, third.der);
    assert_eq!(expiry_gauge(&server).await, Some(third.not_after));
    let tls = server.state.tls.as_ref().unwrap();
    assert_eq!(tls.served_chain()[0].as_ref(), third.der.as_slice());

    // Good files again: served, and the first connection is still the one it was.
    files.install(&fourth);
    tessera::reload::reload(&server.state, Some(&files.config))
        .await
        .unwrap();
    assert_eq!(served_by(&tls_client(&ca), &server).await, fourth.der);
    assert_eq!(served_by(&kept, &server).await, first.der);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panels_cookie_is_secure_over_https() {
    let ca = Ca::new("tessera test CA");
    let dir = tempfile::tempdir().unwrap();
    let files = Files::new(dir.path(), &ca.leaf(1, (2031, 1, 1)));
    let (cert, key) = (files.cert.clone(), files.key.clone());
    let server = TestServer::start_with_client(
        move |c| {
            c.server.tls_cert_file = Some(cert);
            c.server.tls_key_file = Some(key);
            // The cookie's flags are the point here, not the password's encryption
            // (tests/tests/panel.rs logs in encrypted).
            c.security.enforce_login_payload_encryption = false;
        },
        tls_client(&ca),
    )
    .await
    .unwrap();
    tessera::auth::operators::create(
        server.state.meta.as_ref(),
        "root",
        tessera::auth::scopes::Role::SuperAdmin,
        "correct horse battery staple",
    )
    .await
    .unwrap();
    let resp = server
        .client()
        .post(server.url("/api/panel/session"))
        .json(&json!({"username": "root", "password": "correct horse battery staple"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    for part in [
        "tessera_panel=tso_",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
    ] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_is_not_the_certificates_fails_the_start_naming_the_key() {
    let ca = Ca::new("tessera test CA");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (ca.leaf(1, (2031, 1, 1)), ca.leaf(2, (2031, 1, 1)));
    let cert = dir.path().join("a.crt");
    let key = dir.path().join("b.key");
    std::fs::write(&cert, &a.cert_pem).unwrap();
    std::fs::write(&key, &b.key_pem).unwrap();
    let started = TestServer::start_with_client(
        |c| {
            c.server.tls_cert_file = Some(cert);
            c.server.tls_key_file = Some(key);
        },
        tls_client(&ca),
    )
    .await;
    let err = format!("{:#}", started.err().expect("the server started"));
    assert!(
        err.contains("server.tls_key_file") && err.contains("not the private key"),
        "{err}"
    );
}

#[test]
fn tls_settings_are_checked_when_the_config_loads() {
    let ca = Ca::new("tessera test CA");
    let leaf = ca.leaf(1, (2031, 1, 1));
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("server.crt");
    let key = dir.path().join("server.key");
    std::fs::write(&cert, &leaf.cert_pem).unwrap();
    std::fs::write(&key, &leaf.key_pem).unwrap();
    let errors = |toml: String| -> Vec<(String, String)> {
        match tessera_config::load_str(&toml, None, Vec::new()) {
            Ok(_) => Vec::new(),
            Err(e) => e.errors.into_iter().map(|e| (e.key, e.message)).collect(),
        }
    };
    let server = |cert: &Path, key: &Path| {
        format!("[server]\ntls_cert_file = {cert:?}\ntls_key_file = {key:?}\n")
    };

    assert_eq!(errors(server(&cert, &key)), Vec::new());
    let only_cert = errors(format!("[server]\ntls_cert_file = {cert:?}\n"));
    assert_eq!(only_cert.len(), 1, "{only_cert:?}");
    assert_eq!(only_cert[0].0, "server.tls_cert_file");
    assert!(only_cert[0].1.contains("both"), "{only_cert:?}");

    let missing = errors(server(&dir.path().join("nope.crt"), &key));
    assert_eq!(missing[0].0, "server.tls_cert_file", "{missing:?}");
    assert!(missing[0].1.contains("cannot read"), "{missing:?}");

    // The files the wrong way round: each key names its own problem.
    let swapped = errors(server(&key, &cert));
    let keys: Vec<&str> = swapped.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["server.tls_cert_file", "server.tls_key_file"],
        "{swapped:?}"
    );
    assert!(swapped[0].1.contains("no PEM certificate"), "{swapped:?}");
    assert!(swapped[1].1.contains("no PEM private key"), "{swapped:?}");

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\n!!!!\n").unwrap();
    let bad = errors(server(&garbage, &key));
    assert_eq!(bad[0].0, "server.tls_cert_file", "{bad:?}");

    // store.redis_ca_file: a readable PEM certificate, and only with rediss://.
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let redis = |url: &str, ca: &Path| {
        format!("[store]\nbackend = \"redis\"\nredis_url = \"{url}\"\nredis_ca_file = {ca:?}\n")
    };
    assert_eq!(
        errors(redis("rediss://127.0.0.1:6380", &ca_file)),
        Vec::new()
    );
    assert_eq!(
        errors(redis("rediss+cluster://a:1,b:2", &ca_file)),
        Vec::new()
    );
    let plain = errors(redis("redis://127.0.0.1:6379", &ca_file));
    assert_eq!(plain[0].0, "store.redis_ca_file", "{plain:?}");
    let unreadable = errors(redis("rediss://h:1", &dir.path().join("nope.crt")));
    assert_eq!(unreadable[0].0, "store.redis_ca_file", "{unreadable:?}");
    let not_a_cert = errors(redis("rediss://h:1", &key));
    assert_eq!(not_a_cert[0].0, "store.redis_ca_file", "{not_a_cert:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_a_tls_redis_with_a_private_ca_issues_and_activates() {
    let ca = Ca::new("redis test CA");
    let leaf = ca.leaf(7, (2035, 1, 1));
    let dir = tempfile::tempdir().unwrap();
    let files = RedisTlsFiles {
        cert: dir.path().join("redis.crt"),
        key: dir.path().join("redis.key"),
        ca: dir.path().join("ca.crt"),
    };
    std::fs::write(&files.cert, &leaf.cert_pem).unwrap();
    std::fs::write(&files.key, &leaf.key_pem).unwrap();
    std::fs::write(&files.ca, ca.pem()).unwrap();
    let redis = tokio::task::spawn_blocking(move || RedisServer::start_tls(&files))
        .await
        .unwrap()
        .unwrap();
    assert!(
        redis.url.starts_with("rediss://127.0.0.1:"),
        "{}",
        redis.url
    );
    let ca_file = dir.path().join("ca.crt");

    // The system's trust store does not know the private CA: refused.
    let refused = RedisStore::connect(&redis.url, Duration::from_secs(3)).await;
    let err = refused.expect_err("connected without the CA").to_string();
    assert!(err.contains("certificate"), "{err}");

    let url = redis.url.clone();
    let ca_path = ca_file.clone();
    let server = TestServer::start_with(move |c| {
        c.store.backend = StoreBackend::Redis;
        c.store.redis_url = url;
        c.store.redis_ca_file = Some(ca_path);
    })
    .await
    .unwrap();
    let license = issue_and_activate(&server, "hw-rediss").await;
    server.stop().await.unwrap();

    // What was written is in that Redis, read back over TLS by a store of its own.
    let store = RedisStore::connect_with_ca(
        &redis.url,
        Duration::from_secs(5),
        Some(std::fs::read(&ca_file).unwrap()),
    )
    .await
    .unwrap();
    let key = tessera_actors::LicenseKey::parse(&license).unwrap();
    let snapshot = tessera_actors::Store::load(&store, &key)
        .await
        .unwrap()
        .expect("the license is in the TLS Redis");
    assert_eq!(snapshot.activations.len(), 1);
}
