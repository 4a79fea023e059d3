//! The Node.js side of the tests: `tests/node` pins the third-party npm clients (openclaw-node,
//! playwright-core) and holds the scripts that drive them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::process::run;

/// The client script and its package.json, lockfile and node_modules.
pub fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("node")
}

/// Makes sure `tests/node/node_modules` holds the pinned packages: runs `npm ci` when a package is
/// missing or at another version than package.json pins (CI installs them before the tests).
pub fn ensure_node_deps() {
    static ONCE: Mutex<bool> = Mutex::new(false);
    let mut done = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return;
    }
    let dir = node_dir();
    let node = run(
        {
            let mut c = Command::new("node");
            c.arg("--version");
            c
        },
        "node --version",
        Duration::from_secs(30),
    );
    assert_eq!(node.code, Some(0), "node --version: {}", node.stderr);
    let major: u32 = node
        .stdout
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    // openclaw-node 0.14 and playwright-core declare Node 18+; they are tested on 20.
    assert!(major >= 18, "the node clients need Node.js 18 or later; found {}", node.stdout.trim());

    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("package.json")).unwrap()).unwrap();
    let installed = |name: &str| -> Option<String> {
        let text = std::fs::read_to_string(dir.join("node_modules").join(name).join("package.json")).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v["version"].as_str().map(str::to_owned)
    };
    let deps = manifest["dependencies"].as_object().expect("dependencies in tests/node/package.json");
    let stale: Vec<String> = deps
        .iter()
        .filter(|(name, want)| installed(name).as_deref() != want.as_str())
        .map(|(name, want)| format!("{name}@{}", want.as_str().unwrap_or("?")))
        .collect();
    if !stale.is_empty() {
        eprintln!("tests/node: installing {} with npm ci", stale.join(", "));
        let mut npm = Command::new("npm");
        npm.args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir);
        let done_ci = run(npm, "npm ci in tests/node", Duration::from_secs(300));
        assert_eq!(
            done_ci.code,
            Some(0),
            "npm ci in {} failed (the npm registry must be reachable, or run .ci/run's install step):\n{}\n{}",
            dir.display(),
            done_ci.stdout,
            done_ci.stderr
        );
        for (name, want) in deps {
            assert_eq!(installed(name).as_deref(), want.as_str(), "{name} after npm ci");
        }
    }
    *done = true;
}

/// Debian's Chromium, for the browser tests (`CHROMIUM` names another). Installed with apt when
/// it is missing and this runs as root, as `.ci/run` does; otherwise the failure says how.
pub fn chromium() -> PathBuf {
    let path =
        std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    crate::process::debian_program(&path, "chromium")
}

/// True when this process runs as root (it may install packages then).
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
