//! `ferry start`'s flags, built from the node's one definition of its settings
//! ([`KEYS`]): each key with a flag becomes a clap argument here, and the values
//! given become the flags layer the node merges over `FERRY_*` variables and
//! `config.toml`. Nothing about a key is written twice.

use std::ffi::OsStr;

use clap::builder::{PossibleValue, StringValueParser, TypedValueParser};
use clap::error::ErrorKind;
use clap::{Arg, ArgAction, ArgMatches, Command};
use ferry_node::config::keys::{DefaultValue, KEYS, Key, Kind, ValueCheck};
use ferry_node::config::{ConfigError, Layer, check_text};

/// The flags of `ferry start` (and of `ferry config show`, which shows what they
/// would make of the settings).
#[derive(Debug, Clone, Default)]
pub(crate) struct StartArgs {
    pub flags: Layer,
}

impl clap::FromArgMatches for StartArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = Layer::default();
        for key in KEYS {
            let Some(flag) = key.flag else { continue };
            match flag.switch {
                Some(sets) => {
                    if matches.get_flag(key.name) {
                        flags.set_switch(key, sets);
                    }
                }
                None => {
                    for text in matches.get_many::<String>(key.name).into_iter().flatten() {
                        flags
                            .set_text(key, text)
                            .map_err(|e| clap::Error::raw(ErrorKind::ValueValidation, e))?;
                    }
                }
            }
        }
        Ok(Self { flags })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for StartArgs {
    fn augment_args(command: Command) -> Command {
        command.args(KEYS.iter().filter_map(flag_arg))
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

/// The clap argument of a key that has a flag.
fn flag_arg(key: &'static Key) -> Option<Arg> {
    let flag = key.flag?;
    let default = match key.default {
        DefaultValue::Value(value) => value.trim_matches('"'),
        DefaultValue::Unset { meaning, .. } => meaning,
    };
    let help = match flag.switch {
        // A switch's help says what it turns off or on; the default is the other way.
        Some(_) => format!("{}.", flag.help),
        None => format!("{}. [default: {default}]", flag.help),
    };
    let arg = Arg::new(key.name)
        .long(flag.long)
        .help(help.clone())
        .long_help(format!(
            "{help}\n[config.toml: {}] [env: {}]",
            key.name,
            key.env_var()
        ));
    Some(match flag.switch {
        Some(_) => arg.action(ArgAction::SetTrue),
        None => arg
            .value_name(flag.value_name)
            .action(if key.kind == Kind::List {
                ArgAction::Append
            } else {
                ArgAction::Set
            })
            .value_parser(Checked {
                choices: key.choices,
                check: Check::Key(key),
            }),
    })
}

/// The layer of the `FERRY_*` variables set in this process's environment.
pub(crate) fn env_layer() -> Result<Layer, ConfigError> {
    Layer::from_env(|name| match std::env::var(name) {
        Ok(text) => Ok(Some(text)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::NotUnicode {
            variable: name.to_owned(),
        }),
    })
}

/// `ferry start --help`'s paragraph on where settings come from, with every key.
pub(super) fn settings_paragraph() -> String {
    let keys: Vec<&str> = KEYS.iter().map(|key| key.name).collect();
    let text = format!(
        "Flags win over FERRY_<KEY> environment variables, which win over the data \
         directory's config.toml (keys: {}). `ferry config example` prints a config.toml \
         with every key, its default and its flag and variable; `ferry config show` the \
         values in effect and where each came from.",
        keys.join(", ")
    );
    wrap(&text, PARAGRAPH_WIDTH)
}

/// The width the other paragraphs of the help are written to.
const PARAGRAPH_WIDTH: usize = 86;

/// Words joined into lines of at most `width` characters (a longer word stands alone).
fn wrap(text: &str, width: usize) -> String {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_settings_paragraph_names_every_key_within_the_width() {
        let text = settings_paragraph();
        for key in KEYS {
            assert!(text.contains(key.name), "{}", key.name);
        }
        assert!(
            text.lines()
                .all(|line| line.chars().count() <= PARAGRAPH_WIDTH),
            "{text}"
        );
        assert_eq!(wrap("aa bb cc", 5), "aa bb\ncc");
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        crate::args::Cli::command().debug_assert();
    }

    #[test]
    fn every_key_with_a_flag_is_a_start_option_and_comes_back_as_its_key() {
        use clap::Parser;
        let cli = crate::args::Cli::try_parse_from([
            "ferry",
            "start",
            "--no-mdns",
            "--beacon-port",
            "5000",
            "--bootstrap",
            "/ip4/10.0.0.1/tcp/1",
            "--bootstrap",
            "/ip4/10.0.0.2/tcp/1",
            "--dtn-strategy",
            "spray:4",
        ])
        .unwrap();
        let crate::args::Command::Start(args) = cli.command else {
            panic!("not start")
        };
        let merged = ferry_node::config::Effective::merge(
            &args.flags,
            &Layer::default(),
            &Default::default(),
        )
        .unwrap()
        .config;
        assert_eq!(merged.mdns, Some(false));
        assert_eq!(merged.beacon_port, Some(5000));
        assert_eq!(merged.bootstrap.map(|b| b.len()), Some(2));
        assert_eq!(merged.dtn_strategy.as_deref(), Some("spray:4"));
        let start = crate::args::Cli::command();
        let start = start.find_subcommand("start").unwrap();
        for key in KEYS.iter().filter(|key| key.flag.is_some()) {
            assert!(
                start.get_arguments().any(|arg| arg.get_id() == key.name),
                "{}",
                key.name
            );
        }
        let strategy = start
            .get_arguments()
            .find(|arg| arg.get_id() == "dtn_strategy")
            .unwrap();
        let values: Vec<String> = strategy
            .get_possible_values()
            .iter()
            .map(|v| v.get_name().to_owned())
            .collect();
        assert_eq!(values, ["direct", "epidemic", "spray", "prophet"]);
    }
}

/// How [`Checked`] checks a value.
#[derive(Clone, Copy)]
pub(super) enum Check {
    /// As the node checks the key's value in any layer.
    Key(&'static Key),
    /// As the node parses a request field.
    Text(ValueCheck),
}

/// A value checked when the command line is read, with the possible values (each
/// explained) that help and shell completion list. The check, not the list, says
/// what is accepted, so `spray:8` passes where `spray` is listed.
#[derive(Clone, Copy)]
pub(super) struct Checked {
    pub choices: &'static [(&'static str, &'static str)],
    pub check: Check,
}

impl TypedValueParser for Checked {
    type Value = String;

    fn parse_ref(
        &self,
        command: &Command,
        arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<String, clap::Error> {
        let check = self.check;
        // clap's own mapping writes the error the way it writes every other.
        StringValueParser::new()
            .try_map(move |text| {
                match check {
                    Check::Key(key) => check_text(key, &text).map_err(Into::into),
                    Check::Text(check) => check(&text),
                }
                .map(|()| text)
            })
            .parse_ref(command, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        if self.choices.is_empty() {
            return None;
        }
        Some(Box::new(
            self.choices
                .iter()
                .map(|(value, help)| PossibleValue::new(*value).help(*help)),
        ))
    }
}
