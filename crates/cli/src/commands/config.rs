//! `ferry config example` and `ferry config show`: the settings `ferry start`
//! takes, from the node's one definition of them.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use ferry_node::config::{CONFIG_FILE, ConfigFile, Effective, Settings, example_toml};

use super::print;
use crate::args::{ConfigCommand, env_layer};
use crate::output::settings::{ConfigShow, config_show_text};

/// `ferry config example --json`.
#[derive(Serialize)]
struct ExampleConfig {
    config_toml: String,
}

pub(super) fn run(data_dir: &Path, command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Example(output) => {
            let config_toml = example_toml();
            if output.json {
                print(true, &ExampleConfig { config_toml }, String::new)
            } else {
                std::io::stdout().lock().write_all(config_toml.as_bytes())?;
                Ok(())
            }
        }
        ConfigCommand::Show(args) => {
            let file = ConfigFile::load(data_dir)?;
            let effective = Effective::merge(&args.start.flags, &env_layer()?, &file)?;
            // The checks `ferry start` makes, so a value it would refuse is an error here too.
            Settings::from_config(data_dir.to_owned(), effective.config.clone())?;
            let config_file = data_dir.join(CONFIG_FILE);
            let show = ConfigShow {
                data_dir: data_dir.display().to_string(),
                config_file_exists: config_file.is_file(),
                config_file: config_file.display().to_string(),
                settings: effective.values,
            };
            print(args.output.json, &show, || config_show_text(&show))
        }
    }
}
