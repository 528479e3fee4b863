//! The public face of the actors: routes each license to its shard, supervises the
//! shards, runs the heartbeat flusher and the recovery sweep.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use parking_lot::{Mutex, RwLock};
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::messages::{LicenseError, LicenseEvent, Reply, Request};
use crate::model::{EndReason, LicenseKey, LicenseRecord, SessionRecord, TokenHash};
use crate::settings::SharedRules;
use crate::shard::{Shard, ShardContext, ShardMsg};
use crate::store::{Store, StoreError};
use crate::write_behind::WriteBehind;

/// Receives license events (sessions started and ended, status changes, refusals).
/// Called on the shard loop: implementations must not block.
pub trait EventSink: Send + Sync + 'static {
    /// Handles one event.
    fn emit(&self, event: &LicenseEvent);

    /// A change of `key` is now in the store: other nodes holding the license in memory
    /// should refresh it (see [`Registry::refresh`]).
    fn changed(&self, _key: &LicenseKey) {}

    /// A session this node held ended on another node: the store no longer has it when the
    /// license was refreshed. That node wrote the event; this one only tells its own
    /// listeners (connections carrying the session).
    fn ended_elsewhere(&self, _key: &LicenseKey, _session: &SessionRecord, _reason: EndReason) {}
}

/// Discards events.
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _event: &LicenseEvent) {}
}

/// How the actor system runs.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Number of shard actors (0 = one per CPU).
    pub shards: usize,
    /// Upper bound on one store call.
    pub op_timeout: Duration,
    /// Heartbeat write-behind interval.
    pub flush_interval: Duration,
    /// How often the store is asked for sessions that died while nobody watched them.
    pub sweep_interval: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            shards: 0,
            op_timeout: Duration::from_secs(2),
            flush_interval: Duration::from_secs(1),
            sweep_interval: Duration::from_secs(30),
        }
    }
}

type ShardTable = Arc<RwLock<Vec<ActorRef<ShardMsg>>>>;

struct Supervisor;

struct SupervisorArgs {
    ctx: Arc<ShardContext>,
    table: ShardTable,
    count: usize,
}

enum SupervisorMsg {}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorArgs;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorArgs, ActorProcessingErr> {
        let mut shards = Vec::with_capacity(args.count);
        for _ in 0..args.count {
            let (shard, _) =
                Actor::spawn_linked(None, Shard, Arc::clone(&args.ctx), myself.get_cell()).await?;
            shards.push(shard);
        }
        *args.table.write() = shards;
        Ok(args)
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorArgs,
    ) -> Result<(), ActorProcessingErr> {
        let dead = match &event {
            SupervisionEvent::ActorFailed(cell, err) => {
                tracing::error!(error = %err, "shard failed; restarting it");
                Some(cell.get_id())
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => Some(cell.get_id()),
            _ => None,
        };
        let Some(dead) = dead else {
            return Ok(());
        };
        let index = state.table.read().iter().position(|s| s.get_id() == dead);
        if let Some(index) = index {
            metrics::counter!("tessera_shard_restarts_total").increment(1);
            let (shard, _) =
                Actor::spawn_linked(None, Shard, Arc::clone(&state.ctx), myself.get_cell()).await?;
            state.table.write()[index] = shard;
        }
        Ok(())
    }
}

/// Handle to the running license actors. Cheap to clone.
#[derive(Clone)]
pub struct Licenses {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Licenses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Licenses")
            .field("shards", &self.inner.table.read().len())
            .field("write_behind_depth", &self.inner.ctx.write_behind.depth())
            .finish()
    }
}

