//! `gateway-gen-assets OUT_DIR`: renders what the packages ship beside the binaries, from the
//! binaries' own clap definitions, so the pages and completions cannot drift from `--help`:
//! `OUT_DIR/man/*.1` (one page per command and subcommand) and
//! `OUT_DIR/completions/{bash,zsh,fish}/…` in each shell's conventional file name.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Command, CommandFactory};
use clap_complete::Shell;

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        bail!("usage: gateway-gen-assets OUT_DIR (writes OUT_DIR/man and OUT_DIR/completions)");
    };
    let out = PathBuf::from(out);
    for cmd in [gatewayd::cli::Cli::command(), gatewayctl::cli::Cli::command()] {
        render(cmd, &out)?;
    }
    Ok(())
}

fn render(cmd: Command, out: &Path) -> Result<()> {
    let name = cmd.get_name().to_owned();
    let man = out.join("man");
    fs::create_dir_all(&man).with_context(|| format!("creating {}", man.display()))?;
    clap_mangen::generate_to(cmd.clone(), &man).with_context(|| format!("writing {name}'s man pages"))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let dir = out.join("completions").join(shell.to_string());
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let file = dir.join(completion_file(shell, &name));
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), &name, &mut buf);
        fs::write(&file, buf).with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(())
}

/// The file name each shell's completion loader looks for.
fn completion_file(shell: Shell, bin: &str) -> String {
    match shell {
        Shell::Zsh => format!("_{bin}"),
        Shell::Fish => format!("{bin}.fish"),
        _ => bin.to_owned(),
    }
}
