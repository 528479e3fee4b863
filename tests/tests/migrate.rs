//! `tessera migrate` both ways: a client stream against an embedded server, the store copied
//! into Redis, a server on Redis serving everything (licenses, devices, live sessions,
//! customers, the audit chain, plugin keys) while the stream goes on, then back into a fresh
//! embedded store; a rerun writes nothing, a differing target is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod client_stream;

use std::time::Instant;

use client_stream::{Acked, ClientStream, Endpoint as At, heartbeat, show};
use serde_json::{Value, json};
use tessera::migrate::{Endpoint, MigrateError, migrate};
use tessera::policy::kv::{blob_name, decode_blob, encode_blob};
use tessera::store::SharedPluginKv;
use tessera::store::redis::RedisStore;
use tessera::store::resources::{ResourceIndex, ResourceType};
use tessera::store::transfer::PluginKvEntry;
use tessera_actors::LicenseKey;
use tessera_integration_tests::tessera_config::StoreBackend;
use tessera_integration_tests::{RedisServer, TestServer, test_config};

async fn admin(
    server: &TestServer,
    method: reqwest::Method,
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
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Every license, device and live session of `acked` is served by `server`.
async fn everything_is_there(server: &TestServer, acked: &[Acked]) {
    let at = At::of(server);
    let client = reqwest::Client::new();
    let store = server.state.licenses.store();
    for a in acked {
        assert_eq!(show(&client, &at, &a.key).await, 200, "license {}", a.key);
        if a.activated.is_some() {
            let l = store
                .load(&LicenseKey::parse(&a.key).unwrap())
                .await
                .unwrap()
                .unwrap();
            assert!(
                l.activations
                    .iter()
                    .any(|d| d.hardware_hash == a.hw && d.is_active),
                "device of {}",
                a.key
            );
        }
        if let Some((token, _)) = &a.session {
            assert_eq!(
                heartbeat(&client, &at, &a.key, token).await,
                200,
                "session of {}",
                a.key
            );
        }
    }
}

async fn customers_and_audit_are_there(server: &TestServer, customers: &[(u64, String)]) {
    for (id, name) in customers {
        let (s, body) = admin(
            server,
            reqwest::Method::GET,
            &format!("/api/admin/customers/{id}"),
            None,
        )
        .await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(body["name"].as_str(), Some(name.as_str()), "{body}");
    }
    let (s, report) = admin(
        server,
        reqwest::Method::GET,
        "/api/admin/audit/verify",
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(report["ok"].as_bool(), Some(true), "{report}");
    assert!(report["checked"].as_u64().unwrap() > 0, "{report}");
}

async fn license_count(server: &TestServer) -> usize {
    let store = server.state.licenses.store();
    let (mut n, mut after) = (0, None);
    loop {
        let page = store.list_licenses(after.as_ref(), 500).await.unwrap();
        let Some(last) = page.last().cloned() else {
            return n;
        };
        n += page.len();
        after = Some(last);
    }
}

fn plugin_key() -> PluginKvEntry {
    PluginKvEntry {
        namespace: "ban".into(),
        key: b"strikes:10.0.0.1".to_vec(),
        value: 3i64.to_le_bytes().to_vec(),
        expires_at_ms: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_moves_to_redis_and_back_with_everything_and_a_rerun_writes_nothing() {
    let t0 = Instant::now();
    // An embedded server with customers, plugin keys and a client stream.
    let embedded = TestServer::start().await.unwrap();
    let mut customers = Vec::new();
    for i in 0..3 {
        let name = format!("Customer {i}");
        let (s, out) = admin(
            &embedded,
            reqwest::Method::POST,
            "/api/admin/customers",
            Some(json!({"name": name, "email": format!("c{i}@example.test")})),
        )
        .await;
        assert_eq!(s, 201, "{out}");
        customers.push((out["id"].as_u64().unwrap(), name));
    }
    embedded
        .state
        .meta
        .put(&blob_name("ban"), &encode_blob(&[plugin_key()]))
        .await
        .unwrap();
    let stream = ClientStream::start(At::of(&embedded), "emb");
    stream.wait_for(15).await;
    let first = stream.stop().await;
    let pools = embedded.state.resource_store.clone();
    let rack = ResourceType::new("rack").unwrap();
    let names = [
        "SRV-1".to_string(),
        "SRV-2".to_string(),
        "SRV-3".to_string(),
    ];
    pools
        .create(&rack, &names, chrono::Utc::now())
        .await
        .unwrap();
    let ids: Vec<u64> = pools
        .page(ResourceIndex::All, None, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    let holder = LicenseKey::parse(&first[0].key).unwrap();
    pools
        .allocate(&holder, &ids[1..2], None, chrono::Utc::now())
        .await
        .unwrap();
    let resources = pools.page(ResourceIndex::All, None, 10).await.unwrap();
    assert_eq!(resources.len(), 3);
    drop(pools);
    let api_key = embedded.api_key.clone();
    let config = embedded.config().clone();
    let source_dir = config.store.data_dir.clone();
    let stopped = embedded.stop().await.unwrap();

    // embedded -> redis.
    let redis = RedisServer::start().unwrap();
    let t = Instant::now();
    let to_redis = Endpoint::Redis(redis.url.clone());
    // The stopped server's last store handles go with its finished tasks: poll for the lock.
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    let report = loop {
        match migrate(
            &config,
            &Endpoint::Embedded(source_dir.clone()),
            &to_redis,
            false,
            |_| {},
        )
        .await
        {
            Err(MigrateError::Store(tessera::store::StoreError::Locked(_)))
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            other => break other.unwrap(),
        }
    };
    eprintln!("embedded -> redis in {:?}:\n{}", t.elapsed(), report.after);
    assert_eq!(
        report.before.missing(),
        report.after.0.iter().map(|(_, c)| c.source).sum::<u64>()
    );
    assert_eq!(report.after.source("licenses"), first.len() as u64);
    assert_eq!(report.after.source("customers"), 3);
    assert_eq!(report.after.source("plugin keys"), 1);
    assert!(report.after.source("live sessions") >= 15);
    assert!(report.after.source("audit records") > 0);
    assert_eq!(report.after.source("resources"), 3);
    assert!(report.after.source("events") > 0);

    // A server on Redis serves all of it, and the stream goes on there.
    let url = redis.url.clone();
    let on_redis = TestServer::start_joining(&api_key, |c| {
        c.store.backend = StoreBackend::Redis;
        c.store.redis_url = url;
    })
    .await
    .unwrap();
    everything_is_there(&on_redis, &first).await;
    customers_and_audit_are_there(&on_redis, &customers).await;
    assert_eq!(
        on_redis
            .state
            .resource_store
            .page(ResourceIndex::All, None, 10)
            .await
            .unwrap(),
        resources
    );
    let shared = RedisStore::connect(&redis.url, std::time::Duration::from_secs(2))
        .await
        .unwrap();
    let key = plugin_key();
    assert_eq!(
        shared.kv_get("ban", &key.key).await.unwrap(),
        Some(key.value.clone())
    );
    let stream = ClientStream::start(At::of(&on_redis), "red");
    stream.wait_for(5).await;
    let second = stream.stop().await;
    everything_is_there(&on_redis, &first).await;
    assert_eq!(license_count(&on_redis).await, first.len() + second.len());
    let stopped_redis = on_redis.stop().await.unwrap();
    drop(stopped_redis);

    // The old embedded store now differs from Redis: refused, nothing written.
    let err = migrate(
        &config,
        &Endpoint::Embedded(source_dir.clone()),
        &to_redis,
        false,
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, MigrateError::Conflicts(_)), "{err}");
    // With --force the differing items take the source's state; what only Redis has stays.
    let forced = migrate(
        &config,
        &Endpoint::Embedded(source_dir.clone()),
        &to_redis,
        true,
        |_| {},
    )
    .await
    .unwrap();
    assert!(forced.before.conflicts() > 0, "{}", forced.before);
    assert_eq!((forced.after.missing(), forced.after.conflicts()), (0, 0));

    // redis -> a fresh embedded store, then the same again: nothing new, nothing doubled.
    let fresh = tempfile::tempdir().unwrap();
    let back = Endpoint::Embedded(test_config(fresh.path()).store.data_dir);
    let t = Instant::now();
    let report = migrate(&config, &to_redis, &back, false, |_| {})
        .await
        .unwrap();
    eprintln!("redis -> embedded in {:?}:\n{}", t.elapsed(), report.after);
    assert_eq!(
        report.after.source("licenses"),
        (first.len() + second.len()) as u64
    );
    let again = migrate(&config, &to_redis, &back, false, |_| {})
        .await
        .unwrap();
    assert_eq!(
        (again.before.missing(), again.before.conflicts()),
        (0, 0),
        "{}",
        again.before
    );
    assert_eq!(again.after, report.after);

    let Endpoint::Embedded(dir) = back else {
        unreachable!()
    };
    let home = TestServer::start_joining(&api_key, |c| c.store.data_dir = dir)
        .await
        .unwrap();
    everything_is_there(&home, &first).await;
    everything_is_there(&home, &second).await;
    customers_and_audit_are_there(&home, &customers).await;
    assert_eq!(
        home.state
            .resource_store
            .page(ResourceIndex::All, None, 10)
            .await
            .unwrap(),
        resources
    );
    assert_eq!(license_count(&home).await, first.len() + second.len());
    let blob = home
        .state
        .meta
        .get(&blob_name("ban"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decode_blob("ban", &blob).unwrap(), vec![plugin_key()]);
    drop(stopped);
    eprintln!("whole test: {:?}", t0.elapsed());
}
