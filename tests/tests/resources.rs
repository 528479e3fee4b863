//! Resource pools (seed 000's Resource Management API).
//!
//! - The [`ResourceStore`] conformance suite: every test runs on the embedded store, a Redis
//!   and a three-primary Redis Cluster (`on_embedded::NAME`, `on_redis::NAME`,
//!   `on_redis_cluster::NAME`). Each gets two handles on one store: two separate
//!   `RedisStore` connections on Redis, one shared store on embedded (its calls run
//!   concurrently on blocking threads). The race tests allocate through both at once.
//! - The HTTP API through the real server: every route, its refusals, and the system API key
//!   refused on all of them; two servers on one Redis racing for the last resource.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod redis_support;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use tessera::store::EmbeddedStore;
use tessera::store::redis::RedisStore;
use tessera::store::resources::{
    Change, CreateOutcome, MAX_RESOURCE_TYPES, Removal, Resource, ResourceIndex, ResourceStatus,
    ResourceStore, ResourceType,
};
use tessera_actors::LicenseKey;
use tessera_config::StoreBackend;
use tessera_integration_tests::{RedisServer, TestServer};

type R = anyhow::Result<()>;
type Store = Arc<dyn ResourceStore>;

/// Two handles on one store, and whatever must outlive them.
struct Pair {
    a: Store,
    b: Store,
    _keep: Box<dyn Any + Send>,
}

async fn embedded() -> anyhow::Result<Pair> {
    let dir = tempfile::tempdir()?;
    let store: Store = Arc::new(EmbeddedStore::open(&dir.path().join("tessera.redb"))?);
    Ok(Pair {
        a: Arc::clone(&store),
        b: store,
        _keep: Box::new(dir),
    })
}

async fn redis() -> anyhow::Result<Pair> {
    let server = tokio::task::spawn_blocking(RedisServer::start).await??;
    let a = RedisStore::connect(&server.url, Duration::from_secs(5)).await?;
    let b = RedisStore::connect(&server.url, Duration::from_secs(5)).await?;
    Ok(Pair {
        a: Arc::new(a),
        b: Arc::new(b),
        _keep: Box::new(server),
    })
}

async fn redis_cluster() -> anyhow::Result<Pair> {
    let cluster = tokio::task::spawn_blocking(redis_support::RedisCluster::start).await??;
    let a = RedisStore::connect(&cluster.url, Duration::from_secs(5)).await?;
    let b = RedisStore::connect(&cluster.url, Duration::from_secs(5)).await?;
    assert!(a.is_cluster() && b.is_cluster());
    Ok(Pair {
        a: Arc::new(a),
        b: Arc::new(b),
        _keep: Box::new(cluster),
    })
}

macro_rules! for_backend {
    ($module:ident, $setup:ident, [$($test:ident),*]) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() -> super::R {
                    let pair = super::$setup().await?;
                    super::$test(pair.a.clone(), pair.b.clone()).await
                }
            )*
        }
    };
}

macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        for_backend!(on_embedded, embedded, [$($test),*]);
        for_backend!(on_redis, redis, [$($test),*]);
        for_backend!(on_redis_cluster, redis_cluster, [$($test),*]);
    };
}

suite!(
    import_is_idempotent_on_type_and_identifier_and_keeps_times_exactly,
    allocation_is_all_or_none,
    release_needs_the_holder_and_release_all_frees_everything,
    pages_follow_id_order_within_each_index,
    delete_takes_only_free_resources_and_ids_are_never_reused,
    the_number_of_types_is_bounded,
    two_handles_racing_for_the_last_resource_exactly_one_wins,
    overlapping_allocations_racing_leave_the_loser_with_nothing,
);

// ---- helpers ----

/// A time with nanoseconds, so adapters must keep times exactly.
fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000, 123_456_789).unwrap() + chrono::Duration::milliseconds(ms)
}

fn kind(name: &str) -> ResourceType {
    ResourceType::new(name).unwrap()
}

fn lic(name: &str) -> LicenseKey {
    LicenseKey::parse(name).unwrap()
}

async fn create(s: &Store, k: &str, names: &[&str], ms: i64) -> anyhow::Result<Vec<Resource>> {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    match s.create(&kind(k), &names, at(ms)).await? {
        CreateOutcome::Done(c) => Ok(c.into_iter().map(|c| c.resource).collect()),
        CreateOutcome::TooManyTypes => anyhow::bail!("too many types"),
    }
}

