//! Issue 13's credentials, end to end in the real server: three kinds of caller and nothing
//! shared between them.
//!
//! - the authorization table: every route of `tessera::api::routes::table()` with every kind
//!   of caller (none, the client's system key, admin keys without and with the route's scope,
//!   a `*` key, expired, revoked and logged-out tokens, admin and super_admin operators), and
//!   the OpenAPI document listing exactly the table's routes with the table's credentials;
//! - seed 001's login with a client that encrypts the password itself (RSA-OAEP SHA-256, in
//!   Rust with the `rsa` crate and in Python with `cryptography`), and every refusal of it;
//! - lockout per account and per address, one answer for every failure, no enumeration;
//! - security settings (validated, persisted) and the emergency controls;
//! - the core flow on the Redis store.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPublicKey};
use serde_json::{Value, json};
use tessera::api::routes::{self, RouteSpec};
use tessera::auth::access::Access;
use tessera::auth::scopes::{Role, Scope};
use tessera::auth::{admin_keys, operators, tokens};
use tessera_config::{Config, StoreBackend};
use tessera_integration_tests::{RedisServer, TestServer};

const ROOT: &str = "root";
const ALICE: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";

/// A server without rate limits (the walk sends hundreds of requests from one address).
async fn server_with(configure: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::start_with(|c| {
        c.rate_limit.enabled = false;
        configure(c);
    })
    .await
    .unwrap()
}

async fn operator(server: &TestServer, username: &str, role: Role) {
    operators::create(server.state.meta.as_ref(), username, role, PASSWORD)
        .await
        .unwrap();
}

async fn admin_key(server: &TestServer, name: &str, scopes: Vec<Scope>) -> String {
    admin_keys::create(server.state.meta.as_ref(), name, scopes)
        .await
        .unwrap()
        .1
}

/// What a request carries.
#[derive(Clone, Debug)]
enum Cred {
    None,
    SystemKey(String),
    Bearer(String),
}

async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    cred: &Cred,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = server.client().request(method, server.url(path));
    match cred {
        Cred::None => {}
        Cred::SystemKey(k) => req = req.header("X-API-Key", k),
        Cred::Bearer(t) => req = req.bearer_auth(t),
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    // The live event stream and a hook recording run on: their answer is the status and
    // the content type.
    let streaming = resp.headers().get("content-type").is_some_and(|v| {
        v.as_bytes().starts_with(b"text/event-stream")
            || v.as_bytes().starts_with(b"application/x-ndjson")
    });
    if streaming {
        return (status, Value::Null);
    }
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("")
}

async fn get(server: &TestServer, path: &str, cred: &Cred) -> (u16, Value) {
    call(server, Method::GET, path, cred, None).await
}

async fn post(server: &TestServer, path: &str, cred: &Cred, body: Value) -> (u16, Value) {
    call(server, Method::POST, path, cred, Some(body)).await
}

async fn put(server: &TestServer, path: &str, cred: &Cred, body: Value) -> (u16, Value) {
    call(server, Method::PUT, path, cred, Some(body)).await
}

fn bearer(token: &str) -> Cred {
    Cred::Bearer(token.to_owned())
}

