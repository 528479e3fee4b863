//! The packages (issue 20, item 6).
//!
//! The .deb: `cargo deb -p tessera --no-build` packages the `tessera` binary this test run
//! built (the debug one: a release build would add many minutes to CI), staged as
//! `<tmp>/target/release/tessera` with `CARGO_TARGET_DIR=<tmp>/target`, so cargo-deb reads
//! the same `[package.metadata.deb]` as a release does (`cargo deb -p tessera`) and builds
//! nothing. The test then inspects the package as dpkg sees it (`dpkg-deb -c`, `-I`, `-f`),
//! extracts it, runs `systemd-analyze verify` and `security --offline` on the unit where
//! `systemd-analyze` exists, checks that the packaged config puts the store, the API key file
//! and the control socket in the unit's `StateDirectory`, and starts the packaged binary with
//! the packaged config (its state directory moved to a temp dir) through a SIGHUP. What it
//! cannot check here: the sandbox itself (no systemd runs as PID 1 on CI machines).
//!
//! Dockerfile and compose.yaml: static checks only, no container engine runs here.
//!
//! Needs cargo-deb and dpkg-deb (`bash tests/run.sh` installs cargo-deb) and Python's `yaml`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const UNIT: &str = "usr/lib/systemd/system/tessera.service";
const CONFFILE: &str = "etc/tessera/tessera.toml";

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn has(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs `cmd`, fails the test with its output unless it succeeds, returns its stdout.
fn run(cmd: &mut Command) -> String {
    let out: Output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The value of `Key=` in a unit, each assignment in order.
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .collect()
}

/// The .deb built from this run's binary, and the tree it extracts to.
struct Deb {
    /// Holds the package, the extracted tree and the test's scratch files.
    dir: tempfile::TempDir,
    file: PathBuf,
    root: PathBuf,
}

fn build_deb() -> Deb {
    assert!(
        has("dpkg-deb", "--version"),
        "dpkg-deb is not installed (Debian's dpkg package)"
    );
    assert!(
        cargo()
            .args(["deb", "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        "cargo-deb is not installed: run `bash tests/run.sh` (it installs it) or \
         `cargo install cargo-deb --locked --no-default-features`"
    );
    // In the target dir, so the binary can be hard-linked rather than copied.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let staged = dir.path().join("target/release");
    std::fs::create_dir_all(&staged).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_tessera"));
    if std::fs::hard_link(bin, staged.join("tessera")).is_err() {
        std::fs::copy(bin, staged.join("tessera")).unwrap();
    }
    let file = dir.path().join("tessera.deb");
    let started = Instant::now();
    run(cargo()
        .args(["deb", "-p", "tessera", "--no-build", "--fast", "--output"])
        .arg(&file)
        .env("CARGO_TARGET_DIR", dir.path().join("target"))
        .current_dir(repo("")));
    eprintln!("cargo deb took {:.1?}", started.elapsed());
    let root = dir.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&file).arg(&root));
    Deb { dir, file, root }
}

#[test]
fn deb_installs_the_binary_the_hardened_unit_and_the_config_in_etc() {
    let deb = build_deb();

    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&deb.file));
    for path in [
        "./usr/bin/tessera",
        "./usr/lib/systemd/system/tessera.service",
        "./usr/lib/sysusers.d/tessera.conf",
        "./etc/tessera/tessera.toml",
        "./usr/share/doc/tessera/tessera.example.toml",
        "./usr/share/doc/tessera/deployment.md",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(&format!(" {path}"))),
            "dpkg-deb -c does not list {path}:\n{listing}"
        );
    }
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with(" ./usr/bin/tessera")),
        "the binary is not mode 755:\n{listing}"
    );

    let info = run(Command::new("dpkg-deb").arg("-I").arg(&deb.file));
    for member in ["conffiles", "control", "postinst", "postrm", "prerm"] {
        assert!(
            // `   2120 bytes,    49 lines   *  postinst   #!/bin/sh`
            info.lines()
                .any(|l| l.split_whitespace().skip(4).take(2).any(|w| w == member)),
            "the control archive has no {member}:\n{info}"
        );
    }
    let conffiles = run(Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb.file)
        .arg("conffiles"));
    assert_eq!(conffiles.trim(), "/etc/tessera/tessera.toml");
    let depends = run(Command::new("dpkg-deb")
        .arg("-f")
        .arg(&deb.file)
        .arg("Depends"));
    assert!(depends.contains("libc6"), "Depends: {depends}");
    assert!(depends.contains("systemd"), "Depends: {depends}");

    // The user exists before the unit starts, the unit is enabled and started, and the
    // config is root:tessera 0640 through a statoverride.
    let postinst = run(Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb.file)
        .arg("postinst"));
    let sysusers = postinst.find("systemd-sysusers").expect(&postinst);
    let enable = postinst
        .find("deb-systemd-helper enable tessera.service")
        .expect(&postinst);
    let start = postinst
        .find("deb-systemd-invoke $_dh_action tessera.service")
        .expect(&postinst);
    assert!(sysusers < enable && enable < start, "{postinst}");
    assert!(
        postinst.contains(
            "dpkg-statoverride --update --add root tessera 0640 /etc/tessera/tessera.toml"
        ),
        "{postinst}"
    );
    let sysusers_conf = read(&deb.root.join("usr/lib/sysusers.d/tessera.conf"));
    assert!(
        sysusers_conf
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["u", "tessera"])),
        "{sysusers_conf}"
    );

    // What is packaged is what the repository holds.
    let unit = read(&deb.root.join(UNIT));
    assert_eq!(unit, read(&repo("ops/systemd/tessera.service")));
    assert_eq!(
        read(&deb.root.join(CONFFILE)),
        read(&repo("ops/debian/tessera.toml"))
    );

    config_keeps_every_written_file_in_the_state_directory(&deb, &unit);
    systemd_analyze_accepts_the_unit(&deb, &unit);
    packaged_binary_serves_with_the_packaged_config_and_survives_sighup(&deb);
}

