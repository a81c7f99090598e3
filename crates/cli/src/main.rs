//! `ferry`: runs a node (`ferry start`) or drives a running one through its
//! control API (every other command).

mod args;
mod client;
mod commands;
mod exit;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version are printed as clap prints them; a wrong command
        // line is a JSON error too when --json was among the arguments.
        Err(error) if error.use_stderr() && std::env::args_os().any(|a| a == "--json") => {
            return exit::ErrorReport::usage(&error).print(true);
        }
        Err(error) => error.exit(),
    };
    let json = exit::wants_json(&cli);
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // `ferry read general | head` closes stdout early; that is the reader
        // being done, not an error worth a message.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => exit::ErrorReport::of(&error).print(json),
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
