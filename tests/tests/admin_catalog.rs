//! Customers, search, products/plans/releases at run time and bundle presets through the
//! real server (issue 14, items 5, 7, 8 and 9): seed 000's Select2 customer search and global
//! search in their exact shapes, a customer's licenses, a release reaching `version/check`
//! and session start without a restart (also on a second server sharing the Redis), plans
//! and products changed at run time reaching the license rules, and a bundle preset applied
//! to a license. Every scenario runs on the embedded store and on a Redis the test starts.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use tessera_config::{BundleCycle, PresetConfig, StoreBackend};
use tessera_integration_tests::scenario::{admin, client, code};
use tessera_integration_tests::{RedisServer, TestServer, on_both_stores};

type R = anyhow::Result<()>;

fn presets(c: &mut tessera_config::Config) {
    c.presets.insert(
        "pro".into(),
        PresetConfig {
            features: vec!["sso".into(), "export.pdf".into()],
            max_devices: Some(5),
            max_sessions: Some(3),
            cycle: BundleCycle::Monthly,
            ..PresetConfig::default()
        },
    );
}

on_both_stores!(
    super::presets;
    customers_are_created_searched_paged_and_own_licenses,
    a_customer_with_licenses_cannot_be_deleted_and_a_rename_reaches_them,
    search_finds_customers_licenses_and_devices_in_seed_shape,
    a_published_release_reaches_version_check_and_session_start_at_once,
    products_and_plans_created_at_run_time_reach_the_license_rules,
    a_bundle_preset_sets_features_limits_and_one_more_cycle,
);

// ---------------------------------------------------------------------------------------------
// Helpers

async fn customer(server: &TestServer, body: Value) -> u64 {
    let (status, out) = admin(server, Method::POST, "/api/admin/customers", Some(body)).await;
    assert_eq!(status, 201, "{out}");
    out["id"].as_u64().unwrap()
}

/// Issues one license with `body` (seed 001 fields) and returns (key, id).
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

async fn search(server: &TestServer, query: &str) -> Value {
    let (status, body) = admin(server, Method::GET, &format!("/api/search?{query}"), None).await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

fn titles(body: &Value, kind: &str) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["type"] == kind)
        .map(|h| h["title"].as_str().unwrap().to_string())
        .collect()
}

