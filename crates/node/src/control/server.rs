//! The control API server: HTTP+JSON on 127.0.0.1, behind a bearer token.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::path::PathBuf;

use ferry_core::channel::{ChannelName, MAX_TEXT_BYTES};
use ferry_core::content::{ContentId, Ticket};
use ferry_store::Store;
use tokio::sync::{mpsc, oneshot, watch};

use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::config::parse_multiaddr;
use crate::dtn::{Dtn, safe_file_name};
use crate::engine::{Command, GetPlan, blob_entry, message_view};
use crate::error::{ErrorKind, NodeError};
use crate::jobs::Jobs;
use crate::share;
use crate::types::*;

/// How long a command may wait for the engine (a dial can take this long).
const ENGINE_TIMEOUT: Duration = Duration::from_secs(15);
/// Request bodies above this are refused before they are read: a post is at
/// most 64 KiB of text, JSON-escaped.
const MAX_BODY_BYTES: usize = 8 * MAX_TEXT_BYTES;

#[derive(Clone)]
pub struct ApiState {
    pub token: Arc<str>,
    pub store: Arc<Store>,
    pub commands: mpsc::Sender<Command>,
    pub new_messages: watch::Receiver<u64>,
    pub jobs: Jobs,
    pub dtn: Arc<Dtn>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/id", get(id))
        .route("/v1/peers", get(peers))
        .route("/v1/connect", post(connect))
        .route("/v1/channels", get(channels))
        .route(
            "/v1/channels/{channel}/messages",
            get(read).post(post_message),
        )
        .route("/v1/channels/{channel}/leave", post(leave))
        .route("/v1/share", post(share_path))
        .route("/v1/get", post(get_content))
        .route("/v1/jobs", get(list_jobs))
        .route("/v1/jobs/{job}", get(job_status))
        .route("/v1/jobs/{job}/cancel", post(cancel_job))
        .route("/v1/blobs", get(list_blobs))
        .route("/v1/blobs/{id}", axum::routing::delete(remove_blob))
        .route("/v1/find", post(find_peer))
        .route("/v1/nat", get(nat))
        .merge(super::dtn::routes())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// The HTTP status of each kind of failure: the one place that decides it.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Exists | ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Unreachable => StatusCode::BAD_GATEWAY,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Storage => StatusCode::INSUFFICIENT_STORAGE,
    }
}

impl IntoResponse for NodeError {
    fn into_response(self) -> Response {
        let kind = self.kind();
        let body = ApiError {
            kind,
            error: self.to_string(),
        };
        (status_of(kind), Json(body)).into_response()
    }
}

pub(super) fn bad_request(e: impl ToString) -> NodeError {
    NodeError::Invalid(e.to_string())
}

pub(super) fn internal(e: impl ToString) -> NodeError {
    NodeError::Internal(e.to_string())
}

