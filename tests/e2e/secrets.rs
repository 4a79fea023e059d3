//! `gatewayctl secrets audit` and `secrets reload` against the real daemon.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use gateway_tests::*;
use serde_json::Value;

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

fn chmod(path: &std::path::Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn audit_names_sources_modes_and_what_does_not_resolve() {
    let home = Home::new();
    let key_file = home.path().join("provider.key");
    fs::write(&key_file, "sk-test-1234567890\n").unwrap();
    chmod(&key_file, 0o644);
    let config = format!(
        "[models.providers.up]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodels = [\"m\"]\napi_key = \"file:{}\"\n\
         [models.providers.other]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodels = [\"n\"]\napi_key = \"env:GW_TEST_MISSING_KEY\"\n",
        key_file.display()
    );
    let _d = home.start_with(&config);
    chmod(&home.config_file(None), 0o600);

    let out = home.ctl(&["secrets", "audit", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let audit = json(&out);
    let entry =
        |key: &str| audit["secrets"].as_array().unwrap().iter().find(|e| e["key"] == key).cloned().unwrap();
    let token = entry("gateway.auth.token");
    assert_eq!(
        (token["source"].as_str(), token["file_mode"].as_str()),
        (Some("state"), Some("0600")),
        "{audit}"
    );
    let up = entry("models.providers.up.api_key");
    assert_eq!((up["source"].as_str(), up["file_mode"].as_str()), (Some("file"), Some("0644")), "{audit}");
    assert!(up["problem"].as_str().unwrap().contains("readable by others"), "{audit}");
    let other = entry("models.providers.other.api_key");
    assert_eq!(
        (other["reference"].as_str(), other["resolves"].as_bool()),
        (Some("env:GW_TEST_MISSING_KEY"), Some(false))
    );
    assert_eq!(audit["problems"], 2, "{audit}");
    assert!(!audit.to_string().contains("sk-test"), "never a value: {audit}");

    let text = String::from_utf8_lossy(&home.ctl(&["secrets", "audit"]).stdout).into_owned();
    assert!(text.contains("PROBLEM  models.providers.up.api_key: file "), "{text}");
    assert!(text.contains("ok       gateway.auth.token: state "), "{text}");

    // Fixed: the file made private, the unresolvable provider gone.
    chmod(&key_file, 0o600);
    let fixed = &config[..config.find("[models.providers.other]").unwrap()];
    home.write_config(None, fixed);
    chmod(&home.config_file(None), 0o600);
    wait_for(std::time::Duration::from_secs(5), "a clean audit", || {
        (home.ctl(&["secrets", "audit"]).status.code() == Some(0)).then_some(())
    });
}

#[test]
fn secrets_reload_reads_references_again() {
    let home = Home::new();
    let token_file = home.path().join("gateway.token");
    fs::write(&token_file, "first-token-0123456789\n").unwrap();
    chmod(&token_file, 0o600);
    let _d = home.start_with(&format!(
        "[gateway.reload]\nmode = \"off\"\n[gateway.auth]\ntoken = \"file:{}\"\n",
        token_file.display()
    ));
    let port = _d.port;
    let status = |token: &str| {
        http(port, "GET", "/gateway/status", &[("Authorization", &format!("Bearer {token}"))]).0
    };
    assert_eq!(status("first-token-0123456789"), 200);

    // The reference is the same, the value behind it changed: secrets reload applies it.
    fs::write(&token_file, "second-token-0123456789\n").unwrap();
    let out = home.ctl(&["secrets", "reload", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let report = json(&out);
    assert_eq!(report["outcome"], "applied", "{report}");
    assert_eq!(report["changed_keys"], serde_json::json!(["gateway.auth.token"]), "{report}");
    assert_eq!(status("second-token-0123456789"), 200);
    assert_eq!(status("first-token-0123456789"), 401);

    // A reference that no longer resolves: refused (exit 78), the secret in effect stays.
    fs::remove_file(&token_file).unwrap();
    let out = home.ctl(&["secrets", "reload"]);
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("gateway.auth.token"), "{out:?}");
    assert_eq!(status("second-token-0123456789"), 200);
}
