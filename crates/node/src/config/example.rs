//! `ferry config example`: a complete `config.toml`, written from [`KEYS`], with
//! every key at its default (keys whose default is "unset" are commented out,
//! with an example value). README's config block is this text; a test keeps the
//! two equal.

use super::keys::{DATA_DIR_ENV, DefaultValue, ENV_PREFIX, KEYS, Section};

/// The example config, every line of it valid TOML.
pub fn example_toml() -> String {
    let mut text = format!(
        "# DATA_DIR/config.toml: settings for `ferry start`. Every key is optional.\n\
         # A flag of `ferry start` wins over a {ENV_PREFIX}<KEY> environment variable\n\
         # (lists: comma-separated), which wins over this file; {DATA_DIR_ENV}\n\
         # says which data directory. `ferry config show` prints the values in effect.\n"
    );
    let mut section: Option<Section> = None;
    for key in KEYS {
        if section != Some(key.section) {
            section = Some(key.section);
            text.push_str(&format!("\n# {}\n", key.section.heading()));
        }
        let mut how = vec![format!("env {}", key.env_var())];
        if let Some(flag) = key.flag {
            how.insert(0, format!("flag --{}", flag.long));
        }
        text.push_str(&format!("# {} ({})\n", key.doc, how.join(", ")));
        match key.default {
            DefaultValue::Value(value) => text.push_str(&format!("{} = {value}\n", key.name)),
            DefaultValue::Unset { meaning, example } => {
                text.push_str(&format!("# unset: {meaning}\n# {} = {example}\n", key.name))
            }
        }
    }
    text
}
