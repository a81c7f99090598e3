//! The client side of the control API: finds the node of a data directory, sends
//! its requests with the node's token, and turns every failure into a sentence.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use ferry_core::channel::ChannelName;
use ferry_node::control::ControlFile;
use ferry_node::control::types::{
    ApiError, ErrorKind, MessageView, PostRequest, ReadQuery, ReadReply,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use ureq::http::Response;
use ureq::{Agent, Body};

/// How long to wait for the node to accept a connection: it is on loopback, so a
/// node that takes longer is not there.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest an ordinary request may take; `connect` dials a remote peer, and
/// the node has its own, shorter dial timeout, so this only catches a hung node.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Added to a long poll's `wait_ms` so the node answers before the client gives up.
const LONG_POLL_SLACK: Duration = Duration::from_secs(30);
/// The node is trusted (it runs as the same user), but a cap still turns a
/// runaway answer into an error rather than an out-of-memory kill. A full read
/// (MAX_READ_LIMIT messages of 64 KiB) fits.
const MAX_ANSWER_BYTES: u64 = 1 << 30;
/// Error bodies are short sentences.
const MAX_ERROR_BYTES: u64 = 64 * 1024;

/// No node runs on the data directory: the one failure every command shares,
/// so it says what to do about it.
#[derive(Debug)]
pub(crate) struct NodeNotRunning(pub PathBuf);

impl fmt::Display for NodeNotRunning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = shell_quote(&self.0);
        write!(
            f,
            "no ferry node is running for data directory {dir}; start one with: ferry start --data-dir {dir}"
        )
    }
}

impl std::error::Error for NodeNotRunning {}

/// A request the node (or this command, for what it checks itself) refused,
/// with the node's class of failure, which decides the exit code.
#[derive(Debug)]
pub(crate) struct Refused {
    pub kind: ErrorKind,
    pub message: String,
}

impl Refused {
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::NotFound,
            message: message.into(),
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        // The node names no flag; the commands whose output can exist
        // (`get`, `dtn save`) share these two.
        if self.kind == ErrorKind::Exists {
            f.write_str("; pass --force to overwrite it, or choose another path with -o")?;
        }
        Ok(())
    }
}

impl std::error::Error for Refused {}

/// A connection to the node of one data directory.
#[derive(Clone)]
pub(crate) struct Client {
    agent: Agent,
    base: String,
    authorization: String,
    data_dir: PathBuf,
    verbose: bool,
}

