//! Foundation (issue 2): the system API key of seed 000.

use std::time::Duration;

use axum::routing::get;
use tessera::cli::regenerate_api_key;
use tessera_integration_tests::TestServer;

const INVALID_KEY_BODY: &str =
    r#"{"error":"Invalid or missing API key","code":"INVALID_API_KEY","status":401}"#;

async fn server(configure: impl FnOnce(&mut tessera_config::Config)) -> anyhow::Result<TestServer> {
    TestServer::start_with_routes(configure, ping_route).await
}

fn ping_route(r: &mut tessera::api::Routes) {
    r.api = std::mem::take(&mut r.api).route("/test/ping", get(|| async { "pong" }));
}

async fn status_with_key(server: &TestServer, key: Option<&str>) -> anyhow::Result<(u16, String)> {
    let mut req = server.client().get(server.url("/test/ping"));
    if let Some(k) = key {
        req = req.header("X-API-Key", k);
    }
    let resp = req.send().await?;
    Ok((resp.status().as_u16(), resp.text().await?))
}

#[tokio::test]
async fn generated_key_has_seed_format_and_authenticates() -> anyhow::Result<()> {
    let server = server(|_| {}).await?;
    let key = server.api_key.clone();
    let year = chrono::Utc::now().format("%Y").to_string();
    assert!(key.starts_with(&format!("AF-{year}-")), "{key}");
    assert_eq!(key.len(), "AF-2026-".len() + 32);
    assert_eq!(
        status_with_key(&server, Some(&key)).await?,
        (200, "pong".to_owned())
    );
    Ok(())
}

#[tokio::test]
async fn missing_key_gets_exact_seed_401_body() -> anyhow::Result<()> {
    let server = server(|_| {}).await?;
    let (status, body) = status_with_key(&server, None).await?;
    assert_eq!(status, 401);
    assert_eq!(body, INVALID_KEY_BODY);
    Ok(())
}

#[tokio::test]
async fn wrong_key_gets_exact_seed_401_body() -> anyhow::Result<()> {
    let server = server(|_| {}).await?;
    for wrong in [
        "AF-2026-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "",
        "nonsense",
        &server.api_key[..20],
    ] {
        let (status, body) = status_with_key(&server, Some(wrong)).await?;
        assert_eq!(
            (status, body.as_str()),
            (401, INVALID_KEY_BODY),
            "{wrong:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn key_is_stored_only_as_its_sha256() -> anyhow::Result<()> {
    let server = server(|_| {}).await?;
    let record = server
        .state
        .meta
        .get(tessera::auth::system_key::API_KEY_RECORD)
        .await?
        .unwrap_or_default();
    let text = String::from_utf8(record)?;
    let random_part = &server.api_key[8..];
    assert!(!text.contains(random_part), "{text}");
    let hash = tessera::auth::system_key::hash_api_key(&server.api_key);
    assert!(text.contains(&hash.iter().map(|b| format!("{b:02x}")).collect::<String>()));
    Ok(())
}

#[tokio::test]
async fn regenerate_on_running_server_invalidates_old_key_at_once() -> anyhow::Result<()> {
    let server = server(|_| {}).await?;
    let old = server.api_key.clone();
    assert_eq!(status_with_key(&server, Some(&old)).await?.0, 200);

    // The running server holds the embedded store: this goes through its control socket.
    let new = regenerate_api_key(server.config()).await?;
    assert_ne!(new, old);
    assert_eq!(
        status_with_key(&server, Some(&old)).await?,
        (401, INVALID_KEY_BODY.to_owned())
    );
    assert_eq!(status_with_key(&server, Some(&new)).await?.0, 200);
    Ok(())
}

#[tokio::test]
async fn rotation_overlap_keeps_old_key_working() -> anyhow::Result<()> {
    let server = server(|c| c.auth.rotation_overlap = Duration::from_secs(3600)).await?;
    let old = server.api_key.clone();
    let new = regenerate_api_key(server.config()).await?;
    assert_eq!(status_with_key(&server, Some(&old)).await?.0, 200);
    assert_eq!(status_with_key(&server, Some(&new)).await?.0, 200);

    // A second rotation ends the first key's overlap: only one previous key is kept.
    let newest = regenerate_api_key(server.config()).await?;
    assert_eq!(status_with_key(&server, Some(&old)).await?.0, 401);
    assert_eq!(status_with_key(&server, Some(&new)).await?.0, 200);
    assert_eq!(status_with_key(&server, Some(&newest)).await?.0, 200);
    Ok(())
}

#[tokio::test]
async fn regenerate_while_stopped_takes_effect_on_restart() -> anyhow::Result<()> {
    let server = server(|_| {}).await?;
    let old = server.api_key.clone();
    let mut stopped = server.stop().await?;
    // No server holds the store now: the CLI opens it directly.
    let new = regenerate_api_key(&stopped.config).await?;
    stopped.api_key = new.clone();
    let server = stopped.restart_with_routes(ping_route).await?;
    assert_eq!(status_with_key(&server, Some(&old)).await?.0, 401);
    assert_eq!(status_with_key(&server, Some(&new)).await?.0, 200);
    Ok(())
}

#[tokio::test]
async fn api_key_file_gets_the_new_key_with_mode_0600() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("secrets/api-key.txt");
    let file2 = file.clone();
    let server = server(move |c| c.auth.api_key_file = Some(file2)).await?;
    let written = std::fs::read_to_string(&file)?;
    assert_eq!(written.trim(), server.api_key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file)?.permissions().mode() & 0o777,
            0o600
        );
    }
    let new = regenerate_api_key(server.config()).await?;
    assert_eq!(std::fs::read_to_string(&file)?.trim(), new);
    Ok(())
}

#[tokio::test]
async fn public_endpoints_need_no_key() -> anyhow::Result<()> {
    let server = server(|_| {}).await?;
    for path in ["/", "/health", "/healthz", "/metrics"] {
        let resp = server.client().get(server.url(path)).send().await?;
        assert_eq!(resp.status(), 200, "{path}");
    }
    Ok(())
}
