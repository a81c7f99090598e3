//! Settings for `ferry start`: command-line flags, over `FERRY_*` variables, over
//! `config.toml` in the data directory, over defaults. Every key is defined once,
//! in [`keys::KEYS`]; `layers` merges the sources and `example` writes the
//! example config.

mod example;
pub mod keys;
mod layers;

pub use example::example_toml;
pub use layers::{ConfigError, Effective, EffectiveValue, Layer, Origin, check_text};

use std::path::{Path, PathBuf};

use ferry_core::Multiaddr;
use std::time::Duration;

use ferry_core::beacon::DEFAULT_BEACON_PORT;
use ferry_net::RelayLimits;
use ferry_store::Retention;
use ferry_store::StoreLimits;
use serde::{Deserialize, Serialize};

use crate::dtn::tcpcl::TcpclSettings;
use crate::dtn::{DtnSettings, PeerRate};

pub const CONFIG_FILE: &str = "config.toml";

/// What `ferry start` was asked for: its flags and `FERRY_*` variables, each
/// over the data directory's `config.toml` (see [`keys`]).
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    pub data_dir: PathBuf,
    pub flags: Layer,
    pub env: Layer,
}

/// `DATA_DIR/config.toml`, and the merge of every source: each key is optional.
/// Its fields are exactly the keys of [`keys::KEYS`] (a test checks both ways).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub name: Option<String>,
    pub listen: Option<Vec<String>>,
    pub mdns: Option<bool>,
    pub beacon: Option<bool>,
    pub beacon_port: Option<u16>,
    /// DHT bootstrap nodes (multiaddrs ending in /p2p/PEER_ID).
    pub bootstrap: Option<Vec<String>>,
    /// Serve as a relay for nodes behind NAT.
    pub relay: Option<bool>,
    pub upnp: Option<bool>,
    /// Relay limits, for a node that serves as a relay; see `RelayLimits`.
    pub relay_max_reservations: Option<usize>,
    pub relay_max_circuits: Option<usize>,
    pub relay_max_circuits_per_peer: Option<usize>,
    pub relay_max_circuit_secs: Option<u64>,
    pub relay_max_circuit_bytes: Option<u64>,
    /// DTN routing: direct, epidemic, `spray[:COPIES]` or prophet.
    pub dtn_strategy: Option<String>,
    /// The bundle store's quota in MiB (a quarter of it per peer).
    pub dtn_quota_mib: Option<u64>,
    /// Bundles one peer may send at once before the steady rate applies.
    pub dtn_peer_bundle_burst: Option<u32>,
    /// Bundles one peer may send per second after the burst.
    pub dtn_peer_bundles_per_second: Option<u32>,
    /// Listen for TCPCLv4 peers (other DTN implementations) on HOST:PORT.
    pub tcpcl_listen: Option<String>,
    /// TCPCLv4 peers to keep a session with, HOST:PORT each.
    pub tcpcl_peers: Option<Vec<String>>,
    /// MiB to keep free on the data directory's disk: writes that would go
    /// below it are refused (default 64).
    pub storage_reserve_mib: Option<u64>,
    /// Bundles the DTN inbox holds at most (default 10,000).
    pub dtn_inbox_max_bundles: Option<u64>,
    /// MiB the DTN inbox holds at most (default 1,024).
    pub dtn_inbox_max_mib: Option<u64>,
    /// The most messages kept per channel (the newest by author time).
    pub channel_max_messages: Option<u64>,
    /// Messages older than this many days (by author time) are removed.
    pub channel_max_age_days: Option<u64>,
}

impl ConfigFile {
    /// Reads the config file; a missing file is an empty config, a broken one an
    /// error that names the file and the problem.
    pub fn load(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(CONFIG_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{} is not valid: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }
}

/// The settings a node runs with, after flags, file and defaults are merged.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// `None`: derive a nickname from the peer id.
    pub name: Option<String>,
    pub listen: Vec<Multiaddr>,
    /// True when `listen` is the default set: an address family the host lacks
    /// (IPv6 in a bare namespace) is then skipped instead of fatal.
    pub default_listen: bool,
    pub mdns: bool,
    pub beacon: bool,
    pub beacon_port: u16,
    pub bootstrap: Vec<Multiaddr>,
    /// `Some`: serve as a relay within these limits.
    pub relay: Option<RelayLimits>,
    pub upnp: bool,
    pub dtn: DtnSettings,
    pub tcpcl: TcpclSettings,
    /// The store's limits against a full disk.
    pub store: StoreLimits,
    /// How much of each channel the store keeps.
    pub retention: Retention,
}

