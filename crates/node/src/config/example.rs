//! `ferry config example`: a complete `config.toml`, written from [`KEYS`]: every
//! key set, to its default or, where the default would not show what a value
//! looks like (an empty list, an unset key), to an example, with the default said
//! above it. README's config block is this text; a test keeps the two equal.

use super::keys::{DATA_DIR_ENV, DefaultValue, ENV_PREFIX, KEYS, Section};

/// The example config, every line of it valid TOML.
pub fn example_toml() -> String {
    let mut text = format!(
        "# DATA_DIR/config.toml: settings for `ferry start`. Every key is optional.\n\
         # A flag of `ferry start` wins over a {ENV_PREFIX}<KEY> environment variable\n\
         # (lists: comma-separated), which wins over this file; {DATA_DIR_ENV}\n\
         # says which data directory. Keys set to an example here say their default.\n\
         # `ferry config show` prints the values in effect and where each came from.\n"
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
        let value = match (key.example, key.default) {
            (Some(example), DefaultValue::Value(default)) => {
                how.push(format!("default {default}"));
                example
            }
            (Some(example), DefaultValue::Unset { meaning }) => {
                how.push(format!("default: {meaning}"));
                example
            }
            (None, DefaultValue::Value(default)) => default,
            // Every key unset by default has an example (a test checks).
            (None, DefaultValue::Unset { .. }) => continue,
        };
        text.push_str(&format!(
            "# {}\n# {}\n{} = {value}\n",
            key.doc,
            how.join("; "),
            key.name
        ));
    }
    text
}
