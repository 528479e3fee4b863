//! The [`CatalogStore`] conformance suite: every test runs on the embedded store, a Redis and
//! a three-primary Redis Cluster (`on_embedded::NAME`, `on_redis::NAME`,
//! `on_redis_cluster::NAME`). Each gets two handles on one store: two separate `RedisStore`
//! connections on Redis, one shared store on embedded (its calls run concurrently on blocking
//! threads). The race tests go through both at once.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod redis_support;

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tessera::store::CatalogStore;
use tessera::store::EmbeddedStore;
use tessera::store::catalog::{CatalogKind, Entry, MAX_TERMS, numeric_id};
use tessera::store::redis::RedisStore;
use tessera_integration_tests::RedisServer;

use CatalogKind::{Customer, Device, License, Plan, Product};

type R = anyhow::Result<()>;
type Store = Arc<dyn CatalogStore>;

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
    ids_count_from_one_per_kind_and_are_unique_across_handles,
    swap_creates_replaces_and_refuses_a_stale_expectation,
    delete_removes_the_value_and_its_terms,
    list_pages_in_id_order_and_keeps_kinds_apart,
    prefix_search_is_in_term_order_each_id_once_within_the_limit,
    an_id_matching_many_terms_counts_once,
    exact_search_pages_by_id_with_after,
    replaced_terms_leave_the_index,
    set_terms_replaces_and_removes_index_only_entries,
    entries_breaking_the_contract_are_refused_and_write_nothing,
    two_handles_racing_a_swap_exactly_one_wins,
);

// ---- helpers ----

fn terms(t: &[&str]) -> Vec<String> {
    t.iter().map(|s| (*s).to_owned()).collect()
}

/// Creates `(kind, id)` with `value` and `terms`; fails if it already exists.
async fn put(s: &Store, kind: CatalogKind, id: &str, value: &[u8], t: &[&str]) -> R {
    let t = terms(t);
    let entry = Entry { value, terms: &t };
    anyhow::ensure!(
        s.swap(kind, id, None, Some(entry)).await?,
        "{id} already existed"
    );
    Ok(())
}

async fn find(s: &Store, kind: CatalogKind, prefix: &str, limit: usize) -> Vec<String> {
    s.search(kind, prefix, false, None, limit).await.unwrap()
}

async fn exact(
    s: &Store,
    kind: CatalogKind,
    term: &str,
    after: Option<&str>,
    limit: usize,
) -> Vec<String> {
    s.search(kind, term, true, after, limit).await.unwrap()
}

