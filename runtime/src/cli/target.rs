//! How a command reaches the server it administers. A stopped server's store is opened
//! here and driven through the same admin service a running server uses; a running server
//! that holds the embedded store is asked over its control socket.

use std::sync::Arc;

use anyhow::Context;
use tessera_actors::Licenses;
use tessera_config::{Config, StoreBackend};

use crate::admin::Admin;
use crate::control::{self, ControlReply, ControlRequest};
use crate::events::Events;
use crate::licenses::LogEvents;
use crate::state::{AllStores, StartupError, admin_over, open_all_stores};
use crate::store::{MetaStore, StoreError};

/// The server a command acts on.
pub(super) enum Target {
    /// Nobody holds the store: we opened it ourselves.
    Stopped(Stopped),
    /// A running server holds the embedded store; requests go over its control socket.
    Running,
}

/// A store opened by the command; license actors start over it only for commands that
/// need them, and stop when the command is done.
pub(super) struct Stopped {
    pub(super) meta: Arc<dyn MetaStore>,
    stores: AllStores,
    licenses: Option<Licenses>,
    events: Option<Events>,
}

impl Stopped {
    /// The admin service over this store, as a running server would offer it.
    pub(super) async fn admin(&mut self, config: &Config) -> anyhow::Result<Admin> {
        let licenses = match &self.licenses {
            Some(l) => l.clone(),
            None => {
                let l = crate::licenses::start(
                    config,
                    Arc::clone(&self.stores.licenses),
                    Arc::new(LogEvents),
                )
                .await
                .context("cannot start the license actors")?;
                self.licenses = Some(l.clone());
                l
            }
        };
        let events = match &self.events {
            Some(e) => e.clone(),
            None => {
                let e = Events::start(Arc::clone(&self.stores.events), &config.events).await;
                self.events = Some(e.clone());
                e
            }
        };
        let admin = admin_over(Arc::new(config.clone()), &self.stores, licenses, events)
            .await
            .context("cannot open the catalog")?;
        Ok(admin.acting_as("cli"))
    }

    /// The audit log of this store (credential commands record themselves there).
    pub(super) fn audit_log(&self) -> crate::audit::AuditLog {
        crate::audit::AuditLog::new(
            Arc::clone(&self.stores.audit),
            Arc::clone(&self.stores.meta),
        )
    }

    /// Flushes and stops the license actors the command started, if any.
    pub(super) async fn close(self) {
        if let Some(l) = self.licenses {
            l.shutdown().await;
        }
        // The command's admin events reach the event log before the store closes.
        if let Some(e) = self.events {
            e.shutdown().await;
        }
    }
}

/// Opens the configured store, or finds that a running server holds it.
pub(super) async fn reach(config: &Config) -> anyhow::Result<Target> {
    match open_all_stores(config).await {
        Ok(stores) => Ok(Target::Stopped(Stopped {
            meta: Arc::clone(&stores.meta),
            stores,
            licenses: None,
            events: None,
        })),
        Err(StartupError::Store(StoreError::Locked(_)))
            if config.store.backend == StoreBackend::Embedded =>
        {
            Ok(Target::Running)
        }
        Err(e) => Err(e.into()),
    }
}

/// Sends `req` to the running server of `config` and returns its (non-error) reply.
pub(super) async fn ask_running(
    config: &Config,
    req: ControlRequest,
) -> anyhow::Result<ControlReply> {
    let socket = control::socket_path(config);
    match control::request(&socket, &req).await.context(
        "the store is held by a running server that did not answer on its control socket",
    )? {
        ControlReply::Error(e) => anyhow::bail!("the running server refused: {e}"),
        reply => Ok(reply),
    }
}