impl Settings {
    /// Merges the flags and variables of `options` over `file` and checks the result.
    pub fn resolve(options: StartOptions, file: ConfigFile) -> anyhow::Result<Self> {
        let effective = Effective::merge(&options.flags, &options.env, &file)?;
        Self::from_config(options.data_dir, effective.config)
    }

    /// The settings of a merged config, over the defaults.
    pub fn from_config(data_dir: PathBuf, file: ConfigFile) -> anyhow::Result<Self> {
        let listen_text = file.listen.unwrap_or_default();
        let default_listen = listen_text.is_empty();
        let listen = if default_listen {
            default_listen_addrs()
        } else {
            listen_text
                .iter()
                .map(|text| parse_multiaddr(text))
                .collect::<anyhow::Result<_>>()?
        };
        let name = file.name;
        if let Some(name) = &name {
            ferry_core::channel::check_name(name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
        }
        let bootstrap = file
            .bootstrap
            .iter()
            .flatten()
            .map(|text| parse_multiaddr(text))
            .collect::<anyhow::Result<_>>()?;
        let relay = file.relay.unwrap_or(false).then(|| {
            let default = RelayLimits::default();
            RelayLimits {
                max_reservations: file
                    .relay_max_reservations
                    .unwrap_or(default.max_reservations),
                max_circuits: file.relay_max_circuits.unwrap_or(default.max_circuits),
                max_circuits_per_peer: file
                    .relay_max_circuits_per_peer
                    .unwrap_or(default.max_circuits_per_peer),
                max_circuit_duration: file
                    .relay_max_circuit_secs
                    .map_or(default.max_circuit_duration, Duration::from_secs),
                max_circuit_bytes: file
                    .relay_max_circuit_bytes
                    .unwrap_or(default.max_circuit_bytes),
            }
        });
        let dtn = dtn_settings(
            file.dtn_strategy,
            file.dtn_quota_mib,
            (file.dtn_peer_bundle_burst, file.dtn_peer_bundles_per_second),
        )?;
        let tcpcl = TcpclSettings {
            listen: file
                .tcpcl_listen
                .map(|text| {
                    text.parse().map_err(|e| {
                        anyhow::anyhow!(
                            "tcpcl listen address {text:?}: {e}; it looks like 127.0.0.1:4556"
                        )
                    })
                })
                .transpose()?,
            peers: file.tcpcl_peers.unwrap_or_default(),
        };
        let store = store_limits(
            file.storage_reserve_mib,
            file.dtn_inbox_max_bundles,
            file.dtn_inbox_max_mib,
        )?;
        let retention = retention(file.channel_max_messages, file.channel_max_age_days)?;
        Ok(Self {
            dtn,
            tcpcl,
            store,
            retention,
            bootstrap,
            relay,
            upnp: file.upnp.unwrap_or(true),
            data_dir,
            name,
            listen,
            default_listen,
            mdns: file.mdns.unwrap_or(true),
            beacon: file.beacon.unwrap_or(true),
            beacon_port: file.beacon_port.unwrap_or(DEFAULT_BEACON_PORT),
        })
    }
}

fn dtn_settings(
    strategy: Option<String>,
    quota_mib: Option<u64>,
    (burst, per_second): (Option<u32>, Option<u32>),
) -> anyhow::Result<DtnSettings> {
    let default = DtnSettings::default();
    if burst == Some(0) || per_second == Some(0) {
        anyhow::bail!("dtn_peer_bundle_burst and dtn_peer_bundles_per_second must be at least 1");
    }
    Ok(DtnSettings {
        strategy: match strategy {
            Some(text) => text
                .parse()
                .map_err(|e| anyhow::anyhow!("dtn strategy: {e}"))?,
            None => default.strategy,
        },
        quota: match quota_mib {
            Some(0) => anyhow::bail!("dtn_quota_mib must be at least 1"),
            Some(mib) => ferry_core::dtn::Quota::new(mib.saturating_mul(1 << 20)),
            None => default.quota,
        },
        peer_rate: PeerRate {
            burst: burst.unwrap_or(default.peer_rate.burst),
            per_second: per_second.unwrap_or(default.peer_rate.per_second),
        },
    })
}

fn store_limits(
    reserve_mib: Option<u64>,
    inbox_max_bundles: Option<u64>,
    inbox_max_mib: Option<u64>,
) -> anyhow::Result<StoreLimits> {
    let default = StoreLimits::default();
    let mib = |n: u64| n.saturating_mul(1 << 20);
    if inbox_max_bundles == Some(0) || inbox_max_mib == Some(0) {
        anyhow::bail!("dtn_inbox_max_bundles and dtn_inbox_max_mib must be at least 1");
    }
    Ok(StoreLimits {
        reserve_bytes: reserve_mib.map_or(default.reserve_bytes, mib),
        inbox_max_bundles: inbox_max_bundles.unwrap_or(default.inbox_max_bundles),
        inbox_max_bytes: inbox_max_mib.map_or(default.inbox_max_bytes, mib),
    })
}

/// Channel retention from the file's keys over the store's defaults.
fn retention(max_messages: Option<u64>, max_age_days: Option<u64>) -> anyhow::Result<Retention> {
    let default = Retention::default();
    Ok(Retention {
        max_messages: match max_messages {
            Some(0) => anyhow::bail!("channel_max_messages must be at least 1"),
            Some(count) => count,
            None => default.max_messages,
        },
        max_age_ms: match max_age_days {
            Some(0) => anyhow::bail!("channel_max_age_days must be at least 1"),
            Some(days) => days.saturating_mul(DAY_MS),
            None => default.max_age_ms,
        },
    })
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Parses a multiaddr typed by a person, with an error that shows the form.
pub fn parse_multiaddr(text: &str) -> anyhow::Result<Multiaddr> {
    text.trim().parse().map_err(|e| {
        anyhow::anyhow!(
            "{text:?} is not a valid multiaddr ({e}); it looks like /ip4/192.168.1.7/tcp/4001 or /ip4/192.168.1.7/udp/4001/quic-v1"
        )
    })
}

/// TCP and QUIC on every interface, IPv4 and IPv6, on ports the OS picks.
fn default_listen_addrs() -> Vec<Multiaddr> {
    [
        "/ip4/0.0.0.0/tcp/0",
        "/ip4/0.0.0.0/udp/0/quic-v1",
        "/ip6/::/tcp/0",
        "/ip6/::/udp/0/quic-v1",
    ]
    .iter()
    .map(|a| a.parse().expect("default listen addresses are valid"))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> &'static keys::Key {
        keys::Key::named(name).unwrap()
    }

    fn options() -> StartOptions {
        StartOptions {
            data_dir: "/tmp/x".into(),
            ..StartOptions::default()
        }
    }

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let file: ConfigFile =
            toml::from_str("name = \"file\"\nmdns = false\nbeacon_port = 5000\n").unwrap();
        let mut opts = options();
        opts.flags.set_text(key("name"), "flag").unwrap();
        let settings = Settings::resolve(opts, file).unwrap();
        assert_eq!(settings.name.as_deref(), Some("flag"));
        assert!(!settings.mdns);
        assert!(settings.beacon);
        assert_eq!(settings.beacon_port, 5000);
        assert!(settings.default_listen);
        assert_eq!(settings.listen.len(), 4);
    }

