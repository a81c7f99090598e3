//! The command line: what `ferry` accepts, and the help texts that explain it.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use ferry_core::dtn::Priority;
use ferry_node::config::keys::DATA_DIR_ENV;
use ferry_node::control::types::MAX_READ_LIMIT;

mod settings;

use settings::{Check, Checked, settings_paragraph};
pub(crate) use settings::{StartArgs, env_layer};

const ABOUT: &str = "ferry: a peer-to-peer node for networks with no infrastructure";

const LONG_ABOUT: &str = "\
ferry: a peer-to-peer node for networks with no infrastructure.

No servers, no accounts, no internet needed. Start ferry on a few laptops on the same
Wi-Fi, an ad-hoc cell or a phone hotspot with no uplink, and the nodes find each other
on their own, talk in group channels and share files and folders. Every message is
signed by its author's key, and a node that was away catches up on what it missed when
it comes back. Shared content is addressed by its BLAKE3 hash, so any copy is as good
as the original and every byte is checked on arrival.

`ferry start` runs a node in the foreground. Every other command talks to the running
node of a data directory (--data-dir or FERRY_DATA_DIR) through its control API on
127.0.0.1, so start the node first, then use the other commands in another terminal.";

const AFTER_HELP: &str = "\
Examples:
  ferry start --name ana          run a node called \"ana\"
  ferry peers                     who is around
  ferry chat general              talk in the channel \"general\"
  ferry read general --follow     print a channel's messages as they arrive
  ferry share ~/photos            share a folder; prints a ticket to give to others
  ferry get TICKET                fetch what a ticket names into the current directory
  ferry start --bootstrap /ip4/203.0.113.5/tcp/4001/p2p/12D3KooW...
                                  join the internet-wide DHT through a known node
  ferry find 12D3KooW...          find a peer by its id and connect to it
  ferry nat                       reachability, NAT behaviour, how each peer is connected
  ferry dtn send 12D3KooW... hello
                                  a message that waits for a contact to carry it
  ferry dtn export /media/usb     carry bundles on a drive; `ferry dtn import` at the far end
  ferry status                    one screen: addresses, peers, NAT, channels, transfers, DTN
  ferry jobs cancel 3             stop download 3 and free what it fetched (--keep: keep it)

--json: every command but `start` and `chat` (which are interactive) prints JSON for
scripts instead of text; with it, an error is a JSON object {\"kind\", \"message\",
\"exit_code\"} on stderr.

Exit codes:
  0  success
  1  error (the node refused the request, or it failed)
  2  usage: the command line is wrong
  3  no node is running for the data directory (control.json missing, or the node not answering)
  4  not found: the job, content, bundle or peer named does not exist";

#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true
)]
pub(crate) struct Cli {
    /// Which node: its data directory [default: ~/.local/share/ferry on Linux]
    ///
    /// A data directory holds one node's identity, messages and config.toml;
    /// `ferry start` runs the node on it and the other commands talk to that node.
    #[arg(long, global = true, env = DATA_DIR_ENV, value_name = "DIR")]
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
pub(crate) enum Command {
    /// Run a node in the foreground until Ctrl-C.
    #[command(long_about = start_long_about())]
    Start(StartArgs),

    /// Show this node's peer id, name and listening addresses.
    Id(JsonFlag),

    /// One screen about this node: id, addresses, peers by how connected, NAT, channels,
    /// transfers, DTN store.
    Status(JsonFlag),

    /// List transfers (shares and downloads) with their progress; `cancel ID` stops one.
    Jobs(JobsArgs),

    /// List the peers this node knows: how each was found, whether it is connected.
    Peers(JsonFlag),

    /// Connect to a peer by address, e.g. one printed by `ferry id` on the other machine.
    Connect(ConnectArgs),

    /// Find a peer by its peer id (in the DHT) and connect to it.
    #[command(long_about = "\
Find a peer by its peer id and connect to it: from the peers this node already knows,
or else by asking the DHT (which needs a --bootstrap node, or any peer already on the
network). Prints the addresses found, the address connected over, how the connection
was made (lan, direct, hole-punched or relayed) and how long it took.

A peer behind NAT is first reached through a relay it holds a reservation on; a hole
punch then usually upgrades the connection to a direct one within a few seconds, which
`ferry nat` shows.")]
    Find(FindArgs),

    /// Show reachability, the NAT's behaviour, relays in use and how each peer is connected.
    #[command(long_about = "\
Show what this node knows about its place in the network: whether peers can dial it
(AutoNAT), its public address, its address as each peer sees it (the STUN part), the
NAT's mapping behaviour (endpoint-independent when every peer sees the same port, as
behind a cone NAT; endpoint-dependent when each sees another, as behind a symmetric
NAT, where hole punching fails and connections stay relayed), whether it answers DHT
queries (server) or only asks them (client), whether it serves as a relay, the relays
it holds reservations on with the relayed address others can dial, and for every
connected peer how it is connected: lan, direct, hole-punched or relayed.")]
    Nat(JsonFlag),