async fn ids_of(s: &Store, index: ResourceIndex<'_>) -> anyhow::Result<Vec<u64>> {
    Ok(s.page(index, None, 10_000)
        .await?
        .iter()
        .map(|r| r.id)
        .collect())
}

async fn counts(s: &Store, k: &str) -> anyhow::Result<(u64, u64)> {
    let c = s.counts(&[kind(k)]).await?;
    Ok((c[0].free, c[0].allocated))
}

fn done(change: Change) -> Vec<Resource> {
    match change {
        Change::Done(r) => r,
        other => panic!("expected Done, got {other:?}"),
    }
}

// ---- conformance ----

async fn import_is_idempotent_on_type_and_identifier_and_keeps_times_exactly(
    s: Store,
    _: Store,
) -> R {
    let first = s
        .create(&kind("server"), &["SRV-1".into(), "SRV-2".into()], at(0))
        .await?;
    let CreateOutcome::Done(first) = first else {
        panic!("created")
    };
    assert!(first.iter().all(|c| c.created));
    assert!(first[0].resource.id < first[1].resource.id);
    for c in &first {
        assert_eq!(c.resource.created_at, at(0));
        assert_eq!(c.resource.status(), ResourceStatus::Free);
        assert_eq!(
            (c.resource.holder.clone(), c.resource.allocated_at),
            (None, None)
        );
    }
    let CreateOutcome::Done(again) = s
        .create(&kind("server"), &["SRV-2".into(), "SRV-3".into()], at(5))
        .await?
    else {
        panic!("created")
    };
    assert!(!again[0].created, "SRV-2 was there");
    assert_eq!(again[0].resource, first[1].resource, "returned as it was");
    assert!(again[1].created);
    assert_eq!(again[1].resource.identifier, "SRV-3");
    assert_eq!(again[1].resource.created_at, at(5));
    // The same identifier in another pool is another resource.
    let domain = create(&s, "domain", &["SRV-1"], 0).await?;
    assert_ne!(domain[0].id, first[0].resource.id);
    assert_eq!(counts(&s, "server").await?, (3, 0));
    assert_eq!(counts(&s, "domain").await?, (1, 0));
    assert_eq!(counts(&s, "nothing").await?, (0, 0));
    Ok(())
}

async fn allocation_is_all_or_none(s: Store, _: Store) -> R {
    let srv = create(&s, "server", &["s1", "s2", "s3"], 0).await?;
    let dom = create(&s, "domain", &["d1"], 0).await?;
    let (s1, s2, s3, d1) = (srv[0].id, srv[1].id, srv[2].id, dom[0].id);
    let (one, two) = (lic("LIC-ONE"), lic("LIC-TWO"));

    assert_eq!(
        s.allocate(&one, &[s1, 999_999], None, at(1)).await?,
        Change::Unknown(vec![999_999])
    );
    assert_eq!(
        s.allocate(&one, &[s1, d1], Some(&kind("server")), at(1))
            .await?,
        Change::WrongType(vec![d1])
    );
    assert_eq!(counts(&s, "server").await?, (3, 0), "nothing changed");

    let got = done(s.allocate(&one, &[s2, s1], None, at(10)).await?);
    assert_eq!(got.iter().map(|r| r.id).collect::<Vec<_>>(), vec![s1, s2]);
    for r in &got {
        assert_eq!(r.holder, Some(one.clone()));
        assert_eq!(r.allocated_at, Some(at(10)));
    }
    assert_eq!(
        s.allocate(&two, &[s3, s2], None, at(11)).await?,
        Change::Conflict(vec![s2])
    );
    assert_eq!(
        ids_of(&s, ResourceIndex::FreeOfType(&kind("server"))).await?,
        vec![s3],
        "the refused allocation left s3 free"
    );
    assert_eq!(
        s.allocate(&one, &[s1], None, at(12)).await?,
        Change::Conflict(vec![s1]),
        "held already, also by the same license"
    );
    assert_eq!(
        ids_of(&s, ResourceIndex::HeldBy(&two)).await?,
        Vec::<u64>::new()
    );
    assert_eq!(counts(&s, "server").await?, (1, 2));
    let typed = done(
        s.allocate(&two, &[d1], Some(&kind("domain")), at(13))
            .await?,
    );
    assert_eq!(typed[0].holder, Some(two));
    Ok(())
}

