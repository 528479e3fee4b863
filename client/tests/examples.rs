//! The C and Python examples (client/examples/) built and run against the real server,
//! through the cdylib and the staticlib, and the committed header checked against the one
//! cbindgen generates from src/ffi.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::{Server, target_dir};

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where `cargo test` put this crate's cdylib and staticlib: it builds the library with
/// every crate type, next to the test binaries.
fn libs() -> PathBuf {
    let deps = target_dir().join("deps");
    for lib in ["libtessera_client.so", "libtessera_client.a"] {
        assert!(
            deps.join(lib).is_file(),
            "{lib} missing in {}",
            deps.display()
        );
    }
    deps
}

/// Compiles examples/c/lifecycle.c against the cdylib or the staticlib.
fn compile_c(dir: &Path, statically: bool) -> PathBuf {
    let lib = libs();
    let exe = dir.join(if statically {
        "lifecycle-static"
    } else {
        "lifecycle"
    });
    let mut gcc = Command::new("gcc");
    gcc.arg(manifest().join("examples/c/lifecycle.c"))
        .arg("-Wall")
        .arg("-Werror")
        .arg("-I")
        .arg(manifest().join("include"))
        .arg("-o")
        .arg(&exe);
    if statically {
        gcc.arg(lib.join("libtessera_client.a"))
            .args(["-lpthread", "-ldl", "-lm"]);
    } else {
        gcc.arg("-L").arg(&lib).arg("-ltessera_client");
    }
    let out = gcc.output().unwrap();
    assert!(
        out.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

async fn run(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("LD_LIBRARY_PATH", libs());
    let child = tokio::process::Command::from(cmd).spawn().unwrap();
    tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("example did not finish within 90 s")
        .unwrap()
}

fn check_lifecycle(out: &Output, server: &Server, key: &str, c: bool) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("verified update_available=1"), "{stdout}");
    assert!(stdout.contains("session started"), "{stdout}");
    assert!(
        stdout.contains("event update_available reason= detail=2.0.0"),
        "{stdout}"
    );
    if c {
        assert!(
            stdout.contains("second session: status 3 code SESSION_LIMIT_REACHED"),
            "{stdout}"
        );
    }
    let beats = stdout
        .lines()
        .find_map(|l| l.strip_prefix("heartbeats "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let n: u64 = beats.split(' ').next().unwrap().parse().unwrap();
    assert!(n >= 3 && beats.ends_with("valid 1"), "{stdout}");
    assert!(stdout.contains("ended client_end valid 0"), "{stdout}");
    assert!(stdout.contains("event ended reason=client_end"), "{stdout}");
    assert_eq!(server.live_sessions(key), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_c_example_runs_a_full_lifecycle_through_the_cdylib() {
    let server = Server::start("").await.unwrap();
    let key = server.create_license(&[]);
    let exe = compile_c(server.dir(), false);
    let mut cmd = Command::new(exe);
    cmd.args([&server.url, &server.api_key, &key]);
    check_lifecycle(&run(cmd).await, &server, &key, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_c_example_runs_a_full_lifecycle_through_the_staticlib() {
    let server = Server::start("").await.unwrap();
    let key = server.create_license(&[]);
    let exe = compile_c(server.dir(), true);
    let mut cmd = Command::new(exe);
    cmd.args([&server.url, &server.api_key, &key]);
    cmd.env_remove("LD_LIBRARY_PATH");
    check_lifecycle(&run(cmd).await, &server, &key, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_runs_a_full_lifecycle() {
    let server = Server::start("").await.unwrap();
    let key = server.create_license(&[]);
    let mut cmd = Command::new("python3");
    cmd.arg(manifest().join("examples/python/lifecycle.py"))
        .args([&server.url, &server.api_key, &key])
        .env("TESSERA_CLIENT_LIB", libs().join("libtessera_client.so"));
    check_lifecycle(&run(cmd).await, &server, &key, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_session_on_the_server_before_the_process_exits() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;

    let server = Server::start("").await.unwrap();
    let key = server.create_license(&[]);
    let exe = compile_c(server.dir(), false);
    let mut child = Command::new(exe)
        .args([&server.url, &server.api_key, &key, "--wait-for-signal"])
        .env("LD_LIBRARY_PATH", libs())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    // Blocking reads end when the example prints "ready" or exits.
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line == "ready" {
            break;
        }
    }
    assert_eq!(seen.last().map(String::as_str), Some("ready"), "{seen:?}");
    assert_eq!(server.live_sessions(&key), 1);

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(15),
        "died of SIGTERM as usual: {status:?}"
    );
    assert!(
        rest.iter()
            .any(|l| l == "event ended reason=client_end detail=client_end"),
        "{rest:?}"
    );
    assert_eq!(server.live_sessions(&key), 0, "the seat was freed at exit");
}

#[test]
fn the_committed_header_is_the_one_cbindgen_generates() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/tessera_client.h"));
    let committed_path = manifest().join("include/tessera_client.h");
    if std::env::var_os("TESSERA_BLESS_HEADER").is_some() {
        std::fs::write(&committed_path, generated).unwrap();
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap();
    assert!(
        committed == generated,
        "include/tessera_client.h is stale: run `TESSERA_BLESS_HEADER=1 cargo test -p tessera-client --test examples`"
    );
}
