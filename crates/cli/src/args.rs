//! The command line: what `ferry` accepts, and the help texts that explain it.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use ferry_node::control::types::MAX_READ_LIMIT;

const ABOUT: &str = "ferry: a peer-to-peer node for networks with no infrastructure";

const LONG_ABOUT: &str = "\
ferry: a peer-to-peer node for networks with no infrastructure.

No servers, no accounts, no internet needed. Start ferry on a few laptops on the same
Wi-Fi, an ad-hoc cell or a phone hotspot with no uplink, and the nodes find each other
on their own and talk in group channels. Every message is signed by its author's key,
and a node that was away catches up on what it missed when it comes back.

`ferry start` runs a node in the foreground. Every other command talks to the running
node of a data directory (--data-dir or FERRY_DATA_DIR) through its control API on
127.0.0.1, so start the node first, then use the other commands in another terminal.";

const AFTER_HELP: &str = "\
Examples:
  ferry start --name ana          run a node called \"ana\"
  ferry peers                     who is around
  ferry chat general              talk in the channel \"general\"
  ferry read general --follow     print a channel's messages as they arrive";

#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true
)]
pub struct Cli {
    /// Which node: its data directory [default: ~/.local/share/ferry on Linux]
    ///
    /// A data directory holds one node's identity, messages and config.toml;
    /// `ferry start` runs the node on it and the other commands talk to that node.
    #[arg(long, global = true, env = "FERRY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Say more (-v, -vv)
    ///
    /// For `start`: debug logs from ferry (-vv: from libp2p too), unless RUST_LOG
    /// is set. For the other commands: each request to the node, on stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node in the foreground until Ctrl-C.
    #[command(long_about = "\
Run a node in the foreground until Ctrl-C (or SIGTERM).

The node finds peers on the local network by itself (multicast DNS and signed UDP
broadcast beacons), keeps its identity and messages in the data directory, and serves
the other ferry commands on 127.0.0.1. Flags override the data directory's
config.toml (keys: name, listen, mdns, beacon, beacon_port).

Logs go to stderr; RUST_LOG (e.g. RUST_LOG=debug) chooses what is shown.")]
    Start(StartArgs),

    /// Show this node's peer id, name and listening addresses.
    Id(JsonFlag),

    /// List the peers this node knows: how each was found, whether it is connected.
    Peers(JsonFlag),

    /// Connect to a peer by address, e.g. one printed by `ferry id` on the other machine.
    Connect(ConnectArgs),

    /// Post a message to a channel.
    #[command(long_about = "\
Post a message to a channel. The words after the channel name are joined with spaces;
`-` reads the text from stdin instead. A message holds at most 64 KiB of UTF-8 text.")]
    Post(PostArgs),

    /// Print a channel's messages (--follow: keep printing new ones).
    Read(ReadArgs),

    /// List the channels this node has joined.
    Channels(JsonFlag),

    /// Talk in a channel: shows recent messages and new ones, posts each line you type.
    #[command(long_about = "\
Talk in a channel interactively: prints the recent messages, then new ones as they
arrive, and posts each line you type. /quit or end of input (Ctrl-D) leaves.")]
    Chat(ChatArgs),
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// A nickname shown to peers next to your messages.
    #[arg(long)]
    pub name: Option<String>,

    /// A multiaddr to listen on; repeat for several.
    /// [default: TCP and QUIC on all interfaces, ports chosen by the OS]
    #[arg(long = "listen", value_name = "MULTIADDR")]
    pub listen: Vec<String>,

    /// Do not announce or look for peers with multicast DNS.
    #[arg(long)]
    pub no_mdns: bool,

    /// Do not send or listen for UDP broadcast beacons.
    #[arg(long)]
    pub no_beacon: bool,

    /// The UDP port beacons are sent to and heard on; every node of a network must agree.
    /// [default: 45458]
    #[arg(long, value_name = "PORT")]
    pub beacon_port: Option<u16>,
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON for scripts instead of text for people.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The peer's address, e.g. /ip4/192.168.1.7/tcp/4001/p2p/12D3KooW...
    #[arg(value_name = "MULTIADDR")]
    pub addr: String,

    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct PostArgs {
    /// The channel, e.g. general.
    pub channel: String,

    /// The message; several words are joined with spaces, `-` reads stdin.
    #[arg(required = true, num_args = 1.., value_name = "TEXT")]
    pub text: Vec<String>,

    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The channel, e.g. general.
    pub channel: String,

    /// After the recent messages, wait for new ones and print them as they arrive.
    #[arg(short, long)]
    pub follow: bool,

    /// How many recent messages to print.
    #[arg(short = 'n', long, default_value_t = 100, value_parser = parse_limit)]
    pub limit: usize,

    /// Print one JSON object a message, a line each (JSON Lines).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The channel, e.g. general.
    pub channel: String,
}

fn parse_limit(text: &str) -> anyhow::Result<usize> {
    let limit: usize = text.parse().context("expected a number")?;
    if !(1..=MAX_READ_LIMIT).contains(&limit) {
        bail!("must be between 1 and {MAX_READ_LIMIT}");
    }
    Ok(limit)
}

impl Cli {
    /// The data directory to use, made absolute so messages and the node's
    /// `data_dir` name the same place whatever the working directory.
    pub fn data_dir(&self) -> anyhow::Result<PathBuf> {
        let dir = match &self.data_dir {
            Some(dir) => dir.clone(),
            None => directories::ProjectDirs::from("", "", "ferry")
                .context("cannot find a home directory for the default data directory; pass --data-dir DIR")?
                .data_dir()
                .to_owned(),
        };
        std::path::absolute(&dir)
            .with_context(|| format!("cannot resolve the data directory {}", dir.display()))
    }
}