async fn release_needs_the_holder_and_release_all_frees_everything(s: Store, _: Store) -> R {
    let srv = create(&s, "server", &["s1", "s2", "s3"], 0).await?;
    let (s1, s2, s3) = (srv[0].id, srv[1].id, srv[2].id);
    let (one, two) = (lic("LIC-ONE"), lic("LIC-TWO"));
    done(s.allocate(&one, &[s1, s2], None, at(1)).await?);
    done(s.allocate(&two, &[s3], None, at(1)).await?);

    assert_eq!(s.release(&two, &[s1]).await?, Change::Conflict(vec![s1]));
    assert_eq!(
        s.release(&one, &[s1, s3]).await?,
        Change::Conflict(vec![s3])
    );
    assert_eq!(
        s.release(&one, &[s1, 424_242]).await?,
        Change::Unknown(vec![424_242])
    );
    assert_eq!(ids_of(&s, ResourceIndex::HeldBy(&one)).await?, vec![s1, s2]);

    let freed = done(s.release(&one, &[s1]).await?);
    assert_eq!(freed[0].id, s1);
    assert_eq!(
        (freed[0].holder.clone(), freed[0].allocated_at),
        (None, None)
    );
    assert_eq!(
        s.release(&one, &[s1]).await?,
        Change::Conflict(vec![s1]),
        "free now: not held by this license"
    );
    assert_eq!(s.release_all(&two).await?, vec![s3]);
    assert_eq!(s.release_all(&two).await?, Vec::<u64>::new());
    assert_eq!(counts(&s, "server").await?, (2, 1));
    assert_eq!(
        ids_of(&s, ResourceIndex::FreeOfType(&kind("server"))).await?,
        vec![s1, s3]
    );
    Ok(())
}

async fn pages_follow_id_order_within_each_index(s: Store, _: Store) -> R {
    let srv = create(&s, "server", &["a", "b", "c", "d", "e"], 0).await?;
    let dom = create(&s, "domain", &["x.example", "y.example"], 0).await?;
    let srv: Vec<u64> = srv.iter().map(|r| r.id).collect();
    let dom: Vec<u64> = dom.iter().map(|r| r.id).collect();
    let one = lic("LIC-ONE");
    done(s.allocate(&one, &[srv[1], dom[0]], None, at(1)).await?);

    let all: Vec<u64> = srv.iter().chain(&dom).copied().collect();
    assert_eq!(ids_of(&s, ResourceIndex::All).await?, all);
    let page: Vec<u64> = s
        .page(ResourceIndex::All, Some(all[2]), 2)
        .await?
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(page, all[3..5]);
    let server = kind("server");
    assert_eq!(ids_of(&s, ResourceIndex::OfType(&server)).await?, srv);
    let page: Vec<u64> = s
        .page(ResourceIndex::OfType(&server), Some(srv[1]), 2)
        .await?
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(page, srv[2..4]);
    assert_eq!(
        ids_of(&s, ResourceIndex::FreeOfType(&server)).await?,
        vec![srv[0], srv[2], srv[3], srv[4]]
    );
    assert_eq!(
        ids_of(&s, ResourceIndex::HeldBy(&one)).await?,
        vec![srv[1], dom[0]]
    );
    assert!(
        ids_of(&s, ResourceIndex::HeldBy(&lic("LIC-TWO")))
            .await?
            .is_empty()
    );
    assert!(
        s.page(ResourceIndex::All, Some(u64::MAX), 10)
            .await?
            .is_empty()
    );
    assert!(
        ids_of(&s, ResourceIndex::OfType(&kind("seat")))
            .await?
            .is_empty()
    );
    let held = s.page(ResourceIndex::HeldBy(&one), None, 10).await?;
    assert_eq!(held[0].identifier, "b");
    assert_eq!(held[1].kind, kind("domain"));
    Ok(())
}

