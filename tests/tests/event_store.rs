//! The [`EventStore`] conformance suite: every test runs on the embedded store, a Redis and a
//! three-primary Redis Cluster (`on_embedded::NAME`, `on_redis::NAME`,
//! `on_redis_cluster::NAME`). Each gets two handles on one store: two separate `RedisStore`
//! connections on Redis, one shared store on embedded (its calls run concurrently on blocking
//! threads). The concurrency test appends through both at once.
//!
//! Trims differ by design: the embedded store removes exactly what is asked, Redis's
//! `XTRIM ~` whole stream nodes only (up to `stream-node-max-entries`, 100 by default), so on
//! Redis the tests assert bounds: what must stay stays, and at most one node's worth of what
//! should go is left.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod redis_support;

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use tessera::store::EmbeddedStore;
use tessera::store::EventStore;
use tessera::store::events::{Event, EventId, MAX_BATCH, NewEvent, Severity};
use tessera::store::redis::RedisStore;
use tessera_integration_tests::RedisServer;

type R = anyhow::Result<()>;
type Store = Arc<dyn EventStore>;

/// Redis's default `stream-node-max-entries`: the most events an approximate trim leaves
/// beyond its bound.
const NODE: usize = 100;

/// How a backend trims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trims {
    /// Exactly the events asked for.
    Exactly,
    /// Whole stream nodes: possibly up to [`NODE`] events fewer.
    InWholeNodes,
}

/// Two handles on one store, how it trims, and whatever must outlive them.
struct Pair {
    a: Store,
    b: Store,
    trims: Trims,
    _keep: Box<dyn Any + Send>,
}