async fn issue_license(server: &TestServer, cred: &Cred, body: Value) -> String {
    let (status, body) = post(server, "/api/admin/licenses", cred, body).await;
    assert_eq!(status, 201, "{body}");
    body["licenses"][0]["license_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

// ---- seed 001's login, as a client does it ----

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// RSA-OAEP (SHA-256, MGF1-SHA-256) of `plaintext` to the PEM public key, base64.
fn encrypt(public_pem: &str, plaintext: &str) -> String {
    let key = RsaPublicKey::from_public_key_pem(public_pem).unwrap();
    let cipher = key
        .encrypt(
            &mut rsa::rand_core::OsRng,
            Oaep::new::<rsa::sha2::Sha256>(),
            plaintext.as_bytes(),
        )
        .unwrap();
    STANDARD.encode(cipher)
}

async fn challenge(server: &TestServer, username: &str) -> Value {
    let (status, body) = get(
        server,
        &format!("/api/auth/challenge?username={username}"),
        &Cred::None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The login body for `challenge`, encrypting `"{nonce}:{ts}:{password}"` with what the
/// challenge says.
fn login_body(username: &str, password: &str, challenge: &Value) -> Value {
    let nonce = challenge["nonce"].as_str().unwrap();
    let ts = now();
    json!({
        "username": username,
        "encrypted_password": encrypt(challenge["public_key"].as_str().unwrap(), &format!("{nonce}:{ts}:{password}")),
        "login_nonce": nonce,
        "key_id": challenge["key_id"],
        "challenge_ts": ts,
    })
}

/// Challenge, encrypt, log in: the status and body of `POST /api/auth/login`.
async fn login(server: &TestServer, username: &str, password: &str) -> (u16, Value) {
    let c = challenge(server, username).await;
    post(
        server,
        "/api/auth/login",
        &Cred::None,
        login_body(username, password, &c),
    )
    .await
}

async fn token(server: &TestServer, username: &str) -> String {
    let (status, body) = login(server, username, PASSWORD).await;
    assert_eq!(status, 200, "login of {username}: {body}");
    body["token"].as_str().unwrap().to_owned()
}

// ---- 1a. the authorization table ----

/// The kinds of caller the table is walked with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Nobody,
    SystemKey,
    KeyWithoutScope,
    KeyWithScope,
    StarKey,
    ExpiredToken,
    RevokedToken,
    LoggedOutToken,
    AdminOperator,
    SuperAdminOperator,
}

const KINDS: [Kind; 10] = [
    Kind::Nobody,
    Kind::SystemKey,
    Kind::KeyWithoutScope,
    Kind::KeyWithScope,
    Kind::StarKey,
    Kind::ExpiredToken,
    Kind::RevokedToken,
    Kind::LoggedOutToken,
    Kind::AdminOperator,
    Kind::SuperAdminOperator,
];

#[derive(Debug, PartialEq, Eq)]
enum Expect {
    /// Past the gate: the handler answers (anything but a gate's 401/403 or a routing 404/405).
    Admitted,
    Refused(u16, &'static str),
}

/// docs/api.md, "Credentials": `admin` has every scope but `licenses:delete` and the two that change who may do
/// what; `super_admin` has all. Written out here rather than taken from `Role::grants`, so
/// the test checks the implementation against the documentation.
fn admin_role_has(scope: Scope) -> bool {
    !matches!(
        scope,
        Scope::SecurityWrite | Scope::OperatorsWrite | Scope::LicensesDelete | Scope::All
    )
}

fn expected(access: Access, kind: Kind) -> Expect {
    use Expect::{Admitted, Refused};
    use Kind::*;
    const UNAUTHENTICATED: Expect = Refused(401, "UNAUTHENTICATED");
    const SCOPE: Expect = Refused(403, "INSUFFICIENT_SCOPE");
    const ROLE: Expect = Refused(403, "FORBIDDEN_ROLE");
    match access {
        // The seed 003 envelope carries its key in the body: the handler checks it.
        Access::Public | Access::Login | Access::Envelope => Admitted,
        Access::Client | Access::Sessions => match kind {
            SystemKey => Admitted,
            _ => Refused(401, "INVALID_API_KEY"),
        },
        Access::Admin(scope) => match kind {
            Nobody | ExpiredToken | RevokedToken | LoggedOutToken => UNAUTHENTICATED,
            SystemKey | KeyWithoutScope => SCOPE,
            KeyWithScope | StarKey | SuperAdminOperator => Admitted,
            AdminOperator if admin_role_has(scope) => Admitted,
            AdminOperator => ROLE,
        },
        Access::SuperAdmin => match kind {
            Nobody | ExpiredToken | RevokedToken | LoggedOutToken => UNAUTHENTICATED,
            SystemKey | KeyWithoutScope | KeyWithScope | StarKey => SCOPE,
            AdminOperator => ROLE,
            SuperAdminOperator => Admitted,
        },
        Access::Operator => match kind {
            Nobody | ExpiredToken | RevokedToken | LoggedOutToken => UNAUTHENTICATED,
            SystemKey | KeyWithoutScope | KeyWithScope | StarKey => SCOPE,
            AdminOperator | SuperAdminOperator => Admitted,
        },
    }
}

/// Every credential of the walk.
struct Callers {
    system_key: String,
    /// Per scope: a key with that scope only, and a key with every other scope but `*`.
    with: Vec<(Scope, String)>,
    without: Vec<(Scope, String)>,
    /// Every scope listed one by one (not `*`).
    every_scope: String,
    star: String,
    expired: String,
    revoked: String,
    logged_out: String,
}

impl Callers {
    fn key_for(list: &[(Scope, String)], scope: Scope) -> String {
        list.iter().find(|(s, _)| *s == scope).unwrap().1.clone()
    }

    /// The credential of `kind` for `route`; operator tokens are fresh for each route, since
    /// the walk itself logs out with them.
    async fn cred(&self, server: &TestServer, route: &RouteSpec, kind: Kind) -> Cred {
        let meta = server.state.meta.as_ref();
        match kind {
            Kind::Nobody => Cred::None,
            Kind::SystemKey => Cred::SystemKey(self.system_key.clone()),
            Kind::KeyWithoutScope => Cred::Bearer(match route.access {
                Access::Admin(s) => Self::key_for(&self.without, s),
                _ => Self::key_for(&self.with, Scope::LicensesRead),
            }),
            Kind::KeyWithScope => Cred::Bearer(match route.access {
                Access::Admin(s) => Self::key_for(&self.with, s),
                _ => self.every_scope.clone(),
            }),
            Kind::StarKey => bearer(&self.star),
            Kind::ExpiredToken => bearer(&self.expired),
            Kind::RevokedToken => bearer(&self.revoked),
            Kind::LoggedOutToken => bearer(&self.logged_out),
            Kind::AdminOperator => Cred::Bearer(tokens::issue(meta, ALICE, 3600).await.unwrap().0),
            Kind::SuperAdminOperator => {
                Cred::Bearer(tokens::issue(meta, ROOT, 3600).await.unwrap().0)
            }
        }
    }
}

fn scopes_but_all() -> impl Iterator<Item = Scope> {
    Scope::ALL.iter().copied().filter(|s| *s != Scope::All)
}

async fn callers(server: &TestServer) -> Callers {
    let meta = server.state.meta.as_ref();
    operator(server, ROOT, Role::SuperAdmin).await;
    operator(server, ALICE, Role::Admin).await;
    operator(server, "gone", Role::Admin).await;
    let mut with = Vec::new();
    let mut without = Vec::new();
    for s in scopes_but_all() {
        with.push((s, admin_key(server, &format!("only {s}"), vec![s]).await));
        let others: Vec<Scope> = scopes_but_all().filter(|o| *o != s).collect();
        without.push((s, admin_key(server, &format!("all but {s}"), others).await));
    }
    let every_scope = admin_key(server, "every scope", scopes_but_all().collect()).await;
    let star = admin_key(server, "star", vec![Scope::All]).await;
    // A token whose lifetime is over: issued with a lifetime of 0 s.
    let expired = tokens::issue(meta, ALICE, 0).await.unwrap().0;
    // A token of an operator disabled since.
    let revoked = tokens::issue(meta, "gone", 3600).await.unwrap().0;
    operators::set_disabled(meta, "gone", true).await.unwrap();
    // A token that logged out.
    let logged_out = tokens::issue(meta, ALICE, 3600).await.unwrap().0;
    let (status, body) = post(server, "/api/auth/logout", &bearer(&logged_out), json!({})).await;
    assert_eq!((status, &body["logged_out"]), (200, &json!(true)), "{body}");
    Callers {
        system_key: server.api_key.clone(),
        with,
        without,
        every_scope,
        star,
        expired,
        revoked,
        logged_out,
    }
}

/// The path with its parameters filled in with real values (`{license_id}` takes the key too;
/// `{id}` is a resource, customer or product id nothing has; `{name}` a plan no one made).
fn concrete(path: &str, license_key: &str) -> String {
    let filled = path
        .replace("{license_key}", license_key)
        .replace("{license_id}", license_key)
        .replace("{id}", "4242")
        .replace("{name}", "no-such-plan")
        .replace("{username}", "no-such-operator")
        .replace("{period}", "day")
        .replace("{device_id}", "4242")
        .replace("{delivery_id}", "4242")
        .replace("{session_id}", &"0".repeat(64));
    assert!(
        !filled.contains('{'),
        "{path}: a path parameter this test does not know; add it to `concrete`"
    );
    filled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_kind_of_caller_as_the_route_table_says() {
    let server = server_with(|_| {}).await;
    let callers = callers(&server).await;
    let license_key = issue_license(&server, &bearer(&callers.star), json!({})).await;
    let table = routes::table();
    assert!(table.len() > 20, "the table lists every route: {table:?}");
    let mut failures = Vec::new();
    let mut admitted = 0;
    for route in &table {
        let path = concrete(route.path, &license_key);
        for kind in KINDS {
            let cred = callers.cred(&server, route, kind).await;
            // No body: an admitted caller gets the handler's 400/415 for it, never a change.
            let (status, body) = call(&server, route.method.clone(), &path, &cred, None).await;
            let got_code = code(&body);
            let ok = match expected(route.access, kind) {
                Expect::Admitted => {
                    admitted += 1;
                    !matches!(status, 401 | 403 | 405) && got_code != "NOT_FOUND"
                }
                Expect::Refused(want_status, want_code) => {
                    status == want_status
                        && got_code == want_code
                        && body["status"] == json!(want_status)
                        && body["error"].as_str().is_some_and(|e| !e.is_empty())
                }
            };
            if !ok {
                failures.push(format!(
                    "{} {} ({:?}) as {kind:?}: expected {:?}, got {status} {body}",
                    route.method,
                    route.path,
                    route.access,
                    expected(route.access, kind)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} answers differ from the table:\n{}",
        failures.len(),
        table.len() * KINDS.len(),
        failures.join("\n")
    );
    assert!(
        admitted > table.len(),
        "the walk admitted someone on most routes"
    );
}

#[tokio::test]
async fn the_table_names_one_access_per_route_and_covers_every_scope_and_kind_of_access() {
    let table = routes::table();
    let mut seen = BTreeSet::new();
    for r in &table {
        assert!(
            seen.insert((r.method.to_string(), r.path)),
            "{} {} is in the table twice",
            r.method,
            r.path
        );
        if r.path.starts_with("/api/admin") {
            assert!(
                r.access.is_admin(),
                "{} {} is an admin path",
                r.method,
                r.path
            );
        }
        // Seed 000's admin paths about one license (`/api/license/{license_id}/...`) are
        // operators' routes; the rest of `/api/license` is client software's.
        let seed_admin = r.path.starts_with("/api/license/{license_id}/");
        if seed_admin || r.path.starts_with("/api/resources") {
            assert!(
                r.access.is_admin(),
                "{} {} is an operator's path",
                r.method,
                r.path
            );
        }
        // `/api/licenses/bulk-*` (seed 000's bulk actions), the customer search and the
        // global search are operators' too.
        if r.path.starts_with("/api/licenses/")
            || r.path.starts_with("/api/customers")
            || r.path.starts_with("/api/search")
        {
            assert!(
                r.access.is_admin(),
                "{} {} is an operator's path",
                r.method,
                r.path
            );
        }
        if (r.path.starts_with("/api/license/") && !seed_admin)
            || r.path.starts_with("/api/version")
        {
            assert!(
                matches!(r.access, Access::Client | Access::Sessions),
                "{} {} is a client path",
                r.method,
                r.path
            );
        }
    }
    let has = |f: &dyn Fn(Access) -> bool| table.iter().any(|r| f(r.access));
    assert!(has(&|a| a == Access::SuperAdmin));
    assert!(has(&|a| a == Access::Operator));
    assert!(has(&|a| a == Access::Login));
    assert!(has(&|a| a == Access::Envelope));
    assert!(has(
        &|a| matches!(a, Access::Admin(s) if !admin_role_has(s))
    ));
    assert!(has(&|a| matches!(a, Access::Admin(s) if admin_role_has(s))));
}

fn method_of(name: &str) -> Option<Method> {
    match name {
        "get" => Some(Method::GET),
        "post" => Some(Method::POST),
        "put" => Some(Method::PUT),
        "delete" => Some(Method::DELETE),
        "patch" => Some(Method::PATCH),
        _ => None,
    }
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_table_with_its_credentials() {
    let server = server_with(|_| {}).await;
    let (status, doc) = get(&server, "/openapi.json", &Cred::None).await;
    assert_eq!(status, 200);
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["type"], "apiKey", "{schemes}");
    assert_eq!(schemes["api_key"]["in"], "header");
    assert_eq!(schemes["api_key"]["name"], "X-API-Key");
    assert_eq!(schemes["bearer"]["type"], "http", "{schemes}");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");

    let mut documented = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (name, op) in item.as_object().unwrap() {
            if let Some(m) = method_of(name) {
                documented.insert((m.to_string(), path.clone()), op["security"].clone());
            }
        }
    }
    let table = routes::table();
    let routed: BTreeSet<(String, String)> = table
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    let in_doc: BTreeSet<(String, String)> = documented.keys().cloned().collect();
    let missing: Vec<_> = routed.difference(&in_doc).collect();
    let extra: Vec<_> = in_doc.difference(&routed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes without an OpenAPI operation (annotate the handler and list it in api/openapi.rs): {missing:?}\n\
         operations without a route in api/routes.rs: {extra:?}"
    );

    for r in &table {
        let security = &documented[&(r.method.to_string(), r.path.to_owned())];
        let want = match r.access {
            Access::Client | Access::Sessions => json!([{"api_key": []}]),
            Access::Admin(s) => json!([{"bearer": [s.as_str()]}]),
            Access::SuperAdmin => json!([{"bearer": ["super_admin"]}]),
            Access::Operator => json!([{"bearer": []}]),
            Access::Public | Access::Login | Access::Envelope => Value::Null,
        };
        assert_eq!(security, &want, "security of {} {}", r.method, r.path);
    }
}

// ---- 1b. login end to end ----

#[tokio::test]
async fn an_operator_logs_in_with_a_password_the_client_encrypted_and_logs_out() {
    let server = server_with(|_| {}).await;
    operator(&server, ROOT, Role::SuperAdmin).await;

    let c = challenge(&server, ROOT).await;
    let pem = c["public_key"].as_str().unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let key = RsaPublicKey::from_public_key_pem(pem).unwrap();
    assert!(key.size() * 8 >= 2048, "an RSA key of at least 2048 bits");
    assert!(c["expires_at"].as_i64().unwrap() > now());
    let (status, keys) = get(&server, "/api/auth/keys", &Cred::None).await;
    assert_eq!(status, 200);
    let current: Vec<&Value> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["current"] == json!(true))
        .collect();
    assert_eq!(current.len(), 1, "{keys}");
    assert_eq!(current[0]["key_id"], c["key_id"]);
    assert_eq!(current[0]["public_key"], c["public_key"]);

    let (status, body) = post(
        &server,
        "/api/auth/login",
        &Cred::None,
        login_body(ROOT, PASSWORD, &c),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["role"], "super_admin");
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(body["expires_at"].as_i64().unwrap() > now());

    let (status, me) = get(&server, "/api/auth/me", &bearer(&token)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        (me["username"].as_str(), me["role"].as_str()),
        (Some(ROOT), Some("super_admin"))
    );
    let (status, body) = get(&server, "/api/admin/security", &bearer(&token)).await;
    assert_eq!(status, 200, "the token works on an admin route: {body}");
    let license = issue_license(&server, &bearer(&token), json!({"max_devices": 1})).await;

    let (status, body) = post(&server, "/api/auth/logout", &bearer(&token), json!({})).await;
    assert_eq!(status, 200, "{body}");
    for path in [
        "/api/admin/security".to_owned(),
        format!("/api/admin/licenses/{license}"),
        "/api/auth/me".to_owned(),
    ] {
        let (status, body) = get(&server, &path, &bearer(&token)).await;
        assert_eq!(
            (status, code(&body)),
            (401, "UNAUTHENTICATED"),
            "{path} after logout: {body}"
        );
    }
}

fn python_script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/operator_login.py")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_with_the_cryptography_package_logs_in_and_out() {
    let server = server_with(|_| {}).await;
    operator(&server, ROOT, Role::SuperAdmin).await;
    let base = server.url("");
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("python3")
            .arg(python_script())
            .args([&base, ROOT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 (bash tests/run.sh installs `cryptography` for it)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "operator_login.py failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("logged in as root (super_admin)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("token refused after logout: 401 UNAUTHENTICATED"),
        "{stdout}"
    );
}

#[tokio::test]
async fn login_refuses_reused_foreign_mismatched_stale_and_unknown_key_challenges() {
    let server = server_with(|_| {}).await;
    operator(&server, ROOT, Role::SuperAdmin).await;
    let refused = |status: u16, body: &Value, what: &str| {
        assert_eq!(
            (status, code(body)),
            (401, "LOGIN_CHALLENGE_INVALID"),
            "{what}: {body}"
        );
    };

    // A nonce works once.
    let c = challenge(&server, ROOT).await;
    let first = login_body(ROOT, PASSWORD, &c);
    let (status, body) = post(&server, "/api/auth/login", &Cred::None, first.clone()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&server, "/api/auth/login", &Cred::None, first).await;
    refused(status, &body, "a reused nonce");

    // A nonce issued for another username.
    let other = challenge(&server, "mallory").await;
    let (status, body) = post(
        &server,
        "/api/auth/login",
        &Cred::None,
        login_body(ROOT, PASSWORD, &other),
    )
    .await;
    refused(status, &body, "a nonce for another username");

    // A nonce the server never issued.
    let mut forged = challenge(&server, ROOT).await;
    forged["nonce"] = json!("00".repeat(40));
    let (status, body) = post(
        &server,
        "/api/auth/login",
        &Cred::None,
        login_body(ROOT, PASSWORD, &forged),
    )
    .await;
    refused(status, &body, "a made-up nonce");

    // The ciphertext's nonce or timestamp differ from the plain fields.
    let c = challenge(&server, ROOT).await;
    let other = challenge(&server, ROOT).await;
    let pem = c["public_key"].as_str().unwrap();
    let ts = now();
    let mismatched_nonce = json!({
        "username": ROOT,
        "encrypted_password": encrypt(pem, &format!("{}:{ts}:{PASSWORD}", other["nonce"].as_str().unwrap())),
        "login_nonce": c["nonce"], "key_id": c["key_id"], "challenge_ts": ts,
    });
    let (status, body) = post(&server, "/api/auth/login", &Cred::None, mismatched_nonce).await;
    refused(status, &body, "an inner nonce that is not login_nonce");
    let mismatched_ts = json!({
        "username": ROOT,
        "encrypted_password": encrypt(pem, &format!("{}:{}:{PASSWORD}", c["nonce"].as_str().unwrap(), ts - 1)),
        "login_nonce": c["nonce"], "key_id": c["key_id"], "challenge_ts": ts,
    });
    let (status, body) = post(&server, "/api/auth/login", &Cred::None, mismatched_ts).await;
    refused(status, &body, "an inner timestamp that is not challenge_ts");

    // challenge_ts outside replay_window_secs (120 by default), consistently encrypted.
    for ts in [now() - 3600, now() + 3600] {
        let c = challenge(&server, ROOT).await;
        let stale = json!({
            "username": ROOT,
            "encrypted_password": encrypt(c["public_key"].as_str().unwrap(), &format!("{}:{ts}:{PASSWORD}", c["nonce"].as_str().unwrap())),
            "login_nonce": c["nonce"], "key_id": c["key_id"], "challenge_ts": ts,
        });
        let (status, body) = post(&server, "/api/auth/login", &Cred::None, stale).await;
        refused(status, &body, &format!("challenge_ts {ts}, now {}", now()));
    }

    // A key id the server does not have.
    let c = challenge(&server, ROOT).await;
    let mut unknown_key = login_body(ROOT, PASSWORD, &c);
    unknown_key["key_id"] = json!("rsa-0-0000");
    let (status, body) = post(&server, "/api/auth/login", &Cred::None, unknown_key).await;
    refused(status, &body, "an unknown key_id");

    // Garbage in the ciphertext.
    let c = challenge(&server, ROOT).await;
    let mut garbage = login_body(ROOT, PASSWORD, &c);
    garbage["encrypted_password"] = json!(STANDARD.encode([7u8; 256]));
    let (status, body) = post(&server, "/api/auth/login", &Cred::None, garbage).await;
    refused(status, &body, "a ciphertext of another key");

    // None of that counted against the account: the right login still works.
    let (status, body) = login(&server, ROOT, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn plaintext_login_is_refused_while_encryption_is_enforced_and_accepted_when_turned_off() {
    let server = server_with(|_| {}).await;
    operator(&server, ROOT, Role::SuperAdmin).await;
    let plain = json!({"username": ROOT, "password": PASSWORD});
    let (status, body) = post(&server, "/api/auth/login", &Cred::None, plain.clone()).await;
    assert_eq!(
        (status, code(&body)),
        (400, "ENCRYPTION_REQUIRED"),
        "{body}"
    );

    let root = bearer(&token(&server, ROOT).await);
    let (status, body) = put(
        &server,
        "/api/admin/security",
        &root,
        json!({"enforce_login_payload_encryption": false}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["enforce_login_payload_encryption"], false);

    let (status, body) = post(&server, "/api/auth/login", &Cred::None, plain).await;
    assert_eq!(status, 200, "{body}");
    let (status, me) = get(
        &server,
        "/api/auth/me",
        &bearer(body["token"].as_str().unwrap()),
    )
    .await;
    assert_eq!((status, me["username"].as_str()), (200, Some(ROOT)), "{me}");
    let wrong = json!({"username": ROOT, "password": "not the password at all"});
    let (status, body) = post(&server, "/api/auth/login", &Cred::None, wrong).await;
    assert_eq!(
        (status, code(&body)),
        (401, "INVALID_CREDENTIALS"),
        "{body}"
    );
    // Encrypted logins keep working.
    let (status, body) = login(&server, ROOT, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
}

// ---- 1c. lockout ----

#[tokio::test]
async fn after_max_login_attempts_failures_the_right_password_gets_the_same_refusal() {
    let server = server_with(|c| c.security.max_login_attempts = 3).await;
    operator(&server, ALICE, Role::Admin).await;
    let mut refusals = Vec::new();
    for _ in 0..3 {
        refusals.push(login(&server, ALICE, "a wrong password here").await);
    }
    let locked = login(&server, ALICE, PASSWORD).await;
    let unknown = login(&server, "nobody-here", PASSWORD).await;
    let (status, body) = &refusals[0];
    assert_eq!(
        (*status, code(body)),
        (401, "INVALID_CREDENTIALS"),
        "{body}"
    );
    for (what, answer) in [
        ("the other wrong passwords", &refusals[1]),
        ("the last wrong password", &refusals[2]),
        ("the right password while locked", &locked),
        ("an unknown user", &unknown),
    ] {
        assert_eq!(answer, &refusals[0], "{what} answer the same way");
    }
    // The lock is the account's, not the address's: another operator logs in.
    operator(&server, ROOT, Role::SuperAdmin).await;
    let (status, body) = login(&server, ROOT, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    // A password reset lifts the lock.
    operators::reset_password(server.state.meta.as_ref(), ALICE, "a brand new password")
        .await
        .unwrap();
    let (status, body) = login(&server, ALICE, "a brand new password").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn an_address_failing_across_accounts_is_refused_even_with_a_right_password() {
    let server = server_with(|c| c.security.address_max_failures = 4).await;
    operator(&server, ROOT, Role::SuperAdmin).await;
    let first = login(&server, "user-0", PASSWORD).await;
    assert_eq!(
        (first.0, code(&first.1)),
        (401, "INVALID_CREDENTIALS"),
        "{}",
        first.1
    );
    for i in 1..4 {
        assert_eq!(login(&server, &format!("user-{i}"), PASSWORD).await, first);
    }
    assert_eq!(
        login(&server, ROOT, PASSWORD).await,
        first,
        "a throttled address gets the one refusal, even with the right password"
    );
}

#[tokio::test]
async fn a_challenge_for_an_unknown_user_looks_like_one_for_a_known_user() {
    let server = server_with(|_| {}).await;
    operator(&server, ALICE, Role::Admin).await;
    let known = challenge(&server, ALICE).await;
    let unknown = challenge(&server, "nobody-here").await;
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&known), keys(&unknown));
    assert_eq!(known["key_id"], unknown["key_id"]);
    assert_eq!(known["public_key"], unknown["public_key"]);
    assert_eq!(
        known["nonce"].as_str().unwrap().len(),
        unknown["nonce"].as_str().unwrap().len()
    );
    assert_ne!(known["nonce"], unknown["nonce"]);
    let skew = known["expires_at"].as_i64().unwrap() - unknown["expires_at"].as_i64().unwrap();
    assert!(skew.abs() <= 2, "{known} {unknown}");
}

// ---- 1d. security settings and emergency controls ----

#[tokio::test]
async fn security_settings_are_validated_naming_the_field_and_survive_a_restart() {
    let server = server_with(|_| {}).await;
    let writer = bearer(
        &admin_key(
            &server,
            "security",
            vec![Scope::SecurityRead, Scope::SecurityWrite],
        )
        .await,
    );
    let (status, before) = get(&server, "/api/admin/security", &writer).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(
        before,
        json!({
            "enforce_login_payload_encryption": true,
            "max_login_attempts": 5,
            "replay_window_secs": 120,
            "ip_reputation_mode": "standard",
            "network_protection_mode": "standard",
        }),
        "the defaults of [security]"
    );
    for (patch, field) in [
        (json!({"max_login_attempts": 0}), "max_login_attempts"),
        (json!({"max_login_attempts": 1001}), "max_login_attempts"),
        (json!({"replay_window_secs": 5}), "replay_window_secs"),
        (json!({"replay_window_secs": 100000}), "replay_window_secs"),
        (
            json!({"ip_reputation_mode": "paranoid"}),
            "ip_reputation_mode",
        ),
        (
            json!({"network_protection_mode": "loose"}),
            "network_protection_mode",
        ),
        (
            json!({"enforce_login_payload_encryption": "yes"}),
            "enforce_login_payload_encryption",
        ),
        (json!({"max_login_atempts": 3}), "max_login_atempts"),
    ] {
        let (status, body) = put(&server, "/api/admin/security", &writer, patch.clone()).await;
        assert_eq!(status, 400, "{patch}: {body}");
        assert!(
            matches!(code(&body), "VALIDATION_ERROR" | "INVALID_JSON"),
            "{patch}: {body}"
        );
        assert!(
            body["error"].as_str().unwrap().contains(field),
            "{patch}: the message names {field}: {body}"
        );
    }
    let (_, unchanged) = get(&server, "/api/admin/security", &writer).await;
    assert_eq!(unchanged, before, "a refused change changes nothing");

    let wanted = json!({
        "enforce_login_payload_encryption": false,
        "max_login_attempts": 7,
        "replay_window_secs": 300,
        "ip_reputation_mode": "strict",
        "network_protection_mode": "off",
    });
    let (status, body) = put(&server, "/api/admin/security", &writer, wanted.clone()).await;
    assert_eq!((status, &body), (200, &wanted));
    let (status, body) = put(
        &server,
        "/api/admin/security",
        &writer,
        json!({"max_login_attempts": 8}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut wanted = wanted;
    wanted["max_login_attempts"] = json!(8);
    assert_eq!(body, wanted, "a patch changes only what it names");

    let server = server.stop().await.unwrap().restart().await.unwrap();
    let (status, body) = get(&server, "/api/admin/security", &writer).await;
    assert_eq!((status, &body), (200, &wanted), "kept across a restart");
    let (_, public) = get(&server, "/api/public/config", &Cred::None).await;
    assert_eq!(
        public["security"]["enforce_login_payload_encryption"],
        false
    );
    assert_eq!(public["security"]["network_protection_mode"], "off");
}

#[tokio::test]
async fn force_reauth_non_admin_stops_admin_tokens_but_not_super_admin_tokens() {
    let server = server_with(|_| {}).await;
    operator(&server, ROOT, Role::SuperAdmin).await;
    operator(&server, ALICE, Role::Admin).await;
    let root = bearer(&token(&server, ROOT).await);
    let alice = bearer(&token(&server, ALICE).await);
    assert_eq!(get(&server, "/api/auth/me", &alice).await.0, 200);

    let (status, body) = post(
        &server,
        "/api/admin/emergency",
        &root,
        json!({"action": "force_reauth_non_admin"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["action"], "force_reauth_non_admin");
    let (status, body) = get(&server, "/api/admin/security", &alice).await;
    assert_eq!((status, code(&body)), (401, "UNAUTHENTICATED"), "{body}");
    let (status, body) = get(&server, "/api/admin/security", &root).await;
    assert_eq!(status, 200, "a super_admin token keeps working: {body}");

    // The admin logs in again and gets a working token (the cut-off is whole seconds, so a
    // token issued in the same second as the emergency may still be cut: poll).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fresh = bearer(&token(&server, ALICE).await);
        let (status, body) = get(&server, "/api/auth/me", &fresh).await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a new login still refused: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn activate(server: &TestServer, key: &str, hw: &str) -> (u16, Value) {
    let body = json!({"license_key": key, "hardware_hash": hw, "machine_name": "M", "app_version": "1.0.0"});
    let cred = Cred::SystemKey(server.api_key.clone());
    post(server, "/api/license/activate", &cred, body).await
}

async fn start_session(server: &TestServer, key: &str, hw: &str) -> String {
    let body =
        json!({"license_key": key, "machine_id": "M", "hardware_hash": hw, "version": "1.0.0"});
    let cred = Cred::SystemKey(server.api_key.clone());
    let (status, body) = post(server, "/api/license/session/start", &cred, body).await;
    assert_eq!(status, 200, "{body}");
    body["session_token"].as_str().unwrap().to_owned()
}

async fn heartbeat(server: &TestServer, key: &str, token: &str) -> (u16, Value) {
    let body = json!({"license_key": key, "session_token": token});
    let cred = Cred::SystemKey(server.api_key.clone());
    post(server, "/api/license/session/heartbeat", &cred, body).await
}

#[tokio::test]
async fn end_all_sessions_ends_every_live_client_session() {
    let server = server_with(|_| {}).await;
    operator(&server, ROOT, Role::SuperAdmin).await;
    let root = bearer(&token(&server, ROOT).await);
    let mut sessions = Vec::new();
    for i in 0..3 {
        let key = issue_license(&server, &root, json!({"max_sessions": 2})).await;
        let hw = format!("hw-{i}");
        assert_eq!(activate(&server, &key, &hw).await.0, 200);
        let token = start_session(&server, &key, &hw).await;
        assert_eq!(heartbeat(&server, &key, &token).await.0, 200);
        sessions.push((key, token));
    }
    let (status, body) = post(
        &server,
        "/api/admin/emergency",
        &root,
        json!({"action": "end_all_sessions"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ended_sessions"], 3, "{body}");
    for (key, token) in &sessions {
        let (status, body) = heartbeat(&server, key, token).await;
        assert_eq!((status, code(&body)), (410, "SESSION_EXPIRED"), "{body}");
    }
    let (status, body) = get(
        &server,
        &format!("/api/admin/licenses/{}", sessions[0].0),
        &root,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.to_string().contains(&sessions[0].1),
        "no token in an admin view"
    );
}

#[tokio::test]
async fn freeze_activations_refuses_new_activations_until_unfrozen() {
    let server = server_with(|_| {}).await;
    operator(&server, ROOT, Role::SuperAdmin).await;
    let root = bearer(&token(&server, ROOT).await);
    let key = issue_license(&server, &root, json!({"max_devices": 3})).await;
    assert_eq!(activate(&server, &key, "hw-before").await.0, 200);

    let (status, body) = post(
        &server,
        "/api/admin/emergency",
        &root,
        json!({"action": "freeze_activations"}),
    )
    .await;
    assert_eq!(
        (status, &body["activations_frozen"]),
        (200, &json!(true)),
        "{body}"
    );
    let (status, body) = activate(&server, &key, "hw-during").await;
    assert_eq!((status, code(&body)), (403, "ACTIVATIONS_FROZEN"), "{body}");
    // The state is readable by whoever may read the security settings (the panel shows it).
    let reader = bearer(&admin_key(&server, "watch", vec![Scope::SecurityRead]).await);
    let (status, body) = get(&server, "/api/admin/emergency", &reader).await;
    assert_eq!(
        (status, &body["activations_frozen"]),
        (200, &json!(true)),
        "{body}"
    );
    assert_eq!(body["reauth_forced_at"], Value::Null, "{body}");
    // A device activated before keeps working.
    let token = start_session(&server, &key, "hw-before").await;
    assert_eq!(heartbeat(&server, &key, &token).await.0, 200);

    let (status, body) = post(
        &server,
        "/api/admin/emergency",
        &root,
        json!({"action": "unfreeze_activations"}),
    )
    .await;
    assert_eq!(
        (status, &body["activations_frozen"]),
        (200, &json!(false)),
        "{body}"
    );
    let (status, body) = activate(&server, &key, "hw-during").await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = get(&server, "/api/admin/emergency", &reader).await;
    assert_eq!(body["activations_frozen"], json!(false), "{body}");
}

#[tokio::test]
async fn emergency_controls_need_a_super_admin_operator() {
    let server = server_with(|_| {}).await;
    operator(&server, ROOT, Role::SuperAdmin).await;
    operator(&server, ALICE, Role::Admin).await;
    let star = bearer(&admin_key(&server, "star", vec![Scope::All]).await);
    let alice = bearer(&token(&server, ALICE).await);
    let root = bearer(&token(&server, ROOT).await);
    let freeze = json!({"action": "freeze_activations"});
    let (status, body) = post(&server, "/api/admin/emergency", &alice, freeze.clone()).await;
    assert_eq!((status, code(&body)), (403, "FORBIDDEN_ROLE"), "{body}");
    let (status, body) = post(&server, "/api/admin/emergency", &star, freeze.clone()).await;
    assert_eq!((status, code(&body)), (403, "INSUFFICIENT_SCOPE"), "{body}");
    let system = Cred::SystemKey(server.api_key.clone());
    let (status, body) = post(&server, "/api/admin/emergency", &system, freeze.clone()).await;
    assert_eq!((status, code(&body)), (403, "INSUFFICIENT_SCOPE"), "{body}");
    let (status, body) = post(&server, "/api/admin/emergency", &Cred::None, freeze).await;
    assert_eq!((status, code(&body)), (401, "UNAUTHENTICATED"), "{body}");
    assert!(
        !server.state.auth.security.activations_frozen().await,
        "nothing froze"
    );

    let (status, body) = post(
        &server,
        "/api/admin/emergency",
        &root,
        json!({"action": "self_destruct"}),
    )
    .await;
    assert_eq!((status, code(&body)), (400, "VALIDATION_ERROR"), "{body}");
    assert!(body["error"].as_str().unwrap().contains("action"), "{body}");
}

// ---- operators and admin keys over HTTP ----

async fn delete(server: &TestServer, path: &str, cred: &Cred) -> (u16, Value) {
    call(server, Method::DELETE, path, cred, None).await
}

/// The audit log's records, newest first, as text and as values.
async fn audit_records(server: &TestServer, cred: &Cred) -> (String, Vec<Value>) {
    let (status, body) = get(server, "/api/admin/audit?limit=100", cred).await;
    assert_eq!(status, 200, "{body}");
    (
        body.to_string(),
        body["records"].as_array().unwrap().clone(),
    )
}

fn usernames(list: &Value) -> Vec<&str> {
    list["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["username"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_super_admin_manages_operators_over_http_and_an_admin_gets_forbidden_role() {
    let server = server_with(|_| {}).await;
    operator(&server, ROOT, Role::SuperAdmin).await;
    operator(&server, ALICE, Role::Admin).await;
    let root = bearer(&token(&server, ROOT).await);
    let alice = bearer(&token(&server, ALICE).await);

    let (status, list) = get(&server, "/api/admin/operators", &root).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(usernames(&list), [ROOT, ALICE]);
    assert_eq!(list["operators"][1]["role"], "admin");
    assert_eq!(list["operators"][1]["disabled"], false);
    assert!(list["operators"][1]["created_at"].is_i64(), "{list}");
    assert!(
        !list.to_string().contains("argon2") && !list.to_string().contains("password"),
        "no hash, no password field: {list}"
    );

    // A plain admin reaches none of it, and changes nothing.
    let bob = json!({"username": "bob", "role": "admin", "password": PASSWORD});
    for (status, body) in [
        get(&server, "/api/admin/operators", &alice).await,
        post(&server, "/api/admin/operators", &alice, bob.clone()).await,
        post(
            &server,
            "/api/admin/operators/root/disable",
            &alice,
            json!({}),
        )
        .await,
        get(&server, "/api/admin/keys", &alice).await,
        post(
            &server,
            "/api/admin/keys",
            &alice,
            json!({"name": "mine", "scopes": ["*"]}),
        )
        .await,
    ] {
        assert_eq!((status, code(&body)), (403, "FORBIDDEN_ROLE"), "{body}");
    }

    // Bad input: a clear 400 naming the field, and no operator.
    for (bad, field) in [
        (
            json!({"username": "bob", "role": "admin", "password": "too short"}),
            "password",
        ),
        (
            json!({"username": "bob smith", "role": "admin", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "bob", "role": "owner", "password": PASSWORD}),
            "role",
        ),
        (
            json!({"username": "bob", "role": "admin", "password": PASSWORD, "disabled": true}),
            "disabled",
        ),
    ] {
        let (status, body) = post(&server, "/api/admin/operators", &root, bad).await;
        assert_eq!((status, code(&body)), (400, "VALIDATION_ERROR"), "{body}");
        assert!(body["error"].as_str().unwrap().contains(field), "{body}");
    }
    assert_eq!(
        usernames(&get(&server, "/api/admin/operators", &root).await.1),
        [ROOT, ALICE]
    );

    let (status, created) = post(&server, "/api/admin/operators", &root, bob.clone()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (&created["username"], &created["role"], &created["disabled"]),
        (&json!("bob"), &json!("admin"), &json!(false))
    );
    assert!(created.get("password_hash").is_none(), "{created}");
    let (status, body) = post(&server, "/api/admin/operators", &root, bob).await;
    assert_eq!((status, code(&body)), (409, "CONFLICT"), "{body}");

    // The new operator logs in; disabled, their token stops working and so does the login.
    let bobs = bearer(&token(&server, "bob").await);
    assert_eq!(get(&server, "/api/auth/me", &bobs).await.0, 200);
    let (status, body) = post(
        &server,
        "/api/admin/operators/bob/disable",
        &root,
        json!({}),
    )
    .await;
    assert_eq!((status, &body["disabled"]), (200, &json!(true)), "{body}");
    let (status, body) = get(&server, "/api/auth/me", &bobs).await;
    assert_eq!((status, code(&body)), (401, "UNAUTHENTICATED"), "{body}");
    let (status, body) = login(&server, "bob", PASSWORD).await;
    assert_eq!(
        (status, code(&body)),
        (401, "INVALID_CREDENTIALS"),
        "{body}"
    );
    let (status, body) = post(&server, "/api/admin/operators/bob/enable", &root, json!({})).await;
    assert_eq!((status, &body["disabled"]), (200, &json!(false)), "{body}");
    assert_eq!(login(&server, "bob", PASSWORD).await.0, 200);
    // The token bob held before the disable stays ended.
    let (status, body) = get(&server, "/api/auth/me", &bobs).await;
    assert_eq!((status, code(&body)), (401, "UNAUTHENTICATED"), "{body}");

    // A new password over HTTP: too short is refused, an admin is refused, then it takes;
    // bob's tokens from before end and only the new password logs in.
    let bobs = bearer(&token(&server, "bob").await);
    let url = "/api/admin/operators/bob/password";
    let (status, body) = post(&server, url, &root, json!({"password": "short"})).await;
    assert_eq!((status, code(&body)), (400, "VALIDATION_ERROR"), "{body}");
    let (status, body) = post(
        &server,
        url,
        &alice,
        json!({"password": "another long passphrase"}),
    )
    .await;
    assert_eq!((status, code(&body)), (403, "FORBIDDEN_ROLE"), "{body}");
    let (status, body) = post(
        &server,
        url,
        &root,
        json!({"password": "another long passphrase"}),
    )
    .await;
    assert_eq!((status, &body["username"]), (200, &json!("bob")), "{body}");
    assert_eq!(get(&server, "/api/auth/me", &bobs).await.0, 401);
    assert_eq!(login(&server, "bob", PASSWORD).await.0, 401);
    assert_eq!(
        login(&server, "bob", "another long passphrase").await.0,
        200
    );

    let (status, body) = post(
        &server,
        "/api/admin/operators/nobody/disable",
        &root,
        json!({}),
    )
    .await;
    assert_eq!((status, code(&body)), (404, "OPERATOR_NOT_FOUND"), "{body}");
    let (status, body) = post(
        &server,
        "/api/admin/operators/bob%20/disable",
        &root,
        json!({}),
    )
    .await;
    assert_eq!((status, code(&body)), (400, "VALIDATION_ERROR"), "{body}");

    // No one disables their own account, and the last enabled super_admin stays enabled
    // (an admin key with operators:write is refused it as well).
    let (status, body) = post(
        &server,
        "/api/admin/operators/root/disable",
        &root,
        json!({}),
    )
    .await;
    assert_eq!((status, code(&body)), (400, "VALIDATION_ERROR"), "{body}");
    let key = bearer(&admin_key(&server, "ops", vec![Scope::OperatorsWrite]).await);
    let (status, body) = post(
        &server,
        "/api/admin/operators/root/disable",
        &key,
        json!({}),
    )
    .await;
    assert_eq!((status, code(&body)), (409, "CONFLICT"), "{body}");
    let (_, list) = get(&server, "/api/admin/operators", &root).await;
    assert_eq!(list["operators"][0]["disabled"], false, "{list}");

    // Audited as the operator who acted, from their address, never with the password.
    let (text, records) = audit_records(&server, &root).await;
    assert!(!text.contains(PASSWORD), "{text}");
    let actions: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["actor"].as_str().unwrap(),
                r["ip"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for action in [
        "admin.operator.created",
        "admin.operator.changed",
        "admin.operator.password_reset",
    ] {
        assert!(
            actions.contains(&(action, "operator:root", "127.0.0.1")),
            "{action} by operator:root from 127.0.0.1 in {actions:?}"
        );
    }
    // ... and published as events.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, events) = get(&server, "/api/admin/events?type=admin.operator.", &root).await;
        let n = events["events"].as_array().map_or(0, Vec::len);
        // Created, disabled, enabled, new password.
        if n == 4 {
            assert_eq!(events["events"][0]["actor"], "operator:root", "{events}");
            assert_eq!(
                events["events"][0]["event_type"],
                "admin.operator.password_reset"
            );
            break;
        }
        assert!(Instant::now() < deadline, "events: {events}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_admin_key_made_over_http_is_shown_once_works_as_a_bearer_until_revoked() {
    let server = server_with(|_| {}).await;
    operator(&server, ROOT, Role::SuperAdmin).await;
    let root = bearer(&token(&server, ROOT).await);

    for bad in [
        json!({"name": "billing", "scopes": []}),
        json!({"name": "billing", "scopes": ["licences:read"]}),
        json!({"name": "  ", "scopes": ["licenses:read"]}),
        json!({"name": "billing", "scopes": ["licenses:read"], "secret": "tsa_mine"}),
    ] {
        let (status, body) = post(&server, "/api/admin/keys", &root, bad).await;
        assert_eq!((status, code(&body)), (400, "VALIDATION_ERROR"), "{body}");
    }
    let count = |list: &Value| list["keys"].as_array().unwrap().len();
    let (_, before) = get(&server, "/api/admin/keys", &root).await;
    assert_eq!(
        count(&before),
        1,
        "only the test server's own key: {before}"
    );

    let (status, created) = post(
        &server,
        "/api/admin/keys",
        &root,
        json!({"name": " billing ", "scopes": ["licenses:read", "licenses:read"]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("tsa_") && secret.len() > 40, "{created}");
    assert_eq!(created["name"], "billing");
    assert_eq!(created["scopes"], json!(["licenses:read"]));
    assert_eq!(created["hint"], json!(&secret[..8]));
    assert!(created["revoked_at"].is_null());

    // Listed, never with the key or its hash; the audit record has neither either.
    let (status, list) = get(&server, "/api/admin/keys", &root).await;
    assert_eq!(status, 200);
    assert_eq!(count(&list), 2);
    let listed = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == json!(id))
        .unwrap();
    assert_eq!(listed["name"], "billing");
    assert!(listed.get("secret").is_none() && listed.get("sha256").is_none());
    assert!(!list.to_string().contains(&secret[8..]), "{list}");
    let (text, records) = audit_records(&server, &root).await;
    assert!(!text.contains(&secret[8..]), "{text}");
    assert_eq!(records[0]["action"], "admin.admin_key.created");
    assert_eq!(records[0]["actor"], "operator:root");

    // The key works as a bearer, for its scope only.
    let key = bearer(&secret);
    let (status, body) = get(&server, "/api/admin/licenses", &key).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&server, "/api/admin/licenses", &key, json!({})).await;
    assert_eq!((status, code(&body)), (403, "INSUFFICIENT_SCOPE"), "{body}");
    let (status, body) = get(&server, "/api/admin/keys", &key).await;
    assert_eq!((status, code(&body)), (403, "INSUFFICIENT_SCOPE"), "{body}");

    // Revoked, it stops working at once; a second revoke finds no active key.
    let (status, body) = delete(&server, &format!("/api/admin/keys/{id}"), &root).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["revoked_at"].is_i64(), "{body}");
    let (status, body) = get(&server, "/api/admin/licenses", &key).await;
    assert_eq!((status, code(&body)), (401, "UNAUTHENTICATED"), "{body}");
    let (status, body) = delete(&server, &format!("/api/admin/keys/{id}"), &root).await;
    assert_eq!(
        (status, code(&body)),
        (404, "ADMIN_KEY_NOT_FOUND"),
        "{body}"
    );
    let (status, body) = delete(&server, "/api/admin/keys/billing", &root).await;
    assert_eq!((status, code(&body)), (400, "VALIDATION_ERROR"), "{body}");
    let (_, records) = audit_records(&server, &root).await;
    assert_eq!(records[0]["action"], "admin.admin_key.revoked");

    // A key holding `operators:write` manages keys too; the system API key does not.
    let manager = bearer(&admin_key(&server, "manager", vec![Scope::OperatorsWrite]).await);
    let (status, body) = post(
        &server,
        "/api/admin/keys",
        &manager,
        json!({"name": "billing", "scopes": ["licenses:write"]}),
    )
    .await;
    assert_eq!(status, 201, "the name is free again once revoked: {body}");
    let system = Cred::SystemKey(server.api_key.clone());
    let (status, body) = get(&server, "/api/admin/keys", &system).await;
    assert_eq!((status, code(&body)), (403, "INSUFFICIENT_SCOPE"), "{body}");
}

#[tokio::test]
async fn public_config_has_seed_001s_shape_and_shows_the_flags_operators_set() {
    let server = server_with(|_| {}).await;
    let (status, body) = get(&server, "/api/public/config", &Cred::None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "security": {"enforce_login_payload_encryption": true, "network_protection_mode": "standard"},
            "features": {},
            "enabled_feature_flags": [],
        })
    );
    let writer = bearer(&admin_key(&server, "flags", vec![Scope::SecurityWrite]).await);
    let flags = json!({
        "features": {"guest_login_enabled": false, "demo_mode_enabled": true},
        "enabled_feature_flags": ["priority_tickets", "advanced_export"],
    });
    let (status, body) = put(&server, "/api/admin/features", &writer, flags.clone()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = put(
        &server,
        "/api/admin/features",
        &writer,
        json!({"features": {"Bad Name": true}}),
    )
    .await;
    assert_eq!((status, code(&body)), (400, "VALIDATION_ERROR"), "{body}");

    let (_, body) = get(&server, "/api/public/config", &Cred::None).await;
    assert_eq!(body["features"], flags["features"]);
    let mut on: Vec<&str> = body["enabled_feature_flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    on.sort_unstable();
    assert_eq!(on, ["advanced_export", "priority_tickets"]);
    let reader = bearer(&admin_key(&server, "reader", vec![Scope::SecurityRead]).await);
    let (status, body) = get(&server, "/api/admin/features", &reader).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["features"], flags["features"]);
}

// ---- 1e. the same on Redis ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_admin_keys_and_operator_logins_work_and_the_system_key_does_not() {
    let redis = RedisServer::start().unwrap();
    let url = redis.url.clone();
    let server = server_with(move |c| {
        c.store.backend = StoreBackend::Redis;
        c.store.redis_url = url;
    })
    .await;
    assert!(server.state.embedded.is_none(), "the server runs on Redis");
    operator(&server, ROOT, Role::SuperAdmin).await;
    let writer = bearer(&admin_key(&server, "automation", vec![Scope::LicensesWrite]).await);
    let system = Cred::SystemKey(server.api_key.clone());

    let body = json!({"max_devices": 2});
    let (status, refused) = post(&server, "/api/admin/licenses", &system, body.clone()).await;
    assert_eq!(
        (status, code(&refused)),
        (403, "INSUFFICIENT_SCOPE"),
        "{refused}"
    );
    let (status, refused) = post(&server, "/api/admin/licenses", &Cred::None, body.clone()).await;
    assert_eq!(
        (status, code(&refused)),
        (401, "UNAUTHENTICATED"),
        "{refused}"
    );
    let key = issue_license(&server, &writer, body).await;
    let (status, refused) = get(&server, &format!("/api/admin/licenses/{key}"), &writer).await;
    assert_eq!(
        (status, code(&refused)),
        (403, "INSUFFICIENT_SCOPE"),
        "{refused}"
    );
    assert_eq!(
        activate(&server, &key, "hw-1").await.0,
        200,
        "the system key on the client API"
    );

    let root = bearer(&token(&server, ROOT).await);
    let (status, body) = get(&server, &format!("/api/admin/licenses/{key}"), &root).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&server, "/api/auth/logout", &root, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&server, "/api/auth/me", &root).await;
    assert_eq!((status, code(&body)), (401, "UNAUTHENTICATED"), "{body}");

    admin_keys::revoke(server.state.meta.as_ref(), "automation")
        .await
        .unwrap();
    let (status, body) = post(&server, "/api/admin/licenses", &writer, json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (401, "UNAUTHENTICATED"),
        "a revoked key: {body}"
    );
    assert!(redis.is_alive());
}
