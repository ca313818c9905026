//! Writes the man pages and shell completions of `anycastd` and `anycastctl`, generated
//! from their clap definitions (`anycastd::cli`), for the Debian package:
//!
//! ```text
//! cargo run -p anycastd --example gen_assets -- OUT_DIR
//! OUT_DIR/man/anycastd.8 anycastd-check.8 anycastctl.8 anycastctl-status.8 ...
//! OUT_DIR/completions/bash/{anycastd,anycastctl}
//! OUT_DIR/completions/zsh/_{anycastd,anycastctl}
//! OUT_DIR/completions/fish/{anycastd,anycastctl}.fish
//! ```
//!
//! `scripts/package.sh` runs it before `cargo deb`; nothing here touches the network.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anycastd::cli;
use clap::CommandFactory;
use clap_complete::Shell;

fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, bytes)
}

/// One page per command and per subcommand (`anycastd-check.8`, `anycastctl-drain.8`),
/// in section 8: both are for the administrator of a director.
fn man_pages(cmd: &clap::Command, dir: &Path) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, dir)?;
    }
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("anycastd");
    let mut page = Vec::new();
    man.render(&mut page)?;
    write(&dir.join(man.get_filename()), &page)
}

fn generate(out: &Path) -> std::io::Result<()> {
    for mut cmd in [cli::daemon::Cli::command(), cli::ctl::Cli::command()] {
        let name = cmd.get_name().to_string();
        let mut built = cmd.clone().disable_help_subcommand(true);
        built.build();
        man_pages(&built, &out.join("man"))?;
        for (shell, file) in [
            (Shell::Bash, name.clone()),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, &name, &mut script);
            write(
                &out.join("completions").join(shell.to_string()).join(file),
                &script,
            )?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/assets"));
    match generate(&out) {
        Ok(()) => {
            println!("man pages and completions in {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen_assets: {}: {e}", out.display());
            ExitCode::from(1)
        }
    }
}
