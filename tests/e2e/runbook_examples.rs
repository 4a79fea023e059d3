//! The Tau gateway runbook's curl examples, run as written (with curl) against our port and
//! token: sessions and memory admin, the password exchange, responses (whole and streamed),
//! chat and text completions, models and status. Only the address and the credentials differ:
//! the runbook's `127.0.0.1:8787` is our port, `local-dev-token` and `local-password` are
//! what this gateway is configured with. Its model, `openai/gpt-4o-mini`, is a provider named
//! `openai` here, served by the fake upstream.

use std::process::Command;

use gateway_tests::upstream::Upstream;
use gateway_tests::*;
use serde_json::Value;

/// Runs one example: `curl ARGS...` with the runbook's address and token replaced by ours;
/// returns its output, which must be a success.
fn curl(port: u16, example: &str) -> String {
    let example = example.replace("127.0.0.1:8787", &format!("127.0.0.1:{port}"));
    let out = Command::new("bash").arg("-c").arg(&example).output().expect("bash and curl run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{example}\nexit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn config(up: &Upstream, auth: &str) -> String {
    format!(
        "[gateway.auth]\n{auth}\n[models]\ndefault = \"openai/gpt-4o-mini\"\n\
         [models.providers.openai]\nkind = \"openai\"\nbase_url = \"{}\"\nmodels = [\"gpt-4o-mini\"]\nmax_retries = 0\n",
        up.openai_base_url()
    )
}

#[test]
fn the_tau_runbook_examples_run_as_written() {
    let up = Upstream::start();
    let home = Home::new();
    let d = home.start_with(&config(&up, "mode = \"token\"\ntoken = \"local-dev-token\""));
    let port = d.port;

    // Session admin API examples.
    let list = json(&curl(
        port,
        r#"curl -sS http://127.0.0.1:8787/gateway/sessions \
  -H "Authorization: Bearer local-dev-token""#,
    ));
    assert!(list["sessions"].is_array(), "{list}");
    let appended = json(&curl(
        port,
        r#"curl -sS http://127.0.0.1:8787/gateway/sessions/default/append \
  -H "Authorization: Bearer local-dev-token" \
  -H "Content-Type: application/json" \
  -d '{"role":"user","content":"manual session note","policy_gate":"allow_session_write"}'"#,
    ));
    assert_eq!(appended["ok"], true, "{appended}");
    let reset = json(&curl(
        port,
        r#"curl -sS http://127.0.0.1:8787/gateway/sessions/default/reset \
  -H "Authorization: Bearer local-dev-token" \
  -H "Content-Type: application/json" \
  -d '{"policy_gate":"allow_session_write"}'"#,
    ));
    assert_eq!(reset["ok"], true, "{reset}");

    // Memory admin API examples.
    let memory = json(&curl(
        port,
        r#"curl -sS http://127.0.0.1:8787/gateway/memory/default \
  -H "Authorization: Bearer local-dev-token""#,
    ));
    assert_eq!(memory["session_key"], "default", "{memory}");
    let written = json(&curl(
        port,
        r#"curl -sS -X PUT http://127.0.0.1:8787/gateway/memory/default \
  -H "Authorization: Bearer local-dev-token" \
  -H "Content-Type: application/json" \
  -d '{"content":"operator memory note","policy_gate":"allow_memory_write"}'"#,
    ));
    assert_eq!(written["ok"], true, "{written}");
    let memory = json(&curl(
        port,
        r#"curl -sS http://127.0.0.1:8787/gateway/memory/default \
  -H "Authorization: Bearer local-dev-token""#,
    ));
    assert_eq!(memory["content"], "operator memory note", "{memory}");

    // Non-stream and streamed responses.
    let response = json(&curl(
        port,
        r#"curl -sS http://127.0.0.1:8787/v1/responses \
  -H "Authorization: Bearer local-dev-token" \
  -H "Content-Type: application/json" \
  -d '{
    "model": "openai/gpt-4o-mini",
    "instructions": "Be concise",
    "input": [
      {"type":"message","role":"user","content":[{"type":"input_text","text":"Summarize this system."}]}
    ]
  }'"#,
    ));
    assert_eq!(
        (response["object"].as_str(), response["status"].as_str()),
        (Some("response"), Some("completed")),
        "{response}"
    );
    let stream = curl(
        port,
        r#"curl -N http://127.0.0.1:8787/v1/responses \
  -H "Authorization: Bearer local-dev-token" \
  -H "Content-Type: application/json" \
  -d '{
    "input":"stream this response",
    "stream": true
  }'"#,
    );
    assert!(stream.contains("event: response.completed"), "{stream}");

    // OpenAI-compatible chat, streamed text completion, models.
    let chat = json(&curl(
        port,
        r#"curl -sS http://127.0.0.1:8787/v1/chat/completions \
  -H "Authorization: Bearer local-dev-token" \
  -H "Content-Type: application/json" \
  -d '{
    "model": "openai/gpt-4o-mini",
    "messages": [{"role":"user","content":"Say hi in one sentence."}]
  }'"#,
    ));
    assert_eq!(chat["object"], "chat.completion", "{chat}");
    let completion = curl(
        port,
        r#"curl -N http://127.0.0.1:8787/v1/completions \
  -H "Authorization: Bearer local-dev-token" \
  -H "Content-Type: application/json" \
  -d '{
    "prompt": "Generate a one-line release note.",
    "stream": true
  }'"#,
    );
    assert!(completion.contains("data: [DONE]"), "{completion}");
    let models = json(&curl(
        port,
        r#"curl -sS http://127.0.0.1:8787/v1/models \
  -H "Authorization: Bearer local-dev-token""#,
    ));
    assert!(models.to_string().contains("openai/gpt-4o-mini"), "{models}");

    // Direct status endpoint check.
    let status = json(&curl(
        port,
        r#"curl -sS http://127.0.0.1:8787/gateway/status \
  -H "Authorization: Bearer local-dev-token""#,
    ));
    assert!(status.is_object() && status.get("error").is_none(), "{status}");
}

#[test]
fn the_tau_runbook_password_exchange_runs_as_written() {
    let up = Upstream::start();
    let home = Home::new();
    let d = home.start_with(&config(&up, "mode = \"password\"\npassword = \"local-password\""));
    let session = json(&curl(
        d.port,
        r#"curl -sS http://127.0.0.1:8787/gateway/auth/session \
  -H "Content-Type: application/json" \
  -d '{"password":"local-password"}'"#,
    ));
    assert_eq!(session["token_type"], "bearer", "{session}");
    assert!(session["expires_in_seconds"].as_u64().unwrap() > 0, "{session}");
    let token = session["access_token"].as_str().unwrap();
    // The session token as bearer on the runbook's status check.
    let status = curl(
        d.port,
        &format!("curl -sS -f http://127.0.0.1:8787/gateway/status -H \"Authorization: Bearer {token}\""),
    );
    assert!(json(&status).is_object(), "{status}");
}