/// The unit may write only its StateDirectory; the config must put there everything the
/// server writes: the embedded store, the control socket, the API key file.
fn config_keeps_every_written_file_in_the_state_directory(deb: &Deb, unit: &str) {
    let state = unit_values(unit, "StateDirectory");
    assert_eq!(state, ["tessera"], "{unit}");
    let state_dir = Path::new("/var/lib/tessera");
    assert_eq!(unit_values(unit, "WorkingDirectory"), ["/var/lib/tessera"]);
    assert_eq!(
        unit_values(unit, "ExecStart"),
        ["/usr/bin/tessera serve --config /etc/tessera/tessera.toml"]
    );
    assert_eq!(unit_values(unit, "ExecReload"), ["/bin/kill -HUP $MAINPID"]);

    let config = tessera_config::load_with_env(
        Some(deb.root.join(CONFFILE).as_path()),
        std::iter::empty::<(String, String)>(),
    )
    .unwrap_or_else(|e| panic!("the packaged config does not load:\n{e}"));
    assert_eq!(config.store.backend, tessera_config::StoreBackend::Embedded);
    assert_eq!(config.store.data_dir, state_dir);
    assert!(config.store.embedded_path().starts_with(state_dir));
    assert!(tessera::control::socket_path(&config).starts_with(state_dir));
    assert_eq!(
        config.auth.api_key_file.as_deref(),
        Some(state_dir.join("api-key").as_path())
    );
}

/// `systemd-analyze verify` on the extracted unit, with ExecStart pointed at the extracted
/// binary (verify checks that the command exists; the package is not installed here), and
/// `systemd-analyze security --offline`, whose exposure must stay "OK" (at most 2.0).
fn systemd_analyze_accepts_the_unit(deb: &Deb, unit: &str) {
    if !has("systemd-analyze", "--version") {
        eprintln!(
            "SKIPPED: systemd-analyze is not installed on this machine, so the unit was not \
             verified (the hardening lines were still checked); Debian's systemd package has it"
        );
        return;
    }
    let bin = deb.root.join("usr/bin/tessera");
    let dir = deb.dir.path().join("verify");
    std::fs::create_dir_all(&dir).unwrap();
    let checked = dir.join("tessera.service");
    let exec = "ExecStart=/usr/bin/tessera ";
    assert_eq!(unit.matches(exec).count(), 1, "{unit}");
    std::fs::write(
        &checked,
        unit.replace(exec, &format!("ExecStart={} ", bin.display())),
    )
    .unwrap();

    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&checked)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "systemd-analyze verify: {}",
        if said.trim().is_empty() {
            "no findings"
        } else {
            &said
        }
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify ({}):\n{said}",
        out.status
    );

    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20", "--no-pager"])
        .arg(&checked)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let level = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or("(no overall exposure line)");
    eprintln!("systemd-analyze security: {}", level.trim());
    assert!(
        out.status.success(),
        "systemd-analyze security rates the unit above 2.0 ({}):\n{report}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn health(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    Some(answer)
}

