//! Content: `ferry share`, `ferry get`, `ferry ls` and `ferry rm`.
//!
//! Sharing and fetching are jobs that run inside the node; these commands start
//! one, poll it and draw its progress, so a command that stops (Ctrl-C) leaves
//! the job running.

use std::io::IsTerminal;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use ferry_core::content::ContentId;
use ferry_node::control::types::{
    BlobEntry, ErrorKind, GetRequest, JobStarted, JobState, JobStatus, Removed, ShareRequest,
};
use indicatif::{ProgressBar, ProgressStyle};

use super::print;
use crate::args::{GetArgs, ShareArgs};
use crate::client::{Client, Refused};
use crate::output;

/// How often a running job is asked for its progress.
const POLL_EVERY: Duration = Duration::from_millis(150);
/// The fewest hex digits `ferry rm` takes as an id, so a slip of the finger
/// does not match something else.
const MIN_ID_PREFIX: usize = 8;

pub(super) fn share(client: &Client, args: ShareArgs) -> anyhow::Result<()> {
    let path = share_path(&args.path)?;
    let started: JobStarted = client.post(
        "/v1/share",
        &ShareRequest {
            path: utf8(&path)?,
            in_place: args.in_place,
        },
    )?;
    let status = follow_job(client, started.job, !args.output.json)?;
    let share = status
        .share
        .ok_or_else(|| anyhow!("the node finished sharing but did not say what it shared"))?;
    print(args.output.json, &share, || output::share_text(&share))
}

pub(super) fn get(client: &Client, args: GetArgs) -> anyhow::Result<()> {
    let started: JobStarted = client.post(
        "/v1/get",
        &GetRequest {
            target: args.target.trim().to_owned(),
            output: Some(get_output(args.output.as_deref())?),
            force: args.force,
        },
    )?;
    let status = follow_job(client, started.job, !args.json.json)?;
    let get = status
        .get
        .ok_or_else(|| anyhow!("the node finished the download but did not say where it went"))?;
    print(args.json.json, &get, || output::get_text(&get))
}

pub(super) fn ls(client: &Client, json: bool) -> anyhow::Result<()> {
    let blobs: Vec<BlobEntry> = client.get("/v1/blobs")?;
    print(json, &blobs, || output::blobs_table(&blobs))
}

pub(super) fn rm(client: &Client, id: &str, json: bool) -> anyhow::Result<()> {
    let id = resolve_id(client, id)?;
    let removed: Removed = client.delete(&format!("/v1/blobs/{id}"))?;
    if !removed.removed {
        return Err(Refused::not_found(format!(
            "nothing removed: {id} is not in this node's store"
        ))
        .into());
    }
    print(
        json,
        &RmReply {
            removed: id.clone(),
        },
        || format!("removed {id}\n"),
    )
}

/// What `ferry rm --json` prints: the full id removed.
#[derive(serde::Serialize)]
struct RmReply {
    removed: String,
}