async fn delete_takes_only_free_resources_and_ids_are_never_reused(s: Store, _: Store) -> R {
    let made = create(&s, "seat", &["a", "b"], 0).await?;
    let (a, b) = (made[0].id, made[1].id);
    let one = lic("LIC-ONE");
    done(s.allocate(&one, &[a], None, at(1)).await?);
    assert_eq!(s.delete(a).await?, Removal::Allocated);
    assert_eq!(s.delete(999_999).await?, Removal::Unknown);
    assert_eq!(s.delete(b).await?, Removal::Deleted(made[1].clone()));
    assert_eq!(counts(&s, "seat").await?, (0, 1));
    done(s.release(&one, &[a]).await?);
    assert_eq!(s.delete(a).await?, Removal::Deleted(made[0].clone()));
    assert_eq!(counts(&s, "seat").await?, (0, 0));
    assert!(ids_of(&s, ResourceIndex::All).await?.is_empty());
    let again = create(&s, "seat", &["a"], 2).await?;
    assert!(again[0].id > b, "a new id: {} after {b}", again[0].id);
    Ok(())
}

async fn the_number_of_types_is_bounded(s: Store, _: Store) -> R {
    let mut first = Vec::new();
    for i in 0..MAX_RESOURCE_TYPES {
        first.push(create(&s, &format!("t{i}"), &["x"], 0).await?[0].id);
    }
    assert_eq!(
        s.create(&kind("one-more"), &["x".into()], at(0)).await?,
        CreateOutcome::TooManyTypes
    );
    assert!(
        create(&s, "t0", &["y"], 0).await.is_ok(),
        "existing types still grow"
    );
    assert!(matches!(s.delete(first[1]).await?, Removal::Deleted(_)));
    assert!(
        create(&s, "one-more", &["x"], 0).await.is_ok(),
        "a type leaves with its last resource"
    );
    Ok(())
}

async fn two_handles_racing_for_the_last_resource_exactly_one_wins(a: Store, b: Store) -> R {
    const ROUNDS: usize = 25;
    let (one, two) = (lic("LIC-ONE"), lic("LIC-TWO"));
    for round in 0..ROUNDS {
        let r = create(&a, "seat", &[&format!("last-{round}")], 0).await?[0].id;
        let (sa, la) = (Arc::clone(&a), one.clone());
        let (sb, lb) = (Arc::clone(&b), two.clone());
        let x = tokio::spawn(async move { sa.allocate(&la, &[r], None, at(1)).await });
        let y = tokio::spawn(async move { sb.allocate(&lb, &[r], None, at(2)).await });
        let (x, y) = (x.await??, y.await??);
        let winner = match (&x, &y) {
            (Change::Done(_), Change::Conflict(ids)) if ids == &vec![r] => &one,
            (Change::Conflict(ids), Change::Done(_)) if ids == &vec![r] => &two,
            other => panic!("round {round}: not exactly one winner: {other:?}"),
        };
        let held = a.page(ResourceIndex::HeldBy(winner), None, 1000).await?;
        assert!(
            held.iter()
                .any(|h| h.id == r && h.holder.as_ref() == Some(winner))
        );
    }
    assert_eq!(counts(&b, "seat").await?, (0, ROUNDS as u64));
    let held_one = ids_of(&a, ResourceIndex::HeldBy(&one)).await?.len();
    let held_two = ids_of(&b, ResourceIndex::HeldBy(&two)).await?.len();
    assert_eq!(
        held_one + held_two,
        ROUNDS,
        "no resource held twice or lost"
    );
    Ok(())
}

async fn overlapping_allocations_racing_leave_the_loser_with_nothing(a: Store, b: Store) -> R {
    let (one, two) = (lic("LIC-ONE"), lic("LIC-TWO"));
    for round in 0..15 {
        let made = create(
            &a,
            "server",
            &[
                &format!("x{round}"),
                &format!("y{round}"),
                &format!("z{round}"),
            ],
            0,
        )
        .await?;
        let (x, y, z) = (made[0].id, made[1].id, made[2].id);
        let (sa, la) = (Arc::clone(&a), one.clone());
        let (sb, lb) = (Arc::clone(&b), two.clone());
        let ta = tokio::spawn(async move { sa.allocate(&la, &[x, y], None, at(1)).await });
        let tb = tokio::spawn(async move { sb.allocate(&lb, &[y, z], None, at(1)).await });
        let (ra, rb) = (ta.await??, tb.await??);
        let free = ids_of(&a, ResourceIndex::FreeOfType(&kind("server"))).await?;
        match (ra, rb) {
            (Change::Done(_), Change::Conflict(c)) => {
                assert_eq!(c, vec![y]);
                assert!(free.contains(&z), "the loser's z stayed free");
            }
            (Change::Conflict(c), Change::Done(_)) => {
                assert_eq!(c, vec![y]);
                assert!(free.contains(&x), "the loser's x stayed free");
            }
            other => panic!("round {round}: not exactly one winner: {other:?}"),
        }
    }
    assert_eq!(counts(&a, "server").await?, (15, 30));
    Ok(())
}