    /// Post a message to a channel.
    #[command(long_about = "\
Post a message to a channel. The words after the channel name are joined with spaces;
`-` reads the text from stdin instead. A message holds at most 64 KiB of UTF-8 text.")]
    Post(PostArgs),

    /// Print a channel's messages (--follow: keep printing new ones).
    Read(ReadArgs),

    /// List the channels this node has joined.
    Channels(JsonFlag),

    /// Leave a channel: stop receiving and syncing it (kept across restarts).
    #[command(long_about = "\
Leave a channel: the node unsubscribes from it, stops syncing its history with peers
and no longer lists it in `ferry channels`, also after a restart. Messages already
stored stay readable with `ferry read` (which does not join a channel you left) until
retention removes them; `ferry post` or `ferry chat` joins it again.")]
    Leave(LeaveArgs),

    /// Talk in a channel: shows recent messages and new ones, posts each line you type.
    #[command(long_about = "\
Talk in a channel interactively: prints the recent messages, then new ones as they
arrive, and posts each line you type. /quit or end of input (Ctrl-D) leaves. Being
interactive, it has no --json; `ferry read --follow --json` is its form for scripts.")]
    Chat(ChatArgs),

    /// Share a file or a folder; prints its id and a ticket that others pass to `ferry get`.
    #[command(long_about = "\
Share a file or a folder with other nodes; prints its id and a ticket.

A file's id is its BLAKE3 hash, the same 64 hex digits `b3sum` prints for it. A folder
becomes a collection: a small manifest (each file's relative path, size, id and mode),
addressed by its own hash. The ticket holds the id and this node's addresses; on another
node, `ferry get TICKET` fetches the content, from this node and from every other node
that has it.

The content is copied into the node's store, so later changes to PATH do not touch what
is shared. --in-place references the file where it is instead, saving the copy; if the
file changes later, the node stops serving it under the old id.

Hashing a large file shows a progress bar on a terminal.")]
    Share(ShareArgs),

    /// Fetch a file or folder by ticket or id, from every peer that has it.
    #[command(long_about = "\
Fetch a file or a folder by the ticket `ferry share` printed, or by its bare id (64 hex
digits), which the node looks for among the peers it is connected to.

Several peers are asked at once for different parts, and every piece is checked against
the id before it is written, so a peer cannot slip in bad data. By default the content is
written to the current directory under the name the ticket carries; an existing file or
folder is not overwritten without --force.

The download runs inside the node: stopping this command (Ctrl-C) does not stop it, and
what was fetched is kept even if the node itself is stopped. Run `ferry get` again with
the same ticket to follow the download, or to resume it where it stopped.")]
    Get(GetArgs),

    /// List what this node's store holds: shared and fetched content, complete or partial.
    Ls(JsonFlag),

    /// Remove content from this node's store, by the id `ferry ls` shows.
    #[command(long_about = "\
Remove content from this node's store, by the id `ferry ls` shows: the full 64 hex digits
or, as long as it is unambiguous, their first 8 or more. The node stops serving it. Files
written out by `ferry get` and files shared with --in-place stay where they are.")]
    Rm(RmArgs),

    /// Delay-tolerant messaging: bundles that wait, ride on whoever passes, and arrive later.
    #[command(
        subcommand,
        long_about = "\
Delay-tolerant networking (RFC 9171 bundles) for peers that are only sometimes in reach:
a village a bus visits once a day, a friend met once a week.

A bundle waits in the node's store until a contact comes; every connected ferry node
(LAN, internet, relayed) is a contact. Nodes exchange summaries of what they hold and
forward bundles by the node's routing strategy (`ferry start --dtn-strategy`, default
epidemic), so a bundle rides on whoever passes until it reaches its destination, which
acknowledges it back so carriers free their copies. A folder (a USB drive) works as a
carrier too: `ferry dtn export` and `ferry dtn import`. Other DTN implementations (such
as dtn7-rs's dtnd) are reached over TCPCLv4: `ferry start --tcpcl-listen/--tcpcl-peer`."
    )]
    Dtn(DtnCommand),

    /// Print an example config.toml, or the settings in effect.
    #[command(subcommand)]
    Config(ConfigCommand),

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(long_about = "\
Print a completion script for SHELL on stdout. For bash, e.g.:
  ferry completions bash > ~/.local/share/bash-completion/completions/ferry
for zsh, into a directory on $fpath as _ferry; for fish, into
~/.config/fish/completions/ferry.fish.")]
    Completions(CompletionsArgs),

    /// Print ferry's man page (roff), or write every page into a directory.
    #[command(long_about = "\
Print the ferry(1) man page as roff on stdout (`ferry man | man -l -`), or with
--dir DIR write ferry.1 and a page per command (ferry-start.1, ferry-dtn-send.1, ...)
into DIR, e.g. ~/.local/share/man/man1.")]
    Man(ManArgs),
}

