//! `ferry start`: the node in the foreground, logging to stderr.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use ferry_node::config::StartOptions;
use ferry_node::daemon::run;
use tracing_subscriber::EnvFilter;

use crate::args::{StartArgs, env_layer};

/// ferry's own crates, raised to debug by `-v` while libp2p stays at info.
const FERRY_DEBUG: &str =
    "info,ferry=debug,ferry_node=debug,ferry_net=debug,ferry_store=debug,ferry_core=debug";

pub(super) fn start(data_dir: PathBuf, args: StartArgs, verbose: u8) -> anyhow::Result<()> {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(log_filter(verbose)?)
        .with_writer(std::io::stderr)
        .with_ansi(log_colours());
    // Under systemd, stderr goes to the journal, which stamps each line itself.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        logs.without_time().init();
    } else {
        logs.init();
    }
    let options = StartOptions {
        data_dir,
        // The node checks and merges these over config.toml, so every source
        // gets the same checks and the same messages.
        flags: args.flags,
        env: env_layer()?,
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(run(options))
}

/// Colour codes only help a terminal (in a log file or the journal they are
/// noise), and NO_COLOR (<https://no-color.org>) turns them off there too.
fn log_colours() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// RUST_LOG wins when set; otherwise `-v` picks how much to show.
fn log_filter(verbose: u8) -> anyhow::Result<EnvFilter> {
    match std::env::var("RUST_LOG") {
        Ok(filter) if !filter.trim().is_empty() => EnvFilter::try_new(&filter)
            .with_context(|| format!("RUST_LOG={filter:?} is not a valid log filter")),
        _ => Ok(EnvFilter::new(match verbose {
            0 => "info",
            1 => FERRY_DEBUG,
            _ => "debug",
        })),
    }
}