async fn version_check(server: &TestServer, current: &str) -> Value {
    let (status, body) = client(
        server,
        "/api/version/check",
        json!({"current_version": current}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Polls `check` until it holds or `within` passes; returns whether it held.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

async fn customers_are_created_searched_paged_and_own_licenses(server: &TestServer) -> R {
    let acme = customer(
        server,
        json!({"name": "ACME Corp", "email": "admin@acme.com", "company": "ACME", "metadata": {"tier": "gold"}}),
    )
    .await;
    for i in 0..24 {
        customer(
            server,
            json!({"name": format!("Wile E {i:02}"), "email": format!("wile{i}@desert.test")}),
        )
        .await;
    }
    // Select2 (seed 000): `{results: [{id, text}], pagination: {more}}`, 20 per page.
    let (status, page) = admin(server, Method::GET, "/api/customers?q=acme", None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page,
        json!({"results": [{"id": acme, "text": "ACME Corp - admin@acme.com"}], "pagination": {"more": false}})
    );
    let (_, p1) = admin(server, Method::GET, "/api/customers?q=wile", None).await;
    assert_eq!(p1["results"].as_array().unwrap().len(), 20);
    assert_eq!(p1["pagination"]["more"], true);
    let (_, p2) = admin(server, Method::GET, "/api/customers?q=wile&page=2", None).await;
    assert_eq!(p2["results"].as_array().unwrap().len(), 4);
    assert_eq!(p2["pagination"]["more"], false);
    let (_, all) = admin(server, Method::GET, "/api/customers", None).await;
    assert_eq!(all["results"].as_array().unwrap().len(), 20);
    assert_eq!(all["pagination"]["more"], true);
    // Every word and the email find it; a word that is no prefix does not.
    for q in ["corp", "admin%40acme", "ACME%20C"] {
        let (_, hit) = admin(server, Method::GET, &format!("/api/customers?q={q}"), None).await;
        assert_eq!(hit["results"][0]["id"], acme, "{q}: {hit}");
    }
    let (_, none) = admin(server, Method::GET, "/api/customers?q=orp", None).await;
    assert_eq!(none["results"], json!([]));
    // Bad input: a clear 400 and nothing created.
    for (body, field) in [
        (json!({"email": "x@y.z"}), "name"),
        (json!({"name": "X", "email": "no-at-sign"}), "email"),
        (
            json!({"name": "X", "metadata": {"bad key": "v"}}),
            "metadata",
        ),
    ] {
        let (status, out) = admin(server, Method::POST, "/api/admin/customers", Some(body)).await;
        assert_eq!(status, 400, "{out}");
        // `missing field `name`` for the absent name, `FIELD: ...` for the others.
        assert!(out["error"].as_str().unwrap().contains(field), "{out}");
    }
    let (status, _) = admin(server, Method::GET, "/api/customers?page=0", None).await;
    assert_eq!(status, 400);

    // Licenses belong to a customer by id; the name comes with it.
    let (key, id) = issue(server, json!({"customer_id": acme})).await;
    assert_eq!(show(server, &key).await["customer_name"], "ACME Corp");
    let (status, out) = admin(
        server,
        Method::POST,
        "/api/admin/licenses",
        Some(json!({"customer_id": 999_999})),
    )
    .await;
    assert_eq!((status, code(&out)), (404, "CUSTOMER_NOT_FOUND"), "{out}");
    let (other, _) = issue(server, json!({})).await;
    let (status, out) = admin(
        server,
        Method::POST,
        &format!("/api/license/{other}/quick-edit"),
        Some(json!({"customer_id": acme})),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let (status, mine) = admin(
        server,
        Method::GET,
        &format!("/api/admin/customers/{acme}/licenses"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["customer"]["metadata"]["tier"], "gold");
    let keys: Vec<&str> = mine["licenses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["license_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 2, "{mine}");
    assert!(keys.contains(&key.as_str()) && keys.contains(&other.as_str()));
    assert_eq!(mine["licenses"][0]["id"], id, "in id order");
    // Moved away: no longer listed.
    admin(
        server,
        Method::POST,
        &format!("/api/license/{other}/quick-edit"),
        Some(json!({"customer_id": null})),
    )
    .await;
    let (_, mine) = admin(
        server,
        Method::GET,
        &format!("/api/admin/customers/{acme}/licenses"),
        None,
    )
    .await;
    assert_eq!(mine["licenses"].as_array().unwrap().len(), 1, "{mine}");
    Ok(())
}

async fn a_customer_with_licenses_cannot_be_deleted_and_a_rename_reaches_them(
    server: &TestServer,
) -> R {
    let id = customer(server, json!({"name": "Old Name", "email": "a@b.test"})).await;
    let (key, _) = issue(server, json!({"customer_id": id})).await;
    let (status, out) = admin(
        server,
        Method::DELETE,
        &format!("/api/admin/customers/{id}"),
        None,
    )
    .await;
    assert_eq!((status, code(&out)), (409, "CONFLICT"), "{out}");
    let (status, out) = admin(
        server,
        Method::GET,
        &format!("/api/admin/customers/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "still there: {out}");

    let (status, out) = admin(
        server,
        Method::PATCH,
        &format!("/api/admin/customers/{id}"),
        Some(json!({"name": "New Name", "email": null})),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        (out["name"].as_str(), out["email"].as_str()),
        (Some("New Name"), None)
    );
    assert_eq!(show(server, &key).await["customer_name"], "New Name");
    // The index follows: the old name finds nothing, the new one finds the customer.
    let (_, old) = admin(server, Method::GET, "/api/customers?q=old", None).await;
    assert_eq!(old["results"], json!([]));
    let (_, new) = admin(server, Method::GET, "/api/customers?q=new", None).await;
    assert_eq!(new["results"][0]["id"], id);
    let (status, _) = admin(
        server,
        Method::PATCH,
        &format!("/api/admin/customers/{id}"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 400, "an empty edit is refused");

    admin(
        server,
        Method::DELETE,
        &format!("/api/admin/licenses/{key}"),
        Some(json!({"confirm": key})),
    )
    .await;
    let (status, out) = admin(
        server,
        Method::DELETE,
        &format!("/api/admin/customers/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let (status, out) = admin(
        server,
        Method::GET,
        &format!("/api/admin/customers/{id}"),
        None,
    )
    .await;
    assert_eq!((status, code(&out)), (404, "CUSTOMER_NOT_FOUND"));
    let (_, gone) = admin(server, Method::GET, "/api/customers?q=new", None).await;
    assert_eq!(gone["results"], json!([]));
    Ok(())
}

async fn search_finds_customers_licenses_and_devices_in_seed_shape(server: &TestServer) -> R {
    let acme = customer(
        server,
        json!({"name": "Zephyr Labs", "email": "ops@zephyr.test"}),
    )
    .await;
    let (key, id) = issue(server, json!({"customer_id": acme})).await;
    let (_, other_id) = issue(server, json!({"owner": "Someone Else"})).await;
    let (status, out) = client(
        server,
        "/api/license/activate",
        json!({"license_key": key, "hardware_hash": "hw-9f8e7d", "machine_name": "BUILD-VM-07", "app_version": "1.0.0"}),
    )
    .await;
    assert_eq!(status, 200, "{out}");

    // Seed 000's shape, customers then licenses.
    let all = search(server, "q=zephyr").await;
    assert_eq!(all["total"], 2, "{all}");
    assert_eq!(
        all["results"][0],
        json!({"type": "customer", "id": acme, "title": "Zephyr Labs", "subtitle": "ops@zephyr.test", "url": format!("/api/admin/customers/{acme}")})
    );
    assert_eq!(
        all["results"][1],
        json!({"type": "license", "id": id, "title": key, "subtitle": "Zephyr Labs - Active", "url": format!("/api/admin/licenses/{key}")})
    );
    // A license by a group of its key, with or without dashes.
    let group = &key[5..9];
    assert_eq!(
        titles(
            &search(server, &format!("q={group}&type=license")).await,
            "license"
        ),
        vec![key.clone()]
    );
    let compact: String = key.chars().filter(|c| *c != '-').take(8).collect();
    assert_eq!(
        titles(
            &search(server, &format!("q={compact}&type=license")).await,
            "license"
        ),
        vec![key.clone()]
    );
    // Devices are indexed off the request path: wait for it.
    let found = eventually(Duration::from_secs(5), || async {
        titles(&search(server, "q=build-vm&type=device").await, "device") == ["BUILD-VM-07"]
    })
    .await;
    assert!(found, "the activated device is found by its machine name");
    let by_hash = search(server, "q=hw-9f8e&type=device").await;
    assert_eq!(
        by_hash["results"][0]["subtitle"],
        format!("hw-9f8e7d - {key} (active)")
    );
    assert_eq!(
        by_hash["results"][0]["url"],
        format!("/api/license/{id}/devices")
    );
    // `type` filters, `limit` bounds.
    assert_eq!(search(server, "q=zephyr&type=customer").await["total"], 1);
    assert_eq!(
        search(server, "q=zephyr&limit=1").await["results"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        titles(&search(server, "q=someone").await, "license").len(),
        1
    );
    for bad in [
        "q=",
        "q=%20%20",
        "q=x&limit=0",
        "q=x&limit=101",
        "q=x&type=invoice",
    ] {
        let (status, out) = admin(server, Method::GET, &format!("/api/search?{bad}"), None).await;
        assert_eq!(status, 400, "{bad}: {out}");
    }
    // A deleted license leaves search at once (hits are checked against the license).
    let (_, keys) = admin(
        server,
        Method::GET,
        &format!("/api/license/{other_id}/devices"),
        None,
    )
    .await;
    assert!(keys.is_object());
    admin(
        server,
        Method::DELETE,
        &format!("/api/admin/licenses/{key}"),
        Some(json!({"confirm": key})),
    )
    .await;
    assert_eq!(search(server, "q=zephyr&type=license").await["total"], 0);
    assert_eq!(search(server, "q=build-vm&type=device").await["total"], 0);
    // Only operators: the system API key cannot search.
    let resp = server.get("/api/search?q=zephyr").send().await?;
    assert_eq!(resp.status().as_u16(), 403);
    Ok(())
}

async fn a_published_release_reaches_version_check_and_session_start_at_once(
    server: &TestServer,
) -> R {
    let before = version_check(server, "1.0.0").await;
    assert_eq!(before["update_available"], false, "{before}");
    let (status, out) = admin(
        server,
        Method::POST,
        "/api/admin/products/default/releases",
        Some(json!({"version": "1.5.0", "release_date": "2026-12-01", "download_url": "https://dl.example.test/1.5.0", "release_notes": "Faster."})),
    )
    .await;
    assert_eq!(status, 201, "{out}");
    assert_eq!(out["latest_version"], "1.5.0");
    assert_eq!(
        version_check(server, "1.0.0").await,
        json!({"update_available": true, "latest_version": "1.5.0", "download_url": "https://dl.example.test/1.5.0", "release_notes": "Faster."})
    );
    let latest = server
        .get("/api/version/latest")
        .send()
        .await?
        .json::<Value>()
        .await?;
    assert_eq!(
        (latest["version"].as_str(), latest["release_date"].as_str()),
        (Some("1.5.0"), Some("2026-12-01"))
    );
    // Session start reports it too.
    let (key, _) = issue(server, json!({})).await;
    client(server, "/api/license/activate", json!({"license_key": key, "hardware_hash": "hw-1", "machine_name": "M", "app_version": "1.0.0"})).await;
    let (status, started) = client(
        server,
        "/api/license/session/start",
        json!({"license_key": key, "machine_id": "M", "hardware_hash": "hw-1", "version": "1.0.0"}),
    )
    .await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["latest_version"], "1.5.0", "{started}");
    assert_eq!(started["update_available"], true, "{started}");
    // A release candidate is published but not offered over the stable release.
    let (status, out) = admin(
        server,
        Method::POST,
        "/api/admin/products/default/releases",
        Some(json!({"version": "2.0.0-rc.1"})),
    )
    .await;
    assert_eq!(status, 201, "{out}");
    assert_eq!(
        version_check(server, "1.5.0").await["update_available"],
        false
    );
    assert_eq!(
        version_check(server, "1.5.0-rc.2").await["update_available"],
        true,
        "1.5.0 is newer than its candidate"
    );
    // Refusals change nothing.
    for (body, status_code, c) in [
        (json!({"version": "1.5.0"}), 409, "CONFLICT"),
        (json!({"version": "latest"}), 400, "VALIDATION_ERROR"),
        (
            json!({"version": "1.6.0", "download_url": "ftp://x"}),
            400,
            "VALIDATION_ERROR",
        ),
        (
            json!({"version": "1.6.0", "release_date": "tomorrow"}),
            400,
            "VALIDATION_ERROR",
        ),
        (
            json!({"version": "1.6.0", "extra": 1}),
            400,
            "VALIDATION_ERROR",
        ),
    ] {
        let (status, out) = admin(
            server,
            Method::POST,
            "/api/admin/products/default/releases",
            Some(body.clone()),
        )
        .await;
        assert_eq!((status, code(&out)), (status_code, c), "{body}: {out}");
    }
    let (status, out) = admin(
        server,
        Method::POST,
        "/api/admin/products/nope/releases",
        Some(json!({"version": "1.0.0"})),
    )
    .await;
    assert_eq!((status, code(&out)), (404, "PRODUCT_NOT_FOUND"), "{out}");
    assert_eq!(
        version_check(server, "1.0.0").await["latest_version"],
        "1.5.0"
    );
    let (_, product) = admin(server, Method::GET, "/api/admin/products/default", None).await;
    assert_eq!(
        product["releases"].as_array().unwrap().len(),
        3,
        "{product}"
    );
    Ok(())
}

async fn products_and_plans_created_at_run_time_reach_the_license_rules(server: &TestServer) -> R {
    let (status, out) = admin(
        server,
        Method::POST,
        "/api/admin/products",
        Some(json!({"id": "cad-pro", "name": "CAD Pro", "heartbeat_interval_secs": 10, "heartbeat_timeout_secs": 40})),
    )
    .await;
    assert_eq!(status, 201, "{out}");
    assert_eq!(out["latest_version"], "0.0.0");
    let (status, out) = admin(
        server,
        Method::POST,
        "/api/admin/products",
        Some(json!({"id": "cad-pro"})),
    )
    .await;
    assert_eq!((status, code(&out)), (409, "CONFLICT"));
    let (status, out) = admin(
        server,
        Method::POST,
        "/api/admin/products",
        Some(json!({"id": "bad", "heartbeat_interval_secs": 100, "heartbeat_timeout_secs": 50})),
    )
    .await;
    assert_eq!(status, 400, "timeout below interval: {out}");
    let (status, out) = admin(
        server,
        Method::POST,
        "/api/admin/plans",
        Some(json!({"name": "gold", "max_devices": 2, "max_sessions": 4})),
    )
    .await;
    assert_eq!(status, 201, "{out}");
    let (status, _) = admin(
        server,
        Method::POST,
        "/api/admin/plans",
        Some(json!({"name": "zero", "max_devices": 0})),
    )
    .await;
    assert_eq!(status, 400);

    // A license on both: the product's timing and the plan's limits apply.
    let (key, _) = issue(server, json!({"product": "cad-pro", "plan": "gold"})).await;
    let l = show(server, &key).await;
    assert_eq!(
        (l["max_devices"].as_u64(), l["max_sessions"].as_u64()),
        (Some(2), Some(4)),
        "{l}"
    );
    client(server, "/api/license/activate", json!({"license_key": key, "hardware_hash": "hw-1", "machine_name": "M", "app_version": "1.0.0"})).await;
    let (status, started) = client(
        server,
        "/api/license/session/start",
        json!({"license_key": key, "machine_id": "M", "hardware_hash": "hw-1", "version": "1.0.0"}),
    )
    .await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["heartbeat_interval_secs"], 10, "{started}");

    // Changing the plan reaches the license at once.
    let (status, out) = admin(
        server,
        Method::PATCH,
        "/api/admin/plans/gold",
        Some(json!({"max_devices": 3})),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(show(server, &key).await["max_devices"], 3);
    let (status, out) = admin(
        server,
        Method::PATCH,
        "/api/admin/plans/none",
        Some(json!({"max_devices": 3})),
    )
    .await;
    assert_eq!((status, code(&out)), (404, "PLAN_NOT_FOUND"), "{out}");
    let (_, plans) = admin(server, Method::GET, "/api/admin/plans", None).await;
    assert!(
        plans["plans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "gold" && p["max_devices"] == 3)
    );
    let (status, out) = admin(
        server,
        Method::PATCH,
        "/api/admin/products/cad-pro",
        Some(json!({"name": "CAD Pro 2"})),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let (_, products) = admin(server, Method::GET, "/api/admin/products", None).await;
    let ids: Vec<&str> = products["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["cad-pro", "default"]);
    Ok(())
}

async fn a_bundle_preset_sets_features_limits_and_one_more_cycle(server: &TestServer) -> R {
    // The presets in force are listed, as the panel offers them.
    let (status, listed) = admin(server, Method::GET, "/api/admin/presets", None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed["presets"],
        json!([{"name": "pro", "features": ["sso", "export.pdf"], "plan": null,
                "max_devices": 5, "max_activations": null, "max_sessions": 3, "cycle": "monthly"}])
    );
    let (key, _) = issue(server, json!({})).await;
    let (status, out) = admin(
        server,
        Method::POST,
        &format!("/api/admin/licenses/{key}/bundle"),
        Some(json!({"preset": "pro", "admin_note": "invoice 42"})),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["features"], json!(["export.pdf", "sso"]));
    assert_eq!(
        (out["max_devices"].as_u64(), out["max_sessions"].as_u64()),
        (Some(5), Some(3))
    );
    assert_eq!(out["note"], "invoice 42");
    assert_eq!(
        out["metadata"],
        json!({"bundle": "pro", "bundle_cycle": "monthly"})
    );
    let until: DateTime<Utc> = out["valid_until"].as_str().unwrap().parse()?;
    let days = (until - Utc::now()).num_days();
    assert!((27..=31).contains(&days), "one month: {days} days");
    // The features reach the client.
    client(server, "/api/license/activate", json!({"license_key": key, "hardware_hash": "hw-1", "machine_name": "M", "app_version": "1.0.0"})).await;
    let (status, verified) = client(
        server,
        "/api/license/verify",
        json!({"license_key": key, "hardware_hash": "hw-1"}),
    )
    .await;
    assert_eq!(status, 200, "{verified}");
    assert_eq!(
        verified["license"]["features"],
        json!(["export.pdf", "sso"]),
        "{verified}"
    );
    let (status, out) = admin(
        server,
        Method::POST,
        &format!("/api/admin/licenses/{key}/bundle"),
        Some(json!({"preset": "pro", "cycle": "yearly"})),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let renewed: DateTime<Utc> = out["valid_until"].as_str().unwrap().parse()?;
    let added = (renewed - until).num_days();
    assert!(
        (365..=366).contains(&added),
        "a year past the previous end: {added}"
    );
    let (status, out) = admin(
        server,
        Method::POST,
        &format!("/api/admin/licenses/{key}/bundle"),
        Some(json!({"preset": "pro", "cycle": "lifetime"})),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["valid_until"], Value::Null);
    for body in [
        json!({"preset": "nope"}),
        json!({"preset": "pro", "cycle": "weekly"}),
    ] {
        let (status, out) = admin(
            server,
            Method::POST,
            &format!("/api/admin/licenses/{key}/bundle"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 400, "{body}: {out}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Two servers on one Redis

struct Node {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

async fn second_node(first: &TestServer) -> Node {
    let config = (*first.state.config).clone();
    let opened = tessera::AppState::open(config).await.unwrap();
    let state = opened.state;
    let router = tessera::api::router(state.clone(), tessera::api::Routes::standard());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(tessera::serve_router(listener, state, router, async move {
        let _ = rx.await;
    }));
    Node {
        url,
        stop: Some(tx),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_and_a_plan_published_on_one_server_reach_the_other() -> R {
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let url = redis.url.clone();
    let a = TestServer::start_with(move |c| {
        c.store.backend = StoreBackend::Redis;
        c.store.redis_url = url;
    })
    .await?;
    let b = second_node(&a).await;
    let check_b = |current: &'static str| {
        let (client, url, key) = (a.client().clone(), b.url.clone(), a.api_key.clone());
        async move {
            client
                .post(format!("{url}/api/version/check"))
                .header("X-API-Key", key)
                .json(&json!({"current_version": current}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(check_b("1.0.0").await["update_available"], false);
    let (status, out) = admin(
        &a,
        Method::POST,
        "/api/admin/products/default/releases",
        Some(json!({"version": "3.1.0"})),
    )
    .await;
    assert_eq!(status, 201, "{out}");
    // Within a second or so (each server polls the catalog revision every second).
    let reached = eventually(Duration::from_secs(5), || async {
        check_b("1.0.0").await["latest_version"] == "3.1.0"
    })
    .await;
    assert!(reached, "the release reached the second server");

    // A plan created on B governs a license issued on A.
    let resp = a
        .client()
        .post(format!("{}/api/admin/plans", b.url))
        .bearer_auth(&a.admin_key)
        .json(&json!({"name": "team", "max_devices": 7}))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 201);
    let issued = eventually(Duration::from_secs(5), || async {
        let (status, _) = admin(
            &a,
            Method::POST,
            "/api/admin/licenses",
            Some(json!({"plan": "team"})),
        )
        .await;
        status == 201
    })
    .await;
    assert!(issued, "server A knows plan `team`");
    drop(redis);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The control socket (what `tessera customer|product|plan` use against a running server)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_socket_runs_customer_product_and_plan_commands() -> R {
    use tessera::admin::command::AdminCommand;
    use tessera::admin::{CustomerInput, NewRelease, PlanInput};
    use tessera::control::{ControlReply, ControlRequest, request, socket_path};

    let server = TestServer::start_with(presets).await?;
    let mut events = server.state.admin.events().subscribe();
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
    let created = ask(AdminCommand::CreateCustomer {
        input: CustomerInput {
            name: Some("Socket Co".into()),
            ..CustomerInput::default()
        },
    })
    .await
    .unwrap();
    let id = created["id"].as_u64().unwrap();
    let page = ask(AdminCommand::Customers {
        query: Some("socket".into()),
        page: None,
    })
    .await
    .unwrap();
    assert_eq!(page["customers"][0]["id"], id);
    // The running server answers version checks with the release at once.
    let published = ask(AdminCommand::PublishRelease {
        product: "default".into(),
        release: NewRelease {
            version: "4.0.0".into(),
            release_date: None,
            download_url: None,
            release_notes: Some("From the CLI".into()),
        },
    })
    .await
    .unwrap();
    assert_eq!(published["latest_version"], "4.0.0");
    assert_eq!(
        version_check(&server, "3.9.9").await["release_notes"],
        "From the CLI"
    );
    ask(AdminCommand::CreatePlan {
        name: "socket".into(),
        input: PlanInput {
            max_devices: Some(Some(9)),
            ..PlanInput::default()
        },
    })
    .await
    .unwrap();
    let (key, _) = issue(&server, json!({"plan": "socket", "customer_id": id})).await;
    assert_eq!(show(&server, &key).await["max_devices"], 9);
    let found = ask(AdminCommand::Search {
        query: "socket".into(),
        kind: None,
        limit: None,
    })
    .await
    .unwrap();
    assert_eq!(found["total"], 2, "the customer and its license: {found}");
    let refused = ask(AdminCommand::Customer { id: 999 }).await;
    assert!(refused.unwrap_err().contains("no customer 999"));
    // Every operation published its event, named as the CLI's.
    let mut types = Vec::new();
    while let Ok(e) = events.try_recv() {
        types.push((e.event_type, e.actor.clone()));
    }
    for want in [
        "admin.customer.created",
        "admin.release.published",
        "admin.plan.created",
    ] {
        assert!(
            types.iter().any(|(t, a)| *t == want && a == "cli"),
            "{want} by cli in {types:?}"
        );
    }
    Ok(())
}
