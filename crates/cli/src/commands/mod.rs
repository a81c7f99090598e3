//! One module a group of commands; `run` sends each command to its handler.

mod channel;
mod config;
mod content;
mod dtn;
mod jobs;
mod node;
mod shell;
mod start;
mod status;

pub(crate) use status::StatusReport;

use std::io::Write;

use serde::Serialize;

use crate::args::{Cli, Command};
use crate::client::Client;

pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    let data_dir = cli.data_dir()?;
    // `start` is the node itself; every other command is a client of one.
    let client = || Client::new(&data_dir, cli.verbose > 0);
    match cli.command {
        Command::Start(args) => start::start(data_dir.clone(), args, cli.verbose),
        Command::Id(args) => node::id(&client()?, args.json),
        Command::Status(args) => status::status(&client()?, args.json),
        Command::Jobs(args) => jobs::run(&client()?, args),
        Command::Peers(args) => node::peers(&client()?, args.json),
        Command::Connect(args) => node::connect(&client()?, &args.addr, args.output.json),
        Command::Find(args) => node::find(&client()?, &args.peer_id, args.output.json),
        Command::Nat(args) => node::nat(&client()?, args.json),
        Command::Channels(args) => node::channels(&client()?, args.json),
        Command::Post(args) => channel::post(&client()?, args),
        Command::Read(args) => channel::read(&client()?, args),
        Command::Chat(args) => channel::chat(&client()?, &args.channel),
        Command::Leave(args) => channel::leave(&client()?, args),
        Command::Share(args) => content::share(&client()?, args),
        Command::Get(args) => content::get(&client()?, args),
        Command::Ls(args) => content::ls(&client()?, args.json),
        Command::Rm(args) => content::rm(&client()?, &args.id, args.output.json),
        Command::Dtn(command) => dtn::run(&client()?, command),
        Command::Config(command) => config::run(&data_dir, command),
        Command::Completions(args) => shell::completions(args.shell, args.json),
        Command::Man(args) => shell::man(args.dir.as_deref(), args.json),
    }
}

/// Pretty JSON for scripts, or the text `human` makes for people.
fn print(json: bool, value: &impl Serialize, human: impl FnOnce() -> String) -> anyhow::Result<()> {
    // Rendered first and written in one go, so a closed stdout surfaces as a
    // plain io::Error that main recognises.
    let text = if json {
        serde_json::to_string_pretty(value)? + "\n"
    } else {
        human()
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}
