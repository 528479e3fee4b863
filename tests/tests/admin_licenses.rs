//! License administration through the real server (issue 14): listing and filters, seed
//! 000's quick-edit / toggle / devices / generate-license-key / bulk-* at their exact paths,
//! edit, renew, delete with its confirmation, hwid-reset, sessions and kick, bulk actions
//! with dry runs and retries, and the control socket running the same commands. Every
//! scenario runs on the embedded store and on a Redis the test starts (`on_embedded::NAME`,
//! `on_redis::NAME`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::any::Any;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use tessera::auth::admin_keys;
use tessera::auth::scopes::Scope;
use tessera_config::StoreBackend;
use tessera_integration_tests::{RedisServer, TestServer};

type R = anyhow::Result<()>;

/// A server, and whatever must outlive it.
struct Setup {
    server: TestServer,
    _keep: Option<Box<dyn Any + Send>>,
}

async fn embedded() -> anyhow::Result<Setup> {
    Ok(Setup {
        server: TestServer::start().await?,
        _keep: None,
    })
}

async fn redis() -> anyhow::Result<Setup> {
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let url = redis.url.clone();
    let server = TestServer::start_with(move |c| {
        c.store.backend = StoreBackend::Redis;
        c.store.redis_url = url;
    })
    .await?;
    Ok(Setup {
        server,
        _keep: Some(Box::new(redis)),
    })
}

macro_rules! on_both {
    ($($test:ident),* $(,)?) => {
        mod on_embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() -> super::R {
                    let s = super::embedded().await?;
                    super::$test(&s.server).await
                }
            )*
        }
        mod on_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() -> super::R {
                    let s = super::redis().await?;
                    super::$test(&s.server).await
                }
            )*
        }
    };
}

on_both!(
    listing_filters_sorts_and_pages_with_a_cursor,
    quick_edit_by_id_or_key_changes_limits_and_refuses_bad_input,
    lowering_the_session_limit_ends_the_excess_sessions,
    toggle_suspends_then_reactivates,
    devices_register_deactivate_and_hwid_reset,
    sessions_are_listed_and_kicked_with_reason_admin,
    delete_needs_its_confirmation_and_the_delete_scope,
    renew_extends_from_valid_until_or_today,
    bulk_previews_changes_and_a_retried_renewal_runs_once,
    seed_bulk_routes_activate_deactivate_and_delete,
    generate_license_key_gives_an_unused_key,
);

// ---------------------------------------------------------------------------------------------
// Helpers

async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    bearer: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = server
        .client()
        .request(method, server.url(path))
        .bearer_auth(bearer);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn admin(
    server: &TestServer,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    call(server, method, path, &server.admin_key, body).await
}

async fn client(server: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let resp = server.post(path).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("")
}

/// Issues a license with `body` (seed 001 fields) and returns (key, id).
async fn issue(server: &TestServer, body: Value) -> (String, u64) {
    let (status, out) = admin(server, Method::POST, "/api/admin/licenses", Some(body)).await;
    assert_eq!(status, 201, "{out}");
    let l = &out["licenses"][0];
    (
        l["license_key"].as_str().unwrap().to_string(),
        l["id"].as_u64().unwrap(),
    )
}