async fn ids(s: &Store, kind: CatalogKind, after: Option<&str>, limit: usize) -> Vec<String> {
    s.list(kind, after, limit)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

fn n(i: u64) -> String {
    numeric_id(i)
}

// ---- conformance ----

async fn ids_count_from_one_per_kind_and_are_unique_across_handles(a: Store, b: Store) -> R {
    assert_eq!(a.next_id(Customer).await?, 1);
    assert_eq!(b.next_id(Customer).await?, 2);
    assert_eq!(a.next_id(Customer).await?, 3);
    // Each kind counts on its own.
    assert_eq!(b.next_id(Product).await?, 1);
    assert_eq!(a.next_id(Plan).await?, 1);

    const EACH: usize = 40;
    let mut tasks = Vec::new();
    for s in [&a, &b] {
        for _ in 0..EACH {
            let s = Arc::clone(s);
            tasks.push(tokio::spawn(async move { s.next_id(Customer).await }));
        }
    }
    let mut got = BTreeSet::new();
    for t in tasks {
        assert!(got.insert(t.await??), "an id was handed out twice");
    }
    let want: BTreeSet<u64> = (4..4 + 2 * EACH as u64).collect();
    assert_eq!(got, want, "no gaps, no repeats");
    assert_eq!(b.next_id(Product).await?, 2);
    Ok(())
}

async fn swap_creates_replaces_and_refuses_a_stale_expectation(s: Store, _: Store) -> R {
    let id = n(1);
    // Binary values: NUL, 0xFF, invalid UTF-8 come back unchanged.
    let v1: &[u8] = b"\x00one\xff\xfe";
    let v2: &[u8] = b"two\x00";
    let t1 = terms(&["acme", "alice@acme.io"]);
    assert_eq!(s.get(Customer, &id).await?, None);
    assert!(
        !s.swap(
            Customer,
            &id,
            Some(v1),
            Some(Entry {
                value: v1,
                terms: &t1
            })
        )
        .await?,
        "expected a value that is not there"
    );
    assert_eq!(s.get(Customer, &id).await?, None);
    assert!(
        s.swap(
            Customer,
            &id,
            None,
            Some(Entry {
                value: v1,
                terms: &t1
            })
        )
        .await?
    );
    assert_eq!(s.get(Customer, &id).await?.as_deref(), Some(v1));

    // A stale expectation (absent, or another value) writes nothing: not the value, not terms.
    let other = terms(&["zulu"]);
    for stale in [None, Some(&b"\x00one\xff"[..]), Some(v2)] {
        assert!(
            !s.swap(
                Customer,
                &id,
                stale,
                Some(Entry {
                    value: v2,
                    terms: &other
                })
            )
            .await?
        );
        assert!(!s.swap(Customer, &id, stale, None).await?);
    }
    assert_eq!(s.get(Customer, &id).await?.as_deref(), Some(v1));
    assert!(find(&s, Customer, "zulu", 10).await.is_empty());
    assert_eq!(find(&s, Customer, "acme", 10).await, vec![id.clone()]);

    let t2 = terms(&["acme", "bravo"]);
    assert!(
        s.swap(
            Customer,
            &id,
            Some(v1),
            Some(Entry {
                value: v2,
                terms: &t2
            })
        )
        .await?
    );
    assert_eq!(s.get(Customer, &id).await?.as_deref(), Some(v2));
    assert_eq!(find(&s, Customer, "bravo", 10).await, vec![id.clone()]);
    // An empty value is a value, not an absence.
    assert!(
        s.swap(
            Customer,
            &id,
            Some(v2),
            Some(Entry {
                value: b"",
                terms: &t2
            })
        )
        .await?
    );
    assert_eq!(s.get(Customer, &id).await?, Some(Vec::new()));
    assert!(!s.swap(Customer, &id, None, None).await?);
    // The same id in another kind is another record.
    assert_eq!(s.get(Product, &id).await?, None);
    Ok(())
}

async fn delete_removes_the_value_and_its_terms(s: Store, _: Store) -> R {
    put(&s, Customer, &n(1), b"one", &["acme", "anvil"]).await?;
    put(&s, Customer, &n(2), b"two", &["acme"]).await?;
    assert_eq!(find(&s, Customer, "a", 10).await, vec![n(1), n(2)]);

    assert!(s.swap(Customer, &n(1), Some(b"one"), None).await?);
    assert_eq!(s.get(Customer, &n(1)).await?, None);
    assert_eq!(ids(&s, Customer, None, 10).await, vec![n(2)]);
    assert_eq!(find(&s, Customer, "a", 10).await, vec![n(2)]);
    assert!(find(&s, Customer, "anvil", 10).await.is_empty());
    assert_eq!(exact(&s, Customer, "acme", None, 10).await, vec![n(2)]);
    // Gone: deleting it again expects a value that is not there.
    assert!(!s.swap(Customer, &n(1), Some(b"one"), None).await?);
    // And it can be created again.
    put(&s, Customer, &n(1), b"again", &["bolt"]).await?;
    assert_eq!(find(&s, Customer, "", 10).await, vec![n(2), n(1)]);
    Ok(())
}

async fn list_pages_in_id_order_and_keeps_kinds_apart(s: Store, b: Store) -> R {
    for i in [3, 10, 1, 2, 100] {
        put(&s, Customer, &n(i), format!("c{i}").as_bytes(), &["x"]).await?;
    }
    put(&s, Product, "pro", b"p1", &["x"]).await?;
    put(&s, Product, "basic", b"p2", &["x"]).await?;
    put(&s, Plan, "gold", b"g", &["x"]).await?;
    s.set_terms(License, &n(7), &terms(&["x"])).await?;

    let all = b.list(Customer, None, 100).await?;
    assert_eq!(
        all,
        [1, 2, 3, 10, 100]
            .map(|i| (n(i), format!("c{i}").into_bytes()))
            .to_vec(),
        "numeric ids list in numeric order, with their values"
    );
    // Pages of two, each continuing after the last id of the one before.
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = ids(&s, Customer, after.as_deref(), 2).await;
        if page.is_empty() {
            break;
        }
        after = page.last().cloned();
        pages.push(page);
    }
    assert_eq!(
        pages,
        vec![vec![n(1), n(2)], vec![n(3), n(10)], vec![n(100)]]
    );
    // `after` need not be an existing id.
    assert_eq!(
        ids(&s, Customer, Some(&n(5)), 10).await,
        vec![n(10), n(100)]
    );
    assert!(ids(&s, Customer, None, 0).await.is_empty());
    assert!(ids(&s, Customer, Some(&n(100)), 10).await.is_empty());

    assert_eq!(ids(&s, Product, None, 10).await, vec!["basic", "pro"]);
    assert_eq!(ids(&s, Product, Some("basic"), 10).await, vec!["pro"]);
    assert_eq!(ids(&s, Plan, None, 10).await, vec!["gold"]);
    // Index-only entries are not records.
    assert!(ids(&s, License, None, 10).await.is_empty());
    assert!(ids(&s, Device, None, 10).await.is_empty());
    // Each kind searches its own index.
    assert_eq!(find(&s, Product, "x", 10).await, vec!["basic", "pro"]);
    assert_eq!(find(&s, Plan, "x", 10).await, vec!["gold"]);
    assert_eq!(find(&s, License, "x", 10).await, vec![n(7)]);
    assert_eq!(find(&s, Customer, "x", 10).await.len(), 5);
    assert!(find(&s, Device, "x", 10).await.is_empty());
    Ok(())
}

