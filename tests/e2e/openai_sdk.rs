//! The official `openai` Python SDK against the real daemon: chat completions and responses,
//! streamed and not, `previous_response_id` included, and a conversation replayed by
//! `item_reference` with every input item type (tests/python/openai_sdk.py), with the built-in
//! echo model and with a provider at the fake upstream.

use std::process::Command;

use gateway_tests::python::{repo, run, venv_python};
use gateway_tests::upstream::Upstream;
use gateway_tests::*;

use crate::openai_api::upstream_provider;

#[test]
fn the_openai_python_sdk_chats_and_responds_through_the_gateway() {
    let python = venv_python();
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