    #[test]
    fn a_bad_listen_address_is_a_clear_error() {
        let mut opts = options();
        opts.flags.set_text(key("listen"), "garbage").unwrap();
        let err = Settings::resolve(opts, ConfigFile::default()).unwrap_err();
        assert!(err.to_string().contains("not a valid multiaddr"), "{err}");
    }

    #[test]
    fn relay_limits_come_from_the_file_over_defaults() {
        let file: ConfigFile = toml::from_str(
            "relay = true\nrelay_max_circuit_bytes = 1000\nbootstrap = [\"/ip4/10.0.0.1/tcp/4001\"]\n",
        )
        .unwrap();
        let settings = Settings::resolve(options(), file).unwrap();
        let limits = settings.relay.unwrap();
        assert_eq!(limits.max_circuit_bytes, 1000);
        assert_eq!(limits.max_circuits, RelayLimits::default().max_circuits);
        assert_eq!(settings.bootstrap.len(), 1);
        assert!(settings.upnp);
        let plain = Settings::resolve(options(), ConfigFile::default()).unwrap();
        assert!(plain.relay.is_none(), "relaying is opt-in");
    }

    #[test]
    fn storage_limits_come_from_the_file_over_defaults() {
        let file: ConfigFile =
            toml::from_str("storage_reserve_mib = 8\ndtn_inbox_max_bundles = 5\n").unwrap();
        let limits = Settings::resolve(options(), file).unwrap().store;
        assert_eq!(limits.reserve_bytes, 8 << 20);
        assert_eq!(limits.inbox_max_bundles, 5);
        assert_eq!(
            limits.inbox_max_bytes,
            StoreLimits::default().inbox_max_bytes
        );
        let zero: ConfigFile = toml::from_str("dtn_inbox_max_mib = 0").unwrap();
        assert!(Settings::resolve(options(), zero).is_err());
    }