struct Inner {
    table: ShardTable,
    ctx: Arc<ShardContext>,
    supervisor: ActorRef<SupervisorMsg>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Licenses {
    /// Starts the shards, the heartbeat flusher and the recovery sweep.
    pub async fn start(
        store: Arc<dyn Store>,
        rules: SharedRules,
        events: Arc<dyn EventSink>,
        config: RegistryConfig,
    ) -> Result<Self, ractor::SpawnErr> {
        let count = if config.shards == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            config.shards
        };
        let write_behind = Arc::new(WriteBehind::new(Arc::clone(&store), count));
        let ctx = Arc::new(ShardContext {
            store,
            rules,
            write_behind: Arc::clone(&write_behind),
            events,
            booted_at: Utc::now(),
            op_timeout: config.op_timeout,
            sessions: Arc::default(),
        });
        let table: ShardTable = Arc::new(RwLock::new(Vec::new()));
        let (supervisor, _) = Actor::spawn(
            None,
            Supervisor,
            SupervisorArgs {
                ctx: Arc::clone(&ctx),
                table: Arc::clone(&table),
                count,
            },
        )
        .await?;
        let flusher = write_behind.spawn_flusher(config.flush_interval);
        let sweeper = spawn_sweeper(Arc::clone(&ctx), Arc::clone(&table), config.sweep_interval);
        Ok(Self {
            inner: Arc::new(Inner {
                table,
                ctx,
                supervisor,
                tasks: Mutex::new(vec![flusher, sweeper]),
            }),
        })
    }

    /// Sends `req` to the license's actor and waits for its reply.
    pub async fn call(&self, key: &LicenseKey, req: Request) -> Result<Reply, LicenseError> {
        let (tx, rx) = oneshot::channel();
        let shard = shard_of(&self.inner.table, key).ok_or(LicenseError::Internal)?;
        shard
            .cast(ShardMsg::Request {
                key: key.clone(),
                req,
                reply: tx,
            })
            .map_err(|_| LicenseError::Internal)?;
        rx.await.unwrap_or(Err(LicenseError::Internal))
    }

    /// Reloads `key` from the store if this node holds it in memory (another node changed
    /// it). Sessions the store no longer has end here with [`EventSink::ended_elsewhere`].
    /// Returns at once; the reload runs in the license's shard.
    pub fn refresh(&self, key: &LicenseKey) {
        if let Some(shard) = shard_of(&self.inner.table, key) {
            let _ = shard.cast(ShardMsg::Refresh { key: key.clone() });
        }
    }

    /// Reloads every license this node holds in memory (after missed change notices).
    pub fn refresh_all(&self) {
        let shards: Vec<ActorRef<ShardMsg>> = self.inner.table.read().clone();
        for shard in shards {
            let _ = shard.cast(ShardMsg::RefreshAll);
        }
    }

