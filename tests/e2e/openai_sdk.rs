//! The official `openai` Python SDK against the real daemon: chat completions and responses,
//! streamed and not, `previous_response_id` included, and a conversation replayed by
//! `item_reference` with every input item type (tests/python/openai_sdk.py), with the built-in
//! echo model and with a provider at the fake upstream.

use std::path::{Path, PathBuf};
use std::process::Command;

use gateway_tests::upstream::Upstream;
use gateway_tests::*;

use crate::openai_api::upstream_provider;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed ({}):\n{text}", out.status);
    text
}

/// The venv under target/ with the SDK pinned in tests/python/requirements.txt (.ci/run makes
/// it; made here if missing, which needs PyPI).
fn python() -> PathBuf {
    let venv = repo().join("target/python-venv");
    let python = venv.join("bin/python");
    let requirements = repo().join("tests/python/requirements.txt");
    let has_sdk =
        |py: &Path| Command::new(py).args(["-c", "import openai"]).output().is_ok_and(|o| o.status.success());
    if !has_sdk(&python) {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv), "python3 -m venv target/python-venv");
        run(
            Command::new(&python).args(["-m", "pip", "install", "--quiet", "-r"]).arg(&requirements),
            "pip install -r tests/python/requirements.txt",
        );
    }
    python
}

#[test]
fn the_openai_python_sdk_chats_and_responds_through_the_gateway() {
    let python = python();
    let up = Upstream::start();
    let home = Home::new();
    let d = home.start_with(&upstream_provider(&up, &["echo"]));
    let base_url = format!("http://127.0.0.1:{}/v1", d.port);
    let out = run(
        Command::new(&python)
            .arg(repo().join("tests/python/openai_sdk.py"))
            .args([base_url.as_str(), "echo/echo", "up/echo"])
            .env("OPENAI_API_KEY", home.token()),
        "tests/python/openai_sdk.py",
    );
    assert!(out.contains("all checks passed"), "{out}");
    // The upstream model really ran: 2 chat completions and 7 responses.
    let sent = up.requests_to("/chat/completions");
    assert_eq!(sent.len(), 9, "{out}");
    // The replayed answer reached the model as the assistant's turn.
    let turns = |body: &serde_json::Value| -> Vec<(String, String)> {
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["role"].as_str().unwrap().to_owned(), m["content"].as_str().unwrap_or("").to_owned()))
            .collect()
    };
    let replay = [("user", "my name is Ada"), ("assistant", "my name is Ada"), ("user", "what is my name?")]
        .map(|(r, c)| (r.to_owned(), c.to_owned()));
    assert!(sent.iter().any(|r| turns(&r.body) == replay), "no request with the replayed turns");
}
