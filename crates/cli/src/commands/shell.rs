//! `ferry completions SHELL` and `ferry man`: generated from the same clap
//! definition as the command line itself, so they cannot drift from it.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use crate::args::Cli;

/// The completion script for `shell`, on stdout.
pub fn completions(shell: Shell) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ferry", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(())
}

/// ferry(1) as roff on stdout, or every page (one a command) written into `dir`.
pub fn man(dir: Option<&Path>) -> anyhow::Result<()> {
    match dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            std::io::stdout().lock().write_all(&page)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), dir)
                .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
            println!(
                "wrote ferry.1 and a page per command into {}",
                dir.display()
            );
        }
    }
    Ok(())
}
