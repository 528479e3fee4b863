//! The operator panel in a real browser (issue 16): Debian's `chromium`, headless, driven by
//! `playwright-core` from npm (`tests/browser/`), against the real server this test starts.
//! The scenario (`tests/browser/panel.test.mjs`) logs in with the encrypted flow, creates a
//! license, watches a client's session appear on the dashboard and the license page without
//! a reload, kicks it, suspends the license and sees its session end as `suspended`, runs a
//! bulk dry run and a confirmed bulk renew, publishes a release that `version/check` then
//! reports, and saves a screenshot of every page under `target/panel-screenshots/`.
//!
//! `tests/run.sh` installs chromium (apt-get) and the npm package when they are missing; a
//! machine without them fails here with what to run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tessera::auth::operators;
use tessera::auth::scopes::Role;
use tessera_integration_tests::TestServer;

const PASSWORD: &str = "correct horse battery staple";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn chromium() -> PathBuf {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    found.unwrap_or_else(|| {
        panic!("Debian's chromium is not installed: run `bash tests/run.sh` (it installs it) or `apt-get install chromium`")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_the_day_from_the_panel_in_a_real_browser() {
    let browser = chromium();
    let scripts = repo().join("tests/browser");
    assert!(
        scripts.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `bash tests/run.sh` (or `npm ci --prefix tests/browser`)"
    );
    let server = TestServer::start_with(|c| {
        // One browser and the scenario's client calls come from 127.0.0.1: the per-address
        // limits would count them together.
        c.rate_limit.enabled = false;
        // The scenario's webhook points at a closed port on loopback: deliveries fail and
        // retry, and nothing leaves the machine.
        c.webhooks.allow_private_targets = true;
    })
    .await
    .unwrap();
    let meta = server.state.meta.as_ref();
    operators::create(meta, "root", Role::SuperAdmin, PASSWORD)
        .await
        .unwrap();
    operators::create(meta, "alice", Role::Admin, PASSWORD)
        .await
        .unwrap();
    let out = repo().join("target/panel-screenshots");
    // A previous run's pictures (a failure.png above all) must not pass for this run's.
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();

    let mut child = tokio::process::Command::new("node")
        .arg(scripts.join("panel.test.mjs"))
        .current_dir(&scripts)
        .env("BASE_URL", format!("http://{}", server.addr))
        .env("API_KEY", &server.api_key)
        .env("SUPER_ADMIN", "root")
        .env("ADMIN", "alice")
        .env("PASSWORD", PASSWORD)
        .env("CHROMIUM", &browser)
        .env("OUT_DIR", &out)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (tests/run.sh installs nodejs)");
    let status = tokio::time::timeout(Duration::from_secs(300), child.wait())
        .await
        .expect("the browser scenario finishes within 5 minutes")
        .unwrap();
    assert!(
        status.success(),
        "the browser scenario failed ({status}); its steps are printed above, screenshots in {}",
        out.display()
    );
    // Every page the scenario visits leaves its picture (tests/browser/panel.test.mjs).
    for page in [
        "login",
        "dashboard",
        "license",
        "licenses",
        "products",
        "events",
        "audit",
        "customers",
        "customer",
        "webhooks",
        "webhook",
        "plugins",
        "security",
        "operators",
        "dashboard-phone-dark",
        "licenses-phone-light",
        "license-phone-light",
    ] {
        assert!(
            out.join(format!("{page}.png")).exists(),
            "screenshot of {page} in {}",
            out.display()
        );
    }
}