#[tokio::test]
async fn after_redis_forgets_its_scripts_the_resource_script_is_loaded_again() -> R {
    let server = tokio::task::spawn_blocking(redis_support::Redis::start).await??;
    let store: Store = Arc::new(RedisStore::connect(&server.url, Duration::from_secs(5)).await?);
    create(&store, "seat", &["a"], 0).await?;
    // What a restarted or failed-over Redis looks like to the script cache.
    server.cli(&["SCRIPT", "FLUSH"])?;
    let made = create(&store, "seat", &["b"], 0).await?;
    assert_eq!(made[0].identifier, "b");
    assert_eq!(counts(&store, "seat").await?, (2, 0));
    Ok(())
}

// ---- HTTP ----

async fn send(
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
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn get(server: &TestServer, path: &str) -> (u16, Value) {
    send(server, Method::GET, path, None).await
}

async fn post(server: &TestServer, path: &str, body: Value) -> (u16, Value) {
    send(server, Method::POST, path, Some(body)).await
}

async fn delete(server: &TestServer, path: &str) -> (u16, Value) {
    send(server, Method::DELETE, path, None).await
}

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("")
}

/// Asserts the error shape with `status` and `code`.
#[track_caller]
fn refused(got: (u16, Value), status: u16, want: &str) {
    let (s, body) = got;
    assert_eq!((s, code(&body)), (status, want), "{body}");
    assert_eq!(body["status"], json!(status), "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
}

async fn issue(server: &TestServer) -> String {
    let (status, body) = post(server, "/api/admin/licenses", json!({})).await;
    assert_eq!(status, 201, "{body}");
    body["licenses"][0]["license_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `POST /api/admin/resources`; the ids in order.
async fn import(server: &TestServer, kind: &str, names: &[&str]) -> Vec<u64> {
    let (status, body) = post(
        server,
        "/api/admin/resources",
        json!({"type": kind, "identifiers": names}),
    )
    .await;
    assert!(status == 201 || status == 200, "{status} {body}");
    body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect()
}

fn keys_of(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

#[tokio::test]
async fn pools_are_imported_allocated_listed_released_and_deleted_over_http() {
    let server = TestServer::start().await.unwrap();
    let (key, other) = (issue(&server).await, issue(&server).await);

    let (status, body) = post(
        &server,
        "/api/admin/resources",
        json!({"type": "Rack", "identifiers": ["SRV-001", "SRV-002", "SRV-003", "SRV-001"]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["type"].clone(), body["created"].clone()),
        (json!("rack"), json!(3))
    );
    let ids: Vec<u64> = body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "the repeat counts once: {body}");
    assert_eq!(
        keys_of(&body["resources"][0]),
        [
            "allocated_at",
            "created_at",
            "id",
            "identifier",
            "license_key",
            "status",
            "type"
        ]
    );
    let (status, body) = post(
        &server,
        "/api/admin/resources",
        json!({"type": "rack", "identifiers": ["SRV-002"]}),
    )
    .await;
    assert_eq!(status, 200, "nothing new: {body}");
    assert_eq!(
        (body["created"].clone(), body["existing"].clone()),
        (json!(0), json!(1))
    );
    assert_eq!(body["resources"][0]["id"], json!(ids[1]));

    // Seed 000's check-availability.
    let (status, body) = get(
        &server,
        "/api/resources/check-availability?type=rack&count=2",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"available": true, "count": 3, "resources": [
            {"id": ids[0], "type": "rack", "identifier": "SRV-001"},
            {"id": ids[1], "type": "rack", "identifier": "SRV-002"},
        ]})
    );

    // Seed 000's allocate, both forms.
    let (status, body) = post(
        &server,
        "/api/resources/allocate",
        json!({"license_id": key, "resource_ids": [ids[0]]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"success": true, "allocated": 1, "message": "1 resources allocated successfully"})
    );
    let (status, body) = post(
        &server,
        "/api/resources/allocate",
        json!({"license_id": key, "resource_type": "rack", "resource_ids": [ids[1]]}),
    )
    .await;
    assert_eq!(
        (status, body["allocated"].clone()),
        (200, json!(1)),
        "{body}"
    );

    // Seed 000's license resources.
    let (status, body) = get(&server, &format!("/api/license/{key}/resources")).await;
    assert_eq!(status, 200, "{body}");
    let held = body["resources"].as_array().unwrap();
    assert_eq!(held.len(), 2, "{body}");
    assert_eq!(
        keys_of(&held[0]),
        ["allocated_at", "id", "identifier", "status", "type"]
    );
    assert_eq!(
        (
            held[0]["id"].clone(),
            held[0]["status"].clone(),
            held[0]["identifier"].clone()
        ),
        (json!(ids[0]), json!("allocated"), json!("SRV-001"))
    );
    let when = held[0]["allocated_at"].as_str().unwrap();
    assert!(
        DateTime::parse_from_rfc3339(when).is_ok() && when.ends_with('Z'),
        "{when}"
    );
    let (status, body) = get(&server, &format!("/api/license/{other}/resources")).await;
    assert_eq!((status, body), (200, json!({"resources": []})));

    // Held by one license: nobody else gets it, and nothing of the request changes.
    refused(
        post(
            &server,
            "/api/resources/allocate",
            json!({"license_id": other, "resource_ids": [ids[2], ids[1]]}),
        )
        .await,
        409,
        "RESOURCE_UNAVAILABLE",
    );
    let (_, body) = get(
        &server,
        "/api/resources/check-availability?type=rack&count=2",
    )
    .await;
    assert_eq!(
        (body["available"].clone(), body["count"].clone()),
        (json!(false), json!(1))
    );
    assert_eq!(
        body["resources"][0]["id"],
        json!(ids[2]),
        "SRV-003 stayed free"
    );

    // The admin listing, filtered and paged.
    let (status, body) = get(&server, "/api/admin/resources?type=rack&status=allocated").await;
    assert_eq!(status, 200, "{body}");
    let listed: Vec<u64> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, ids[..2]);
    assert_eq!(body["items"][0]["license_key"], json!(key));
    assert_eq!(body["next_cursor"], Value::Null);
    let (_, body) = get(&server, "/api/admin/resources?status=free").await;
    assert_eq!(body["items"][0]["id"], json!(ids[2]));
    let mut seen = Vec::new();
    let mut path = "/api/admin/resources?limit=1".to_owned();
    loop {
        let (status, body) = get(&server, &path).await;
        assert_eq!(status, 200, "{body}");
        seen.extend(
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_u64().unwrap()),
        );
        match body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/admin/resources?limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    // Release, then delete only what is free.
    refused(
        post(
            &server,
            "/api/resources/release",
            json!({"license_id": other, "resource_ids": [ids[0]]}),
        )
        .await,
        409,
        "RESOURCE_NOT_ALLOCATED",
    );
    let (status, body) = post(
        &server,
        "/api/resources/release",
        json!({"license_id": key, "resource_ids": [ids[0]]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"success": true, "released": 1, "message": "1 resources released successfully"})
    );
    refused(
        delete(&server, &format!("/api/admin/resources/{}", ids[1])).await,
        409,
        "RESOURCE_UNAVAILABLE",
    );
    let (status, body) = delete(&server, &format!("/api/admin/resources/{}", ids[0])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["success"].clone(),
            body["resource"]["identifier"].clone()
        ),
        (json!(true), json!("SRV-001"))
    );
    refused(
        delete(&server, &format!("/api/admin/resources/{}", ids[0])).await,
        404,
        "RESOURCE_NOT_FOUND",
    );

    // The pool gauges.
    let metrics = server
        .client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge = metrics
        .lines()
        .find(|l| {
            l.starts_with("tessera_resources{")
                && l.contains("type=\"rack\"")
                && l.contains("status=\"allocated\"")
        })
        .unwrap_or_else(|| panic!("no allocated gauge for rack in:\n{metrics}"));
    assert!(gauge.ends_with(" 1"), "{gauge}");
}

