//! The Control UI in a real browser: headless Chromium (Debian's) driven by playwright-core
//! (`tests/node/ui_browser.cjs`) against the real daemon: sign-in by `gatewayctl dashboard`'s
//! link, chat (echo, streamed, aborted, with a tool call), sessions, memory, device approval,
//! config edits, the live log, another site's attempts, a read-only browser, sign-out and token
//! rotation. Screenshots of every view land in `target/ui-screenshots`.

use std::path::Path;
use std::time::Duration;

use gateway_tests::node::{chromium, ensure_node_deps, node_dir};
use gateway_tests::process::run;
use gateway_tests::upstream::{upstream_provider, Upstream};
use gateway_tests::{bin, Home};
use serde_json::Value;

const SLOW: &str = "up/words-12+chunk-delay-150";
const ABORTED: &str = "up/words-400+chunk-delay-100";
const TOOL: &str = "up/tool-time";

#[test]
fn a_person_runs_the_gateway_from_the_browser() {
    let browser = chromium();
    ensure_node_deps();
    let up = Upstream::start();
    let home = Home::new();
    let config = format!(
        "[gateway.http]\ntrusted_proxies = [\"127.0.0.1\"]\n\n[gateway.heartbeat]\ninterval_ms = 30000\n\n{}",
        upstream_provider(&up, &["words-12+chunk-delay-150", "words-400+chunk-delay-100", "tool-time"])
    );
    let d = home.start_with(&config);
    let token = home.token();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots");

    let mut cmd = home.command(Path::new("node"));
    cmd.arg(node_dir().join("ui_browser.cjs"))
        .current_dir(node_dir())
        .env("GATEWAY_PORT", d.port.to_string())
        .env("GATEWAY_TOKEN", &token)
        .env("GATEWAYCTL", bin("gatewayctl"))
        .env("CHROMIUM", &browser)
        .env("SHOTS", &shots)
        .env("SLOW_MODEL", SLOW)
        .env("ABORT_MODEL", ABORTED)
        .env("TOOL_MODEL", TOOL);
    let done = run(cmd, "node ui_browser.cjs", Duration::from_secs(240));
    let log = std::fs::read_to_string(home.state_dir(None).join("logs/gatewayd.jsonl"))
        .expect("the daemon's log file");
    assert_eq!(
        done.code,
        Some(0),
        "the browser scenario failed (screenshot: {}/failure.png)\n--- steps:\n{}\n--- stderr:\n{}\n--- gatewayd stderr:\n{}",
        shots.display(),
        done.stdout,
        done.stderr,
        d.stderr()
    );
    let last: Value = serde_json::from_str(done.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["ok"], true);
    eprintln!(
        "Control UI: first paint {} ms, signed in and connected {} ms after navigation",
        last["firstPaintMs"], last["interactiveMs"]
    );
    // No secret reached the daemon's log or its stderr.
    let stderr = d.stderr();
    for (what, secret) in [
        ("token", token.as_str()),
        ("code", last["code"].as_str().unwrap()),
        ("cookie", last["cookie"].as_str().unwrap()),
    ] {
        assert!(!log.contains(secret) && !stderr.contains(secret), "the {what} is in the daemon's log");
    }
    assert!(shots.join("overview-phone.png").exists() && shots.join("logs-desktop.png").exists());
}
