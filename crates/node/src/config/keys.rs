//! Every setting of `ferry start`, defined once: its `config.toml` key, its
//! `FERRY_*` environment variable, its flag (if it has one), its default and the
//! words that explain it. The CLI builds its flags from [`KEYS`], `ferry config
//! example` (and so README's config block) is written from it, and `ferry config
//! show` walks it; tests check that [`ConfigFile`](super::ConfigFile) has exactly
//! these keys and that the defaults written here are the ones the node uses.

use ferry_core::dtn::Strategy;

/// What a key holds, which says how the text of a flag or a variable becomes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `true` or `false` (a variable also takes `1`, `0`, `yes`, `no`, `on`, `off`).
    Bool,
    /// A whole number; the key's type in [`ConfigFile`](super::ConfigFile) bounds it.
    Integer,
    Text,
    /// Strings; a flag is repeated, a variable separates them with commas.
    List,
}

/// How a flag or a variable combines with the layers below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// The highest layer that sets the key wins.
    Replace,
    /// Every layer's entries are used together (`--bootstrap` adds to the file's list).
    Append,
}

/// The value a node uses when no layer sets the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// A TOML value, written into `ferry config example` as it is.
    Value(&'static str),
    /// Unset means something no value says.
    Unset { meaning: &'static str },
}

/// A `ferry start` flag for a key.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// Without the dashes: `beacon-port`.
    pub long: &'static str,
    /// `Some(value)`: a switch that sets the key to `value` (`--no-mdns` sets
    /// `mdns` to false). `None`: the flag takes a value, named `value_name`.
    pub switch: Option<bool>,
    pub value_name: &'static str,
    /// One line for `ferry start --help`.
    pub help: &'static str,
}

/// The group a key is listed under in the example config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Network,
    Relay,
    Dtn,
    Disk,
    Channels,
}

impl Section {
    /// The comment line that heads the group in `ferry config example`.
    pub fn heading(self) -> &'static str {
        match self {
            Section::Network => "Who this node is and how it finds and reaches peers.",
            Section::Relay => {
                "What a relay grants (with relay = true); a relay's operator can tighten these."
            }
            Section::Dtn => "Delay-tolerant networking.",
            Section::Disk => "Disk.",
            Section::Channels => {
                "Channels: what each keeps (the newest messages by their authors' time)."
            }
        }
    }
}

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The `config.toml` key; the variable is `FERRY_` and this in capitals.
    pub name: &'static str,
    pub kind: Kind,
    pub merge: Merge,
    pub default: DefaultValue,
    pub section: Section,
    /// What the key does, for the example config and `ferry config show`.
    pub doc: &'static str,
    pub flag: Option<Flag>,
    /// What `ferry config example` sets the key to when the default would not
    /// show the form of a value (an empty list, an unset key).
    pub example: Option<&'static str>,
    /// For enum-like keys: the values, each with a word on it, for help and
    /// shell completion. Checked by `check` (a value may carry an argument, as
    /// `spray:8` does).
    pub choices: &'static [(&'static str, &'static str)],
    /// A check beyond the kind's, run on flags, variables and the file alike.
    pub check: Option<ValueCheck>,
}

/// A check of a value's text; the error says what is accepted.
pub type ValueCheck = fn(&str) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The prefix of every variable a key can be set with.
pub const ENV_PREFIX: &str = "FERRY_";

/// Which node: the one variable that is no `config.toml` key (the file lives in
/// the data directory it names).
pub const DATA_DIR_ENV: &str = "FERRY_DATA_DIR";

impl Key {
    /// `FERRY_BEACON_PORT` for `beacon_port`.
    pub fn env_var(&self) -> String {
        format!("{ENV_PREFIX}{}", self.name.to_ascii_uppercase())
    }

    /// The key of this name.
    pub fn named(name: &str) -> Option<&'static Key> {
        KEYS.iter().find(|key| key.name == name)
    }
}

const fn key(name: &'static str, kind: Kind, default: DefaultValue, section: Section) -> Key {
    Key {
        name,
        kind,
        merge: Merge::Replace,
        default,
        section,
        doc: "",
        flag: None,
        example: None,
        choices: &[],
        check: None,
    }
}

impl Key {
    const fn doc(mut self, doc: &'static str) -> Self {
        self.doc = doc;
        self
    }

    const fn flag(
        mut self,
        long: &'static str,
        value_name: &'static str,
        help: &'static str,
    ) -> Self {
        self.flag = Some(Flag {
            long,
            switch: None,
            value_name,
            help,
        });
        self
    }

    const fn switch(mut self, long: &'static str, sets: bool, help: &'static str) -> Self {
        self.flag = Some(Flag {
            long,
            switch: Some(sets),
            value_name: "",
            help,
        });
        self
    }

    const fn example(mut self, example: &'static str) -> Self {
        self.example = Some(example);
        self
    }

    const fn appends(mut self) -> Self {
        self.merge = Merge::Append;
        self
    }
}

fn check_strategy(text: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    text.parse::<Strategy>().map(drop).map_err(Into::into)
}

use DefaultValue::{Unset, Value};
use Kind::{Bool, Integer, List, Text};
use Section::{Channels, Disk, Dtn, Network, Relay};