/// `ferry start --help`: what the node does, where its settings come from.
fn start_long_about() -> String {
    format!(
        "\
Run a node in the foreground until Ctrl-C (or SIGTERM).

The node finds peers on the local network by itself (multicast DNS and signed UDP
broadcast beacons), keeps its identity and messages in the data directory, and serves
the other ferry commands on 127.0.0.1.

{}

To reach peers across the internet, give one or more --bootstrap addresses of nodes
that are already on the network (any ferry node with a public address will do); the
node joins the DHT through them, learns its public address, reserves a slot on relays
when it is behind NAT, and upgrades relayed connections to direct ones by hole
punching where the NATs allow it. It also asks the home router for a port mapping
with UPnP unless --no-upnp is given.

Logs go to stderr; RUST_LOG (e.g. RUST_LOG=debug) chooses what is shown. Being the
node itself, it has no --json: `ferry status --json` reports on it.",
        settings_paragraph()
    )
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print a complete config.toml: every key at its default, with its flag and variable.
    #[command(long_about = "\
Print a complete config.toml: every key at its default (or an example value where
the default is to leave it unset), with its flag and FERRY_* variable. With --json,
the same as one object: {\"config_toml\": TEXT}.")]
    Example(JsonFlag),
    /// Print the settings `ferry start` would use, and where each value comes from.
    #[command(long_about = "\
Print the settings `ferry start` would run with on this data directory: each key's
value after the flags given here, the FERRY_* environment variables, config.toml and
the defaults, and which of them it came from. Takes the same flags as `ferry start`.")]
    Show(ConfigShowArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ConfigShowArgs {
    #[command(flatten)]
    pub start: StartArgs,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
    /// Print {"shell": SHELL, "script": TEXT} instead of the bare script.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Write ferry.1 and a page for each command (ferry-start.1, ...) into DIR
    /// instead of printing ferry.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print {"page": ROFF} (or, with --dir, {"dir": DIR, "written": [FILE...]}).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DtnCommand {
    /// Send a text or a file as a bundle to a peer id (or any endpoint id).
    #[command(long_about = "\
Send a text or a file as a bundle. DESTINATION is a peer id (the bundle goes to
dtn://PEER_ID/text, or dtn://PEER_ID/file/NAME for a file) or a full endpoint id such as
dtn://node/incoming or ipn:2.1 for other DTN implementations. The bundle is stored here
at once and leaves with the next contact; it lives for --lifetime (default 7 days). One
bundle holds at most 16 MiB; share larger files with `ferry share`.")]
    Send(DtnSendArgs),

    /// List the bundles delivered to this node.
    Inbox(JsonFlag),

    /// Write a delivered bundle's payload (a received file) to a path.
    Save(DtnSaveArgs),

    /// Show the bundles this node holds (by destination, age, expiry) and its contacts.
    Status(JsonFlag),

    /// Write the bundles this node carries (and content, acks) to a folder, e.g. a USB drive.
    #[command(long_about = "\
Write the bundles this node carries to DIR/ferry-dtn, for a person to carry to another
node: one RFC 9171 bundle per file in DIR/ferry-dtn/bundles, the delivery
acknowledgements this node knows in acks.json, and any content named with --content
(files and whole shared folders) in DIR/ferry-dtn/content. Nothing is removed here:
copies are freed when the acknowledgements come back. Exporting into the same folder
again adds what is new.")]
    Export(DtnExportArgs),

    /// Take in the bundles, acks and content of a folder written by `ferry dtn export`.
    #[command(long_about = "\
Read DIR/ferry-dtn (written by `ferry dtn export` on another node): every bundle is
checked and taken in as if it had come over the network (delivered here if it is for
this node, otherwise carried on), duplicates are skipped, acknowledgements free the
copies they name, and content is checked against its hash and stored, so that
`ferry get ID` finds it here at once.")]
    Import(DtnImportArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DtnSendArgs {
    /// A peer id, or an endpoint id (dtn://NODE/SERVICE, ipn:N.S).
    #[arg(value_name = "DESTINATION")]
    pub destination: String,
    /// The message; the words are joined with spaces.
    #[arg(
        value_name = "TEXT",
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    pub text: Vec<String>,
    /// Send this file instead of a text.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// How long the bundle lives, e.g. 90s, 30m, 12h, 7d.
    #[arg(long, value_name = "DURATION", value_parser = parse_lifetime)]
    pub lifetime: Option<u64>,
    /// What goes first on a short contact, and last out of a full store. [default: normal]
    #[arg(long, value_name = "PRIORITY", value_parser = Checked { choices: PRIORITIES, check: Check::Text(check_priority) })]
    pub priority: Option<String>,
    #[command(flatten)]
    pub output: JsonFlag,
}

/// The bundle priorities `--priority` lists; the node's parser decides.
const PRIORITIES: &[(&str, &str)] = &[
    ("bulk", "after everything else"),
    ("normal", "the default"),
    ("expedited", "before everything else"),
];

fn check_priority(text: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    text.parse::<Priority>().map(drop).map_err(Into::into)
}

/// Seconds from `90s`, `30m`, `12h`, `7d` (or a bare number of seconds).
fn parse_lifetime(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{text:?}: use a number with s, m, h or d, e.g. 12h"
            ));
        }
    };
    match number.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n.saturating_mul(scale)),
        _ => Err(format!(
            "{text:?}: use a number with s, m, h or d, e.g. 12h"
        )),
    }
}

