//! The control API's DTN routes: send, inbox, save, status, export, import.
//! Everything that touches the store runs on the blocking pool.

use std::path::Path;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_core::PeerId;
use ferry_core::content::{ContentId, Ticket};
use ferry_core::dtn::{BundleId, Eid, MAX_BUNDLE_BYTES, NodeId, Priority, unix_ms_from_dtn_ms};
use ferry_store::untrusted::{self, UntrustedError};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use super::extract::ApiJson;
use super::server::{ApiState, absolute, bad_request, internal};
use crate::dtn::{DEFAULT_LIFETIME_MS, Dtn, DtnError, FILE_SERVICE, TEXT_SERVICE, folder};
use crate::error::NodeError;
use crate::types::*;

/// What a file name must not carry raw inside an endpoint id: separators, spaces, the
/// escape character itself (non-ASCII is always escaped).
const NAME_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'/')
    .add(b'\\')
    .add(b'%')
    .add(b'"')
    .add(b'#')
    .add(b'?');

/// Room left in a bundle for its blocks beside the payload.
const BUNDLE_OVERHEAD: usize = 4096;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/dtn/send", post(send))
        .route("/v1/dtn/inbox", get(inbox))
        .route("/v1/dtn/save", post(save))
        .route("/v1/dtn/status", get(status))
        .route("/v1/dtn/export", post(export))
        .route("/v1/dtn/import", post(import))
}

/// Runs store work off the async threads.
async fn blocking<T: Send + 'static>(
    dtn: &Arc<Dtn>,
    job: impl FnOnce(&Dtn) -> Result<T, NodeError> + Send + 'static,
) -> Result<T, NodeError> {
    let dtn = dtn.clone();
    tokio::task::spawn_blocking(move || job(&dtn))
        .await
        .map_err(internal)?
}

/// A peer id names a ferry node's `service` endpoint; anything else must be an
/// endpoint id.
fn destination(text: &str, service: &str) -> Result<Eid, NodeError> {
    let text = text.trim();
    if let Ok(peer) = text.parse::<PeerId>() {
        return Eid::for_peer(&peer, service).map_err(bad_request);
    }
    text.parse::<Eid>().map_err(|e| {
        bad_request(format!(
            "{text:?} is neither a peer id nor an endpoint id ({e}); give a peer id from `ferry id`, or dtn://NODE/SERVICE"
        ))
    })
}

async fn send(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<DtnSendRequest>,
) -> Result<Json<DtnSendReply>, NodeError> {
    let priority: Priority = match &body.priority {
        Some(text) => text.parse().map_err(bad_request)?,
        None => Priority::Normal,
    };
    let lifetime_ms = body
        .lifetime_secs
        .map_or(DEFAULT_LIFETIME_MS, |s| s.saturating_mul(1000));
    if lifetime_ms == 0 {
        return Err(bad_request(
            "a bundle's lifetime must be at least one second",
        ));
    }
    let file = body
        .file
        .as_deref()
        .map(|f| absolute(f, "file"))
        .transpose()?;
    let reply = blocking(&state.dtn, move |dtn| {
        let (service, payload) = match (body.text, file) {
            (Some(text), None) => (TEXT_SERVICE.to_owned(), text.into_bytes()),
            (None, Some(path)) => file_payload(&path)?,
            _ => return Err(bad_request("give either a text or a file")),
        };
        let to = destination(&body.destination, &service)?;
        let meta = dtn
            .send(to.clone(), &service, payload, lifetime_ms, priority)
            .map_err(|e| match e {
                DtnError::Store(e) => NodeError::store("cannot send", &e),
                e => bad_request(format!("cannot send: {e}")),
            })?;
        Ok(DtnSendReply {
            id: meta.id.to_string(),
            destination: to.to_string(),
            bytes: meta.size,
            expires_unix_ms: unix_ms_from_dtn_ms(meta.expires_at),
        })
    })
    .await?;
    Ok(Json(reply))
}