#[tokio::test]
async fn bad_input_is_400_unknown_ids_are_404_and_nothing_changes() {
    let server = TestServer::start().await.unwrap();
    let key = issue(&server).await;
    let ids = import(&server, "domain", &["a.example", "b.example"]).await;
    let seat = import(&server, "seat", &["seat-1"]).await;
    let alloc = |body: Value| {
        let server = &server;
        async move { post(server, "/api/resources/allocate", body).await }
    };

    refused(
        alloc(json!({"license_id": key, "resource_ids": [ids[0], 987_654]})).await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    refused(
        alloc(json!({"license_id": "NOPE-NOPE-NOPE-NOPE", "resource_ids": [ids[0]]})).await,
        404,
        "LICENSE_NOT_FOUND",
    );
    refused(
        alloc(json!({"license_id": 123, "resource_ids": [ids[0]]})).await,
        404,
        "LICENSE_NOT_FOUND",
    );
    refused(
        alloc(json!({"license_id": key, "resource_type": "domain", "resource_ids": [ids[0], seat[0]]}))
            .await,
        400,
        "VALIDATION_ERROR",
    );
    let too_many: Vec<u64> = (1..=1001).collect();
    for bad in [
        json!({"license_id": key, "resource_ids": []}),
        json!({"license_id": key, "resource_ids": [ids[0], ids[0]]}),
        json!({"license_id": key, "resource_ids": too_many}),
        json!({"license_id": key, "resource_ids": [-1]}),
        json!({"license_id": key, "resource_ids": [1.5]}),
        json!({"license_id": key, "resource_ids": ["x"]}),
        json!({"license_id": key, "resource_ids": [18_446_744_073_709_551_615_u64, 1], "extra": 1}),
        json!({"license_id": "bad key!", "resource_ids": [ids[0]]}),
        json!({"license_id": key, "resource_ids": [ids[0]], "resource_type": "a:b"}),
        json!({"resource_ids": [ids[0]]}),
    ] {
        refused(alloc(bad.clone()).await, 400, "VALIDATION_ERROR");
    }
    let (_, body) = get(
        &server,
        "/api/resources/check-availability?type=domain&count=2",
    )
    .await;
    assert_eq!(
        body["available"],
        json!(true),
        "nothing was allocated: {body}"
    );

    for path in [
        "/api/resources/check-availability",
        "/api/resources/check-availability?type=",
        "/api/resources/check-availability?type=domain&count=0",
        "/api/resources/check-availability?type=domain&count=1001",
        "/api/resources/check-availability?type=domain&count=-3",
        "/api/resources/check-availability?type=domain&count=99999999999999999999999",
        "/api/resources/check-availability?type=Bad%20Type",
        "/api/admin/resources?status=busy",
        "/api/admin/resources?limit=0",
        "/api/admin/resources?limit=501",
        "/api/admin/resources?cursor=abc",
        "/api/admin/resources?type=a;b",
    ] {
        refused(get(&server, path).await, 400, "VALIDATION_ERROR");
    }
    let (status, body) = get(&server, "/api/resources/check-availability?type=nothing").await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"available": false, "count": 0, "resources": []})
        )
    );

    let many: Vec<String> = (0..1001).map(|i| format!("h{i}")).collect();
    for bad in [
        json!({"type": "a:b", "identifiers": ["x"]}),
        json!({"type": "", "identifiers": ["x"]}),
        json!({"type": "server", "identifiers": []}),
        json!({"type": "server", "identifiers": ["has space"]}),
        json!({"type": "server", "identifiers": ["x".repeat(129)]}),
        json!({"type": "server", "identifiers": many}),
        json!({"type": "server"}),
    ] {
        refused(
            post(&server, "/api/admin/resources", bad).await,
            400,
            "VALIDATION_ERROR",
        );
    }
    refused(
        delete(&server, "/api/admin/resources/abc").await,
        400,
        "VALIDATION_ERROR",
    );
    refused(
        delete(&server, "/api/admin/resources/424242").await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    refused(
        get(&server, "/api/license/NOPE-NOPE-NOPE-NOPE/resources").await,
        404,
        "LICENSE_NOT_FOUND",
    );
    refused(
        post(
            &server,
            "/api/resources/release",
            json!({"license_id": key, "resource_ids": [ids[0]]}),
        )
        .await,
        409,
        "RESOURCE_NOT_ALLOCATED",
    );
    refused(
        post(
            &server,
            "/api/resources/release",
            json!({"license_id": key, "resource_ids": [555_555]}),
        )
        .await,
        404,
        "RESOURCE_NOT_FOUND",
    );
    let (_, body) = get(&server, "/api/admin/resources").await;
    assert!(
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == json!("free")),
        "every refusal changed nothing: {body}"
    );
}

