//! Packaging: the from-source install script and the Debian package, built from the binaries this
//! test run built. The .deb needs cargo-deb: `.ci/run` installs it, and this test installs the
//! pinned version into `target/tools` itself when it is missing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use gateway_tests::process::run;
use gateway_tests::*;

/// The cargo-deb version the packaging is tested with.
const CARGO_DEB_VERSION: &str = "3.8.0";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `target/debug` (or whichever profile built this test), where the binaries are.
fn bin_dir() -> PathBuf {
    bin("gatewayd").parent().unwrap().to_path_buf()
}

/// The subcommands `gatewayctl --help` lists: each must have its own man page.
fn ctl_subcommands() -> Vec<String> {
    let help = run(
        {
            let mut c = Command::new(bin("gatewayctl"));
            c.arg("--help");
            c
        },
        "gatewayctl --help",
        Duration::from_secs(10),
    )
    .expect_ok("gatewayctl --help");
    let commands = help.stdout.split("Commands:").nth(1).expect("a Commands: section").to_owned();
    commands
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

fn assert_man_pages(dir: &Path) {
    let subcommands = ctl_subcommands();
    assert!(subcommands.len() >= 5, "few subcommands parsed from --help: {subcommands:?}");
    let pages: Vec<String> = ["gatewayd", "gatewayd-run", "gatewayctl"]
        .iter()
        .map(|p| p.to_string())
        .chain(subcommands.iter().map(|s| format!("gatewayctl-{s}")))
        .collect();
    for page in pages {
        let plain = dir.join(format!("{page}.1"));
        let text = if plain.exists() {
            fs::read_to_string(&plain).unwrap()
        } else {
            let gz = dir.join(format!("{page}.1.gz"));
            assert!(gz.exists(), "no man page for {page} in {}", dir.display());
            let out = run(
                {
                    let mut c = Command::new("gzip");
                    c.arg("-dc").arg(&gz);
                    c
                },
                "gzip -dc",
                Duration::from_secs(10),
            )
            .expect_ok("gzip -dc");
            out.stdout
        };
        assert!(text.contains(".TH"), "{page}'s man page is not roff:\n{text}");
    }
}

#[test]
fn install_script_installs_binaries_man_pages_and_completions() {
    let prefix = tempfile::tempdir().unwrap();
    let script = repo().join("packaging/install.sh");
    let install = || {
        let mut c = Command::new(&script);
        c.arg("--prefix").arg(prefix.path()).arg("--from").arg(bin_dir());
        run(c, "packaging/install.sh", Duration::from_secs(60)).expect_ok("packaging/install.sh")
    };
    let first = install();
    assert!(first.stdout.contains("next: gatewayctl install"), "no next step printed:\n{}", first.stdout);
    // Installing again over an installed copy works (an upgrade).
    install();

    for name in ["gatewayd", "gatewayctl"] {
        let path = prefix.path().join("bin").join(name);
        assert_eq!(mode(&path), 0o755, "{}", path.display());
        let version = run(
            {
                let mut c = Command::new(&path);
                c.arg("--version");
                c
            },
            "installed --version",
            Duration::from_secs(10),
        )
        .expect_ok("installed binary --version");
        assert!(version.stdout.starts_with(name), "{name} --version said {}", version.stdout);
    }
    let share = prefix.path().join("share");
    assert_man_pages(&share.join("man/man1"));
    let bash = share.join("bash-completion/completions/gatewayctl");
    run(
        {
            let mut c = Command::new("bash");
            c.arg("-n").arg(&bash);
            c
        },
        "bash -n on the completion",
        Duration::from_secs(10),
    )
    .expect_ok("bash -n gatewayctl completion");
    assert!(fs::read_to_string(&bash).unwrap().contains("status"), "the bash completion lacks subcommands");
    assert!(share.join("zsh/site-functions/_gatewayctl").exists());
    assert!(share.join("fish/vendor_completions.d/gatewayctl.fish").exists());
}

/// A release tarball (packaging/build-tarball.sh) unpacked anywhere installs with its own
/// `./install.sh`, no Rust needed; bare binaries install with `--from` alone.
#[test]
fn a_release_tarball_and_bare_binaries_install() {
    let work = tempfile::tempdir().unwrap();
    let built = run(
        {
            let mut c = Command::new(repo().join("packaging/build-tarball.sh"));
            c.arg("--output").arg(work.path()).arg("--from").arg(bin_dir());
            c
        },
        "packaging/build-tarball.sh",
        Duration::from_secs(60),
    )
    .expect_ok("packaging/build-tarball.sh");
    let tarball = PathBuf::from(built.stdout.trim());
    assert!(tarball.file_name().unwrap().to_str().unwrap().starts_with("gateway-"), "{}", built.stdout);
    run(
        {
            let mut c = Command::new("tar");
            c.arg("-xzf").arg(&tarball).arg("-C").arg(work.path());
            c
        },
        "tar -xzf",
        Duration::from_secs(30),
    )
    .expect_ok("unpacking the tarball");
    let top = work.path().join(tarball.file_name().unwrap().to_str().unwrap().trim_end_matches(".tar.gz"));
    let prefix = work.path().join("prefix");
    let out = run(
        {
            let mut c = Command::new(top.join("install.sh"));
            c.arg("--prefix").arg(&prefix).env_remove("CARGO");
            c
        },
        "the tarball's install.sh",
        Duration::from_secs(60),
    )
    .expect_ok("the tarball's install.sh");
    assert!(out.stdout.contains("installed gatewayd and gatewayctl"), "{}", out.stdout);
    assert_eq!(mode(&prefix.join("bin/gatewayd")), 0o755);
    assert_man_pages(&prefix.join("share/man/man1"));
    assert!(prefix.join("share/bash-completion/completions/gatewayctl").exists());

    // Just the two binaries: they go in, and it says what it left out.
    let bare = work.path().join("bare");
    fs::create_dir_all(&bare).unwrap();
    for name in ["gatewayd", "gatewayctl"] {
        fs::copy(bin(name), bare.join(name)).unwrap();
    }
    let prefix = work.path().join("prefix-bare");
    let out = run(
        {
            let mut c = Command::new(repo().join("packaging/install.sh"));
            c.arg("--prefix").arg(&prefix).arg("--from").arg(&bare);
            c
        },
        "install.sh --from bare binaries",
        Duration::from_secs(60),
    )
    .expect_ok("install.sh --from bare binaries");
    assert!(out.stderr.contains("installing the binaries only"), "{}", out.stderr);
    assert!(prefix.join("bin/gatewayctl").exists());
}

#[test]
fn install_script_refuses_unknown_arguments_and_missing_binaries() {
    let script = repo().join("packaging/install.sh");
    let empty = tempfile::tempdir().unwrap();
    let out = run(
        {
            let mut c = Command::new(&script);
            c.arg("--prefix").arg(empty.path()).arg("--from").arg(empty.path());
            c
        },
        "install.sh --from an empty dir",
        Duration::from_secs(30),
    );
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("gatewayd is missing"), "{}", out.stderr);
    let out = run(
        {
            let mut c = Command::new(&script);
            c.arg("--frobnicate");
            c
        },
        "install.sh --frobnicate",
        Duration::from_secs(30),
    );
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("unknown argument '--frobnicate'"), "{}", out.stderr);
}

