//! `tessera backup` and `tessera restore` on the embedded store: a backup taken under load
//! keeps every write acknowledged before it began; a restore refuses a running server's
//! directory and files that are not snapshots, and then changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod client_stream;

use std::path::Path;
use std::time::Instant;

use client_stream::{ClientStream, Endpoint, heartbeat, show};
use tessera::cli::backup::backup;
use tessera::cli::restore::restore;
use tessera_actors::LicenseKey;
use tessera_integration_tests::{TestServer, test_config};

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_keeps_every_write_acknowledged_before_it_began() {
    let server = TestServer::start().await.unwrap();
    let stream = ClientStream::start(Endpoint::of(&server), "load");
    stream.wait_for(20).await;

    let out = tempfile::tempdir().unwrap();
    let snap = out.path().join("tessera-backup.redb");
    let began = Instant::now();
    let t = Instant::now();
    let report = backup(server.config(), &snap).await.unwrap();
    eprintln!("backup of {} bytes took {:?}", report.bytes, t.elapsed());
    // The stream goes on for a while after the snapshot, as traffic would.
    let during = stream.len();
    stream.wait_for(during + 5).await;
    let acked = stream.stop().await;

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&snap).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(files_in(out.path()), ["tessera-backup.redb"]);
    assert!(report.tables["licenses"] >= 20, "{report:?}");

    // A fresh data directory, restored, served.
    let fresh = tempfile::tempdir().unwrap();
    let mut config = test_config(fresh.path());
    let restored = restore(&config, &snap, false).await.unwrap();
    assert_eq!(restored.previous, None);
    let api_key = server.api_key.clone();
    drop(server);
    let data_dir = config.store.data_dir.clone();
    config.store.data_dir = data_dir.clone();
    let again = TestServer::start_joining(&api_key, |c| c.store.data_dir = data_dir)
        .await
        .unwrap();
    let at = Endpoint::of(&again);
    let client = reqwest::Client::new();
    let store = again.state.licenses.store();
    let (mut licenses, mut activations, mut sessions) = (0, 0, 0);
    for a in acked.iter().filter(|a| a.issued < began) {
        assert_eq!(show(&client, &at, &a.key).await, 200, "license {}", a.key);
        licenses += 1;
        let snapshot = store
            .load(&LicenseKey::parse(&a.key).unwrap())
            .await
            .unwrap()
            .unwrap();
        if a.activated.is_some_and(|t| t < began) {
            assert!(
                snapshot
                    .activations
                    .iter()
                    .any(|d| d.hardware_hash == a.hw && d.is_active),
                "activation of {}",
                a.key
            );
            activations += 1;
        }
        if let Some((token, t)) = &a.session
            && *t < began
        {
            assert_eq!(
                heartbeat(&client, &at, &a.key, token).await,
                200,
                "session of {}",
                a.key
            );
            sessions += 1;
        }
    }
    eprintln!(
        "kept {licenses} licenses, {activations} activations, {sessions} sessions acknowledged \
         before the backup ({} recorded in all)",
        acked.len()
    );
    assert!(licenses >= 20 && activations >= 19 && sessions >= 19);
}

#[tokio::test]
async fn restore_refuses_a_running_server_and_files_that_are_not_snapshots() {
    let server = TestServer::start().await.unwrap();
    let key = client_stream::issue(&reqwest::Client::new(), &Endpoint::of(&server), "kept")
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let snap = out.path().join("snap.redb");
    backup(server.config(), &snap).await.unwrap();

    // While the server runs, even --force is refused.
    let err = restore(server.config(), &snap, true).await.unwrap_err();
    assert!(err.to_string().contains("running"), "{err:#}");
    let stopped = server.stop().await.unwrap();
    let data = stopped.config.store.data_dir.clone();
    let before = files_in(&data);
    let live = std::fs::read(data.join("tessera.redb")).unwrap();

    // Not snapshots: a text file, and a live store file (it has no manifest).
    let text = out.path().join("notes.txt");
    std::fs::write(&text, b"not a database").unwrap();
    let copy = out.path().join("copy.redb");
    std::fs::copy(data.join("tessera.redb"), &copy).unwrap();
    for bad in [&text, &copy] {
        let err = restore(&stopped.config, bad, true).await.unwrap_err();
        assert!(
            err.to_string().contains("not a Tessera snapshot"),
            "{err:#}"
        );
        assert_eq!(files_in(&data), before);
        assert_eq!(std::fs::read(data.join("tessera.redb")).unwrap(), live);
    }

    // Over an existing store: refused without --force; with it, the old one is kept.
    let err = restore(&stopped.config, &snap, false).await.unwrap_err();
    assert!(err.to_string().contains("--force"), "{err:#}");
    let done = restore(&stopped.config, &snap, true).await.unwrap();
    let bak = done.previous.unwrap();
    assert_eq!(std::fs::read(&bak).unwrap(), live);
    let server = stopped.restart().await.unwrap();
    assert_eq!(
        show(&reqwest::Client::new(), &Endpoint::of(&server), &key).await,
        200
    );
}

#[tokio::test]
async fn backup_and_restore_of_a_redis_store_point_at_redis_persistence() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.store.backend = tessera_integration_tests::tessera_config::StoreBackend::Redis;
    let file = dir.path().join("x.redb");
    let err = backup(&config, &file).await.unwrap_err();
    assert!(err.to_string().contains("RDB"), "{err:#}");
    let err = restore(&config, &file, false).await.unwrap_err();
    assert!(err.to_string().contains("AOF"), "{err:#}");
    assert!(!file.exists());
}