#[derive(Debug, Args)]
pub(crate) struct DtnSaveArgs {
    /// The bundle's id, as `ferry dtn inbox` shows it.
    #[arg(value_name = "BUNDLE_ID")]
    pub id: String,
    /// Where to write it [default: the name the sender gave, made safe (never a hidden
    /// or otherwise special name), in the current directory].
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Args)]
pub(crate) struct DtnExportArgs {
    /// The folder to write to (a USB drive's mount point, say).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Only bundles for this peer id (or node id); repeat for several.
    #[arg(long = "to", value_name = "PEER_ID")]
    pub to: Vec<String>,
    /// Carry this shared content too (a ticket or content id); repeat for several.
    #[arg(long = "content", value_name = "ID")]
    pub content: Vec<String>,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub(crate) struct DtnImportArgs {
    /// The folder `ferry dtn export` wrote to.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub(crate) struct JsonFlag {
    /// Print JSON for scripts instead of text for people.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    /// The peer's address, e.g. /ip4/192.168.1.7/tcp/4001/p2p/12D3KooW...
    #[arg(value_name = "MULTIADDR")]
    pub addr: String,

    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub(crate) struct FindArgs {
    /// The peer's id, as its `ferry id` prints it (12D3KooW...).
    #[arg(value_name = "PEER_ID")]
    pub peer_id: String,

    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub(crate) struct PostArgs {
    /// The channel, e.g. general.
    pub channel: String,

    /// The message; several words are joined with spaces, `-` reads stdin.
    #[arg(required = true, num_args = 1.., value_name = "TEXT")]
    pub text: Vec<String>,

    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub(crate) struct ReadArgs {
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
pub(crate) struct LeaveArgs {
    /// The channel, e.g. general.
    pub channel: String,

    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub(crate) struct ChatArgs {
    /// The channel, e.g. general.
    pub channel: String,
}

#[derive(Debug, Args)]
pub(crate) struct ShareArgs {
    /// The file or folder to share.
    pub path: PathBuf,

    /// Reference the file where it is instead of copying it into the store.
    #[arg(long)]
    pub in_place: bool,

    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// A ticket from `ferry share`, or a content id (64 hex digits).
    #[arg(value_name = "TICKET|ID")]
    pub target: String,

    /// Where to write it; `DIR/` (ending in a slash) or an existing folder means
    /// inside that folder, under the content's name. [default: ./NAME]
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Overwrite the output if it exists.
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub json: JsonFlag,
}

#[derive(Debug, Args)]
pub(crate) struct RmArgs {
    /// The content id, or its first 8 or more hex digits.
    pub id: String,

    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Args)]
pub(crate) struct JobsArgs {
    #[command(subcommand)]
    pub command: Option<JobsCommand>,

    #[command(flatten)]
    pub output: JsonFlag,
}

#[derive(Debug, Subcommand)]
pub(crate) enum JobsCommand {
    /// Stop a running download and remove the data it fetched (unless --keep).
    #[command(long_about = "\
Stop a running download (by the job id `ferry jobs` shows) and remove the partial
data it fetched from the store. With --keep the partial data stays, and a later
`ferry get` of the same ticket resumes from it. Files of a folder it already
completed stay in the store either way (`ferry rm` removes them).")]
    Cancel(JobCancelArgs),
}

#[derive(Debug, Args)]
pub(crate) struct JobCancelArgs {
    /// The job's id, as `ferry jobs` shows it.
    #[arg(value_name = "ID")]
    pub job: u64,

    /// Keep the partial data, so a later `ferry get` resumes from it.
    #[arg(long)]
    pub keep: bool,

    #[command(flatten)]
    pub output: JsonFlag,
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
    pub(crate) fn data_dir(&self) -> anyhow::Result<PathBuf> {
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