async fn embedded() -> anyhow::Result<Pair> {
    let dir = tempfile::tempdir()?;
    let store: Store = Arc::new(EmbeddedStore::open(&dir.path().join("tessera.redb"))?);
    Ok(Pair {
        a: Arc::clone(&store),
        b: store,
        trims: Trims::Exactly,
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
        trims: Trims::InWholeNodes,
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
        trims: Trims::InWholeNodes,
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
                    super::$test(&pair).await
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
    an_empty_store_reads_and_trims_nothing,
    ids_increase_across_appends_and_within_one,
    stored_fields_round_trip_exactly,
    after_reads_forwards_exclusively_and_pages_to_the_end,
    before_reads_newest_first_exclusively,
    two_handles_appending_at_once_never_repeat_or_reorder_ids,
    trim_by_age_removes_the_old_events,
    trim_by_count_keeps_the_newest,
    an_oversized_batch_is_refused_and_writes_nothing,
);

// ---- helpers ----

fn ev(i: usize) -> NewEvent {
    NewEvent::new("test.event", Severity::Info, format!("e{i}"))
}

fn batch(range: std::ops::Range<usize>) -> Vec<NewEvent> {
    range.map(ev).collect()
}

/// Appends `n` events in batches of at most [`MAX_BATCH`]; returns them stored, in order.
async fn append_n(s: &Store, n: usize) -> anyhow::Result<Vec<Event>> {
    let mut out = Vec::with_capacity(n);
    let mut from = 0;
    while from < n {
        let to = (from + MAX_BATCH).min(n);
        out.extend(s.append(batch(from..to)).await?);
        from = to;
    }
    Ok(out)
}

fn id(e: &Event) -> EventId {
    e.event_id()
        .unwrap_or_else(|| panic!("unparsable id {}", e.id))
}

fn ids(events: &[Event]) -> Vec<EventId> {
    events.iter().map(id).collect()
}

fn assert_increasing(ids: &[EventId]) {
    for w in ids.windows(2) {
        assert!(w[0] < w[1], "ids out of order: {} then {}", w[0], w[1]);
    }
}

/// Every stored event, oldest first, read in pages.
async fn all(s: &Store) -> anyhow::Result<Vec<Event>> {
    let mut out: Vec<Event> = Vec::new();
    loop {
        let page = s.after(out.last().map(id), MAX_BATCH).await?;
        if page.is_empty() {
            return Ok(out);
        }
        out.extend(page);
    }
}

const LAST: EventId = EventId {
    ms: u64::MAX,
    seq: u64::MAX,
};
const FIRST: EventId = EventId { ms: 0, seq: 0 };

fn epoch() -> DateTime<Utc> {
    Utc.timestamp_opt(0, 0).unwrap()
}

// ---- conformance ----

async fn an_empty_store_reads_and_trims_nothing(p: &Pair) -> R {
    for s in [&p.a, &p.b] {
        assert!(s.after(None, 10).await?.is_empty());
        assert!(s.before(None, 10).await?.is_empty());
        assert!(s.after(Some(FIRST), 10).await?.is_empty());
        assert!(s.before(Some(LAST), 10).await?.is_empty());
        assert_eq!(s.trim(Utc::now(), 0).await?, 0);
        assert!(s.append(Vec::new()).await?.is_empty());
    }
    assert!(all(&p.a).await?.is_empty());
    Ok(())
}

async fn ids_increase_across_appends_and_within_one(p: &Pair) -> R {
    let before = Utc::now().timestamp_millis();
    let mut stored = Vec::new();
    for (i, n) in [1, 5, 100, 1, 37].into_iter().enumerate() {
        let s = if i % 2 == 0 { &p.a } else { &p.b };
        let got = s.append(batch(0..n)).await?;
        assert_eq!(got.len(), n);
        stored.extend(got);
    }
    let after = Utc::now().timestamp_millis();
    let ids = ids(&stored);
    assert_increasing(&ids);
    for (e, i) in stored.iter().zip(&ids) {
        // `{ms}-{seq}`, printed back the same; ms from the clock (Redis's is this machine's).
        assert_eq!(i.to_string(), e.id);
        let ms = i64::try_from(i.ms)?;
        assert!(
            before - 1_000 <= ms && ms <= after + 1_000,
            "{} is not now",
            e.id
        );
    }
    assert_eq!(all(&p.b).await?, stored);
    Ok(())
}

async fn stored_fields_round_trip_exactly(p: &Pair) -> R {
    let mut full = NewEvent::new(
        "admin.license.edited",
        Severity::Warning,
        "Lizenz geändert — ✓ \"quoted\"\nsecond line",
    )
    .actor("operator:ada")
    .ip("2001:db8::1")
    .app_id("app-42")
    .risk(u32::MAX)
    .data(json!({
        "reason": "timeout",
        "fields": ["max_devices", "expires_at"],
        "n": 0.25,
        "big": u64::MAX,
        "neg": -3,
        "empty_object": {},
        "empty_list": [],
        "null": null,
        "nested": {"x": [1, {"y": "z"}, true]},
        "nul": "a\u{0}b",
    }));
    full.license = Some("TESS-ABCD-EFGH-IJKL".into());
    full.created_at = Utc.timestamp_opt(1_733_500_000, 123_456_789).unwrap();
    let mut bare = NewEvent::new("session.ended", Severity::Critical, "");
    bare.created_at = Utc.timestamp_opt(1, 1_000).unwrap();
    let mut scalar = NewEvent::new("x", Severity::Info, "scalar data").data(json!("just text"));
    scalar.created_at = Utc.timestamp_opt(4_102_444_800, 999_999_999).unwrap();
    let new = vec![full, bare, scalar];

    let stored = p.a.append(new.clone()).await?;
    assert_eq!(stored.len(), 3);
    for (s, n) in stored.iter().zip(&new) {
        assert_eq!(*s, n.clone().stored(id(s)));
    }
    for s in [&p.a, &p.b] {
        assert_eq!(s.after(None, 10).await?, stored);
        let mut newest_first = stored.clone();
        newest_first.reverse();
        assert_eq!(s.before(None, 10).await?, newest_first);
    }
    Ok(())
}

async fn after_reads_forwards_exclusively_and_pages_to_the_end(p: &Pair) -> R {
    let mut stored = p.a.append(batch(0..10)).await?;
    for i in 10..25 {
        stored.extend(p.b.append(vec![ev(i)]).await?);
    }
    let ids = ids(&stored);
    let s = &p.a;
    assert_eq!(s.after(None, 10).await?, stored[..10]);
    assert_eq!(s.after(Some(ids[9]), 10).await?, stored[10..20]);
    assert_eq!(s.after(Some(ids[19]), 10).await?, stored[20..]);
    assert!(s.after(Some(ids[24]), 10).await?.is_empty());
    assert_eq!(s.after(Some(ids[3]), 1).await?, stored[4..5]);
    // Ids that were never stored bound the same way.
    assert_eq!(s.after(Some(FIRST), 100).await?, stored);
    let gap = EventId {
        ms: ids[24].ms,
        seq: ids[24].seq + 1,
    };
    assert!(s.after(Some(gap), 10).await?.is_empty());
    assert!(s.after(Some(LAST), 10).await?.is_empty());
    assert!(s.after(None, 0).await?.is_empty());
    // A limit above MAX_BATCH is not an error.
    assert_eq!(s.after(None, usize::MAX).await?, stored);
    // Paging to the end by each page's last id reads every event once.
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = s.after(cursor, 7).await?;
        let Some(last) = page.last() else { break };
        cursor = Some(id(last));
        paged.extend(page);
    }
    assert_eq!(paged, stored);
    Ok(())
}

async fn before_reads_newest_first_exclusively(p: &Pair) -> R {
    let stored = p.a.append(batch(0..25)).await?;
    let ids = ids(&stored);
    let rev =
        |from: usize, to: usize| -> Vec<Event> { stored[from..to].iter().rev().cloned().collect() };
    let s = &p.b;
    assert_eq!(s.before(None, 10).await?, rev(15, 25));
    assert_eq!(s.before(None, 1).await?, rev(24, 25));
    assert_eq!(s.before(Some(ids[15]), 5).await?, rev(10, 15));
    assert_eq!(s.before(Some(ids[3]), 10).await?, rev(0, 3));
    assert!(s.before(Some(ids[0]), 10).await?.is_empty());
    assert!(s.before(Some(FIRST), 10).await?.is_empty());
    assert_eq!(s.before(Some(LAST), 100).await?, rev(0, 25));
    assert!(s.before(None, 0).await?.is_empty());
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = s.before(cursor, 6).await?;
        let Some(last) = page.last() else { break };
        cursor = Some(id(last));
        paged.extend(page);
    }
    assert_eq!(paged, rev(0, 25));
    Ok(())
}

