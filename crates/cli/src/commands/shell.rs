//! `ferry completions SHELL` and `ferry man`: generated from the same clap
//! definition as the command line itself, so they cannot drift from it.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use serde_json::json;

use super::print;
use crate::args::Cli;

/// The completion script for `shell`, on stdout (bare, or in a JSON object).
pub(super) fn completions(shell: Shell, json: bool) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ferry", &mut script);
    if json {
        let script = String::from_utf8(script)?;
        return print(
            true,
            &json!({ "shell": shell.to_string(), "script": script }),
            String::new,
        );
    }
    std::io::stdout().lock().write_all(&script)?;
    Ok(())
}

/// ferry(1) as roff on stdout, or every page (one a command) written into `dir`.
pub(super) fn man(dir: Option<&Path>, json: bool) -> anyhow::Result<()> {
    match dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            if json {
                let page = String::from_utf8(page)?;
                return print(true, &json!({ "page": page }), String::new);
            }
            std::io::stdout().lock().write_all(&page)?;
            Ok(())
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), dir)
                .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
            let mut written: Vec<String> = std::fs::read_dir(dir)?
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with("ferry") && name.ends_with(".1"))
                .collect();
            written.sort();
            print(
                json,
                &json!({ "dir": dir.display().to_string(), "written": written }),
                || {
                    format!(
                        "wrote ferry.1 and a page per command into {}\n",
                        dir.display()
                    )
                },
            )
        }
    }
}