async fn prefix_search_is_in_term_order_each_id_once_within_the_limit(s: Store, _: Store) -> R {
    put(
        &s,
        Customer,
        &n(1),
        b"",
        &["acme", "acme corp", "alice@acme.io"],
    )
    .await?;
    put(&s, Customer, &n(2), b"", &["acme industries", "bob"]).await?;
    put(&s, Customer, &n(3), b"", &["aardvark"]).await?;
    put(&s, Customer, &n(4), b"", &["zeta", "ac"]).await?;
    put(&s, Product, "p", b"", &["acme"]).await?;

    // (term, id) order: "aardvark"(3) "ac"(4) "acme"(1) "acme corp"(1) "acme industries"(2) …
    assert_eq!(
        find(&s, Customer, "a", 10).await,
        vec![n(3), n(4), n(1), n(2)]
    );
    assert_eq!(find(&s, Customer, "ac", 10).await, vec![n(4), n(1), n(2)]);
    assert_eq!(find(&s, Customer, "acme", 10).await, vec![n(1), n(2)]);
    assert_eq!(find(&s, Customer, "acme ", 10).await, vec![n(1), n(2)]);
    assert_eq!(find(&s, Customer, "acme i", 10).await, vec![n(2)]);
    assert_eq!(find(&s, Customer, "b", 10).await, vec![n(2)]);
    assert!(find(&s, Customer, "q", 10).await.is_empty());
    assert!(find(&s, Customer, "acme corp ltd", 10).await.is_empty());
    // An empty prefix matches every term.
    assert_eq!(
        find(&s, Customer, "", 10).await,
        vec![n(3), n(4), n(1), n(2)]
    );
    // The limit counts distinct ids.
    assert_eq!(find(&s, Customer, "a", 2).await, vec![n(3), n(4)]);
    assert_eq!(find(&s, Customer, "acme", 1).await, vec![n(1)]);
    assert!(find(&s, Customer, "a", 0).await.is_empty());
    // No term holds a NUL, so no prefix with one matches (it must not reach into ids).
    assert!(find(&s, Customer, "acme\0", 10).await.is_empty());
    assert!(exact(&s, Customer, "acme\0", None, 10).await.is_empty());
    // Exact: the term itself, not longer ones.
    assert_eq!(exact(&s, Customer, "acme", None, 10).await, vec![n(1)]);
    assert_eq!(exact(&s, Customer, "ac", None, 10).await, vec![n(4)]);
    assert!(exact(&s, Customer, "a", None, 10).await.is_empty());
    // Non-ASCII terms order bytewise like the rest.
    put(&s, Customer, &n(5), b"", &["acmé", "ácme"]).await?;
    assert_eq!(find(&s, Customer, "acm", 10).await, vec![n(1), n(2), n(5)]);
    assert_eq!(find(&s, Customer, "á", 10).await, vec![n(5)]);
    Ok(())
}

