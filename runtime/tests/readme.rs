//! README.md's "First five minutes" walkthrough, run verbatim: the block after the
//! `<!-- walkthrough` marker goes to `bash -euo pipefail` against the real `tessera serve`
//! (embedded store in a temp dir, a free port), with `SERVER`, `TESSERA` and `API_KEY` set the
//! way the README tells a newcomer to set them. Needs `curl` and `jq` (tests/run.sh installs
//! them).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MARKER: &str = "<!-- walkthrough";

/// The first fenced block after the marker, without its fences.
fn walkthrough(readme: &str) -> String {
    let after = &readme[readme
        .find(MARKER)
        .expect("README.md has no walkthrough marker")..];
    let open = after
        .find("```sh\n")
        .expect("no ```sh block after the marker")
        + "```sh\n".len();
    let body = &after[open..];
    let close = body
        .find("\n```")
        .expect("the walkthrough block is not closed");
    body[..close + 1].to_string()
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn has(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn readme_walkthrough_runs_verbatim_against_a_fresh_server() {
    for tool in ["bash", "curl", "jq"] {
        assert!(
            has(tool),
            "the README walkthrough needs `{tool}` (tests/run.sh installs it)"
        );
    }
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let block = walkthrough(&std::fs::read_to_string(readme_path).unwrap());

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let key_file = dir.path().join("api-key");
    // Settings for the server and for the block's `tessera` commands alike: the same data
    // directory (and so the same control socket), as in the README's one repository root.
    let settings = [
        ("TESSERA_SERVER_LISTEN_ADDR", format!("127.0.0.1:{port}")),
        (
            "TESSERA_STORE_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("TESSERA_AUTH_API_KEY_FILE", key_file.display().to_string()),
        ("TESSERA_LOG_LEVEL", "warn".to_string()),
    ];
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .arg("serve")
            .envs(settings.iter().map(|(k, v)| (k, v)))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // The key file is written before the server listens; then wait for the port.
    let deadline = Instant::now() + Duration::from_secs(30);
    let api_key = loop {
        if let Ok(key) = std::fs::read_to_string(&key_file)
            && !key.trim().is_empty()
            && TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            break key.trim().to_string();
        }
        assert!(Instant::now() < deadline, "the server did not come up");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(api_key.starts_with("AF-"), "{api_key}");

    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &block])
        .envs(settings.iter().map(|(k, v)| (k, v)))
        .env("SERVER", format!("http://127.0.0.1:{port}"))
        .env("TESSERA", env!("CARGO_BIN_EXE_tessera"))
        .env("API_KEY", &api_key)
        .current_dir(dir.path())
        .output()
        .unwrap();
    drop(server);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the walkthrough failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- block\n{block}",
        out.status
    );

    let license = stdout
        .lines()
        .find_map(|l| l.strip_prefix("license: "))
        .unwrap_or_else(|| panic!("no `license: KEY` line:\n{stdout}"))
        .trim()
        .to_string();
    assert_eq!(license.len(), 19, "{license}");
    assert!(
        stdout.contains(r#""end_reason": "client_end""#),
        "the session did not end by the client:\n{stdout}"
    );
    // `license show` prints the license as JSON: the key again, one device, no live session.
    let shown = &stdout[stdout.rfind("\n{").expect("no JSON from license show") + 1..];
    let view: serde_json::Value = serde_json::from_str(shown)
        .unwrap_or_else(|e| panic!("license show printed no JSON ({e}):\n{shown}"));
    assert_eq!(view["license_key"], license.as_str(), "{view}");
    assert_eq!(view["devices"].as_array().map(Vec::len), Some(1), "{view}");
    assert_eq!(view["sessions"].as_array().map(Vec::len), Some(0), "{view}");
}
