//! The Python venv under target/ with the packages pinned in tests/python/requirements.txt (the
//! official `openai` SDK, the OpenTelemetry protobuf definitions). `.ci/run` makes it; made here
//! if missing or incomplete, which needs PyPI.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The venv's python, with every pinned package importable.
pub fn venv_python() -> PathBuf {
    let venv = repo().join("target/python-venv");
    let python = venv.join("bin/python");
    let requirements = repo().join("tests/python/requirements.txt");
    let complete = |py: &Path| {
        Command::new(py)
            .args(["-c", "import openai, opentelemetry.proto"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !complete(&python) {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv), "python3 -m venv target/python-venv");
        run(
            Command::new(&python).args(["-m", "pip", "install", "--quiet", "-r"]).arg(&requirements),
            "pip install -r tests/python/requirements.txt",
        );
    }
    python
}

/// Runs `cmd` to success and returns its output, stdout then stderr.
pub fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed ({}):\n{text}", out.status);
    text
}