async fn an_id_matching_many_terms_counts_once(s: Store, _: Store) -> R {
    // "a" holds MAX_TERMS terms t00…t63; "b" one that sorts among them, "c" one after.
    let many: Vec<String> = (0..MAX_TERMS).map(|i| format!("t{i:02}")).collect();
    let entry = Entry {
        value: b"a",
        terms: &many,
    };
    assert!(s.swap(Plan, "a", None, Some(entry)).await?);
    put(&s, Plan, "b", b"b", &["t30b"]).await?;
    put(&s, Plan, "c", b"c", &["t99"]).await?;
    put(&s, Plan, "d", b"d", &["u"]).await?;
    assert_eq!(find(&s, Plan, "t", 10).await, vec!["a", "b", "c"]);
    assert_eq!(find(&s, Plan, "t", 3).await, vec!["a", "b", "c"]);
    assert_eq!(find(&s, Plan, "t", 2).await, vec!["a", "b"]);
    assert_eq!(find(&s, Plan, "t", 1).await, vec!["a"]);
    assert_eq!(find(&s, Plan, "t3", 10).await, vec!["a", "b"]);
    assert_eq!(find(&s, Plan, "t4", 10).await, vec!["a"]);
    assert_eq!(find(&s, Plan, "", 10).await, vec!["a", "b", "c", "d"]);

    // Many ids, several terms each, all matching: still each once, in first-term order.
    let per: Vec<String> = (0..5).map(|i| format!("w{i}")).collect();
    for i in 0..300u64 {
        s.set_terms(License, &n(i), &per).await?;
    }
    let got = find(&s, License, "w", 250).await;
    assert_eq!(got, (0..250).map(n).collect::<Vec<_>>());
    let got = find(&s, License, "w", 1000).await;
    assert_eq!(got.len(), 300);
    assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), 300);
    Ok(())
}

async fn exact_search_pages_by_id_with_after(s: Store, b: Store) -> R {
    for i in [5, 1, 4, 2, 3] {
        s.set_terms(
            Device,
            &format!("{}/{}", n(9), n(i)),
            &terms(&["tag", "other"]),
        )
        .await?;
    }
    s.set_terms(Device, &format!("{}/{}", n(9), n(6)), &terms(&["tagalong"]))
        .await?;
    s.set_terms(Device, &format!("{}/{}", n(8), n(1)), &terms(&["ta"]))
        .await?;
    let dev = |i: u64| format!("{}/{}", n(9), n(i));

    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = exact(&b, Device, "tag", after.as_deref(), 2).await;
        if page.is_empty() {
            break;
        }
        after = page.last().cloned();
        pages.push(page);
    }
    assert_eq!(
        pages,
        vec![vec![dev(1), dev(2)], vec![dev(3), dev(4)], vec![dev(5)]]
    );
    // `after` need not be an id of the term.
    assert_eq!(
        exact(
            &s,
            Device,
            "tag",
            Some(&format!("{}/{}", n(9), "00000000000000000002x")),
            10
        )
        .await,
        vec![dev(3), dev(4), dev(5)]
    );
    assert!(exact(&s, Device, "tag", Some(&dev(5)), 10).await.is_empty());
    assert!(exact(&s, Device, "tag", None, 0).await.is_empty());
    // The prefix search also finds the longer term, each id once.
    assert_eq!(
        find(&s, Device, "tag", 10).await,
        vec![dev(1), dev(2), dev(3), dev(4), dev(5), dev(6)]
    );
    assert_eq!(
        find(&s, Device, "ta", 10).await,
        vec![
            format!("{}/{}", n(8), n(1)),
            dev(1),
            dev(2),
            dev(3),
            dev(4),
            dev(5),
            dev(6)
        ]
    );
    assert_eq!(exact(&s, Device, "tagalong", None, 10).await, vec![dev(6)]);
    Ok(())
}

