//! A small debounced file watcher (notify) for plugin files and the config file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::error::PluginError;

/// Watches files until dropped. Created by [`watch_paths`] or [`crate::PluginHost::watch`].
pub struct FileWatcher {
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for FileWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWatcher").finish_non_exhaustive()
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Calls `on_change` with the changed files among `paths` once they have been quiet for
/// `debounce`. Watches the parent directories, so files replaced by rename (editors,
/// `cargo build`, `cp`) are seen. Runs `on_change` on a background thread; stops when the
/// returned [`FileWatcher`] is dropped.
///
/// # Errors
/// [`PluginError::Watch`] when the OS watcher cannot be created or a directory watched.
pub fn watch_paths<F>(
    paths: &[PathBuf],
    debounce: Duration,
    mut on_change: F,
) -> Result<FileWatcher, PluginError>
where
    F: FnMut(Vec<PathBuf>) + Send + 'static,
{
    let files: BTreeSet<PathBuf> = paths.iter().map(|p| absolute(p)).collect();
    let dirs: BTreeSet<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    let (tx, rx) = mpsc::channel::<notify::Result<notify::Event>>();
    let mut watcher = notify::recommended_watcher(move |ev| {
        // The receiver is gone only when the thread stopped; nothing to do then.
        let _ = tx.send(ev);
    })
    .map_err(|e| PluginError::Watch(e.to_string()))?;
    for dir in &dirs {
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|e| PluginError::Watch(format!("{}: {e}", dir.display())))?;
    }
    let relevant = move |ev: &notify::Event| -> Vec<PathBuf> {
        if ev.kind.is_access() {
            return Vec::new();
        }
        ev.paths
            .iter()
            .map(|p| absolute(p))
            .filter(|p| files.contains(p))
            .collect()
    };
    std::thread::Builder::new()
        .name("tessera-plugin-watch".into())
        .spawn(move || {
            // Ends when the watcher (and with it the sender) is dropped.
            while let Ok(ev) = rx.recv() {
                let mut changed = BTreeSet::new();
                if let Ok(ev) = ev {
                    changed.extend(relevant(&ev));
                }
                if changed.is_empty() {
                    continue;
                }
                loop {
                    match rx.recv_timeout(debounce) {
                        Ok(Ok(ev)) => changed.extend(relevant(&ev)),
                        Ok(Err(_)) => {}
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
                on_change(changed.into_iter().collect());
            }
        })
        .map_err(|e| PluginError::Watch(format!("cannot start the watcher thread: {e}")))?;
    Ok(FileWatcher { _watcher: watcher })
}
