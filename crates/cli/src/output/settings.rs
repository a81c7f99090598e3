//! What `ferry config show` prints.

use ferry_node::config::{EffectiveValue, Origin};
use serde::Serialize;

use super::{printable, table};

/// The settings in effect on a data directory, for `ferry config show`.
#[derive(Debug, Serialize)]
pub(crate) struct ConfigShow {
    pub data_dir: String,
    pub config_file: String,
    pub config_file_exists: bool,
    pub settings: Vec<EffectiveValue>,
}

/// The file, then a table of every key, its value and where the value came from.
pub(crate) fn config_show_text(show: &ConfigShow) -> String {
    let file = if show.config_file_exists {
        printable(&show.config_file, false)
    } else {
        format!("{} (none: defaults)", printable(&show.config_file, false))
    };
    let rows = show.settings.iter().map(|setting| {
        let value = match (&setting.value, setting.unset) {
            (Some(value), _) => printable(&value.to_string(), false),
            (None, Some(meaning)) => format!("(unset: {meaning})"),
            (None, None) => "(unset)".to_owned(),
        };
        let from: Vec<String> = setting
            .from
            .iter()
            .map(|origin| match origin {
                Origin::Env => format!("env {}", setting.env),
                Origin::File => "config.toml".to_owned(),
                other => other.as_str().to_owned(),
            })
            .collect();
        vec![setting.key.to_owned(), from.join(" + "), value]
    });
    format!(
        "config file  {file}\n\n{}",
        table(&["KEY", "FROM", "VALUE"], rows)
    )
}