fn wait_healthy(port: u16, server: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = server.try_wait().unwrap() {
            panic!("the packaged server exited: {status}");
        }
        if health(port)
            .is_some_and(|a| a.starts_with("HTTP/1.0 200") || a.starts_with("HTTP/1.1 200"))
        {
            return;
        }
        assert!(Instant::now() < deadline, "no 200 from /health within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The packaged binary with the packaged config, as the unit starts it, except that the state
/// directory is a temp dir (TESSERA_* variables, which the unit could set with Environment=):
/// it serves, writes the API key file and the control socket into the state directory, prints
/// on stdout nothing but the key (which the unit sends to /dev/null), and a SIGHUP (the unit's
/// ExecReload) leaves it serving.
fn packaged_binary_serves_with_the_packaged_config_and_survives_sighup(deb: &Deb) {
    let state = deb.dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let port = free_port();
    let stdout = deb.dir.path().join("stdout");
    let stderr = deb.dir.path().join("stderr");
    let child = Command::new(deb.root.join("usr/bin/tessera"))
        .arg("serve")
        .arg("--config")
        .arg(deb.root.join(CONFFILE))
        .env("TESSERA_SERVER_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("TESSERA_STORE_DATA_DIR", &state)
        .env("TESSERA_AUTH_API_KEY_FILE", state.join("api-key"))
        .current_dir(&state)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    wait_healthy(port, &mut server.0);

    assert!(state.join("tessera.redb").is_file());
    assert!(
        state.join("tessera.sock").exists(),
        "no control socket in the state directory"
    );
    let key = read(&state.join("api-key"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state.join("api-key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let printed = read(&stdout);
    assert!(printed.contains(key.trim()), "stdout: {printed}");
    let other: Vec<&str> = printed
        .lines()
        .filter(|l| {
            !l.trim().is_empty()
                && !l.contains(key.trim())
                && !l.starts_with("System API key")
                && !l.starts_with("Also written to")
        })
        .collect();
    assert!(
        other.is_empty(),
        "stdout carries more than the key banner, which the unit discards: {other:?}"
    );
    assert!(
        read(&stderr).contains("listening"),
        "the logs are not on stderr"
    );

    run(Command::new("kill")
        .arg("-HUP")
        .arg(server.0.id().to_string()));
    // Still serving after the reload; a second SIGHUP would kill a process that had no
    // handler, so poll a few times over the window a reload takes.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        wait_healthy(port, &mut server.0);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn unit_has_the_hardening_the_docs_promise() {
    let unit = read(&repo("ops/systemd/tessera.service"));
    for line in [
        "User=tessera",
        "Group=tessera",
        "StateDirectory=tessera",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "RestrictNamespaces=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectControlGroups=yes",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "UMask=0077",
        "StandardOutput=null",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(
            unit.lines().any(|l| l.trim() == line),
            "ops/systemd/tessera.service lacks `{line}`"
        );
    }
    // wasmtime compiles plugins at run time: W^X would break every plugin.
    assert!(
        unit_values(&unit, "MemoryDenyWriteExecute").is_empty(),
        "MemoryDenyWriteExecute breaks wasmtime's compiled plugins"
    );
    // No ReadWritePaths: the state directory is the only writable place.
    assert!(unit_values(&unit, "ReadWritePaths").is_empty());
}

#[test]
fn dockerfile_has_two_stages_a_non_root_user_and_a_health_check() {
    let text = read(&repo("Dockerfile"));
    // Instructions, with continuation lines joined.
    let joined = text.replace("\\\n", " ");
    let instructions: Vec<&str> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&str> = instructions
        .iter()
        .copied()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(froms.len(), 2, "two stages: {froms:?}");
    let stage = froms[0]
        .split_whitespace()
        .skip_while(|w| !w.eq_ignore_ascii_case("AS"))
        .nth(1)
        .expect("the first stage is named");
    assert!(
        instructions
            .iter()
            .any(|l| l.starts_with(&format!("COPY --from={stage} "))),
        "the runtime stage copies from the build stage"
    );
    assert!(
        instructions
            .iter()
            .any(|l| l.starts_with("RUN cargo build --release"))
    );
    let runtime_stage = &instructions[instructions.iter().position(|l| *l == froms[1]).unwrap()..];
    let users: Vec<&str> = runtime_stage
        .iter()
        .filter_map(|l| l.strip_prefix("USER "))
        .collect();
    assert_eq!(users.len(), 1, "{users:?}");
    assert!(
        !["root", "0", "root:root", "0:0"].contains(&users[0].trim()),
        "the runtime stage runs as root"
    );
    let health = runtime_stage
        .iter()
        .find(|l| l.starts_with("HEALTHCHECK "))
        .expect("a HEALTHCHECK");
    assert!(
        health.contains(" CMD ") && health.contains("/health"),
        "{health}"
    );
    // The health check's tool is installed in the runtime stage.
    assert!(
        runtime_stage
            .iter()
            .any(|l| l.starts_with("RUN ") && l.contains("install") && l.contains(" curl")),
        "the HEALTHCHECK needs curl in the runtime image"
    );
    assert!(runtime_stage.iter().any(|l| l.starts_with("EXPOSE 8080")));
    assert!(
        runtime_stage
            .iter()
            .any(|l| l.contains("TESSERA_SERVER_LISTEN_ADDR=0.0.0.0:8080")),
        "the server must listen beyond the container's loopback"
    );
    assert!(
        read(&repo(".dockerignore"))
            .lines()
            .any(|l| l.trim() == "target"),
        ".dockerignore keeps target/ out of the build context"
    );
}

/// compose.yaml parsed by a YAML parser (Python's, as JSON), not by a container engine.
fn compose() -> serde_json::Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(repo("compose.yaml"))
        .output()
        .expect("python3 is needed to parse compose.yaml");
    assert!(
        out.status.success(),
        "compose.yaml does not parse (Python's yaml is needed: tests/run.sh installs PyYAML):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn compose_runs_tessera_on_redis_once_redis_is_healthy() {
    let doc = compose();
    let services = doc["services"].as_object().expect("services");
    let mut names: Vec<&str> = services.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["redis", "tessera"]);

    let tessera = &doc["services"]["tessera"];
    assert_eq!(
        tessera["build"], ".",
        "tessera is built from the Dockerfile"
    );
    assert_eq!(tessera["environment"]["TESSERA_STORE_BACKEND"], "redis");
    assert_eq!(
        tessera["environment"]["TESSERA_STORE_REDIS_URL"],
        "redis://redis:6379"
    );
    assert_eq!(
        tessera["depends_on"]["redis"]["condition"], "service_healthy",
        "tessera waits for a healthy Redis"
    );
    assert!(
        tessera["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().ends_with(":8080")),
        "port 8080 is published"
    );

    let redis = &doc["services"]["redis"];
    assert!(redis["image"].as_str().unwrap().starts_with("redis:"));
    let test = redis["healthcheck"]["test"]
        .as_array()
        .expect("a healthcheck");
    assert!(
        test.iter().any(|t| t == "redis-cli") && test.iter().any(|t| t == "ping"),
        "{test:?}"
    );
    // Every service's data on a named volume, declared at the top level.
    for (service, path) in [("tessera", "/var/lib/tessera"), ("redis", "/data")] {
        let mounts = doc["services"][service]["volumes"].as_array().unwrap();
        let volume = mounts
            .iter()
            .filter_map(|m| m.as_str()?.strip_suffix(&format!(":{path}")))
            .next()
            .unwrap_or_else(|| panic!("{service} keeps {path} on no volume"));
        assert!(doc["volumes"].get(volume).is_some(), "volume {volume}");
    }
}
