//! The demo scripts, run as a user would: `scripts/demo.sh` (the daemon start to stop) and
//! `scripts/demo-remote.sh` (remote-access posture). Each runs twice; the masked outputs must be
//! the same, and say what the tour shows.

use std::path::Path;
use std::process::Command;

use gateway_tests::bin;

fn run(script: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let bin_dir = bin("gatewayd").parent().unwrap().to_path_buf();
    let out = Command::new(root.join("scripts").join(script))
        .env("GATEWAY_BIN_DIR", &bin_dir)
        .output()
        .expect("run the demo");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{script} failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    text
}

#[test]
fn the_demo_tours_the_daemon_and_prints_the_same_every_run() {
    let first = run("demo.sh");
    for says in [
        "ok   listener: running on 127.0.0.1:<port>",
        "state=running auth=token bind=loopback config_generation=1",
        "echo/echo: Hello, gateway. (finish: stop)",
        "text: Stream this back.",
        "completed: What was the word? (previous_response_id set: True)",
        "connected: protocol 4,",
        "chat demo-ws: ",
        "then final: Hi over the WebSocket.",
        "applied: generation 2 (changed: hooks.enabled, hooks.token)",
        "accepted: ok=True session=hook:ci",
        "first run: schedule ok (completed), answer: Tick from the scheduler.",
        "events: rollout_gate=pass reason=events_healthy discovered=1",
        "applied: generation 3 (changed: gateway.heartbeat.interval_ms)",
        "gateway.toml:5:15: key `gateway.heartbeat.interval_ms`",
        "still serving generation 3",
        "Scheduled jobs: rollout gate: pass (events_healthy)",
        "Verdict: healthy",
        "remote: ok: remote access: local-only (loopback-only), gate pass",
        "gatewayd exited 0",
    ] {
        assert!(first.contains(says), "the demo does not say {says:?}:\n{first}");
    }
    let second = run("demo.sh");
    assert_eq!(first, second, "two runs differ beyond what is masked");
}

#[test]
fn the_remote_demo_plans_a_safe_profile_and_refuses_an_unsafe_one() {
    let first = run("demo-remote.sh");
    for says in [
        "$ tailscale serve --bg --https=443 http://127.0.0.1:18789",
        "$ ssh -N -L 18789:127.0.0.1:18789 user@host",
        "check=tailscale_cli status=hold",
        "refusing to plan tailscale-funnel: the gate holds",
        "reasons:     password_auth_required, password_not_set",
        "reasons:     non_loopback_bind",
        "(exit 78)",
    ] {
        assert!(first.contains(says), "the remote demo does not say {says:?}:\n{first}");
    }
    assert_eq!(first, run("demo-remote.sh"));
}