    #[test]
    fn channel_retention_comes_from_the_file_over_defaults() {
        let plain = Settings::resolve(options(), ConfigFile::default()).unwrap();
        assert_eq!(plain.retention, Retention::default());
        let file: ConfigFile =
            toml::from_str("channel_max_messages = 20\nchannel_max_age_days = 2\n").unwrap();
        let settings = Settings::resolve(options(), file).unwrap();
        assert_eq!(settings.retention.max_messages, 20);
        assert_eq!(settings.retention.max_age_ms, 2 * DAY_MS);
        let zero: ConfigFile = toml::from_str("channel_max_messages = 0\n").unwrap();
        let err = Settings::resolve(options(), zero).unwrap_err();
        assert!(err.to_string().contains("channel_max_messages"), "{err}");
    }

    #[test]
    fn unknown_config_keys_are_refused() {
        assert!(toml::from_str::<ConfigFile>("nmae = \"typo\"").is_err());
    }

    /// The field names serde's derive passes to `deserialize_struct`.
    fn config_file_fields() -> &'static [&'static str] {
        use serde::de::{self, Visitor};
        struct Catch;
        #[derive(Debug)]
        struct Fields(&'static [&'static str]);
        impl std::fmt::Display for Fields {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }
        impl std::error::Error for Fields {}
        impl de::Error for Fields {
            fn custom<T: std::fmt::Display>(_: T) -> Self {
                Fields(&[])
            }
        }
        impl<'de> de::Deserializer<'de> for Catch {
            type Error = Fields;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
                Err(Fields(&[]))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Fields> {
                Err(Fields(fields))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
                bytes byte_buf option unit unit_struct newtype_struct seq tuple
                tuple_struct map enum identifier ignored_any
            }
        }
        ConfigFile::deserialize(Catch).unwrap_err().0
    }

    #[test]
    fn the_config_file_has_exactly_the_defined_keys() {
        let mut fields = config_file_fields().to_vec();
        let mut names: Vec<&str> = keys::KEYS.iter().map(|key| key.name).collect();
        fields.sort_unstable();
        names.sort_unstable();
        assert_eq!(fields, names);
    }

    /// Every default written in KEYS, as a config file that sets them all.
    fn defaults_file() -> String {
        keys::KEYS
            .iter()
            .filter_map(|key| match key.default {
                keys::DefaultValue::Value(value) => Some(format!("{} = {value}\n", key.name)),
                keys::DefaultValue::Unset { .. } => None,
            })
            .collect()
    }

    #[test]
    fn the_defaults_written_in_keys_are_the_ones_the_node_uses() {
        let written: ConfigFile = toml::from_str(&defaults_file()).unwrap();
        let from_keys = Settings::resolve(options(), written).unwrap();
        let built_in = Settings::resolve(options(), ConfigFile::default()).unwrap();
        assert_eq!(format!("{from_keys:?}"), format!("{built_in:?}"));
        // With relay on, the relay limits written in KEYS are the built-in ones too.
        let mut relay = options();
        relay.flags.set_switch(key("relay"), true);
        let written: ConfigFile = toml::from_str(&defaults_file()).unwrap();
        let limits = Settings::resolve(relay, written).unwrap().relay.unwrap();
        assert_eq!(
            format!("{limits:?}"),
            format!("{:?}", RelayLimits::default())
        );
    }

    #[test]
    fn the_example_config_parses_back_with_every_key() {
        let example = example_toml();
        let file: ConfigFile = toml::from_str(&example).unwrap();
        let table = toml::Table::try_from(&file).unwrap();
        for key in keys::KEYS {
            assert!(
                table.contains_key(key.name),
                "{} not in the example",
                key.name
            );
        }
        let settings = Settings::resolve(options(), file).unwrap();
        assert_eq!(settings.name.as_deref(), Some("ana"));
        assert_eq!(settings.bootstrap.len(), 1);
        assert!(!settings.default_listen);
    }

    #[test]
    fn readme_shows_the_example_config_so_every_key_is_documented() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .unwrap();
        let block = format!("```toml\n{}```\n", example_toml());
        assert!(
            readme.contains(&block),
            "README's config block differs from `ferry config example`; paste its output:\n{block}"
        );
        for key in keys::KEYS {
            assert!(readme.contains(&format!("{} = ", key.name)), "{}", key.name);
            assert!(readme.contains(&key.env_var()), "{}", key.env_var());
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Result<Layer, ConfigError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Layer::from_env(|name| {
            Ok(pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone()))
        })
    }

    #[test]
    fn flags_beat_variables_which_beat_the_file() {
        let file: ConfigFile = toml::from_str(
            "name = \"file\"\nbeacon_port = 5000\nmdns = false\nbootstrap = [\"/ip4/10.0.0.3/tcp/1\"]\n",
        )
        .unwrap();
        let mut opts = options();
        opts.flags.set_text(key("name"), "flag").unwrap();
        opts.flags
            .set_text(key("bootstrap"), "/ip4/10.0.0.1/tcp/1")
            .unwrap();
        opts.env = env(&[
            ("FERRY_NAME", "env"),
            ("FERRY_BEACON_PORT", "6000"),
            (
                "FERRY_BOOTSTRAP",
                "/ip4/10.0.0.2/tcp/1, /ip4/10.0.0.4/tcp/1",
            ),
            ("FERRY_NOT_A_KEY", "ignored"),
        ])
        .unwrap();
        let effective = Effective::merge(&opts.flags, &opts.env, &file).unwrap();
        let of = |name: &str| {
            effective
                .values
                .iter()
                .find(|v| v.key == name)
                .unwrap()
                .clone()
        };
        assert_eq!(of("name").from, [Origin::Flag]);
        assert_eq!(of("beacon_port").from, [Origin::Env]);
        assert_eq!(of("mdns").from, [Origin::File]);
        assert_eq!(of("beacon").from, [Origin::Default]);
        assert_eq!(of("beacon").value, Some(toml::Value::Boolean(true)));
        assert_eq!(of("tcpcl_listen").value, None);
        assert_eq!(of("tcpcl_listen").unset, Some("off"));
        assert_eq!(
            of("bootstrap").from,
            [Origin::Flag, Origin::Env, Origin::File]
        );
        let settings = Settings::resolve(opts, file).unwrap();
        assert_eq!(settings.name.as_deref(), Some("flag"));
        assert_eq!(settings.beacon_port, 6000);
        assert!(!settings.mdns);
        let bootstrap: Vec<String> = settings.bootstrap.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            bootstrap,
            [
                "/ip4/10.0.0.1/tcp/1",
                "/ip4/10.0.0.2/tcp/1",
                "/ip4/10.0.0.4/tcp/1",
                "/ip4/10.0.0.3/tcp/1"
            ]
        );
    }

    #[test]
    fn bad_flags_and_variables_name_the_key() {
        let err = env(&[("FERRY_MDNS", "maybe")]).unwrap_err().to_string();
        assert!(
            err.contains("mdns") && err.contains("true or false"),
            "{err}"
        );
        let err = env(&[("FERRY_DTN_STRATEGY", "fastest")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("dtn_strategy") && err.contains("prophet"),
            "{err}"
        );
        let err = check_text(key("beacon_port"), "70000")
            .unwrap_err()
            .to_string();
        assert!(err.contains("beacon_port"), "{err}");
        assert!(check_text(key("beacon_port"), "4000").is_ok());
        assert!(check_text(key("dtn_strategy"), "spray:4").is_ok());
        let mut opts = options();
        opts.env = env(&[("FERRY_CHANNEL_MAX_MESSAGES", "0")]).unwrap();
        let err = Settings::resolve(opts, ConfigFile::default()).unwrap_err();
        assert!(err.to_string().contains("channel_max_messages"), "{err}");
    }
}
