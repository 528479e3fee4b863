//! The operator panel's server side (issue 16), without a browser: its files are served
//! from the binary with a strict Content-Security-Policy; logging in sets an `HttpOnly`,
//! `SameSite=Strict` cookie and never puts the token in the reply; a change made with the
//! cookie needs the session's CSRF value and the server's own origin; logout and forced
//! re-authentication end the cookie's session; the dashboard's overview reports the live
//! numbers. The browser itself is driven in `panel_browser.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Oaep, RsaPublicKey};
use serde_json::{Value, json};
use tessera::auth::operators;
use tessera::auth::scopes::Role;
use tessera_integration_tests::TestServer;

const PASSWORD: &str = "correct horse battery staple";

async fn server() -> TestServer {
    TestServer::start_with(|c| c.rate_limit.enabled = false)
        .await
        .unwrap()
}

/// A server with one super_admin operator, `root`.
async fn server_with_root() -> TestServer {
    let server = server().await;
    operators::create(
        server.state.meta.as_ref(),
        "root",
        Role::SuperAdmin,
        PASSWORD,
    )
    .await
    .unwrap();
    server
}

/// Seed 001's encrypted login body, as the panel's page builds it with WebCrypto.
async fn login_body(server: &TestServer, username: &str) -> Value {
    let c: Value = server
        .get(&format!("/api/auth/challenge?username={username}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let nonce = c["nonce"].as_str().unwrap();
    let ts = chrono::Utc::now().timestamp();
    let key = RsaPublicKey::from_public_key_pem(c["public_key"].as_str().unwrap()).unwrap();
    let sealed = key
        .encrypt(
            &mut rsa::rand_core::OsRng,
            Oaep::new::<rsa::sha2::Sha256>(),
            format!("{nonce}:{ts}:{PASSWORD}").as_bytes(),
        )
        .unwrap();
    json!({
        "username": username,
        "encrypted_password": STANDARD.encode(sealed),
        "login_nonce": nonce,
        "key_id": c["key_id"],
        "challenge_ts": ts,
    })
}

/// A logged-in panel: the cookie as the browser would send it, and the CSRF value.
struct Panel {
    cookie: String,
    csrf: String,
}

async fn log_in(server: &TestServer, username: &str) -> (Panel, String, Value) {
    let body = login_body(server, username).await;
    let resp = server
        .client()
        .post(server.url("/api/panel/session"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let set_cookie = resp
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let session: Value = resp.json().await.unwrap();
    let cookie = set_cookie.split(';').next().unwrap().trim().to_owned();
    let panel = Panel {
        cookie,
        csrf: session["csrf_token"].as_str().unwrap().to_owned(),
    };
    (panel, set_cookie, session)
}

async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = server.client().request(method, server.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_is_served_from_the_binary_under_a_strict_policy() {
    let server = server().await;
    for (path, kind) in [
        ("/panel", "text/html"),
        ("/panel/", "text/html"),
        ("/panel/js/app.js", "text/javascript"),
        ("/panel/css/panel.css", "text/css"),
        ("/panel/vendor/uPlot.esm.js", "text/javascript"),
    ] {
        let resp = server.get(path).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers().clone();
        let ct = h["content-type"].to_str().unwrap();
        assert!(ct.starts_with(kind), "{path}: {ct}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let etag = h["etag"].to_str().unwrap().to_owned();
        let again = server
            .get(path)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path} revalidates by its ETag");
    }
    let (status, body) = call(&server, Method::GET, "/panel/js/nope.js", &[], None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")));
    let (status, _) = call(&server, Method::GET, "/panel/..%2FCargo.toml", &[], None).await;
    assert_eq!(status, 404, "no file outside the panel's folder");
    let page = server
        .get("/panel")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("/panel/js/app.js") && !page.contains("<script>"),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panel_login_sets_an_http_only_strict_cookie_and_changes_need_the_csrf_value() {
    let server = server_with_root().await;
    let (panel, set_cookie, session) = log_in(&server, "root").await;
    for part in [
        "tessera_panel=tso_",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(set_cookie.contains(part), "{set_cookie} lacks {part}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    assert_eq!(session["username"], "root");
    assert_eq!(session["role"], "super_admin");
    assert!(
        session.get("token").is_none(),
        "the token stays in the cookie: {session}"
    );
    let cookie = panel.cookie.as_str();

    // Reads need only the cookie; the session route gives the same CSRF value back.
    let (status, me) = call(
        &server,
        Method::GET,
        "/api/panel/session",
        &[("cookie", cookie)],
        None,
    )
    .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["csrf_token"], panel.csrf.as_str());
    let (status, _) = call(
        &server,
        Method::GET,
        "/api/admin/licenses",
        &[("cookie", cookie)],
        None,
    )
    .await;
    assert_eq!(status, 200);

    // A change with the cookie alone, a wrong value or another origin changes nothing.
    let issue = json!({"owner": "panel test"});
    for headers in [
        vec![("cookie", cookie)],
        vec![("cookie", cookie), ("x-csrf-token", "0123")],
        vec![
            ("cookie", cookie),
            ("x-csrf-token", panel.csrf.as_str()),
            ("origin", "https://evil.example"),
        ],
    ] {
        let (status, body) = call(
            &server,
            Method::POST,
            "/api/admin/licenses",
            &headers,
            Some(issue.clone()),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("CSRF_FAILED")),
            "{headers:?}: {body}"
        );
    }
    let (_, list) = call(
        &server,
        Method::GET,
        "/api/admin/licenses",
        &[("cookie", cookie)],
        None,
    )
    .await;
    assert_eq!(list["licenses"].as_array().map(Vec::len), Some(0), "{list}");

    let origin = format!("http://{}", server.addr);
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/admin/licenses",
        &[
            ("cookie", cookie),
            ("x-csrf-token", &panel.csrf),
            ("origin", &origin),
        ],
        Some(issue),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Logging out ends the token everywhere and removes the cookie.
    let resp = server
        .client()
        .delete(server.url("/api/panel/session"))
        .header("cookie", cookie)
        .header("x-csrf-token", &panel.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cleared = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cleared.contains("tessera_panel=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let (status, body) = call(
        &server,
        Method::GET,
        "/api/panel/session",
        &[("cookie", cookie)],
        None,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_reauthentication_ends_an_admins_panel_session_but_not_a_super_admins() {
    let server = server().await;
    let meta = server.state.meta.as_ref();
    operators::create(meta, "root", Role::SuperAdmin, PASSWORD)
        .await
        .unwrap();
    operators::create(meta, "alice", Role::Admin, PASSWORD)
        .await
        .unwrap();
    let (root, _, _) = log_in(&server, "root").await;
    let (alice, _, _) = log_in(&server, "alice").await;
    // An admin may not use the emergency controls, even from the panel.
    let origin = format!("http://{}", server.addr);
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/admin/emergency",
        &[
            ("cookie", &alice.cookie),
            ("x-csrf-token", &alice.csrf),
            ("origin", &origin),
        ],
        Some(json!({"action": "force_reauth_non_admin"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("FORBIDDEN_ROLE")),
        "{body}"
    );
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/admin/emergency",
        &[
            ("cookie", &root.cookie),
            ("x-csrf-token", &root.csrf),
            ("origin", &origin),
        ],
        Some(json!({"action": "force_reauth_non_admin"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(
        &server,
        Method::GET,
        "/api/panel/session",
        &[("cookie", &alice.cookie)],
        None,
    )
    .await;
    assert_eq!(status, 401, "the admin's panel session ended");
    let (status, _) = call(
        &server,
        Method::GET,
        "/api/panel/session",
        &[("cookie", &root.cookie)],
        None,
    )
    .await;
    assert_eq!(status, 200, "the super admin's did not");
    // A cookie that holds an admin key is no credential.
    let key_cookie = format!("tessera_panel={}", server.admin_key);
    let (status, _) = call(
        &server,
        Method::GET,
        "/api/admin/licenses",
        &[("cookie", &key_cookie)],
        None,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_counts_live_sessions_and_heartbeats() {
    let server = server_with_root().await;
    let (panel, _, _) = log_in(&server, "root").await;
    let overview = |server: &TestServer| {
        let cookie = panel.cookie.clone();
        let url = server.url("/api/admin/overview");
        let client = server.client().clone();
        async move {
            let v: Value = client
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v
        }
    };
    let before = overview(&server).await;
    assert!(before["history"].is_array(), "{before}");
    assert!(before["now"]["at_ms"].as_i64().unwrap() > 0);

    let (_, issued) = call(
        &server,
        Method::POST,
        "/api/admin/licenses",
        &[("authorization", &format!("Bearer {}", server.admin_key))],
        Some(json!({"owner": "panel test"})),
    )
    .await;
    let key = issued["licenses"][0]["license_key"]
        .as_str()
        .unwrap_or_else(|| panic!("{issued}"))
        .to_owned();
    let client = [("x-api-key", server.api_key.as_str())];
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/license/activate",
        &client,
        Some(json!({"license_key": key, "hardware_hash": "panel-hw-1", "machine_name": "m"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, started) = call(
        &server,
        Method::POST,
        "/api/license/session/start",
        &client,
        Some(json!({"license_key": key, "machine_id": "m", "hardware_hash": "panel-hw-1"})),
    )
    .await;
    assert_eq!(status, 200, "{started}");
    let token = started["session_token"].as_str().unwrap();
    for _ in 0..3 {
        let (status, body) = call(
            &server,
            Method::POST,
            "/api/license/session/heartbeat",
            &client,
            Some(json!({"session_token": token, "license_key": key})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let after = overview(&server).await;
    let n = |v: &Value, k: &str| v["now"][k].as_f64().unwrap();
    assert!(n(&after, "live_sessions") >= 1.0, "{after}");
    assert!(
        n(&after, "heartbeats_total") >= n(&before, "heartbeats_total") + 3.0,
        "{after}"
    );
    assert!(n(&after, "activations_total") >= n(&before, "activations_total") + 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_event_stream_ends_when_its_session_is_logged_out() {
    use futures::StreamExt;
    let server = server_with_root().await;
    let (panel, _, _) = log_in(&server, "root").await;
    let resp = server
        .get("/api/admin/events/stream")
        .header("cookie", &panel.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let (status, _) = call(
        &server,
        Method::DELETE,
        "/api/panel/session",
        &[("cookie", &panel.cookie), ("x-csrf-token", &panel.csrf)],
        None,
    )
    .await;
    assert_eq!(status, 200);
    // The stream checks its credential every 10 s: it ends within one check.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the stream outlived the session it was opened with"
    );
}