fn file_payload(path: &Path) -> Result<(String, Vec<u8>), NodeError> {
    let len = std::fs::metadata(path)
        .map_err(|e| bad_request(format!("cannot read {}: {e}", path.display())))?
        .len();
    let max = (MAX_BUNDLE_BYTES - BUNDLE_OVERHEAD) as u64;
    if len > max {
        return Err(NodeError::TooLarge(format!(
            "{} is {len} bytes, over the {max}-byte limit of one bundle; share it with `ferry share`, or carry it by folder with `ferry dtn export --content`",
            path.display()
        )));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let service = format!(
        "{FILE_SERVICE}/{}",
        utf8_percent_encode(&name, NAME_ESCAPES)
    );
    let payload = std::fs::read(path)
        .map_err(|e| bad_request(format!("cannot read {}: {e}", path.display())))?;
    Ok((service, payload))
}

async fn inbox(State(state): State<ApiState>) -> Result<Json<Vec<InboxItem>>, NodeError> {
    let items = blocking(&state.dtn, |dtn| Ok(dtn.inbox()?)).await?;
    Ok(Json(items))
}

async fn save(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<DtnSaveRequest>,
) -> Result<Json<DtnSaveReply>, NodeError> {
    let id: BundleId = body
        .id
        .trim()
        .parse()
        .map_err(|e| bad_request(format!("{e}; ids are listed by `ferry dtn inbox`")))?;
    let path = absolute(&body.path, "output")?;
    let reply = blocking(&state.dtn, move |dtn| {
        let (_, payload) = dtn.inbox_payload(&id)?.ok_or_else(|| {
            NodeError::NotFound(format!(
                "no bundle {id} in the inbox; see `ferry dtn inbox`"
            ))
        })?;
        // A new temporary file renamed into place: no link at the name (or
        // beside it) is written through, and without --force an existing entry,
        // even a dangling link, is left alone.
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(bad_request(format!("{} names no file", path.display())));
        };
        untrusted::write_file(dir, name, &payload, body.force)
            .and_then(|()| untrusted::sync_dir(dir))
            .map_err(|e| match e {
                UntrustedError::Exists(path) => NodeError::Exists(path),
                e => bad_request(format!("cannot write {}: {e}", path.display())),
            })?;
        Ok(DtnSaveReply {
            path: path.display().to_string(),
            bytes: payload.len() as u64,
        })
    })
    .await?;
    Ok(Json(reply))
}

async fn status(State(state): State<ApiState>) -> Result<Json<DtnStatus>, NodeError> {
    let status = blocking(&state.dtn, |dtn| Ok(dtn.status()?)).await?;
    Ok(Json(status))
}

fn content_id(text: &str) -> Result<ContentId, NodeError> {
    let text = text.trim();
    text.parse::<Ticket>()
        .map(|t| t.id)
        .or_else(|_| text.parse::<ContentId>())
        .map_err(|_| bad_request(format!("{text:?} is neither a ticket nor a content id")))
}

fn node_id(text: &str) -> Result<NodeId, NodeError> {
    let text = text.trim();
    if let Ok(peer) = text.parse::<PeerId>() {
        return Ok(NodeId::from_peer(&peer));
    }
    text.parse::<Eid>()
        .ok()
        .and_then(|e| e.node_id())
        .ok_or_else(|| bad_request(format!("{text:?} is neither a peer id nor an endpoint id")))
}

async fn export(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<DtnExportRequest>,
) -> Result<Json<ExportReport>, NodeError> {
    let dir = absolute(&body.dir, "export")?;
    let to = body
        .to
        .iter()
        .map(|t| node_id(t))
        .collect::<Result<Vec<_>, _>>()?;
    let content = body
        .content
        .iter()
        .map(|c| content_id(c))
        .collect::<Result<Vec<_>, _>>()?;
    let report = blocking(&state.dtn, move |dtn| {
        folder::export(dtn, &dir, &to, &content).map_err(folder_failure)
    })
    .await?;
    Ok(Json(report))
}

async fn import(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<DtnImportRequest>,
) -> Result<Json<ImportReport>, NodeError> {
    let dir = absolute(&body.dir, "import")?;
    let report = blocking(&state.dtn, move |dtn| {
        folder::import(dtn, &dir).map_err(folder_failure)
    })
    .await?;
    Ok(Json(report))
}

/// A folder export or import failed: the store's own failures keep their class
/// (a full disk), missing content is not found, the rest is the folder's fault.
fn folder_failure(error: folder::FolderError) -> NodeError {
    match error {
        folder::FolderError::Store(e) => NodeError::store("the store failed", &e),
        folder::FolderError::NoContent(_) => NodeError::NotFound(error.to_string()),
        folder::FolderError::Outgoing(e) => e.into(),
        e => bad_request(e),
    }
}
