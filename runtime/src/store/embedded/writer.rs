//! The embedded store's license writer: one thread that commits license writes in groups.
//!
//! Every license write is a redb write transaction, and a durable commit costs an fsync, so
//! one transaction per write held the embedded store to about 1,000 session starts per
//! second whatever the CPU. Writes that arrive while a commit is under way wait in a queue;
//! the writer takes all of them (at most [`MAX_GROUP`]) into the next transaction and
//! commits once, so they share one fsync. Within a group each write sees the ones before
//! it, exactly as if each had been committed on its own in that order, and no caller hears
//! back before the commit that holds its write is durable.
//!
//! A write that fails (a refusal such as "license not found", or a storage error) may have
//! put part of its change into the group's transaction, and redb cannot undo part of a
//! transaction. The group is then dropped uncommitted and each of its writes runs again in a
//! transaction of its own, so one failing write never fails or changes another.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use redb::Database;
use tessera_actors::StoreError;
use tokio::sync::oneshot;

use super::tables::{WriteTables, unavailable};

/// Most writes committed together.
const MAX_GROUP: usize = 256;

/// Histogram of the writes per commit.
pub(crate) const COMMIT_WRITES: &str = "tessera_store_commit_writes";

/// A queued write, type-erased for the queue.
trait Job: Send {
    /// Applies the write to `tables`, keeping its result; `false` if it failed.
    fn run(&mut self, tables: &mut WriteTables<'_>) -> bool;
    /// Answers the caller: the kept result, or `failure` when the commit failed.
    fn finish(self: Box<Self>, failure: Option<StoreError>);
}

struct Pending<T, F> {
    write: F,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnMut(&mut WriteTables<'_>) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, tables: &mut WriteTables<'_>) -> bool {
        let result = (self.write)(tables);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, failure: Option<StoreError>) {
        let result = match (failure, self.result) {
            (Some(e), _) => Err(e),
            (None, Some(r)) => r,
            (None, None) => Err(unavailable("the write was not applied")),
        };
        // The caller may have given up waiting; the write stands either way.
        let _ = self.reply.send(result);
    }
}

/// Handle of the writer thread; dropping it lets the queue drain and joins the thread.
pub(super) struct LicenseWriter {
    queue: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LicenseWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LicenseWriter").finish_non_exhaustive()
    }
}

