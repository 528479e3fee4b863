//! The examples in client/README.md run as written: its last ```sh block is executed with
//! bash from the repository root against a real server.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Server, workspace};

fn last_sh_block(readme: &str) -> String {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(lines), "```") => {
                blocks.push(lines.join("\n"));
                current = None;
            }
            (Some(lines), l) => lines.push(l),
            _ => {}
        }
    }
    blocks.pop().expect("a ```sh block in README.md")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_examples_run_as_written() {
    let readme = std::fs::read_to_string(workspace().join("client/README.md")).unwrap();
    let script = last_sh_block(&readme);
    assert!(script.contains("--example lifecycle") && script.contains("gcc"));
    let server = Server::start("").await.unwrap();
    let key = server.create_license(&[]);
    let child = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(workspace())
        .env("TESSERA_URL", &server.url)
        .env("TESSERA_API_KEY", &server.api_key)
        .env("LICENSE", &key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(600),
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    .expect("the README examples did not finish within 600 s")
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    // Three lifecycles (Rust, C, Python), each ended by the client.
    assert_eq!(stdout.matches("session started").count(), 3, "{stdout}");
    assert_eq!(stdout.matches("ended client_end").count(), 3, "{stdout}");
    assert_eq!(server.live_sessions(&key), 0);
}