async fn two_handles_appending_at_once_never_repeat_or_reorder_ids(p: &Pair) -> R {
    const TASKS_PER_HANDLE: usize = 3;
    const BATCHES: usize = 20;
    const PER_BATCH: usize = 10;
    let mut tasks = Vec::new();
    for (h, s) in [&p.a, &p.b].into_iter().enumerate() {
        for t in 0..TASKS_PER_HANDLE {
            let s = Arc::clone(s);
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                for b in 0..BATCHES {
                    let events = (0..PER_BATCH)
                        .map(|i| NewEvent::new("race", Severity::Info, format!("{h}/{t}/{b}/{i}")))
                        .collect();
                    mine.extend(s.append(events).await?);
                }
                anyhow::Ok(mine)
            }));
        }
    }
    let mut appended = BTreeMap::new();
    for task in tasks {
        let mine = task.await??;
        // One task's appends follow each other: its ids only grow.
        assert_increasing(&ids(&mine));
        for e in mine {
            assert!(
                appended.insert(id(&e), e).is_none(),
                "an id was given twice"
            );
        }
    }
    let total = 2 * TASKS_PER_HANDLE * BATCHES * PER_BATCH;
    assert_eq!(appended.len(), total);
    let read = all(&p.a).await?;
    assert_increasing(&ids(&read));
    let expected: Vec<Event> = appended.into_values().collect();
    assert_eq!(read, expected);
    let summaries: BTreeSet<&str> = read.iter().map(|e| e.summary.as_str()).collect();
    assert_eq!(summaries.len(), total);
    Ok(())
}

async fn trim_by_age_removes_the_old_events(p: &Pair) -> R {
    // Redis trims whole nodes: give it many full ones to drop.
    let old_n = match p.trims {
        Trims::Exactly => 30,
        Trims::InWholeNodes => 1_000,
    };
    let old = append_n(&p.a, old_n).await?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cutoff = Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let new = p.b.append(batch(0..20)).await?;
    let cutoff_ms = u64::try_from(cutoff.timestamp_millis())?;
    assert!(ids(&old).iter().all(|i| i.ms < cutoff_ms));
    assert!(ids(&new).iter().all(|i| i.ms > cutoff_ms));

    // Nothing is older than the epoch, and nothing is over the count.
    assert_eq!(p.a.trim(epoch(), u64::MAX).await?, 0);
    let removed = p.a.trim(cutoff, u64::MAX).await?;
    let left = all(&p.a).await?;
    assert_eq!(usize::try_from(removed)? + left.len(), old_n + new.len());
    let (old_left, new_left) = left.split_at(left.len() - new.len());
    assert_eq!(new_left, new, "an event stored after the cutoff went");
    match p.trims {
        Trims::Exactly => {
            assert!(old_left.is_empty());
            assert_eq!(removed, 30);
            assert_eq!(p.a.trim(cutoff, u64::MAX).await?, 0);
        }
        Trims::InWholeNodes => {
            // What stays of the old is the newest of them: the node reaching the cutoff.
            assert!(old_left.len() < NODE, "{} old events left", old_left.len());
            assert!(removed > 0, "no old event went");
            assert_eq!(old_left, &old[old_n - old_left.len()..]);
        }
    }
    Ok(())
}

async fn trim_by_count_keeps_the_newest(p: &Pair) -> R {
    const KEEP: usize = 100;
    let stored = append_n(&p.a, 2_000).await?;
    assert_eq!(p.b.trim(epoch(), 2_000).await?, 0);
    let removed = p.b.trim(epoch(), KEEP as u64).await?;
    let left = all(&p.a).await?;
    assert_eq!(usize::try_from(removed)? + left.len(), stored.len());
    // What is left is always the newest, and always at least the newest KEEP.
    assert_eq!(left, stored[stored.len() - left.len()..]);
    assert!(left.len() >= KEEP);
    match p.trims {
        Trims::Exactly => {
            assert_eq!(left.len(), KEEP);
            assert_eq!(p.b.trim(epoch(), KEEP as u64).await?, 0);
            assert_eq!(p.b.trim(epoch(), 0).await?, KEEP as u64);
            assert!(all(&p.a).await?.is_empty());
        }
        Trims::InWholeNodes => {
            assert!(left.len() < KEEP + NODE, "{} events left", left.len());
        }
    }
    Ok(())
}

async fn an_oversized_batch_is_refused_and_writes_nothing(p: &Pair) -> R {
    assert!(p.a.append(batch(0..MAX_BATCH + 1)).await.is_err());
    assert!(all(&p.b).await?.is_empty());
    let stored = p.a.append(batch(0..MAX_BATCH)).await?;
    assert_eq!(stored.len(), MAX_BATCH);
    assert_eq!(all(&p.b).await?, stored);
    Ok(())
}