    /// Ends every live session held in memory on this node with `reason`, license by
    /// license through each license's actor; returns how many ended. Sessions of licenses
    /// not in memory (after a restart, before their next request) are not reached.
    pub async fn end_all_sessions(&self, reason: EndReason) -> Result<u32, LicenseError> {
        let shards: Vec<ActorRef<ShardMsg>> = self.inner.table.read().clone();
        let mut keys = Vec::new();
        for shard in shards {
            let (tx, rx) = oneshot::channel();
            if shard.cast(ShardMsg::LiveLicenses(tx)).is_ok()
                && let Ok(mut found) = rx.await
            {
                keys.append(&mut found);
            }
        }
        let mut ended = 0u32;
        for key in keys {
            match self.call(&key, Request::EndAllSessions { reason }).await {
                Ok(Reply::SessionsEnded { count }) => ended = ended.saturating_add(count),
                Ok(_) | Err(LicenseError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ended)
    }

    /// The license a live session belongs to (seed 000's session end names only the token).
    pub async fn license_of_session(
        &self,
        token: &TokenHash,
    ) -> Result<Option<LicenseKey>, LicenseError> {
        let index = &self.inner.ctx.sessions;
        if let Some(key) = index.get(token) {
            return Ok(Some(key));
        }
        let found = self
            .inner
            .ctx
            .store
            .find_session(token)
            .await
            .map_err(|_| LicenseError::StoreUnavailable)?;
        if let Some(key) = &found {
            index.insert(*token, key.clone());
        }
        Ok(found)
    }

    /// Creates a license in the store.
    pub async fn create_license(&self, record: LicenseRecord) -> Result<LicenseRecord, StoreError> {
        self.inner.ctx.store.create_license(record).await
    }

    /// The store behind the actors.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.ctx.store
    }

    /// The rules the actors enforce (replaceable at run time).
    pub fn rules(&self) -> &SharedRules {
        &self.inner.ctx.rules
    }

    /// The heartbeat write-behind buffer.
    pub fn write_behind(&self) -> &Arc<WriteBehind> {
        &self.inner.ctx.write_behind
    }

    /// Stops the shards and flushes pending heartbeats.
    pub async fn shutdown(&self) {
        for task in self.inner.tasks.lock().drain(..) {
            task.abort();
        }
        self.inner.supervisor.stop(None);
        if let Err(e) = self.inner.ctx.write_behind.flush().await {
            tracing::error!(error = %e, "final heartbeat flush failed");
        }
    }
}

fn shard_of(table: &ShardTable, key: &LicenseKey) -> Option<ActorRef<ShardMsg>> {
    let shards = table.read();
    if shards.is_empty() {
        return None;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    Some(shards[(h.finish() % shards.len() as u64) as usize].clone())
}

/// Periodically asks the store for sessions whose deadline passed (sessions of licenses
/// nobody has loaded since a restart, or left by a dead node) and hands them to their shard.
fn spawn_sweeper(ctx: Arc<ShardContext>, table: ShardTable, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = Utc::now();
            if now
                < ctx.booted_at
                    + chrono::Duration::from_std(ctx.rules.current().restart_grace)
                        .unwrap_or_default()
            {
                continue;
            }
            match ctx.store.overdue_sessions(now, 1_000).await {
                Ok(overdue) => {
                    for (key, token) in overdue {
                        if let Some(shard) = shard_of(&table, &key) {
                            let _ = shard.cast(ShardMsg::Expire { key, token });
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "overdue-session sweep failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::memory_store::MemoryStore;
    use crate::messages::DeviceRef;
    use crate::model::LicenseRecord;

    async fn started() -> (Licenses, LicenseKey, LicenseKey) {
        let store = Arc::new(MemoryStore::new());
        let a = LicenseKey::parse("AAAA-AAAA").unwrap();
        let b = LicenseKey::parse("BBBB-BBBB").unwrap();
        for k in [&a, &b] {
            store
                .create_now(LicenseRecord::new(
                    k.clone(),
                    "default",
                    "default",
                    Utc::now(),
                ))
                .unwrap();
        }
        let config = RegistryConfig {
            shards: 1,
            ..RegistryConfig::default()
        };
        let licenses = Licenses::start(store, SharedRules::default(), Arc::new(NoEvents), config)
            .await
            .unwrap();
        for k in [&a, &b] {
            licenses
                .call(
                    k,
                    Request::Activate {
                        device: DeviceRef::Hash("hw".into()),
                        machine_name: "m".into(),
                        app_version: "1".into(),
                    },
                )
                .await
                .unwrap();
        }
        (licenses, a, b)
    }

    #[tokio::test]
    async fn housekeeping_in_slices_passivates_every_idle_license_within_a_round() {
        let store = Arc::new(MemoryStore::new());
        let rules = SharedRules::new(crate::settings::Rules {
            idle_passivate: Duration::ZERO,
            ..crate::settings::Rules::default()
        });
        let config = RegistryConfig {
            shards: 1,
            ..RegistryConfig::default()
        };
        let licenses = Licenses::start(store.clone(), rules, Arc::new(NoEvents), config)
            .await
            .unwrap();
        // More licenses than ticks in a round: each tick's slice holds several.
        let keys: Vec<LicenseKey> = (0..60)
            .map(|i| LicenseKey::parse(&format!("HK{i:02}-AAAA")).unwrap())
            .collect();
        for k in &keys {
            store
                .create_now(LicenseRecord::new(
                    k.clone(),
                    "default",
                    "default",
                    Utc::now(),
                ))
                .unwrap();
            licenses.call(k, Request::Info).await.unwrap();
        }
        let shard = shard_of(&licenses.inner.table, &keys[0]).unwrap();
        let held = || async {
            let (tx, rx) = tokio::sync::oneshot::channel();
            shard.cast(ShardMsg::InMemory(tx)).unwrap();
            rx.await.unwrap()
        };
        assert!(held().await > 0, "the licenses were loaded");
        // A round is HOUSEKEEPING_TICKS ticks of 200 ms (5 s); a license the slices never
        // reach stays forever, so the deadline only has to be generous.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while held().await > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{} idle licenses still in memory after several rounds",
                held().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        licenses.shutdown().await;
    }

    #[tokio::test]
    async fn a_panic_in_one_license_drops_only_that_license_from_memory() {
        let (licenses, a, b) = started().await;
        shard_of(&licenses.inner.table, &a)
            .unwrap()
            .cast(ShardMsg::PanicIn(a.clone()))
            .unwrap();
        // Both licenses keep answering; `a` reloads from the store with its activation.
        for k in [&a, &b] {
            let Ok(Reply::Info { activations, .. }) = licenses.call(k, Request::Info).await else {
                panic!("info after panic")
            };
            assert_eq!(activations.len(), 1);
        }
        licenses.shutdown().await;
    }

    /// What a node's sink saw of changes and of sessions ended elsewhere.
    #[derive(Default)]
    struct Seen {
        changed: parking_lot::Mutex<Vec<LicenseKey>>,
        gone: parking_lot::Mutex<Vec<(TokenHash, EndReason)>>,
    }

    impl EventSink for Seen {
        fn emit(&self, _event: &LicenseEvent) {}
        fn changed(&self, key: &LicenseKey) {
            self.changed.lock().push(key.clone());
        }
        fn ended_elsewhere(&self, _key: &LicenseKey, session: &SessionRecord, reason: EndReason) {
            self.gone.lock().push((session.token_hash, reason));
        }
    }

    #[tokio::test]
    async fn a_refresh_takes_another_nodes_change_and_ends_the_sessions_it_ended() {
        let store = Arc::new(MemoryStore::new());
        let key = LicenseKey::parse("CCCC-CCCC").unwrap();
        store
            .create_now(LicenseRecord::new(
                key.clone(),
                "default",
                "default",
                Utc::now(),
            ))
            .unwrap();
        let config = RegistryConfig {
            shards: 1,
            ..RegistryConfig::default()
        };
        let (seen_a, seen_b) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
        let a = Licenses::start(
            store.clone(),
            SharedRules::default(),
            seen_a.clone(),
            config.clone(),
        )
        .await
        .unwrap();
        let b = Licenses::start(
            store.clone(),
            SharedRules::default(),
            seen_b.clone(),
            config,
        )
        .await
        .unwrap();
        let device = DeviceRef::Hash("hw".into());
        b.call(
            &key,
            Request::Activate {
                device: device.clone(),
                machine_name: "m".into(),
                app_version: "1".into(),
            },
        )
        .await
        .unwrap();
        let token = TokenHash::of("session-on-b");
        b.call(
            &key,
            Request::StartSession {
                token_hash: token,
                device,
                machine_id: "m".into(),
                version: "1".into(),
            },
        )
        .await
        .unwrap();
        assert!(
            seen_b.changed.lock().contains(&key),
            "a persisted start is a change"
        );
        // Node A loads the license (with B's session) and suspends it.
        a.call(&key, Request::Info).await.unwrap();
        a.call(
            &key,
            Request::SetStatus {
                status: crate::model::LicenseStatus::Suspended,
                reason: None,
                until: None,
            },
        )
        .await
        .unwrap();
        assert!(seen_a.changed.lock().contains(&key));
        // Until B refreshes, its cached copy still serves the session.
        assert!(
            b.call(&key, Request::Heartbeat { token_hash: token })
                .await
                .is_ok()
        );
        b.refresh(&key);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while seen_b.gone.lock().is_empty() {
            assert!(std::time::Instant::now() < deadline, "B never refreshed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(*seen_b.gone.lock(), [(token, EndReason::Suspended)]);
        assert_eq!(
            b.call(&key, Request::Heartbeat { token_hash: token })
                .await
                .err(),
            Some(LicenseError::SessionExpired)
        );
        assert_eq!(
            b.call(&key, Request::Verify { device: None }).await.err(),
            Some(LicenseError::Suspended)
        );
        // Refreshing a license B does not hold, or again, changes nothing.
        b.refresh(&LicenseKey::parse("DDDD-DDDD").unwrap());
        b.refresh_all();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(seen_b.gone.lock().len(), 1);
        a.shutdown().await;
        b.shutdown().await;
    }

    #[tokio::test]
    async fn a_refusal_from_a_stale_copy_is_confirmed_against_the_store_first() {
        let store = Arc::new(MemoryStore::new());
        let key = LicenseKey::parse("EEEE-EEEE").unwrap();
        let mut record = LicenseRecord::new(key.clone(), "default", "default", Utc::now());
        record.overrides.max_sessions = Some(1);
        record.overrides.max_devices = Some(2);
        store.create_now(record).unwrap();
        let config = RegistryConfig {
            shards: 1,
            ..RegistryConfig::default()
        };
        let a = Licenses::start(
            store.clone(),
            SharedRules::default(),
            Arc::new(NoEvents),
            config.clone(),
        )
        .await
        .unwrap();
        let b = Licenses::start(store, SharedRules::default(), Arc::new(NoEvents), config)
            .await
            .unwrap();
        let activate = |hw: &str| Request::Activate {
            device: DeviceRef::Hash(hw.into()),
            machine_name: "m".into(),
            app_version: "1".into(),
        };
        let start = |token: TokenHash, hw: &str| Request::StartSession {
            token_hash: token,
            device: DeviceRef::Hash(hw.into()),
            machine_id: "m".into(),
            version: "1".into(),
        };
        // B holds the license before A changes it; no change notice reaches B here.
        b.call(&key, Request::Info).await.unwrap();
        a.call(&key, activate("hw-a")).await.unwrap();
        let first = TokenHash::of("first");
        a.call(&key, start(first, "hw-a")).await.unwrap();
        // A device and a session B's copy lacks are found in the store, not refused.
        assert!(
            b.call(
                &key,
                Request::Verify {
                    device: Some(DeviceRef::Hash("hw-a".into()))
                }
            )
            .await
            .is_ok()
        );
        b.call(&key, Request::Heartbeat { token_hash: first })
            .await
            .unwrap();
        // A full limit is confirmed by the store as well: A ends the session B knows, and
        // B's start is taken rather than refused from its copy.
        b.call(&key, activate("hw-b")).await.unwrap();
        a.call(
            &key,
            Request::EndSession {
                token_hash: first,
                reason: EndReason::ClientEnd,
            },
        )
        .await
        .unwrap();
        b.call(&key, start(TokenHash::of("second"), "hw-b"))
            .await
            .unwrap();
        // What the store does not have is still refused.
        assert_eq!(
            b.call(
                &key,
                Request::Heartbeat {
                    token_hash: TokenHash::of("never")
                }
            )
            .await
            .err(),
            Some(LicenseError::SessionNotFound)
        );
        assert_eq!(
            b.call(&key, start(TokenHash::of("third"), "hw-a"))
                .await
                .err(),
            Some(LicenseError::SessionLimit)
        );
        a.shutdown().await;
        b.shutdown().await;
    }

    #[tokio::test]
    async fn a_crashed_shard_is_restarted_by_its_supervisor() {
        let (licenses, a, _) = started().await;
        let before = shard_of(&licenses.inner.table, &a).unwrap().get_id();
        shard_of(&licenses.inner.table, &a)
            .unwrap()
            .cast(ShardMsg::Crash)
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let now_id = shard_of(&licenses.inner.table, &a).unwrap().get_id();
            if now_id != before && licenses.call(&a, Request::Info).await.is_ok() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "shard was not restarted"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        licenses.shutdown().await;
    }
}
