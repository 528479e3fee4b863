//! Foundation (issue 2): `tessera config check` output, and the harness's private Redis.

use std::io::Write;

use tessera::cli::check_config;
use tessera_integration_tests::RedisServer;

#[test]
fn config_check_prints_every_error_as_file_line_key_message() -> anyhow::Result<()> {
    let mut file = tempfile::NamedTempFile::new()?;
    write!(
        file,
        "[server]\nlisten_addr = \"nowhere\"\n\n[rate_limit]\napi_per_minute = -1\nburst = 3\n"
    )?;
    let path = file.path().to_owned();
    let report = check_config(Some(&path), Vec::new())
        .err()
        .unwrap_or_default();
    let lines: Vec<&str> = report.lines().collect();
    let p = path.display();
    assert_eq!(lines.len(), 3, "{report}");
    assert!(
        lines[0].starts_with(&format!("{p}:2: server.listen_addr: ")),
        "{report}"
    );
    assert!(
        lines[1].starts_with(&format!("{p}:5: rate_limit.api_per_minute: ")),
        "{report}"
    );
    assert!(
        lines[2].starts_with(&format!("{p}:6: rate_limit.burst: unknown field `burst`")),
        "{report}"
    );
    Ok(())
}

#[test]
fn config_check_reports_env_errors_by_variable_and_ok_otherwise() -> anyhow::Result<()> {
    let env = vec![("TESSERA_STORE_OP_TIMEOUT_MS".to_owned(), "soon".to_owned())];
    let report = check_config(None, env).err().unwrap_or_default();
    assert!(
        report.starts_with("env TESSERA_STORE_OP_TIMEOUT_MS: store.op_timeout_ms: "),
        "{report}"
    );

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../tessera.example.toml");
    let ok = check_config(Some(std::path::Path::new(example)), Vec::new());
    assert!(ok.as_deref().is_ok_and(|s| s.starts_with("OK")), "{ok:?}");
    let env = vec![(
        "TESSERA_RATE_LIMIT_API_PER_MINUTE".to_owned(),
        "250".to_owned(),
    )];
    assert!(check_config(None, env).is_ok());
    Ok(())
}

#[test]
fn private_redis_starts_on_its_own_port_and_dies_on_drop() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    assert_ne!(redis.port, 6379);
    assert!(redis.is_alive());
    assert_eq!(redis.url, format!("redis://127.0.0.1:{}", redis.port));
    let port = redis.port;
    drop(redis);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    Ok(())
}
