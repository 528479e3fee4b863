//! The SDK against the real `tessera` binary: sessions that live for many intervals,
//! survive a server restart and short outages, end offline after a long one, and end on
//! the server on `end()` and on drop.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{Proxy, Server, eventually};
use tessera_client::{
    ActivateRequest, Client, EndReason, Event, SessionOptions, SessionState, StartRequest,
    VerifyRequest,
};

const WAIT: Duration = Duration::from_secs(30);

fn recorder() -> (SessionOptions, Arc<Mutex<Vec<Event>>>) {
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let s = Arc::clone(&seen);
    (
        SessionOptions::default().on_event(move |e| s.lock().unwrap().push(e.clone())),
        seen,
    )
}

fn count(events: &Mutex<Vec<Event>>, f: impl Fn(&Event) -> bool) -> usize {
    events.lock().unwrap().iter().filter(|e| f(e)).count()
}

async fn activated(client: &Client, server: &Server, args: &[&str]) -> (String, String) {
    let key = server.create_license(args);
    let device = tessera_client::fingerprint().hardware_hash();
    let a = client
        .activate(&ActivateRequest::new(&key, &device))
        .await
        .unwrap();
    assert!(!a.already_active);
    (key, device)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_heartbeats_for_many_intervals_and_ends_on_end() {
    let server = Server::start("").await.unwrap();
    let client = Client::new(&server.url, &server.api_key).unwrap();
    let (key, device) = activated(&client, &server, &[]).await;
    let v = client
        .verify(&VerifyRequest {
            hardware_hash: Some(device.clone()),
            app_version: Some("1.0.0".into()),
            ..VerifyRequest::new(&key)
        })
        .await
        .unwrap();
    assert!(v.valid && v.update_available);
    assert_eq!(v.latest_version, "2.0.0");

    let (options, events) = recorder();
    let mut req = StartRequest::new(&key, &device);
    req.version = Some("1.0.0".into());
    let mut session = client.start_session_with(&req, options).await.unwrap();
    let mut rx = session.events().unwrap();
    assert!(session.events().is_none(), "the channel is handed out once");
    assert_eq!(session.heartbeat_interval(), Duration::from_secs(1));
    match rx.recv().await {
        Some(Event::UpdateAvailable {
            latest_version,
            download_url,
            ..
        }) => {
            assert_eq!(latest_version, "2.0.0");
            assert_eq!(download_url, "https://example.com/app-2.0.0");
        }
        other => panic!("expected UpdateAvailable, got {other:?}"),
    }

    // Eight intervals: the server's timeout + grace (5 s) would have ended it long before
    // without heartbeats.
    eventually("8 heartbeats", WAIT, || {
        (session.heartbeats() >= 8).then_some(())
    })
    .await;
    assert!(session.is_valid());
    assert_eq!(session.state(), SessionState::Active);
    assert_eq!(server.live_sessions(&key), 1);
    assert_eq!(count(&events, |e| matches!(e, Event::Degraded { .. })), 0);

    // A second session on a single-session license is refused with the server's code.
    let err = client
        .start_session(&StartRequest::new(&key, &device))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("SESSION_LIMIT_REACHED"), "{err}");

    assert_eq!(session.end().await.unwrap(), EndReason::ClientEnd);
    assert_eq!(server.live_sessions(&key), 0);
    assert_eq!(
        count(&events, |e| *e
            == Event::Ended {
                reason: EndReason::ClientEnd
            }),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_session_ends_it_on_the_server() {
    let server = Server::start("").await.unwrap();
    let client = Client::new(&server.url, &server.api_key).unwrap();
    let (key, device) = activated(&client, &server, &[]).await;
    let session = client
        .start_session(&StartRequest::new(&key, &device))
        .await
        .unwrap();
    assert_eq!(server.live_sessions(&key), 1);
    drop(session);
    // Drop waits for the server's answer: the seat is free at once.
    assert_eq!(server.live_sessions(&key), 0);
    client
        .start_session(&StartRequest::new(&key, &device))
        .await
        .unwrap()
        .end()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_does_not_end_the_session() {
    let mut server = Server::start("").await.unwrap();
    let client = Client::new(&server.url, &server.api_key).unwrap();
    let (key, device) = activated(&client, &server, &[]).await;
    let (options, events) = recorder();
    let session = client
        .start_session_with(&StartRequest::new(&key, &device), options)
        .await
        .unwrap();
    eventually("2 heartbeats", WAIT, || {
        (session.heartbeats() >= 2).then_some(())
    })
    .await;

    server.restart().await.unwrap();
    let after = session.heartbeats();
    eventually("3 heartbeats after the restart", WAIT, || {
        (session.heartbeats() >= after + 3).then_some(())
    })
    .await;
    assert!(session.is_valid(), "{:?}", session.state());
    assert_eq!(count(&events, |e| matches!(e, Event::Ended { .. })), 0);
    assert_eq!(server.live_sessions(&key), 1);
    // Whether a heartbeat fell into the restart is timing; if one did, it recovered.
    assert_eq!(
        count(&events, |e| matches!(e, Event::Degraded { .. })),
        count(&events, |e| *e == Event::Recovered)
    );
    session.end().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_outage_keeps_the_session_and_a_long_one_ends_it_offline() {
    let server = Server::start("").await.unwrap();
    let proxy = Proxy::start(server.port).await;
    let client = Client::new(&proxy.url(), &server.api_key).unwrap();
    let (key, device) = activated(&client, &server, &[]).await;
    let (options, events) = recorder();
    let session = client
        .start_session_with(&StartRequest::new(&key, &device), options)
        .await
        .unwrap();
    eventually("2 heartbeats", WAIT, || {
        (session.heartbeats() >= 2).then_some(())
    })
    .await;

    // Short outage: the network goes down until a heartbeat has failed and been retried;
    // that is well within timeout + grace (5 s).
    proxy.set_up(false);
    eventually("Degraded", WAIT, || {
        (session.state() == SessionState::Degraded).then_some(())
    })
    .await;
    assert!(session.is_valid(), "still valid while degraded");
    let before = session.heartbeats();
    proxy.set_up(true);
    eventually("Recovered", WAIT, || {
        (count(&events, |e| *e == Event::Recovered) == 1).then_some(())
    })
    .await;
    assert!(session.heartbeats() > before);
    assert_eq!(session.state(), SessionState::Active);
    assert_eq!(server.live_sessions(&key), 1, "the server kept it too");

    // Long outage: nothing gets through; the session ends once timeout + grace have passed
    // since the last acknowledged heartbeat, with a reason that says so.
    proxy.set_up(false);
    let reason = eventually("Ended", WAIT, || match session.state() {
        SessionState::Ended(r) => Some(r),
        _ => None,
    })
    .await;
    assert_eq!(reason, EndReason::Offline);
    assert!(!session.is_valid());
    // The state changes before the event reaches the callback; wait for the event itself.
    eventually("Ended event", WAIT, || {
        (count(&events, |e| matches!(e, Event::Ended { .. })) == 1).then_some(())
    })
    .await;
    let events_now = events.lock().unwrap().clone();
    assert!(
        matches!(
            events_now.last(),
            Some(Event::Ended {
                reason: EndReason::Offline
            })
        ),
        "{events_now:?}"
    );
    assert_eq!(count(&events, |e| matches!(e, Event::Degraded { .. })), 2);
    // The server, which heard nothing either, timed it out on its side.
    eventually("server-side timeout", WAIT, || {
        (server.live_sessions(&key) == 0).then_some(())
    })
    .await;
    proxy.set_up(true);
    drop(session);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_the_server_ended_reports_the_servers_reason() {
    // `evict_oldest`: a second session on a single-session license evicts the first; the
    // first one's next heartbeat learns that it ended, and why.
    let server = Server::start("[licenses]\non_session_limit = \"evict_oldest\"\n")
        .await
        .unwrap();
    let client = Client::new(&server.url, &server.api_key).unwrap();
    let key = server.create_license(&["--max-devices", "2"]);
    let a = tessera_client::fingerprint().hardware_hash();
    let b = "another-machine".to_owned();
    client
        .activate(&ActivateRequest::new(&key, &a))
        .await
        .unwrap();
    client
        .activate(&ActivateRequest::new(&key, &b))
        .await
        .unwrap();
    let (options, events) = recorder();
    let mut first = client
        .start_session_with(&StartRequest::new(&key, &a), options)
        .await
        .unwrap();
    let mut rx = first.events().unwrap();
    let second = client
        .start_session(&StartRequest::new(&key, &b))
        .await
        .unwrap();
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Event::Ended { reason }) = rx.recv().await {
                return reason;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(ended, EndReason::Evicted);
    assert_eq!(first.state(), SessionState::Ended(EndReason::Evicted));
    assert!(!first.is_valid());
    assert_eq!(count(&events, |e| matches!(e, Event::Ended { .. })), 1);
    // Ending it again is harmless and keeps the server's reason.
    assert_eq!(first.end().await.unwrap(), EndReason::Evicted);
    assert!(second.is_valid());
    second.end().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_003_instances_and_sessions_go_through_the_envelope() {
    let server = Server::start("").await.unwrap();
    let client = Client::new(&server.url, &server.api_key).unwrap();
    let key = server.create_license(&[]);
    let hw = tessera_client::fingerprint();
    let instance = client
        .register_instance(&tessera_client::RegisterInstance {
            license_key: key.clone(),
            hardware: hw.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(instance.control_options.session_duration, 3);
    assert_eq!(instance.control_options.validation_grace_period, 2);
    let session = client
        .begin_session(&tessera_client::BeginSession {
            license_key: key.clone(),
            instance_guid: instance.guid.clone(),
            hardware: hw.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    // Seed 003 announces no interval: a third of session_duration (1 s) is used.
    assert_eq!(session.heartbeat_interval(), Duration::from_secs(1));
    eventually("3 extend_session", WAIT, || {
        (session.heartbeats() >= 3).then_some(())
    })
    .await;
    assert_eq!(server.live_sessions(&key), 1);
    // The seed-000 hardware hash of the same fingerprint is the same device.
    let again = client
        .activate(&ActivateRequest::new(&key, hw.hardware_hash()))
        .await
        .unwrap();
    assert!(again.already_active, "{again:?}");
    assert_eq!(session.end().await.unwrap(), EndReason::ClientEnd);
    assert_eq!(server.live_sessions(&key), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_envelope_interoperates_with_the_servers_cli() {
    let server = Server::start("").await.unwrap();
    let json = r#"{"token":"t-1"}"#;
    let sealed = tessera_client::envelope::seal(&server.api_key, json.as_bytes()).unwrap();
    let out = pipe(
        &server,
        &["envelope", "decrypt", "--key", &server.api_key],
        &sealed,
    );
    assert_eq!(out.trim(), json);
    let data = pipe(
        &server,
        &["envelope", "encrypt", "--key", &server.api_key],
        json,
    );
    let opened = tessera_client::envelope::open(&server.api_key, data.trim()).unwrap();
    assert_eq!(opened, json.as_bytes());
}

fn pipe(server: &Server, args: &[&str], input: &str) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(support::tessera_bin())
        .args(args)
        .current_dir(server.dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}