/// Polls job `job` until it is done, drawing a progress bar on stderr when
/// `show` and stderr is a terminal. A failed job becomes an error with the
/// node's own words and class of failure, which decides the exit code.
fn follow_job(client: &Client, job: u64, show: bool) -> anyhow::Result<JobStatus> {
    let mut bar = Bar::new(show && std::io::stderr().is_terminal());
    loop {
        let status: JobStatus = client.get(&format!("/v1/jobs/{job}"))?;
        match status.state {
            JobState::Running => bar.update(&status),
            JobState::Done => {
                bar.bar.finish_and_clear();
                return Ok(status);
            }
            JobState::Cancelled => {
                bar.bar.finish_and_clear();
                bail!("job {job} was cancelled (`ferry jobs cancel`)");
            }
            JobState::Failed => {
                bar.bar.finish_and_clear();
                return Err(Refused {
                    // A node older than the field: a failure of no known class.
                    kind: status.error_kind.unwrap_or(ErrorKind::Internal),
                    message: status
                        .error
                        .unwrap_or_else(|| "the job failed and the node did not say why".into()),
                }
                .into());
            }
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// A progress bar fed by job statuses: bytes, rate and ETA once the size is
/// known, a spinner before that; for downloads, how many peers are sending.
struct Bar {
    bar: ProgressBar,
    /// No status shown yet.
    fresh: bool,
}

impl Bar {
    fn new(visible: bool) -> Self {
        let bar = if visible {
            ProgressBar::new_spinner().with_style(spinner_style())
        } else {
            ProgressBar::hidden()
        };
        Self { bar, fresh: true }
    }

    fn update(&mut self, status: &JobStatus) {
        if self.bar.is_hidden() {
            return;
        }
        if let Some(total) = status.total_bytes
            && self.bar.length() != Some(total)
        {
            self.bar.set_style(bar_style());
            self.bar.set_length(total);
        }
        self.bar.set_position(status.done_bytes);
        if self.fresh {
            // What was already done when this command began (a resumed
            // download) did not happen at this command's rate.
            self.bar.reset_eta();
            self.fresh = false;
        }
        self.bar.set_message(output::progress_message(status));
        self.bar.tick();
    }
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{msg} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
    )
    .expect("a valid template")
    .progress_chars("=> ")
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} {binary_bytes} {binary_bytes_per_sec}")
        .expect("a valid template")
}

/// The path to share, absolute (the node may run in another directory). `..`
/// is resolved here, so the content is named after what the path points at
/// rather than `..`.
fn share_path(path: &Path) -> anyhow::Result<PathBuf> {
    std::fs::metadata(path).with_context(|| format!("cannot share {}", path.display()))?;
    let absolute =
        std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    if absolute.components().any(|c| c == Component::ParentDir) {
        return std::fs::canonicalize(path)
            .with_context(|| format!("cannot resolve {}", path.display()));
    }
    Ok(absolute)
}

/// The output for the node: `PATH` made absolute (a trailing slash kept, as
/// it means "inside this folder"), or the current directory with a trailing
/// slash, so the node writes the content inside it under its own name.
fn get_output(output: Option<&Path>) -> anyhow::Result<String> {
    let path = match output {
        Some(path) => std::path::absolute(path)
            .with_context(|| format!("cannot resolve {}", path.display()))?,
        None => std::env::current_dir().context("cannot find the current directory")?,
    };
    let mut text = utf8(&path)?;
    if output.is_none() && !text.ends_with('/') {
        text.push('/');
    }
    Ok(text)
}

/// The control API carries paths as text.
pub(super) fn utf8(path: &Path) -> anyhow::Result<String> {
    path.to_str().map(str::to_owned).ok_or_else(|| {
        anyhow!(
            "{} is not valid UTF-8; ferry can only handle paths that are",
            path.display()
        )
    })
}

/// A full id as given, or the one id in the store that starts with `text`.
fn resolve_id(client: &Client, text: &str) -> anyhow::Result<String> {
    let prefix = id_prefix(text)?;
    if let Ok(id) = prefix.parse::<ContentId>() {
        return Ok(id.to_string());
    }
    let blobs: Vec<BlobEntry> = client.get("/v1/blobs")?;
    let matches: Vec<&BlobEntry> = blobs.iter().filter(|b| b.id.starts_with(&prefix)).collect();
    match matches.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Err(Refused::not_found(format!(
            "nothing in this node's store has an id starting with {prefix} (`ferry ls` lists what it holds)"
        ))
        .into()),
        many => bail!(
            "{prefix} is ambiguous: {} ids in the store start with it; give more digits",
            many.len()
        ),
    }
}

/// `text` as lowercase hex, if it can be an id or the start of one.
fn id_prefix(text: &str) -> anyhow::Result<String> {
    let text = text.trim();
    let hex = !text.is_empty() && text.chars().all(|c| c.is_ascii_hexdigit());
    if !hex || text.len() > 64 {
        bail!(
            "{text:?} is not a content id: expected the 64 hex digits `ferry ls` shows, or the first {MIN_ID_PREFIX} or more of them"
        );
    }
    if text.len() < MIN_ID_PREFIX {
        bail!(
            "{text:?} is too short to pick content by: give at least {MIN_ID_PREFIX} hex digits of its id"
        );
    }
    Ok(text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_prefixes() {
        assert_eq!(id_prefix(" ABCDEF012 ").unwrap(), "abcdef012");
        assert_eq!(id_prefix(&"a".repeat(64)).unwrap(), "a".repeat(64));
        for bad in ["", "xyz12345", &"a".repeat(65), "ferry1abc"] {
            let error = id_prefix(bad).unwrap_err().to_string();
            assert!(error.contains("not a content id"), "{bad}: {error}");
        }
        let error = id_prefix("abc").unwrap_err().to_string();
        assert!(error.contains("at least 8"), "{error}");
    }

    #[test]
    fn outputs_are_absolute_and_keep_the_inside_slash() {
        let cwd = std::env::current_dir().unwrap();
        let here = get_output(None).unwrap();
        assert_eq!(here, format!("{}/", cwd.display()));
        let inside = get_output(Some(Path::new("out/"))).unwrap();
        assert_eq!(inside, format!("{}/out/", cwd.display()));
        let file = get_output(Some(Path::new("out.bin"))).unwrap();
        assert_eq!(file, format!("{}/out.bin", cwd.display()));
        assert_eq!(get_output(Some(Path::new("/x/y"))).unwrap(), "/x/y");
    }

    #[test]
    fn shared_paths_are_absolute_and_named_after_their_target() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let up = share_path(&sub.join("..")).unwrap();
        assert_eq!(up, std::fs::canonicalize(dir.path()).unwrap());
        assert_eq!(share_path(&sub).unwrap(), sub);
        let error = format!("{:#}", share_path(&dir.path().join("missing")).unwrap_err());
        assert!(error.contains("cannot share"), "{error}");
        assert!(error.contains("missing"), "{error}");
    }
}