async fn show(server: &TestServer, key: &str) -> Value {
    let (status, body) = admin(
        server,
        Method::GET,
        &format!("/api/admin/licenses/{key}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn activate(server: &TestServer, key: &str, hw: &str) {
    let (status, body) = client(
        server,
        "/api/license/activate",
        json!({"license_key": key, "hardware_hash": hw, "machine_name": "DESKTOP-1", "app_version": "1.0.0"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Starts a session and returns its token.
async fn start(server: &TestServer, key: &str, hw: &str) -> String {
    let (status, body) = client(
        server,
        "/api/license/session/start",
        json!({"license_key": key, "machine_id": "DESKTOP-1", "hardware_hash": hw, "version": "1.0.0"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["session_token"].as_str().unwrap().to_string()
}

async fn heartbeat(server: &TestServer, key: &str, token: &str) -> (u16, Value) {
    client(
        server,
        "/api/license/session/heartbeat",
        json!({"session_token": token, "license_key": key}),
    )
    .await
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

async fn quick_edit(server: &TestServer, license: &str, body: Value) -> (u16, Value) {
    admin(
        server,
        Method::POST,
        &format!("/api/license/{license}/quick-edit"),
        Some(body),
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Scenarios

async fn listing_filters_sorts_and_pages_with_a_cursor(server: &TestServer) -> R {
    let mut keys = Vec::new();
    for (i, owner) in ["ACME Corp", "Globex", "acme labs", "Initech", "Umbrella"]
        .iter()
        .enumerate()
    {
        let (key, _) = issue(server, json!({"owner": owner, "days_valid": 10 + i})).await;
        keys.push(key);
    }
    keys.sort();
    // Every license, in key order, two at a time.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/admin/licenses?limit=2&cursor={c}"),
            None => "/api/admin/licenses?limit=2".to_string(),
        };
        let (status, page) = admin(server, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{page}");
        let rows = page["licenses"].as_array().unwrap();
        assert!(rows.len() <= 2);
        seen.extend(
            rows.iter()
                .map(|r| r["license_key"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, keys);
    // Customer (case-insensitive part of the name), free text, status and expiry filters.
    let (_, page) = admin(
        server,
        Method::GET,
        "/api/admin/licenses?customer=acme",
        None,
    )
    .await;
    assert_eq!(page["licenses"].as_array().unwrap().len(), 2, "{page}");
    let (_, page) = admin(server, Method::GET, "/api/admin/licenses?q=UMBRELLA", None).await;
    assert_eq!(page["licenses"][0]["customer_name"], "Umbrella");
    let suspended = &keys[0];
    let (status, _) = admin(
        server,
        Method::POST,
        &format!("/api/admin/licenses/{suspended}/status"),
        Some(json!({"status": "suspended"})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, page) = admin(
        server,
        Method::GET,
        "/api/admin/licenses?status=suspended",
        None,
    )
    .await;
    let rows = page["licenses"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["license_key"], suspended.as_str());
    let (_, page) = admin(
        server,
        Method::GET,
        "/api/admin/licenses?status=active",
        None,
    )
    .await;
    assert_eq!(page["licenses"].as_array().unwrap().len(), 4);
    let soon = (Utc::now() + chrono::Duration::days(12))
        .format("%Y-%m-%d")
        .to_string();
    let (_, page) = admin(
        server,
        Method::GET,
        &format!("/api/admin/licenses?expires_before={soon}"),
        None,
    )
    .await;
    assert_eq!(page["licenses"].as_array().unwrap().len(), 2, "{page}");
    // Bad input is a clear 400.
    for q in [
        "status=paused",
        "limit=0",
        "limit=501",
        "limit=x",
        "expires_before=soon",
        "cursor=a%20b",
    ] {
        let (status, body) = admin(
            server,
            Method::GET,
            &format!("/api/admin/licenses?{q}"),
            None,
        )
        .await;
        assert_eq!(status, 400, "{q}: {body}");
        assert_eq!(code(&body), "VALIDATION_ERROR");
    }
    Ok(())
}

async fn quick_edit_by_id_or_key_changes_limits_and_refuses_bad_input(server: &TestServer) -> R {
    let (key, id) = issue(server, json!({})).await;
    // Seed 000's request and reply, by numeric id.
    let (status, body) = quick_edit(
        server,
        &id.to_string(),
        json!({"valid_until": "2027-01-01", "max_activations": 10, "max_users": 50}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"success": true, "message": "License updated successfully"})
    );
    let view = show(server, &key).await;
    assert_eq!(view["max_activations"], 10);
    assert_eq!(view["max_sessions"], 50);
    assert_eq!(view["valid_until"], "2027-01-01T00:00:00Z");
    // By key, the other editable fields; `null` clears.
    let (status, _) = quick_edit(
        server,
        &key,
        json!({"note": "VIP", "customer_name": "ACME", "metadata": {"crm": "42"}, "max_devices": 3}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, after) = admin(
        server,
        Method::PATCH,
        &format!("/api/admin/licenses/{key}"),
        Some(json!({"valid_until": null, "features": ["export", "export"], "note": null})),
    )
    .await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["valid_until"], Value::Null);
    assert_eq!(after["note"], Value::Null);
    assert_eq!(after["customer_name"], "ACME");
    assert_eq!(after["metadata"], json!({"crm": "42"}));
    assert_eq!(after["features"], json!(["export"]));
    assert_eq!(after["max_devices"], 3);
    // Features reach the client: verify and session start list them.
    let (status, verified) =
        client(server, "/api/license/verify", json!({"license_key": key})).await;
    assert_eq!(status, 200, "{verified}");
    assert_eq!(verified["license"]["features"], json!(["export"]));
    activate(server, &key, "hw-f").await;
    let (status, started) = client(
        server,
        "/api/license/session/start",
        json!({"license_key": key, "machine_id": "M", "hardware_hash": "hw-f", "version": "1.0.0"}),
    )
    .await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["features"], json!(["export"]));
    // Refusals change nothing.
    let bad = [
        json!({"max_users": 1_000_001}),
        json!({"valid_until": "next week"}),
        json!({"colour": "red"}),
        json!({}),
        json!({"plan": "nope"}),
        json!({"metadata": {"bad key": "x"}}),
    ];
    for b in bad {
        let (status, body) = quick_edit(server, &key, b.clone()).await;
        assert_eq!(status, 400, "{b}: {body}");
    }
    assert_eq!(show(server, &key).await["max_devices"], 3);
    let (status, body) = quick_edit(server, "987654321", json!({"max_users": 2})).await;
    assert_eq!((status, code(&body)), (404, "LICENSE_NOT_FOUND"));
    // The system API key (public in effect) never reaches these routes.
    let resp = server
        .post(&format!("/api/license/{key}/quick-edit"))
        .json(&json!({"max_users": 1}))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 403, "INSUFFICIENT_SCOPE");
    Ok(())
}

async fn lowering_the_session_limit_ends_the_excess_sessions(server: &TestServer) -> R {
    let (key, _) = issue(server, json!({"max_users": 3, "max_devices": 1})).await;
    activate(server, &key, "hw-1").await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(start(server, &key, "hw-1").await);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let (status, _) = quick_edit(server, &key, json!({"max_users": 1})).await;
    assert_eq!(status, 200);
    // The actor ends the excess right after the change; give it a moment to persist.
    let mut live = 3;
    for _ in 0..50 {
        let (_, list) = admin(
            server,
            Method::GET,
            &format!("/api/admin/licenses/{key}/sessions"),
            None,
        )
        .await;
        live = list["sessions"].as_array().unwrap().len();
        if live == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(live, 1);
    // The default strategy refuses new sessions at the limit, so the newest ones went.
    assert_eq!(heartbeat(server, &key, &tokens[0]).await.0, 200);
    for t in &tokens[1..] {
        let (status, body) = heartbeat(server, &key, t).await;
        assert!(status >= 400, "{body}");
    }
    Ok(())
}

async fn toggle_suspends_then_reactivates(server: &TestServer) -> R {
    let (key, id) = issue(server, json!({})).await;
    activate(server, &key, "hw").await;
    let token = start(server, &key, "hw").await;
    let (status, body) = admin(
        server,
        Method::POST,
        &format!("/api/license/{id}/toggle"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "suspended");
    assert_eq!(body["is_active"], false);
    assert_eq!(body["ended_sessions"], 1);
    let (status, body) = heartbeat(server, &key, &token).await;
    assert!(status >= 400, "{body}");
    let (_, body) = admin(
        server,
        Method::POST,
        &format!("/api/license/{key}/toggle"),
        None,
    )
    .await;
    assert_eq!(body["status"], "active");
    assert_eq!(show(server, &key).await["status"], "active");
    Ok(())
}

async fn devices_register_deactivate_and_hwid_reset(server: &TestServer) -> R {
    let (key, id) = issue(server, json!({"max_devices": 2})).await;
    let (status, body) = admin(
        server,
        Method::POST,
        &format!("/api/license/{id}/register-device"),
        Some(json!({"hardware_hash": "hw-a", "machine_name": "DESKTOP-XYZ789", "app_version": "1.0.0"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "Device registered successfully");
    let device_a = body["device_id"].as_u64().unwrap();
    activate(server, &key, "hw-b").await;
    let token_b = start(server, &key, "hw-b").await;
    // A third device is over the limit.
    let (status, body) = admin(
        server,
        Method::POST,
        &format!("/api/license/{key}/register-device"),
        Some(json!({"hardware_hash": "hw-c"})),
    )
    .await;
    assert_eq!((status, code(&body)), (409, "DEVICE_LIMIT_REACHED"));
    // Seed 000's device list shape.
    let (status, body) = admin(
        server,
        Method::GET,
        &format!("/api/license/{id}/devices"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let devices = body["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2);
    let a = &devices[0];
    for field in [
        "id",
        "hardware_hash",
        "machine_name",
        "activated_at",
        "last_heartbeat",
        "is_active",
        "app_version",
    ] {
        assert!(a.get(field).is_some(), "{field} missing in {a}");
    }
    assert_eq!(a["machine_name"], "DESKTOP-XYZ789");
    // Deactivate one; again is DEVICE_NOT_FOUND.
    let path = format!("/api/license/{key}/deactivate-device/{device_a}");
    let (status, body) = admin(server, Method::POST, &path, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"success": true, "message": "Device deactivated successfully"})
    );
    let (status, body) = admin(server, Method::POST, &path, None).await;
    assert_eq!((status, code(&body)), (404, "DEVICE_NOT_FOUND"));
    let (status, _) = admin(
        server,
        Method::POST,
        &format!("/api/license/{key}/deactivate-device/x"),
        None,
    )
    .await;
    assert_eq!(status, 400);
    // hwid-reset frees the rest and ends their sessions.
    let (status, body) = admin(
        server,
        Method::POST,
        &format!("/api/admin/licenses/{key}/hwid-reset"),
        Some(json!({"refund_activations": true})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"deactivated": 1, "ended_sessions": 1}));
    assert!(heartbeat(server, &key, &token_b).await.0 >= 400);
    let view = show(server, &key).await;
    assert_eq!(view["active_devices"], 0);
    assert_eq!(view["activations_used"], 0);
    Ok(())
}

async fn sessions_are_listed_and_kicked_with_reason_admin(server: &TestServer) -> R {
    let (key, _) = issue(server, json!({"max_users": 2})).await;
    activate(server, &key, "hw").await;
    let kept = start(server, &key, "hw").await;
    let kicked = start(server, &key, "hw").await;
    let (_, list) = admin(
        server,
        Method::GET,
        &format!("/api/admin/licenses/{key}/sessions"),
        None,
    )
    .await;
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert!(!list.to_string().contains(&kicked), "tokens never appear");
    let id = tessera_actors::TokenHash::of(&kicked).to_hex();
    assert!(sessions.iter().any(|s| s["session_id"] == id.as_str()));
    let path = format!("/api/admin/licenses/{key}/sessions/{id}");
    let (status, _) = admin(server, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let (status, body) = heartbeat(server, &key, &kicked).await;
    assert!(status >= 400, "{body}");
    assert_eq!(heartbeat(server, &key, &kept).await.0, 200);
    // Kicking it again changes nothing; a session that never existed is not found.
    let (status, _) = admin(server, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let unknown = format!("/api/admin/licenses/{key}/sessions/{}", "ab".repeat(32));
    let (status, body) = admin(server, Method::DELETE, &unknown, None).await;
    assert_eq!((status, code(&body)), (404, "SESSION_NOT_FOUND"), "{body}");
    let (status, _) = admin(
        server,
        Method::DELETE,
        &format!("/api/admin/licenses/{key}/sessions/zz"),
        None,
    )
    .await;
    assert_eq!(status, 400);
    Ok(())
}

async fn delete_needs_its_confirmation_and_the_delete_scope(server: &TestServer) -> R {
    let (key, id) = issue(server, json!({})).await;
    activate(server, &key, "hw").await;
    let token = start(server, &key, "hw").await;
    // It holds a resource, allocated naming the license by its numeric id (seed 000).
    let (status, pool) = admin(
        server,
        Method::POST,
        "/api/admin/resources",
        Some(json!({"type": "server", "identifiers": ["SRV-DEL-1"]})),
    )
    .await;
    assert!(status == 200 || status == 201, "{pool}");
    let resource = pool["resources"][0]["id"].as_u64().unwrap();
    let (status, out) = admin(
        server,
        Method::POST,
        "/api/resources/allocate",
        Some(json!({"license_id": id, "resource_ids": [resource]})),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        show(server, &key).await["resources"][0]["identifier"],
        "SRV-DEL-1"
    );
    let path = format!("/api/admin/licenses/{key}");
    // No confirmation, or the wrong one: refused, nothing changes.
    for body in [None, Some(json!({})), Some(json!({"confirm": "WRONG-KEY"}))] {
        let (status, out) = admin(server, Method::DELETE, &path, body).await;
        assert_eq!(
            (status, code(&out)),
            (400, "CONFIRMATION_REQUIRED"),
            "{out}"
        );
    }
    assert_eq!(heartbeat(server, &key, &token).await.0, 200);
    assert_eq!(
        show(server, &key).await["sessions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // licenses:write is not enough.
    let writer = admin_keys::create(
        server.state.meta.as_ref(),
        "writer",
        vec![Scope::LicensesWrite],
    )
    .await?
    .1;
    let (status, out) = call(
        server,
        Method::DELETE,
        &path,
        &writer,
        Some(json!({"confirm": key})),
    )
    .await;
    assert_eq!((status, code(&out)), (403, "INSUFFICIENT_SCOPE"));
    // Confirmed, by numeric id: the session ends, the license is gone, its key unknown.
    let (status, out) = admin(
        server,
        Method::DELETE,
        &format!("/api/admin/licenses/{id}"),
        Some(json!({"confirm": key})),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out, json!({"deleted": key, "ended_sessions": 1}));
    let (status, out) = admin(server, Method::GET, &path, None).await;
    assert_eq!((status, code(&out)), (404, "LICENSE_NOT_FOUND"));
    assert!(heartbeat(server, &key, &token).await.0 >= 400);
    let (status, _) = client(
        server,
        "/api/license/verify",
        json!({"license_key": key, "hardware_hash": "hw"}),
    )
    .await;
    assert_eq!(status, 404);
    let (_, page) = admin(server, Method::GET, "/api/admin/licenses", None).await;
    assert!(!page.to_string().contains(&key));
    // Its resource went back to the pool.
    let (_, free) = admin(
        server,
        Method::GET,
        "/api/resources/check-availability?type=server&count=1",
        None,
    )
    .await;
    assert_eq!(free["resources"][0]["id"], resource, "{free}");
    Ok(())
}

async fn renew_extends_from_valid_until_or_today(server: &TestServer) -> R {
    let (key, _) = issue(server, json!({"days_valid": 10})).await;
    let before = time(&show(server, &key).await["valid_until"]);
    let path = format!("/api/admin/licenses/{key}/renew");
    let (status, out) = admin(server, Method::POST, &path, Some(json!({"days": 5}))).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        time(&out["valid_until"]),
        before + chrono::Duration::days(5)
    );
    for days in [0, 36_526] {
        let (status, out) = admin(server, Method::POST, &path, Some(json!({"days": days}))).await;
        assert_eq!(status, 400, "{out}");
    }
    // A license that ran out renews from today.
    let (status, _) = quick_edit(server, &key, json!({"valid_until": "2020-01-01"})).await;
    assert_eq!(status, 200);
    assert_eq!(show(server, &key).await["status"], "expired");
    let (_, out) = admin(server, Method::POST, &path, Some(json!({"days": 30}))).await;
    let until = time(&out["valid_until"]);
    assert!(until > Utc::now() + chrono::Duration::days(29), "{until}");
    assert_eq!(show(server, &key).await["status"], "active");
    Ok(())
}

async fn bulk_previews_changes_and_a_retried_renewal_runs_once(server: &TestServer) -> R {
    let mut tagged = Vec::new();
    for _ in 0..3 {
        let (key, _) = issue(server, json!({"owner": "Bulk Co", "days_valid": 30})).await;
        activate(server, &key, "hw").await;
        start(server, &key, "hw").await;
        tagged.push(key);
    }
    let (other, _) = issue(server, json!({"owner": "Someone Else"})).await;
    // Dry run: what would be touched, nothing changed.
    let (status, out) = admin(
        server,
        Method::POST,
        "/api/admin/licenses/bulk",
        Some(json!({"action": "suspend", "filter": {"customer": "bulk co"}, "dry_run": true})),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["matched"], 3);
    assert_eq!(out["changed"], 0);
    assert_eq!(out["keys"].as_array().unwrap().len(), 3);
    for k in &tagged {
        assert_eq!(show(server, k).await["status"], "active");
    }
    // The real run ends exactly their sessions.
    let (_, out) = admin(
        server,
        Method::POST,
        "/api/admin/licenses/bulk",
        Some(json!({"action": "suspend", "filter": {"customer": "bulk co"}})),
    )
    .await;
    assert_eq!(
        (out["matched"].as_u64(), out["changed"].as_u64()),
        (Some(3), Some(3)),
        "{out}"
    );
    assert_eq!(out["ended_sessions"], 3, "{out}");
    for k in &tagged {
        assert_eq!(show(server, k).await["status"], "suspended");
    }
    assert_eq!(show(server, &other).await["status"], "active");
    // An empty filter is refused; keys and filter together too.
    for body in [
        json!({"action": "suspend", "filter": {}}),
        json!({"action": "suspend", "keys": [other], "filter": {"q": "x"}}),
        json!({"action": "renew", "keys": [other]}),
        json!({"action": "explode", "keys": [other]}),
    ] {
        let (status, out) = admin(
            server,
            Method::POST,
            "/api/admin/licenses/bulk",
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 400, "{body}: {out}");
    }
    // A renewal retried with its request id extends once; unknown keys fail by name.
    let before = time(&show(server, &tagged[0]).await["valid_until"]);
    let body = json!({
        "action": "renew", "days": 7, "request_id": "renew-2026-12",
        "keys": [tagged[0], "NOPE-NOPE-NOPE-NOPE"],
    });
    let (_, first) = admin(
        server,
        Method::POST,
        "/api/admin/licenses/bulk",
        Some(body.clone()),
    )
    .await;
    assert_eq!(first["changed"], 1, "{first}");
    assert_eq!(first["failed"][0]["code"], "LICENSE_NOT_FOUND");
    let (_, again) = admin(server, Method::POST, "/api/admin/licenses/bulk", Some(body)).await;
    assert_eq!(again["replayed"], true);
    assert_eq!(
        time(&show(server, &tagged[0]).await["valid_until"]),
        before + chrono::Duration::days(7)
    );
    // Bulk delete needs the count as confirmation.
    let body = json!({"action": "delete", "keys": tagged});
    let (status, out) = admin(server, Method::POST, "/api/admin/licenses/bulk", Some(body)).await;
    assert_eq!((status, code(&out)), (400, "CONFIRMATION_REQUIRED"));
    let body = json!({"action": "delete", "keys": tagged, "confirm": 3});
    let (status, out) = admin(server, Method::POST, "/api/admin/licenses/bulk", Some(body)).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["changed"], 3, "{out}");
    let (status, _) = admin(
        server,
        Method::GET,
        &format!("/api/admin/licenses/{}", tagged[0]),
        None,
    )
    .await;
    assert_eq!(status, 404);
    Ok(())
}

async fn seed_bulk_routes_activate_deactivate_and_delete(server: &TestServer) -> R {
    let (a, id_a) = issue(server, json!({})).await;
    let (b, _) = issue(server, json!({})).await;
    let (status, out) = admin(
        server,
        Method::POST,
        "/api/licenses/bulk-deactivate",
        Some(json!({"license_ids": [id_a, b]})),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        (out["success"].as_bool(), out["count"].as_u64()),
        (Some(true), Some(2))
    );
    assert_eq!(show(server, &a).await["status"], "suspended");
    let (_, out) = admin(
        server,
        Method::POST,
        "/api/licenses/bulk-activate",
        Some(json!({"license_ids": [a, 99_999_999]})),
    )
    .await;
    assert_eq!(out["count"], 1);
    assert_eq!(out["success"], false);
    assert_eq!(out["failed"][0]["code"], "LICENSE_NOT_FOUND");
    assert_eq!(show(server, &a).await["status"], "active");
    let (status, out) = admin(
        server,
        Method::POST,
        "/api/licenses/bulk-delete",
        Some(json!({"license_ids": [a, b]})),
    )
    .await;
    assert_eq!((status, code(&out)), (400, "CONFIRMATION_REQUIRED"));
    assert_eq!(show(server, &a).await["status"], "active");
    let (status, out) = admin(
        server,
        Method::POST,
        "/api/licenses/bulk-delete",
        Some(json!({"license_ids": [a, b], "confirm": "2"})),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["count"], 2, "{out}");
    let (status, _) = admin(
        server,
        Method::POST,
        "/api/licenses/bulk-activate",
        Some(json!({"license_ids": []})),
    )
    .await;
    assert_eq!(status, 400);
    Ok(())
}

async fn generate_license_key_gives_an_unused_key(server: &TestServer) -> R {
    let (status, out) = admin(server, Method::POST, "/api/generate-license-key", None).await;
    assert_eq!(status, 200, "{out}");
    let key = out["license_key"].as_str().unwrap();
    assert_eq!(key.len(), 19);
    let (status, _) = admin(
        server,
        Method::GET,
        &format!("/api/admin/licenses/{key}"),
        None,
    )
    .await;
    assert_eq!(status, 404, "generated, not issued");
    Ok(())
}

/// The control socket runs the same admin commands against the running server (the CLI's
/// path when a server holds the embedded store), and every command publishes an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_socket_runs_admin_commands_and_events_fan_out() -> R {
    use tessera::admin::command::AdminCommand;
    use tessera::control::{ControlReply, ControlRequest, request, socket_path};

    let server = TestServer::start().await?;
    let mut events = server.state.admin.events().subscribe();
    let (key, _) = issue(&server, json!({"owner": "Socket Co"})).await;
    let socket = socket_path(server.config());
    let ask = |cmd: AdminCommand| {
        let socket = socket.clone();
        async move {
            match request(&socket, &ControlRequest::Admin(cmd)).await.unwrap() {
                ControlReply::Admin(v) => Ok(v),
                ControlReply::Error(e) => Err(e),
                other => panic!("{other:?}"),
            }
        }
    };
    let list = ask(AdminCommand::List {
        filter: tessera::admin::LicenseFilter {
            customer: Some("socket".into()),
            ..Default::default()
        },
        cursor: None,
        limit: None,
    })
    .await
    .unwrap();
    assert_eq!(list["licenses"][0]["license_key"], key.as_str());
    let renewed = ask(AdminCommand::SetStatus {
        license: key.clone(),
        status: "revoked".into(),
        reason: Some("chargeback".into()),
        duration_secs: None,
    })
    .await
    .unwrap();
    assert_eq!(renewed["status"], "revoked");
    let refused = ask(AdminCommand::Delete {
        license: key.clone(),
        confirm: None,
    })
    .await;
    assert!(refused.unwrap_err().contains("confirmation"));
    // Events: issued (HTTP, by the admin key), then the status change (by the CLI).
    let issued = events.recv().await?;
    assert_eq!(issued.event_type, "admin.license.issued");
    assert!(issued.actor.starts_with("key:"), "{}", issued.actor);
    let changed = events.recv().await?;
    assert_eq!(changed.event_type, "admin.license.status_changed");
    assert_eq!(changed.actor, "cli");
    assert_eq!(changed.license.as_ref().map(|k| k.to_string()), Some(key));
    Ok(())
}
