//! Where a setting's value comes from: `ferry start`'s flags over `FERRY_*`
//! variables over `config.toml` over the defaults in [`KEYS`]. Each layer is a
//! TOML table of the keys it sets; merging them gives the [`ConfigFile`] the node
//! runs with and, for `ferry config show`, where each value came from.

use serde::Serialize;
use thiserror::Error;

use super::ConfigFile;
use super::keys::{DefaultValue, KEYS, Key, Kind, Merge};

/// A value a flag, a variable or the file gave that does not fit its key.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{key}: {text:?} is not {expected}")]
    WrongKind {
        key: &'static str,
        text: String,
        expected: &'static str,
    },
    #[error("{key}: {problem}")]
    Rejected { key: &'static str, problem: String },
    #[error("{variable} is not valid UTF-8")]
    NotUnicode { variable: String },
}

/// The keys one source sets, as TOML values.
#[derive(Debug, Clone, Default)]
pub struct Layer(toml::Table);

impl Layer {
    /// Sets `key` from the text of a flag or a variable; a list key gains an entry
    /// (a variable's commas separate several).
    pub fn set_text(&mut self, key: &'static Key, text: &str) -> Result<(), ConfigError> {
        let value = parse_text(key, text)?;
        match (value, self.0.get_mut(key.name)) {
            (toml::Value::Array(more), Some(toml::Value::Array(list))) => list.extend(more),
            (value, _) => {
                self.0.insert(key.name.to_owned(), value);
            }
        }
        Ok(())
    }

    /// Sets a boolean key, as a switch such as `--no-mdns` does.
    pub fn set_switch(&mut self, key: &'static Key, on: bool) {
        self.0.insert(key.name.to_owned(), toml::Value::Boolean(on));
    }

    /// The `FERRY_*` variables that `lookup` knows (`std::env::var` in the CLI).
    pub fn from_env(
        lookup: impl Fn(&str) -> Result<Option<String>, ConfigError>,
    ) -> Result<Self, ConfigError> {
        let mut layer = Self::default();
        for key in KEYS {
            if let Some(text) = lookup(&key.env_var())? {
                layer.set_text(key, &text)?;
            }
        }
        Ok(layer)
    }

    fn from_file(file: &ConfigFile) -> Result<Self, ConfigError> {
        toml::Table::try_from(file)
            .map(Self)
            .map_err(|e| ConfigError::Rejected {
                key: "config.toml",
                problem: e.to_string(),
            })
    }
}

/// Checks the text of a flag or a variable as its key would take it, so that a
/// bad `--beacon-port` is refused when the command line is read.
pub fn check_text(key: &'static Key, text: &str) -> Result<(), ConfigError> {
    let mut layer = Layer::default();
    layer.set_text(key, text)?;
    typed(&layer.0, key.name).map(drop)
}

fn parse_text(key: &'static Key, text: &str) -> Result<toml::Value, ConfigError> {
    let wrong = |expected| ConfigError::WrongKind {
        key: key.name,
        text: text.to_owned(),
        expected,
    };
    let trimmed = text.trim();
    let value = match key.kind {
        Kind::Bool => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
            "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
            _ => return Err(wrong("true or false")),
        },
        Kind::Integer => trimmed
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| wrong("a whole number"))?,
        Kind::Text => toml::Value::String(trimmed.to_owned()),
        Kind::List => toml::Value::Array(
            trimmed
                .split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty())
                .map(|entry| toml::Value::String(entry.to_owned()))
                .collect(),
        ),
    };
    if let (Some(check), toml::Value::String(text)) = (key.check, &value) {
        check(text).map_err(|problem| ConfigError::Rejected {
            key: key.name,
            problem: problem.to_string(),
        })?;
    }
    Ok(value)
}

/// The table as a [`ConfigFile`]: the key types' bounds (a port fits in 16 bits)
/// and the file's rules apply to flags and variables too.
fn typed(table: &toml::Table, key: &'static str) -> Result<ConfigFile, ConfigError> {
    table
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Rejected {
            key,
            problem: e.message().to_owned(),
        })
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Flag,
    Env,
    File,
    Default,
}

impl Origin {
    pub fn as_str(&self) -> &'static str {
        match self {
            Origin::Flag => "flag",
            Origin::Env => "env",
            Origin::File => "file",
            Origin::Default => "default",
        }
    }
}

/// One key's value in effect.
#[derive(Debug, Clone, Serialize)]
pub struct EffectiveValue {
    pub key: &'static str,
    /// `None`: unset, which means what `unset` says.
    pub value: Option<toml::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unset: Option<&'static str>,
    /// The layers the value came from: one, or several for a list that adds up.
    pub from: Vec<Origin>,
    pub env: String,
}

/// Every key's value in effect, and the config the node runs with.
#[derive(Debug, Clone)]
pub struct Effective {
    pub config: ConfigFile,
    pub values: Vec<EffectiveValue>,
}

impl Effective {
    /// Flags over variables over the file, key by key; a list that appends takes
    /// every layer's entries, flags first.
    pub fn merge(flags: &Layer, env: &Layer, file: &ConfigFile) -> Result<Self, ConfigError> {
        let file = Layer::from_file(file)?;
        let layers = [
            (Origin::Flag, flags),
            (Origin::Env, env),
            (Origin::File, &file),
        ];
        let mut merged = toml::Table::new();
        let mut values = Vec::with_capacity(KEYS.len());
        for key in KEYS {
            let set = layers
                .iter()
                .filter_map(|(origin, layer)| Some((origin.clone(), layer.0.get(key.name)?)));
            let mut from = Vec::new();
            let mut value: Option<toml::Value> = None;
            for (origin, layer_value) in set {
                match (&mut value, layer_value, key.merge) {
                    (None, _, _) => value = Some(layer_value.clone()),
                    (Some(toml::Value::Array(list)), toml::Value::Array(more), Merge::Append) => {
                        list.extend(more.iter().cloned());
                    }
                    _ => break,
                }
                from.push(origin);
            }
            if let Some(value) = &value {
                merged.insert(key.name.to_owned(), value.clone());
            }
            let (value, unset) = match (value, key.default) {
                (Some(value), _) => (Some(value), None),
                (None, DefaultValue::Value(text)) => (default_value(key, text), None),
                (None, DefaultValue::Unset { meaning, .. }) => (None, Some(meaning)),
            };
            if from.is_empty() {
                from.push(Origin::Default);
            }
            values.push(EffectiveValue {
                key: key.name,
                value,
                unset,
                from,
                env: key.env_var(),
            });
        }
        let config = typed(&merged, "flags and FERRY_* variables")?;
        Ok(Self { config, values })
    }
}

/// A default written in [`KEYS`] as a TOML value (a test parses every one).
fn default_value(key: &Key, text: &str) -> Option<toml::Value> {
    let table: toml::Table = toml::from_str(&format!("{} = {text}", key.name)).ok()?;
    table.get(key.name).cloned()
}