async fn replaced_terms_leave_the_index(s: Store, _: Store) -> R {
    put(&s, Customer, &n(1), b"v1", &["old name", "shared"]).await?;
    put(&s, Customer, &n(2), b"w", &["old name"]).await?;
    let t = terms(&["new name", "shared"]);
    assert!(
        s.swap(
            Customer,
            &n(1),
            Some(b"v1"),
            Some(Entry {
                value: b"v2",
                terms: &t
            })
        )
        .await?
    );
    assert_eq!(find(&s, Customer, "old", 10).await, vec![n(2)]);
    assert_eq!(exact(&s, Customer, "old name", None, 10).await, vec![n(2)]);
    assert_eq!(find(&s, Customer, "new", 10).await, vec![n(1)]);
    assert_eq!(find(&s, Customer, "shared", 10).await, vec![n(1)]);
    // Duplicated terms are one term: replacing them leaves nothing behind.
    let dup = terms(&["dup", "dup", "x"]);
    assert!(
        s.swap(
            Customer,
            &n(1),
            Some(b"v2"),
            Some(Entry {
                value: b"v3",
                terms: &dup
            })
        )
        .await?
    );
    assert!(
        s.swap(
            Customer,
            &n(1),
            Some(b"v3"),
            Some(Entry {
                value: b"v4",
                terms: &[]
            })
        )
        .await?
    );
    assert!(find(&s, Customer, "dup", 10).await.is_empty());
    assert!(find(&s, Customer, "x", 10).await.is_empty());
    assert_eq!(find(&s, Customer, "", 10).await, vec![n(2)]);
    assert_eq!(s.get(Customer, &n(1)).await?.as_deref(), Some(&b"v4"[..]));
    assert_eq!(ids(&s, Customer, None, 10).await, vec![n(1), n(2)]);
    Ok(())
}

async fn set_terms_replaces_and_removes_index_only_entries(s: Store, b: Store) -> R {
    s.set_terms(License, &n(1), &terms(&["alpha", "acme"]))
        .await?;
    s.set_terms(License, &n(2), &terms(&["acme"])).await?;
    assert_eq!(find(&b, License, "a", 10).await, vec![n(1), n(2)]);
    assert_eq!(exact(&b, License, "acme", None, 10).await, vec![n(1), n(2)]);

    b.set_terms(License, &n(1), &terms(&["beta"])).await?;
    assert_eq!(find(&s, License, "a", 10).await, vec![n(2)]);
    assert!(find(&s, License, "alpha", 10).await.is_empty());
    assert_eq!(find(&s, License, "b", 10).await, vec![n(1)]);

    s.set_terms(License, &n(1), &[]).await?;
    assert!(find(&s, License, "b", 10).await.is_empty());
    assert_eq!(find(&s, License, "", 10).await, vec![n(2)]);
    // Removing what is not there is no error.
    s.set_terms(License, &n(1), &[]).await?;
    s.set_terms(License, &n(3), &[]).await?;
    // An empty term is a term like any other.
    s.set_terms(License, &n(3), &terms(&["", "z"])).await?;
    assert_eq!(exact(&s, License, "", None, 10).await, vec![n(3)]);
    s.set_terms(License, &n(3), &terms(&["z"])).await?;
    assert!(exact(&s, License, "", None, 10).await.is_empty());
    assert_eq!(find(&s, License, "", 10).await, vec![n(2), n(3)]);
    // Index entries have no records and leave the other kinds alone.
    assert_eq!(s.get(License, &n(2)).await?, None);
    assert!(ids(&s, License, None, 10).await.is_empty());
    assert!(find(&s, Device, "", 10).await.is_empty());
    assert!(find(&s, Customer, "", 10).await.is_empty());
    Ok(())
}