/// A `cargo` whose PATH finds cargo-deb: the one installed, or the pinned one under target/tools.
fn cargo_with_deb() -> Command {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _once = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let tools = repo().join("target/tools");
    let path = format!("{}:{}", tools.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    let probe = run(
        {
            let mut c = Command::new("cargo");
            c.args(["deb", "--version"]).env("PATH", &path);
            c
        },
        "cargo deb --version",
        Duration::from_secs(30),
    );
    if probe.code != Some(0) {
        let mut c = Command::new("cargo");
        c.args(["install", "--locked", "--quiet", "cargo-deb", "--version", CARGO_DEB_VERSION, "--root"])
            .arg(&tools);
        run(c, "cargo install cargo-deb", Duration::from_secs(900)).expect_ok("cargo install cargo-deb");
    }
    let mut c = Command::new("bash");
    c.env("PATH", path);
    c
}

#[test]
fn deb_package_holds_binaries_units_config_man_pages_and_completions() {
    let out_dir = tempfile::tempdir().unwrap();
    let target = bin_dir().parent().unwrap().to_path_buf();
    let mut build = cargo_with_deb();
    build
        .arg(repo().join("packaging/build-deb.sh"))
        .args(["--profile", "dev", "--no-build", "--fast", "--output"])
        .arg(out_dir.path())
        .env("CARGO_TARGET_DIR", &target);
    let built = run(build, "packaging/build-deb.sh", Duration::from_secs(600)).expect_ok("build-deb.sh");
    let deb = PathBuf::from(built.stdout.trim().lines().last().expect("the .deb's path"));
    assert!(deb.exists(), "build-deb.sh printed {} which does not exist", deb.display());

    let dpkg = |args: &[&str]| {
        let mut c = Command::new("dpkg-deb");
        c.args(args).arg(&deb);
        run(c, "dpkg-deb", Duration::from_secs(60)).expect_ok("dpkg-deb").stdout
    };
    let control = dpkg(&["-f"]);
    assert!(control.contains("Package: gateway\n"), "{control}");
    assert!(control.contains("Depends: libc6"), "{control}");

    let root = tempfile::tempdir().unwrap();
    let mut x = Command::new("dpkg-deb");
    x.arg("-x").arg(&deb).arg(root.path());
    run(x, "dpkg-deb -x", Duration::from_secs(120)).expect_ok("dpkg-deb -x");
    let r = root.path();
    for name in ["gatewayd", "gatewayctl"] {
        let path = r.join("usr/bin").join(name);
        assert_eq!(mode(&path), 0o755, "{}", path.display());
        let mut c = Command::new(&path);
        c.arg("--version");
        run(c, "packaged --version", Duration::from_secs(10)).expect_ok("packaged binary --version");
    }
    // The units and the config are shipped exactly as they are in the repository.
    for (shipped, source) in [
        ("usr/lib/systemd/user/gatewayd.service", "systemd/user/gatewayd.service"),
        ("usr/lib/systemd/user/gatewayd@.service", "systemd/user/gatewayd@.service"),
        ("usr/lib/systemd/system/gatewayd.service", "systemd/system/gatewayd.service"),
        ("usr/share/doc/gateway/examples/gateway.toml", "config/gateway.toml"),
    ] {
        let got = fs::read(r.join(shipped)).unwrap_or_else(|e| panic!("{shipped} not in the package: {e}"));
        assert_eq!(got, fs::read(repo().join(source)).unwrap(), "{shipped} differs from {source}");
    }
    assert_man_pages(&r.join("usr/share/man/man1"));
    for completion in [
        "usr/share/bash-completion/completions/gatewayctl",
        "usr/share/zsh/vendor-completions/_gatewayctl",
        "usr/share/fish/vendor_completions.d/gatewayctl.fish",
    ] {
        assert!(r.join(completion).exists(), "{completion} not in the package");
    }
}