async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented.is_some_and(|t| constant_time_eq(t.as_bytes(), state.token.as_bytes())) {
        next.run(request).await
    } else {
        NodeError::Unauthorized.into_response()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Sends a command to the engine and waits for its answer.
async fn ask<T>(
    state: &ApiState,
    make: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Result<T, NodeError> {
    ask_within(state, ENGINE_TIMEOUT, make).await
}

async fn ask_within<T>(
    state: &ApiState,
    timeout: Duration,
    make: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Result<T, NodeError> {
    let (tx, rx) = oneshot::channel();
    state
        .commands
        .send(make(tx))
        .await
        .map_err(|_| NodeError::ShuttingDown)?;
    tokio::time::timeout(timeout, rx)
        .await
        .map_err(|_| NodeError::Timeout)?
        .map_err(|_| NodeError::ShuttingDown)
}

async fn id(State(state): State<ApiState>) -> Result<Json<IdInfo>, NodeError> {
    let mut info: IdInfo = ask(&state, Command::Id).await?;
    let store = state.store.clone();
    let health = tokio::task::spawn_blocking(move || store.storage_health())
        .await
        .map_err(|_| internal("the storage check failed"))?;
    info.storage = health.into();
    Ok(Json(info))
}

async fn peers(State(state): State<ApiState>) -> Result<Json<Vec<PeerInfo>>, NodeError> {
    Ok(Json(ask(&state, Command::Peers).await?))
}

async fn connect(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<ConnectRequest>,
) -> Result<Json<ConnectReply>, NodeError> {
    let addr = parse_multiaddr(&body.addr).map_err(bad_request)?;
    Ok(Json(
        ask(&state, |reply| Command::Connect(addr, reply)).await??,
    ))
}

async fn channels(State(state): State<ApiState>) -> Result<Json<Vec<ChannelInfo>>, NodeError> {
    let channels = state.store.channels()?;
    Ok(Json(
        channels
            .into_iter()
            .map(|(channel, messages)| ChannelInfo {
                channel: channel.to_string(),
                messages,
            })
            .collect(),
    ))
}

fn channel_name(text: &str) -> Result<ChannelName, NodeError> {
    text.parse().map_err(bad_request)
}

async fn post_message(
    State(state): State<ApiState>,
    ApiPath(channel): ApiPath<String>,
    ApiJson(body): ApiJson<PostRequest>,
) -> Result<Json<MessageView>, NodeError> {
    let channel = channel_name(&channel)?;
    Ok(Json(
        ask(&state, |reply| Command::Post(channel, body.text, reply)).await??,
    ))
}

async fn read(
    State(state): State<ApiState>,
    ApiPath(channel): ApiPath<String>,
    ApiQuery(query): ApiQuery<ReadQuery>,
) -> Result<Json<ReadReply>, NodeError> {
    let channel = channel_name(&channel)?;
    let limit = query.limit.unwrap_or(500).clamp(1, MAX_READ_LIMIT);
    // Reading a channel joins it (unless the user left it), so its history
    // is fetched from peers.
    ask(&state, |reply| Command::Join(channel.clone(), reply)).await??;
    let mut new_messages = state.new_messages.clone();
    let next = *new_messages.borrow_and_update();
    let Some(after) = query.after else {
        let messages = state.store.recent(&channel, limit)?;
        return Ok(Json(ReadReply {
            messages: messages.iter().map(message_view).collect(),
            next,
        }));
    };
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(query.wait_ms.unwrap_or(0).min(MAX_WAIT_MS));
    loop {
        let next = *new_messages.borrow_and_update();
        let messages = state.store.after(&channel, after, limit)?;
        if !messages.is_empty() || tokio::time::Instant::now() >= deadline {
            let next = messages.last().map_or(next.max(after), |m| m.seq);
            return Ok(Json(ReadReply {
                messages: messages.iter().map(message_view).collect(),
                next,
            }));
        }
        if tokio::time::timeout_at(deadline, new_messages.changed())
            .await
            .is_ok_and(|changed| changed.is_err())
        {
            return Err(NodeError::ShuttingDown);
        }
    }
}

async fn leave(
    State(state): State<ApiState>,
    ApiPath(channel): ApiPath<String>,
) -> Result<Json<LeaveReply>, NodeError> {
    let channel = channel_name(&channel)?;
    let left = ask(&state, |reply| Command::Leave(channel.clone(), reply)).await??;
    Ok(Json(LeaveReply {
        channel: channel.to_string(),
        left,
    }))
}

pub(super) fn absolute(path: &str, what: &str) -> Result<PathBuf, NodeError> {
    let path = PathBuf::from(path);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(bad_request(format!(
            "the {what} path must be absolute: {}",
            path.display()
        )))
    }
}

async fn share_path(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<ShareRequest>,
) -> Result<Json<JobStarted>, NodeError> {
    let path = absolute(&body.path, "shared")?;
    if !path.exists() {
        return Err(bad_request(format!("{} does not exist", path.display())));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let job = state.jobs.start(JobKind::Share, &format!("hashing {name}"));
    tokio::spawn(run_share(state, job, path, body.in_place));
    Ok(Json(JobStarted { job }))
}

async fn run_share(state: ApiState, job: u64, path: PathBuf, in_place: bool) {
    let store = state.store.clone();
    let jobs = state.jobs.clone();
    let hashed = tokio::task::spawn_blocking(move || {
        share::share(&store, &path, in_place, &mut |done, total| {
            jobs.update(job, |s| {
                s.done_bytes = done;
                s.total_bytes = Some(total);
            });
        })
    })
    .await
    .map_err(|e| NodeError::Internal(format!("hashing stopped: {e}")))
    .and_then(|shared| shared.map_err(NodeError::from));
    let shared = match hashed {
        Ok(shared) => shared,
        Err(e) => return state.jobs.fail(job, e),
    };
    let asked = ask(&state, |reply| Command::Ticket {
        id: shared.id,
        kind: shared.kind,
        name: Some(shared.name.clone()),
        reply,
    })
    .await;
    let ticket = match asked {
        Ok(ticket) => ticket,
        Err(e) => return state.jobs.fail(job, e),
    };
    tracing::info!(id = %shared.id, name = %shared.name, "shared");
    let _ = state.commands.send(Command::Provide(shared.id)).await;
    state.jobs.update(job, |s| {
        s.state = JobState::Done;
        s.phase = "done".into();
        s.done_bytes = shared.size;
        s.total_bytes = Some(shared.size);
        s.share = Some(ShareResult {
            id: shared.id.to_string(),
            kind: shared.kind,
            name: shared.name,
            size: shared.size,
            files: shared.files,
            ticket: ticket.to_string(),
        });
    });
}

async fn get_content(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<GetRequest>,
) -> Result<Json<JobStarted>, NodeError> {
    let (root, kind, name, providers, provider_addrs) = match body.target.trim().parse::<Ticket>() {
        Ok(ticket) => (
            ticket.id,
            Some(ticket.kind),
            ticket.name,
            vec![ticket.provider],
            ticket.addrs,
        ),
        Err(ticket_error) => match body.target.trim().parse::<ContentId>() {
            Ok(id) => (id, None, None, Vec::new(), Vec::new()),
            Err(_) => {
                return Err(bad_request(format!(
                    "{ticket_error}; a bare content id (64 hex digits) works too"
                )));
            }
        },
    };
    let requested = body
        .output
        .as_deref()
        .map(|o| absolute(o, "output"))
        .transpose()?
        .ok_or_else(|| bad_request("say where to write the download (-o PATH)"))?;
    // A directory (or a path ending in '/') means: inside it, under the
    // content's own name, made safe (the sharer chose it: not `.bashrc`).
    let output = if body.output.as_deref().is_some_and(|o| o.ends_with('/')) || requested.is_dir() {
        requested.join(
            name.as_deref()
                .map_or_else(|| root.to_string(), safe_file_name),
        )
    } else {
        requested
    };
    if output.exists() && !body.force {
        return Err(NodeError::Exists(output));
    }
    let (job, new) = state.jobs.start_or_join(
        JobKind::Get,
        "finding providers",
        &output.display().to_string(),
    );
    if !new {
        return Ok(Json(JobStarted { job }));
    }
    let plan = GetPlan {
        root,
        kind,
        name,
        output,
        force: body.force,
        providers,
    };
    state
        .commands
        .send(Command::Get {
            job,
            plan,
            provider_addrs,
        })
        .await
        .map_err(|_| NodeError::ShuttingDown)?;
    Ok(Json(JobStarted { job }))
}

async fn job_status(
    State(state): State<ApiState>,
    ApiPath(job): ApiPath<u64>,
) -> Result<Json<JobStatus>, NodeError> {
    state.jobs.get(job).map(Json).ok_or_else(|| no_job(job))
}

async fn list_jobs(State(state): State<ApiState>) -> Json<Vec<JobStatus>> {
    Json(state.jobs.list())
}

async fn cancel_job(
    State(state): State<ApiState>,
    ApiPath(job): ApiPath<u64>,
    ApiJson(body): ApiJson<CancelRequest>,
) -> Result<Json<JobStatus>, NodeError> {
    ask(&state, |reply| Command::Cancel {
        job,
        keep: body.keep,
        reply,
    })
    .await??;
    state.jobs.get(job).map(Json).ok_or_else(|| no_job(job))
}

fn no_job(job: u64) -> NodeError {
    NodeError::NotFound(format!(
        "no job {job} (jobs are forgotten when the node restarts)"
    ))
}

async fn list_blobs(State(state): State<ApiState>) -> Result<Json<Vec<BlobEntry>>, NodeError> {
    let blobs = state.store.blobs()?;
    Ok(Json(blobs.iter().map(blob_entry).collect()))
}

async fn remove_blob(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Removed>, NodeError> {
    let id: ContentId = id.parse().map_err(bad_request)?;
    let removed = state.store.remove_blob(&id)?;
    Ok(Json(Removed { removed }))
}

/// A DHT lookup walks several peers, and a relayed dial takes a few round
/// trips more than a direct one.
const FIND_TIMEOUT: Duration = Duration::from_secs(45);

async fn find_peer(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<FindRequest>,
) -> Result<Json<FindReply>, NodeError> {
    let peer: ferry_core::PeerId = body.peer_id.trim().parse().map_err(|_| {
        bad_request(format!(
            "{:?} is not a peer id (it looks like 12D3KooW..., as `ferry id` prints it)",
            body.peer_id
        ))
    })?;
    Ok(Json(
        ask_within(&state, FIND_TIMEOUT, |reply| Command::Find(peer, reply)).await??,
    ))
}

async fn nat(State(state): State<ApiState>) -> Result<Json<NatInfo>, NodeError> {
    Ok(Json(ask(&state, Command::Nat).await?))
}