/// Every resource route, with a body an admitted caller could send.
fn routes(key: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, format!("/api/license/{key}/resources"), None),
        (
            Method::POST,
            "/api/resources/allocate".into(),
            Some(json!({"license_id": key, "resource_ids": [1]})),
        ),
        (
            Method::POST,
            "/api/resources/release".into(),
            Some(json!({"license_id": key, "resource_ids": [1]})),
        ),
        (
            Method::GET,
            "/api/resources/check-availability?type=server&count=1".into(),
            None,
        ),
        (
            Method::POST,
            "/api/admin/resources".into(),
            Some(json!({"type": "server", "identifiers": ["x"]})),
        ),
        (Method::GET, "/api/admin/resources".into(), None),
        (Method::DELETE, "/api/admin/resources/1".into(), None),
    ]
}

#[tokio::test]
async fn the_system_api_key_and_no_credential_are_refused_on_every_resource_route() {
    let server = TestServer::start().await.unwrap();
    let key = issue(&server).await;
    import(&server, "server", &["keep"]).await;
    for (method, path, body) in routes(&key) {
        let mut with_key = server
            .client()
            .request(method.clone(), server.url(&path))
            .header("X-API-Key", &server.api_key);
        let mut without = server.client().request(method.clone(), server.url(&path));
        if let Some(b) = &body {
            with_key = with_key.json(b);
            without = without.json(b);
        }
        for (req, status, want) in [
            (with_key, 403, "INSUFFICIENT_SCOPE"),
            (without, 401, "UNAUTHENTICATED"),
        ] {
            let resp = req.send().await.unwrap();
            let got = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            assert_eq!(
                (got, code(&body)),
                (status, want),
                "{method} {path}: {body}"
            );
        }
    }
    let (_, body) = get(&server, "/api/admin/resources").await;
    assert_eq!(
        body["items"].as_array().unwrap().len(),
        1,
        "nothing changed: {body}"
    );
}

