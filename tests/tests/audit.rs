//! The tamper-evident audit log through the real server (issue 15): operator and admin-key
//! actions are recorded with who, from where, what, before and after, in a SHA-256 chain;
//! `verify` passes on an intact chain and names the first record that was changed, removed
//! or reordered after the store was edited directly, on both stores.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};
use tessera::audit::{AuditLog, AuditRecord, ProblemKind};
use tessera_config::StoreBackend;
use tessera_integration_tests::scenario::admin;
use tessera_integration_tests::{RedisServer, TestServer};

type R = anyhow::Result<()>;

/// Four audited actions: issue, edit, suspend, a security change.
async fn act(server: &TestServer) -> String {
    let (status, out) = admin(
        server,
        Method::POST,
        "/api/admin/licenses",
        Some(json!({"owner": "Audit Co"})),
    )
    .await;
    assert_eq!(status, 201, "{out}");
    let key = out["licenses"][0]["license_key"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, out) = admin(
        server,
        Method::PATCH,
        &format!("/api/admin/licenses/{key}"),
        Some(json!({"max_sessions": 4, "note": "vip"})),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let (status, _) = admin(
        server,
        Method::POST,
        &format!("/api/admin/licenses/{key}/status"),
        Some(json!({"status": "suspended", "reason": "chargeback"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, out) = admin(
        server,
        Method::PUT,
        "/api/admin/security",
        Some(json!({"max_login_attempts": 7})),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    key
}

async fn records_are_chained_with_who_where_what_before_and_after(server: &TestServer) -> String {
    let key = act(server).await;
    let (status, page) = admin(server, Method::GET, "/api/admin/audit?limit=10", None).await;
    assert_eq!(status, 200, "{page}");
    let records: Vec<AuditRecord> = serde_json::from_value(page["records"].clone()).unwrap();
    assert_eq!(records.len(), 4, "{page}");
    assert_eq!(page["head"], 4);
    let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "admin.security.changed",
            "admin.license.status_changed",
            "admin.license.edited",
            "admin.license.issued"
        ]
    );
    for r in &records {
        assert!(r.actor.starts_with("key:"), "{r:?}");
        assert_eq!(r.ip.as_deref(), Some("127.0.0.1"), "{r:?}");
        assert_eq!(r.hash, tessera::audit::hash_of(r));
    }
    let edit = &records[2];
    assert_eq!(edit.target.as_deref(), Some(key.as_str()));
    assert_eq!(edit.after["max_sessions"], 4);
    assert_eq!(
        edit.before.as_ref().unwrap()["max_sessions"],
        Value::Null,
        "no override before"
    );
    assert_eq!(edit.before.as_ref().unwrap()["note"], Value::Null);
    assert_eq!(records[0].before.as_ref().unwrap()["max_login_attempts"], 5);
    assert_eq!(records[3].prev_hash, tessera::audit::GENESIS);
    assert_eq!(records[2].prev_hash, records[3].hash);
    // Pages go backwards from a cursor.
    let (_, older) = admin(
        server,
        Method::GET,
        "/api/admin/audit?limit=2&cursor=3",
        None,
    )
    .await;
    let seqs: Vec<u64> = older["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [2, 1]);
    assert_eq!(older["next_cursor"], Value::Null);
    let (status, report) = admin(server, Method::GET, "/api/admin/audit/verify", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (report["ok"].as_bool(), report["checked"].as_u64()),
        (Some(true), Some(4)),
        "{report}"
    );
    // The system API key reads no audit.
    assert_eq!(
        server
            .get("/api/admin/audit")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        403
    );
    key
}

fn summary_changed(mut r: AuditRecord) -> AuditRecord {
    r.summary = "nothing happened".into();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_embedded_verify_finds_a_changed_a_removed_and_a_reordered_record() -> R {
    use redb::ReadableDatabase;
    let server = TestServer::start().await?;
    records_are_chained_with_who_where_what_before_and_after(&server).await;
    let stopped = server.stop().await?;
    let store = stopped.open_embedded_store().await?;
    let db = store.database();
    let log = AuditLog::new(Arc::new(store.clone()), Arc::new(store.clone()));
    let table = tessera::store::embedded::audit::AUDIT;
    let read = |seq: u64| -> AuditRecord {
        let tx = db.begin_read().unwrap();
        let t = tx.open_table(table).unwrap();
        let v = t.get(seq).unwrap().unwrap();
        serde_json::from_slice(v.value()).unwrap()
    };
    let write = |seq: u64, r: Option<&AuditRecord>| {
        let tx = db.begin_write().unwrap();
        {
            let mut t = tx.open_table(table).unwrap();
            match r {
                Some(r) => {
                    t.insert(seq, serde_json::to_vec(r).unwrap().as_slice())
                        .unwrap();
                }
                None => {
                    t.remove(seq).unwrap();
                }
            }
        }
        tx.commit().unwrap();
    };
    assert!(log.verify().await?.ok);
    let (two, three) = (read(2), read(3));
    // Changed.
    write(2, Some(&summary_changed(two.clone())));
    let p = log.verify().await?.problem.unwrap();
    assert_eq!((p.seq, p.kind), (2, ProblemKind::Changed), "{p:?}");
    write(2, Some(&two));
    // Removed.
    write(3, None);
    let p = log.verify().await?.problem.unwrap();
    assert_eq!((p.seq, p.kind), (3, ProblemKind::Removed), "{p:?}");
    // Reordered: 2 and 3 swapped.
    write(2, Some(&three));
    write(3, Some(&two));
    let p = log.verify().await?.problem.unwrap();
    assert_eq!((p.seq, p.kind), (2, ProblemKind::Reordered), "{p:?}");
    // Restored: intact again; the tail cut after an anchor is found too.
    write(2, Some(&two));
    write(3, Some(&three));
    assert!(log.verify().await?.ok);
    log.anchor_now().await?;
    write(4, None);
    let p = log.verify().await?.problem.unwrap();
    assert_eq!((p.seq, p.kind), (4, ProblemKind::Removed), "{p:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_verify_finds_a_changed_a_removed_and_a_reordered_record() -> R {
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let url = redis.url.clone();
    let server = TestServer::start_with(move |c| {
        c.store.backend = StoreBackend::Redis;
        c.store.redis_url = url;
    })
    .await?;
    records_are_chained_with_who_where_what_before_and_after(&server).await;
    let client = redis::Client::open(redis.url.as_str())?;
    let mut c = client.get_multiplexed_async_connection().await?;
    let log_key = tessera::store::redis::audit::LOG_KEY;
    let get = |c: &mut redis::aio::MultiplexedConnection, seq: u64| {
        let mut c = c.clone();
        async move {
            let v: Vec<u8> = redis::cmd("HGET")
                .arg(log_key)
                .arg(seq)
                .query_async(&mut c)
                .await
                .unwrap();
            serde_json::from_slice::<AuditRecord>(&v).unwrap()
        }
    };
    let set = |c: &mut redis::aio::MultiplexedConnection, seq: u64, r: Option<AuditRecord>| {
        let mut c = c.clone();
        async move {
            match r {
                Some(r) => {
                    let _: () = redis::cmd("HSET")
                        .arg(log_key)
                        .arg(seq)
                        .arg(serde_json::to_vec(&r).unwrap())
                        .query_async(&mut c)
                        .await
                        .unwrap();
                }
                None => {
                    let _: () = redis::cmd("HDEL")
                        .arg(log_key)
                        .arg(seq)
                        .query_async(&mut c)
                        .await
                        .unwrap();
                }
            }
        }
    };
    let verify = || async {
        let (status, report) = admin(&server, Method::GET, "/api/admin/audit/verify", None).await;
        assert_eq!(status, 200);
        report
    };
    let (two, three) = (get(&mut c, 2).await, get(&mut c, 3).await);
    set(&mut c, 2, Some(summary_changed(two.clone()))).await;
    let r = verify().await;
    assert_eq!(
        (
            r["ok"].as_bool(),
            r["problem"]["seq"].as_u64(),
            r["problem"]["kind"].as_str()
        ),
        (Some(false), Some(2), Some("changed")),
        "{r}"
    );
    set(&mut c, 2, Some(two.clone())).await;
    set(&mut c, 3, None).await;
    let r = verify().await;
    assert_eq!(
        (r["problem"]["seq"].as_u64(), r["problem"]["kind"].as_str()),
        (Some(3), Some("removed")),
        "{r}"
    );
    set(&mut c, 2, Some(three.clone())).await;
    set(&mut c, 3, Some(two.clone())).await;
    let r = verify().await;
    assert_eq!(
        (r["problem"]["seq"].as_u64(), r["problem"]["kind"].as_str()),
        (Some(2), Some("reordered")),
        "{r}"
    );
    set(&mut c, 2, Some(two)).await;
    set(&mut c, 3, Some(three)).await;
    assert_eq!(verify().await["ok"], true);
    // A broken head refuses further appends rather than fork the chain.
    set(&mut c, 4, None).await;
    let (status, out) = admin(
        &server,
        Method::POST,
        "/api/admin/licenses",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 503, "{out}");
    Ok(())
}
