//! Config reload against the real binary: saving the file applies what can change (here the
//! login rate limit and the log level), reports what cannot (the listen address) without
//! applying it, and `config check --against-running` says which is which; a file that fails
//! validation, sent with SIGHUP, changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

fn config(port: u16, data_dir: &Path, login_per_minute: &str, level: &str) -> String {
    format!(
        "[server]\nlisten_addr = \"127.0.0.1:{port}\"\n\n\
         [store]\ndata_dir = \"{}\"\n\n\
         [log]\nlevel = \"{level}\"\n\n\
         [rate_limit]\nlogin_per_minute = {login_per_minute}\n",
        data_dir.display()
    )
}

/// Replaces `path` the way editors do: write beside it, then rename.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// One HTTP/1.1 request; the status code.
fn status(port: u16, method: &str, path: &str, body: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {out:?}"))
}

fn body(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn login(port: u16) -> u16 {
    status(
        port,
        "POST",
        "/api/auth/login",
        r#"{"username":"nobody","password":"wrong"}"#,
    )
}

fn check_against_running(dir: &Path, file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["config", "check", "--against-running", "--config"])
        .arg(file)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn wait_for(log: &Mutex<String>, needle: &str, after: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if log.lock().unwrap()[after..].contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn a_saved_file_applies_what_can_change_and_reports_what_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("tessera.toml");
    let (port, other_port) = (free_port(), free_port());
    save(&file, &config(port, &data, "1000", "warn"));

    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--config"])
        .arg(&file)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let server = Server(child);
    let log = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Nothing to apply yet.
    let out = check_against_running(dir.path(), &file);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("already runs every setting"),
        "{}",
        text(&out.stdout)
    );
    for _ in 0..3 {
        assert_ne!(login(port), 429, "1000 logins a minute are allowed");
    }

    // Saved: a tighter login limit and a chattier log apply; the new address does not.
    let mark = log.lock().unwrap().len();
    save(&file, &config(other_port, &data, "2", "info"));
    assert!(
        wait_for(&log, "configuration reloaded", mark),
        "no reload logged at the new level:\n{}",
        log.lock().unwrap()
    );
    {
        let l = log.lock().unwrap();
        let restart = l[mark..]
            .lines()
            .find(|l| l.contains("needs a restart"))
            .unwrap_or_else(|| panic!("the listen address change was not reported:\n{l}"));
        assert!(restart.contains("server.listen_addr"), "{restart}");
    }
    let codes: Vec<u16> = (0..3).map(|_| login(port)).collect();
    assert_ne!(codes[0], 429, "{codes:?}");
    assert_ne!(codes[1], 429, "{codes:?}");
    assert_eq!(
        codes[2], 429,
        "the reloaded login limit (2 a minute) is not in effect: {codes:?}"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", other_port)).is_err(),
        "the listen address changed without a restart"
    );
    let metrics = body(port, "/metrics");
    assert!(
        metrics.contains("tessera_config_restart_pending 1"),
        "{metrics}"
    );

    let out = check_against_running(dir.path(), &file);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{report}{}", text(&out.stderr));
    assert!(report.contains("need a restart"), "{report}");
    assert!(
        report.contains(&format!(
            "server.listen_addr: 127.0.0.1:{port} -> 127.0.0.1:{other_port}"
        )),
        "{report}"
    );
    assert!(
        !report.contains("rate_limit"),
        "the login limit is already applied: {report}"
    );

    // An invalid file, sent with SIGHUP: nothing changes (the limit stays at 2 a minute even
    // though the file raises it).
    let mark = log.lock().unwrap().len();
    save(
        &file,
        &format!(
            "{}\n[sessions]\nheartbeat_interval_secs = \"soon\"\n",
            config(port, &data, "1000", "info")
        ),
    );
    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        wait_for(&log, "reload failed", mark),
        "{}",
        log.lock().unwrap()
    );
    assert!(log.lock().unwrap()[mark..].contains("nothing changed"));
    // SIGHUP alone (no file change) reloads too.
    std::thread::sleep(Duration::from_secs(1));
    let failures = log.lock().unwrap()[mark..].matches("reload failed").count();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while log.lock().unwrap()[mark..].matches("reload failed").count() == failures {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(login(port), 429, "a rejected file changed the login limit");
    let out = check_against_running(dir.path(), &file);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an invalid file is reported as such"
    );
    assert!(
        text(&out.stderr).contains("sessions"),
        "{}",
        text(&out.stderr)
    );
    drop(server);
}