/// A second server process on the same store: its own state and router on its own port.
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
async fn two_servers_on_one_redis_racing_for_the_last_resource_exactly_one_wins() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap()
        .unwrap();
    let url = redis.url.clone();
    let a = TestServer::start_with(move |c| {
        c.store.backend = StoreBackend::Redis;
        c.store.redis_url = url;
    })
    .await
    .unwrap();
    let b = second_node(&a).await;
    let (one, two) = (issue(&a).await, issue(&a).await);
    const ROUNDS: usize = 20;
    let names: Vec<String> = (0..ROUNDS).map(|i| format!("seat-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let ids = import(&a, "seat", &names).await;

    let client = a.client().clone();
    let allocate = |base: String, license: String, id: u64| {
        let (client, admin) = (client.clone(), a.admin_key.clone());
        tokio::spawn(async move {
            let resp = client
                .post(format!("{base}/api/resources/allocate"))
                .bearer_auth(admin)
                .json(&json!({"license_id": license, "resource_ids": [id]}))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        })
    };
    let mut won = (0, 0);
    for &id in &ids {
        let x = allocate(a.url(""), one.clone(), id);
        let y = allocate(b.url.clone(), two.clone(), id);
        let ((sx, bx), (sy, by)) = (x.await.unwrap(), y.await.unwrap());
        match (sx, sy) {
            (200, 409) => {
                won.0 += 1;
                assert_eq!(code(&by), "RESOURCE_UNAVAILABLE", "{by}");
            }
            (409, 200) => {
                won.1 += 1;
                assert_eq!(code(&bx), "RESOURCE_UNAVAILABLE", "{bx}");
            }
            other => panic!("resource {id}: not exactly one winner: {other:?} {bx} {by}"),
        }
    }
    assert_eq!(won.0 + won.1, ROUNDS);

    // Both nodes see the same pools: what A allocated, B lists, and the other way round.
    let held = |base: String, license: String| {
        let (client, admin) = (client.clone(), a.admin_key.clone());
        async move {
            let body: Value = client
                .get(format!("{base}/api/license/{license}/resources"))
                .bearer_auth(admin)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["resources"].as_array().unwrap().len()
        }
    };
    assert_eq!(held(b.url.clone(), one.clone()).await, won.0);
    assert_eq!(held(a.url(""), two.clone()).await, won.1);
    let (_, body) = get(&a, "/api/resources/check-availability?type=seat").await;
    assert_eq!(
        (body["available"].clone(), body["count"].clone()),
        (json!(false), json!(0))
    );
    drop(b);
}