impl LicenseWriter {
    /// Starts the writer thread on `db`.
    pub(super) fn start(db: Arc<Database>) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel::<Box<dyn Job>>();
        let thread = std::thread::Builder::new()
            .name("tessera-store-writer".into())
            .spawn(move || {
                while let Ok(first) = jobs.recv() {
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match jobs.try_recv() {
                            Ok(job) => group.push(job),
                            Err(_) => break,
                        }
                    }
                    // A panicking write drops its group's replies (their callers get an
                    // error) but must not stop the writer.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| commit(&db, group)));
                }
            })?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Applies `write` in the next group and returns its result once that group is durable.
    /// `write` may run twice (see the module documentation), so it must not consume what it
    /// captures.
    pub(super) async fn write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut WriteTables<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let stopped = || unavailable("the writer has stopped");
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Pending {
            write,
            result: None,
            reply,
        });
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl Drop for LicenseWriter {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has committed what is queued; joining
        // it releases its handle on the database, so the file can be opened again at once.
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Commits `group`: together if every write succeeds, else each write on its own.
fn commit(db: &Database, mut group: Vec<Box<dyn Job>>) {
    if group.len() == 1 {
        group.into_iter().for_each(|job| commit_alone(db, job));
        return;
    }
    match run_together(db, &mut group) {
        Ok(true) => group.into_iter().for_each(|job| job.finish(None)),
        Ok(false) => group.into_iter().for_each(|job| commit_alone(db, job)),
        Err(e) => group
            .into_iter()
            .for_each(|job| job.finish(Some(e.clone()))),
    }
}

/// Runs every write of `group` in one transaction and commits it; `Ok(false)` (nothing
/// committed) as soon as one write fails.
fn run_together(db: &Database, group: &mut [Box<dyn Job>]) -> Result<bool, StoreError> {
    let tx = db.begin_write().map_err(unavailable)?;
    {
        let mut tables = WriteTables::open(&tx)?;
        if !group.iter_mut().all(|job| job.run(&mut tables)) {
            return Ok(false);
        }
    }
    tx.commit().map_err(unavailable)?;
    metrics::histogram!(COMMIT_WRITES).record(group.len() as f64);
    Ok(true)
}

/// Runs one write in its own transaction, committed only if it succeeds.
fn commit_alone(db: &Database, mut job: Box<dyn Job>) {
    let failure = (|| {
        let tx = db.begin_write().map_err(unavailable)?;
        let ok = {
            let mut tables = WriteTables::open(&tx)?;
            job.run(&mut tables)
        };
        if ok {
            tx.commit().map_err(unavailable)?;
            metrics::histogram!(COMMIT_WRITES).record(1.0);
        }
        Ok::<(), StoreError>(())
    })()
    .err();
    job.finish(failure);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::time::Duration;

    use chrono::Utc;
    use tessera_actors::{LicenseKey, LicenseRecord, Store};

    use super::*;
    use crate::store::embedded::EmbeddedStore;

    fn record(key: &str) -> LicenseRecord {
        LicenseRecord::new(LicenseKey::parse(key).unwrap(), "app", "pro", Utc::now())
    }

    /// Holds the writer inside a write until the returned sender is dropped, so that writes
    /// sent meanwhile queue up and are committed as one group.
    async fn hold_writer(
        store: &EmbeddedStore,
    ) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (entered, is_in) = oneshot::channel::<()>();
        let mut entered = Some(entered);
        let s = store.clone();
        let held = tokio::spawn(async move {
            s.writer()
                .write(move |_| {
                    if let Some(tx) = entered.take() {
                        let _ = tx.send(());
                    }
                    let _ = wait.recv();
                    Ok(())
                })
                .await
                .unwrap();
        });
        is_in.await.unwrap();
        (release, held)
    }

    #[tokio::test]
    async fn a_failing_write_in_a_group_neither_fails_nor_changes_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("t.redb")).unwrap();
        let first = store.create_license(record("AAAA-0001")).await.unwrap();

        let (release, held) = hold_writer(&store).await;
        // Queued behind the held write: B, a duplicate of the first license (refused), D.
        let calls = ["AAAA-0002", "AAAA-0001", "AAAA-0004"].map(|k| {
            let s = store.clone();
            tokio::spawn(async move { s.create_license(record(k)).await })
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(release);
        held.await.unwrap();
        let [b, dup, d] = calls;
        let (b, dup, d) = (b.await.unwrap(), dup.await.unwrap(), d.await.unwrap());

        assert_eq!(dup, Err(StoreError::AlreadyExists));
        // The group was dropped uncommitted and B and D ran again alone: their ids follow
        // the first license's without a gap, each license exists once.
        assert_eq!(b.unwrap().id, first.id + 1);
        assert_eq!(d.unwrap().id, first.id + 2);
        for k in ["AAAA-0001", "AAAA-0002", "AAAA-0004"] {
            let key = LicenseKey::parse(k).unwrap();
            assert!(store.load(&key).await.unwrap().is_some(), "{k}");
        }
        let listed = store.list_licenses(None, 10).await.unwrap();
        assert_eq!(listed.len(), 3);
    }

    #[tokio::test]
    async fn concurrent_writes_are_all_durable_and_answered_in_their_own_terms() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        let store = EmbeddedStore::open(&path).unwrap();
        let (release, held) = hold_writer(&store).await;
        let calls: Vec<_> = (0..40)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(async move { s.create_license(record(&format!("BBBB-{i:04}"))).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(release);
        held.await.unwrap();
        let mut ids = Vec::new();
        for c in calls {
            ids.push(c.await.unwrap().unwrap().id);
        }
        ids.sort_unstable();
        assert_eq!(ids, (1..=40).collect::<Vec<u64>>());
        // Durable: a fresh open of the file sees all of them.
        drop(store);
        let reopened = EmbeddedStore::open(&path).unwrap();
        assert_eq!(reopened.list_licenses(None, 100).await.unwrap().len(), 40);
    }
}