async fn entries_breaking_the_contract_are_refused_and_write_nothing(s: Store, _: Store) -> R {
    fn entry(terms: &[String]) -> Entry<'_> {
        Entry { value: b"v", terms }
    }
    let too_many: Vec<String> = (0..=MAX_TERMS).map(|i| format!("t{i}")).collect();
    let nul = terms(&["a\0b"]);
    let long = vec!["x".repeat(65)];
    for bad in [&too_many, &nul, &long] {
        assert!(s.swap(Plan, "p", None, Some(entry(bad))).await.is_err());
        assert!(s.set_terms(License, &n(1), bad).await.is_err());
    }
    assert!(s.swap(Plan, "p\0q", None, Some(entry(&[]))).await.is_err());
    assert!(s.set_terms(License, &"9".repeat(201), &[]).await.is_err());
    assert_eq!(s.get(Plan, "p").await?, None);
    assert!(find(&s, Plan, "", 10).await.is_empty());
    assert!(find(&s, License, "", 10).await.is_empty());
    // At the limits is fine.
    let most: Vec<String> = (0..MAX_TERMS).map(|i| format!("{i:064}")).collect();
    s.set_terms(License, &"9".repeat(200), &most).await?;
    assert_eq!(find(&s, License, "", 10).await, vec!["9".repeat(200)]);
    Ok(())
}

async fn two_handles_racing_a_swap_exactly_one_wins(a: Store, b: Store) -> R {
    const ROUNDS: u64 = 25;
    for round in 0..ROUNDS {
        let id = n(round);
        put(&a, Customer, &id, b"v0", &["start"]).await?;
        let race = |s: &Store, who: &'static str| {
            let (s, id) = (Arc::clone(s), id.clone());
            tokio::spawn(async move {
                let t = terms(&[who]);
                let entry = Entry {
                    value: who.as_bytes(),
                    terms: &t,
                };
                s.swap(Customer, &id, Some(b"v0"), Some(entry)).await
            })
        };
        let (x, y) = (race(&a, "alpha"), race(&b, "bravo"));
        let (x, y) = (x.await??, y.await??);
        let (winner, loser) = match (x, y) {
            (true, false) => ("alpha", "bravo"),
            (false, true) => ("bravo", "alpha"),
            other => panic!("round {round}: not exactly one winner: {other:?}"),
        };
        assert_eq!(
            b.get(Customer, &id).await?.as_deref(),
            Some(winner.as_bytes())
        );
        assert!(exact(&a, Customer, winner, None, 1000).await.contains(&id));
        assert!(!exact(&a, Customer, loser, None, 1000).await.contains(&id));
        assert!(!exact(&b, Customer, "start", None, 1000).await.contains(&id));
    }
    let listed = b.list(Customer, None, 1000).await?;
    assert_eq!(listed.len(), ROUNDS as usize);
    let found: BTreeSet<String> = find(&a, Customer, "", 1000).await.into_iter().collect();
    assert_eq!(found.len(), ROUNDS as usize);
    Ok(())
}

#[tokio::test]
async fn after_redis_forgets_its_scripts_the_catalog_script_is_loaded_again() -> R {
    let server = tokio::task::spawn_blocking(redis_support::Redis::start).await??;
    let store: Store = Arc::new(RedisStore::connect(&server.url, Duration::from_secs(5)).await?);
    put(&store, Plan, "a", b"1", &["x"]).await?;
    // What a restarted or failed-over Redis looks like to the script cache.
    server.cli(&["SCRIPT", "FLUSH"])?;
    put(&store, Plan, "b", b"2", &["x"]).await?;
    assert_eq!(find(&store, Plan, "x", 10).await, vec!["a", "b"]);
    assert_eq!(ids(&store, Plan, None, 10).await, vec!["a", "b"]);
    Ok(())
}