impl Client {
    /// Reads the data directory's `control.json`. It does not contact the node:
    /// the first request finds out whether it is really there.
    pub(crate) fn new(data_dir: &Path, verbose: bool) -> anyhow::Result<Self> {
        let control = ControlFile::read(data_dir)
            .with_context(|| format!("cannot read {}", ControlFile::path(data_dir).display()))?
            .ok_or_else(|| NodeNotRunning(data_dir.to_owned()))?;
        let config = Agent::config_builder()
            // 4xx/5xx answers carry an ApiError body worth showing.
            .http_status_as_error(false)
            // The API is on loopback and the token must never reach a proxy.
            .proxy(None)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Self {
            agent: Agent::new_with_config(config),
            base: control.url.trim_end_matches('/').to_owned(),
            authorization: format!("Bearer {}", control.token),
            data_dir: data_dir.to_owned(),
            verbose,
        })
    }

    pub(crate) fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let url = self.url(path);
        self.trace("GET", &url);
        let answer = self
            .agent
            .get(&url)
            .header("Authorization", &self.authorization)
            .call();
        self.finish(answer)
    }

    pub(crate) fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        let url = self.url(path);
        self.trace("POST", &url);
        let answer = self
            .agent
            .post(&url)
            .header("Authorization", &self.authorization)
            .send_json(body);
        self.finish(answer)
    }

    pub(crate) fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let url = self.url(path);
        self.trace("DELETE", &url);
        let answer = self
            .agent
            .delete(&url)
            .header("Authorization", &self.authorization)
            .call();
        self.finish(answer)
    }

    pub(crate) fn post_message(
        &self,
        channel: &ChannelName,
        text: String,
    ) -> anyhow::Result<MessageView> {
        self.post(
            &format!("/v1/channels/{channel}/messages"),
            &PostRequest { text },
        )
    }

    /// One read of a channel; with `wait_ms` it is a long poll, and the request
    /// is given that long plus some slack before it times out.
    pub(crate) fn read_messages(
        &self,
        channel: &ChannelName,
        query: &ReadQuery,
    ) -> anyhow::Result<ReadReply> {
        let url = self.url(&format!("/v1/channels/{channel}/messages"));
        self.trace("GET", &url);
        let mut request = self
            .agent
            .get(&url)
            .header("Authorization", &self.authorization);
        if let Some(after) = query.after {
            request = request.query("after", after.to_string());
        }
        if let Some(limit) = query.limit {
            request = request.query("limit", limit.to_string());
        }
        if let Some(wait_ms) = query.wait_ms {
            request = request
                .query("wait_ms", wait_ms.to_string())
                .config()
                .timeout_global(Some(Duration::from_millis(wait_ms) + LONG_POLL_SLACK))
                .build();
        }
        self.finish(request.call())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn trace(&self, method: &str, url: &str) {
        if self.verbose {
            eprintln!("> {method} {url}");
        }
    }

    fn finish<T: DeserializeOwned>(
        &self,
        answer: Result<Response<Body>, ureq::Error>,
    ) -> anyhow::Result<T> {
        let mut response = answer.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        if self.verbose {
            eprintln!("< {status}");
        }
        let body = response.body_mut();
        if status.is_success() {
            return body
                .with_config()
                .limit(MAX_ANSWER_BYTES)
                .read_json()
                .context("the node sent an answer this ferry cannot read; are the node and the command the same version?");
        }
        let text = body
            .with_config()
            .limit(MAX_ERROR_BYTES)
            .read_to_string()
            .unwrap_or_default();
        match serde_json::from_str::<ApiError>(&text) {
            Ok(error) => Err(Refused {
                kind: error.kind,
                message: error.error,
            }
            .into()),
            // Not one of the node's own errors (say, a request the router could
            // not parse): show what came back rather than nothing.
            Err(_) => bail!("the node answered {status}: {}", text.trim()),
        }
    }

    fn transport_error(&self, error: ureq::Error) -> anyhow::Error {
        let refused = match &error {
            ureq::Error::Io(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
            ureq::Error::ConnectionFailed => true,
            _ => false,
        };
        if refused {
            // control.json outlives a node killed with -9: a refused connection
            // means the same as a missing file.
            NodeNotRunning(self.data_dir.clone()).into()
        } else {
            anyhow::Error::new(error).context(format!(
                "lost contact with the ferry node of {}",
                self.data_dir.display()
            ))
        }
    }
}

/// Quotes a path for a shell when it needs it, so the suggested command can be
/// pasted as is.
fn shell_quote(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c));
    if plain && !text.is_empty() {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_not_running_error_names_the_dir_and_the_command() {
        let text = NodeNotRunning(PathBuf::from("/tmp/a b")).to_string();
        assert!(text.contains("'/tmp/a b'"), "{text}");
        assert!(text.contains("ferry start --data-dir '/tmp/a b'"), "{text}");
        let plain = NodeNotRunning(PathBuf::from("/tmp/x")).to_string();
        assert!(plain.ends_with("ferry start --data-dir /tmp/x"), "{plain}");
    }

    #[test]
    fn a_missing_control_file_means_no_node() {
        let dir = tempfile::tempdir().unwrap();
        let error = Client::new(dir.path(), false).err().unwrap();
        assert!(error.downcast_ref::<NodeNotRunning>().is_some());
    }
}
