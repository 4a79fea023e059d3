//! The `gatewayd` command line: usage errors exit 2 before anything is touched.

use std::process::Command;

fn gatewayd(args: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_gatewayd"))
        .args(args)
        .env_clear()
        .env("HOME", home.path())
        .output()
        .unwrap()
}

#[test]
fn help_names_the_run_command_and_exit_codes() {
    let out = gatewayd(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("run") && text.contains("78 configuration error"), "{text}");
    let out = gatewayd(&["run", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--profile",
        "--dev",
        "--config",
        "--state-dir",
        "--port",
        "--bind",
        "--force",
        "--log-format",
        "--verbose",
    ] {
        assert!(text.contains(flag), "{flag} missing from run --help:\n{text}");
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in
        [&["run", "--port", "0"][..], &["run", "--bind", "moon"], &["run", "--profile", "../etc"], &["fly"]]
    {
        let out = gatewayd(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?} says why");
    }
}
