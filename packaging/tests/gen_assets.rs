//! gateway-gen-assets renders a man page for every command and subcommand of both binaries and
//! a completion script per shell. (Being an integration test also makes `cargo test --workspace`
//! build the binary, which tests/e2e/packaging.rs runs through the install script.)

use std::path::Path;
use std::process::Command;

use clap::CommandFactory;

/// Every command path of a clap tree as man page names: `gatewayctl`, `gatewayctl-config-show`, ...
fn page_names(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
    let name =
        if prefix.is_empty() { cmd.get_name().to_owned() } else { format!("{prefix}-{}", cmd.get_name()) };
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        page_names(sub, &name, out);
    }
    out.push(name);
}

fn generate(out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gateway-gen-assets")).arg(out).output().unwrap()
}

#[test]
fn renders_a_page_for_every_command_and_completions_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut pages = Vec::new();
    page_names(&gatewayd::cli::Cli::command(), "", &mut pages);
    page_names(&gatewayctl::cli::Cli::command(), "", &mut pages);
    assert!(pages.len() > 20, "{pages:?}");
    for page in &pages {
        let path = dir.path().join("man").join(format!("{page}.1"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page} is not a man page");
    }
    for (shell, file) in [("bash", "gatewayctl"), ("zsh", "_gatewayctl"), ("fish", "gatewayctl.fish")] {
        for bin in ["gatewayd", "gatewayctl"] {
            let path = dir.path().join("completions").join(shell).join(file.replace("gatewayctl", bin));
            assert!(path.exists(), "{} missing", path.display());
        }
    }
    let bash = dir.path().join("completions/bash/gatewayctl");
    let syntax = Command::new("bash").arg("-n").arg(&bash).output().unwrap();
    assert!(syntax.status.success(), "bash -n: {}", String::from_utf8_lossy(&syntax.stderr));
}

#[test]
fn without_an_output_dir_it_says_how_to_call_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_gateway-gen-assets")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: gateway-gen-assets OUT_DIR"));
}