/// Every setting, in the order `ferry config example` lists them.
pub static KEYS: &[Key] = &[
    key("name", Text, Unset { meaning: "a nickname made from the peer id" }, Network)
        .doc("The nickname shown to peers next to your messages.")
        .example("\"ana\"")
        .flag("name", "NAME", "A nickname shown to peers next to your messages"),
    key(
        "listen",
        List,
        Unset {
            meaning: "TCP and QUIC on all interfaces, IPv4 and IPv6, ports chosen by the OS",
        },
        Network,
    )
    .doc("Multiaddrs to listen on; fix the ports here to open them in a firewall.")
    .example("[\"/ip4/0.0.0.0/tcp/4001\", \"/ip4/0.0.0.0/udp/4001/quic-v1\"]")
    .flag("listen", "MULTIADDR", "A multiaddr to listen on; repeat for several"),
    key("mdns", Bool, Value("true"), Network)
        .doc("Announce and look for peers with multicast DNS.")
        .switch("no-mdns", false, "Do not announce or look for peers with multicast DNS"),
    key("beacon", Bool, Value("true"), Network)
        .doc("Send and listen for signed UDP broadcast beacons.")
        .switch("no-beacon", false, "Do not send or listen for UDP broadcast beacons"),
    key("beacon_port", Integer, Value("45458"), Network)
        .doc("The UDP port beacons are sent to and heard on; every node of a network must agree.")
        .flag(
            "beacon-port",
            "PORT",
            "The UDP port beacons are sent to and heard on; every node of a network must agree",
        ),
    key("bootstrap", List, Value("[]"), Network)
        .doc("Nodes to join the DHT through, each with its peer id; --bootstrap adds more.")
        .example("[\"/ip4/203.0.113.5/tcp/4001/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo\"]")
        .flag(
            "bootstrap",
            "MULTIADDR",
            "A node to join the DHT through, with its peer id; repeat for several; added to config.toml's list",
        )
        .appends(),
    key("upnp", Bool, Value("true"), Network)
        .doc("Ask the home router for a port mapping with UPnP.")
        .switch("no-upnp", false, "Do not ask the router for a port mapping with UPnP"),
    key("relay", Bool, Value("false"), Network)
        .doc("Serve as a relay for nodes behind NAT, within the limits below.")
        .switch(
            "relay",
            true,
            "Serve as a relay for nodes behind NAT (within the limits set in config.toml)",
        ),
    key("relay_max_reservations", Integer, Value("128"), Relay)
        .doc("Nodes holding a relay slot at once."),
    key("relay_max_circuits", Integer, Value("16"), Relay).doc("Relayed connections at once."),
    key("relay_max_circuits_per_peer", Integer, Value("4"), Relay)
        .doc("Relayed connections at once, per node."),
    key("relay_max_circuit_secs", Integer, Value("1800"), Relay)
        .doc("A relayed connection is cut after this many seconds."),
    key("relay_max_circuit_bytes", Integer, Value("1073741824"), Relay)
        .doc("Or after this many bytes (1 GiB)."),
    Key {
        choices: &[
            ("direct", "only to the destination itself"),
            ("epidemic", "a copy to every contact"),
            ("spray", "binary spray-and-wait; spray:COPIES sets the copies (default 8)"),
            ("prophet", "to contacts likelier to meet the destination"),
        ],
        check: Some(check_strategy),
        ..key("dtn_strategy", Text, Value("\"epidemic\""), Dtn)
            .doc("How bundles are routed: direct, epidemic, spray[:COPIES] (binary spray-and-wait) or prophet.")
            .flag("dtn-strategy", "STRATEGY", "DTN routing: direct, epidemic, spray[:COPIES] or prophet")
    },
    key("dtn_quota_mib", Integer, Value("1024"), Dtn)
        .doc("The bundle store's size in MiB; a quarter of it per peer."),
    key("dtn_peer_bundle_burst", Integer, Value("2000"), Dtn)
        .doc("Bundles one peer may send at once,"),
    key("dtn_peer_bundles_per_second", Integer, Value("500"), Dtn)
        .doc("then per second; the excess is refused and sent again later."),
    key("dtn_inbox_max_bundles", Integer, Value("10000"), Dtn)
        .doc("Bundles delivered to this node kept at most,"),
    key("dtn_inbox_max_mib", Integer, Value("1024"), Dtn).doc("and their MiB at most."),
    key("tcpcl_listen", Text, Unset { meaning: "off" }, Dtn)
        .doc("Accept TCPCLv4 sessions from other DTN software (such as dtn7-rs's dtnd) on HOST:PORT.")
        .example("\"0.0.0.0:4556\"")
        .flag(
            "tcpcl-listen",
            "HOST:PORT",
            "Accept TCPCLv4 sessions from other DTN implementations on HOST:PORT (e.g. 0.0.0.0:4556)",
        ),
    key("tcpcl_peers", List, Value("[]"), Dtn)
        .doc("TCPCLv4 nodes to keep a session with, HOST:PORT each.")
        .example("[\"192.168.1.20:4556\"]")
        .flag(
            "tcpcl-peer",
            "HOST:PORT",
            "Keep a TCPCLv4 session with this DTN node (e.g. a dtnd at 127.0.0.1:4556); repeat for several",
        )
        .appends(),
    key("storage_reserve_mib", Integer, Value("64"), Disk)
        .doc("MiB to keep free on the data directory's disk: writes that would go below it are refused."),
    key("channel_max_messages", Integer, Value("10000"), Channels)
        .doc("Messages kept per channel."),
    key("channel_max_age_days", Integer, Value("90"), Channels)
        .doc("Messages older than this many days are removed."),
];
