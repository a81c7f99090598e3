//! How `ferry` ends: its exit codes, and how an error is printed: a line of
//! text on stderr, or with `--json` a JSON object on stderr, so stdout only
//! ever carries results.

use std::io::Write;
use std::process::ExitCode;

use ferry_node::control::types::ErrorKind;
use ferry_store::StoreError;
use serde::Serialize;

use crate::args::{Cli, Command, ConfigCommand, DtnCommand, JobsCommand};
use crate::client::{NodeNotRunning, Refused};

/// Something failed (the node refused the request, or it failed).
pub(crate) const ERROR: u8 = 1;
/// The command line is wrong (clap's own code).
pub(crate) const USAGE: u8 = 2;
/// No node runs for the data directory: control.json is missing, or the node
/// behind it does not answer.
pub(crate) const NO_NODE: u8 = 3;
/// What the command names (a job, content, a bundle, a peer) does not exist.
pub(crate) const NOT_FOUND: u8 = 4;

/// What `--json` prints for an error.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorReport {
    /// The node's error kind (`not_found`, `storage`, …), or `no_node`,
    /// `usage` or `error` for failures the command meets itself.
    pub kind: String,
    pub message: String,
    pub exit_code: u8,
}

impl ErrorReport {
    pub(crate) fn of(error: &anyhow::Error) -> Self {
        let (kind, exit_code) = classify(error);
        Self {
            kind,
            message: message(error),
            exit_code,
        }
    }

    /// A command line clap refused.
    pub(crate) fn usage(error: &clap::Error) -> Self {
        Self {
            kind: "usage".into(),
            message: error.kind().as_str().map_or_else(
                || error.to_string().trim().to_owned(),
                |what| format!("{what}: {}", error.to_string().trim()),
            ),
            exit_code: USAGE,
        }
    }

    /// Prints the report as `--json` asks (JSON) or as text, on stderr, and
    /// returns the exit code.
    pub(crate) fn print(&self, json: bool) -> ExitCode {
        let text = if json {
            serde_json::to_string(self).unwrap_or_else(|_| self.message.clone())
        } else {
            format!("error: {}", self.message)
        };
        let _ = writeln!(std::io::stderr().lock(), "{text}");
        ExitCode::from(self.exit_code)
    }
}

fn classify(error: &anyhow::Error) -> (String, u8) {
    for cause in error.chain() {
        if cause.downcast_ref::<NodeNotRunning>().is_some() {
            return ("no_node".into(), NO_NODE);
        }
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            let code = match refused.kind {
                ErrorKind::NotFound => NOT_FOUND,
                _ => ERROR,
            };
            return (refused.kind.as_str().into(), code);
        }
    }
    ("error".into(), ERROR)
}

/// The error's text with its causes, and the advice the store leaves to the
/// command line.
fn message(error: &anyhow::Error) -> String {
    let mut text = format!("{error:#}");
    let locked = error
        .chain()
        .any(|c| matches!(c.downcast_ref::<StoreError>(), Some(StoreError::Locked(_))));
    if locked {
        text.push_str(": stop it first, or pick another directory with --data-dir");
    }
    text
}

/// Whether the command asked for JSON; `start` and `chat` have no JSON form.
pub(crate) fn wants_json(cli: &Cli) -> bool {
    match &cli.command {
        Command::Start(_) | Command::Chat(_) => false,
        Command::Id(a)
        | Command::Status(a)
        | Command::Peers(a)
        | Command::Nat(a)
        | Command::Channels(a)
        | Command::Ls(a) => a.json,
        Command::Jobs(a) => match &a.command {
            Some(JobsCommand::Cancel(c)) => c.output.json || a.output.json,
            None => a.output.json,
        },
        Command::Connect(a) => a.output.json,
        Command::Find(a) => a.output.json,
        Command::Post(a) => a.output.json,
        Command::Read(a) => a.json,
        Command::Leave(a) => a.output.json,
        Command::Share(a) => a.output.json,
        Command::Get(a) => a.json.json,
        Command::Rm(a) => a.output.json,
        Command::Dtn(command) => match command {
            DtnCommand::Send(a) => a.output.json,
            DtnCommand::Inbox(a) | DtnCommand::Status(a) => a.json,
            DtnCommand::Save(a) => a.json.json,
            DtnCommand::Export(a) => a.output.json,
            DtnCommand::Import(a) => a.output.json,
        },
        Command::Config(command) => match command {
            ConfigCommand::Example(a) => a.json,
            ConfigCommand::Show(a) => a.output.json,
        },
        Command::Completions(a) => a.json,
        Command::Man(a) => a.json,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_their_exit_codes() {
        let no_node = anyhow::Error::new(NodeNotRunning("/tmp/x".into()));
        assert_eq!(ErrorReport::of(&no_node).exit_code, NO_NODE);
        assert_eq!(ErrorReport::of(&no_node).kind, "no_node");
        let missing = anyhow::Error::new(Refused::not_found("no job 7"));
        let report = ErrorReport::of(&missing);
        assert_eq!(
            (report.kind.as_str(), report.exit_code),
            ("not_found", NOT_FOUND)
        );
        let full = anyhow::Error::new(Refused {
            kind: ErrorKind::Storage,
            message: "the disk is full".into(),
        });
        assert_eq!(ErrorReport::of(&full).exit_code, ERROR);
        let other = anyhow::anyhow!("something else");
        assert_eq!(ErrorReport::of(&other).kind, "error");
    }

    #[test]
    fn a_locked_data_dir_gets_the_flag_advice() {
        let locked = anyhow::Error::new(StoreError::Locked("/d".into()));
        let text = ErrorReport::of(&locked).message;
        assert!(
            text.contains("already running") && text.ends_with("--data-dir"),
            "{text}"
        );
    }
}
