//! One module a group of commands; `run` sends each command to its handler.

mod channel;
mod node;
mod start;

use crate::args::{Cli, Command};
use crate::client::Client;

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let data_dir = cli.data_dir()?;
    // `start` is the node itself; every other command is a client of one.
    let client = || Client::new(&data_dir, cli.verbose > 0);
    match cli.command {
        Command::Start(args) => start::start(data_dir.clone(), args, cli.verbose),
        Command::Id(args) => node::id(&client()?, args.json),
        Command::Peers(args) => node::peers(&client()?, args.json),
        Command::Connect(args) => node::connect(&client()?, &args.addr, args.output.json),
        Command::Channels(args) => node::channels(&client()?, args.json),
        Command::Post(args) => channel::post(&client()?, args),
        Command::Read(args) => channel::read(&client()?, args),
        Command::Chat(args) => channel::chat(&client()?, &args.channel),
    }
}
