//! The control API server: HTTP+JSON on 127.0.0.1, behind a bearer token.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_core::channel::{ChannelName, MAX_TEXT_BYTES};
use ferry_store::Store;
use tokio::sync::{mpsc, oneshot, watch};

use super::types::*;
use crate::config::parse_multiaddr;
use crate::engine::{Command, message_view};

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
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// An error with the status it maps to and a text for a person.
pub struct ApiFailure(StatusCode, String);

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        (self.0, Json(ApiError { error: self.1 })).into_response()
    }
}

fn bad_request(e: impl ToString) -> ApiFailure {
    ApiFailure(StatusCode::BAD_REQUEST, e.to_string())
}

fn internal(e: impl ToString) -> ApiFailure {
    ApiFailure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
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
        ApiFailure(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: the CLI reads it from control.json in the node's data directory".into(),
        )
        .into_response()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Sends a command to the engine and waits for its answer.
async fn ask<T>(
    state: &ApiState,
    make: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Result<T, ApiFailure> {
    let (tx, rx) = oneshot::channel();
    state
        .commands
        .send(make(tx))
        .await
        .map_err(|_| internal("the node is shutting down"))?;
    tokio::time::timeout(ENGINE_TIMEOUT, rx)
        .await
        .map_err(|_| {
            ApiFailure(
                StatusCode::GATEWAY_TIMEOUT,
                "the node did not answer in time".into(),
            )
        })?
        .map_err(|_| internal("the node is shutting down"))
}

async fn id(State(state): State<ApiState>) -> Result<Json<IdInfo>, ApiFailure> {
    Ok(Json(ask(&state, Command::Id).await?))
}

async fn peers(State(state): State<ApiState>) -> Result<Json<Vec<PeerInfo>>, ApiFailure> {
    Ok(Json(ask(&state, Command::Peers).await?))
}

async fn connect(
    State(state): State<ApiState>,
    Json(body): Json<ConnectRequest>,
) -> Result<Json<ConnectReply>, ApiFailure> {
    let addr = parse_multiaddr(&body.addr).map_err(bad_request)?;
    ask(&state, |reply| Command::Connect(addr, reply))
        .await?
        .map(Json)
        .map_err(|e| ApiFailure(StatusCode::BAD_GATEWAY, e))
}

async fn channels(State(state): State<ApiState>) -> Result<Json<Vec<ChannelInfo>>, ApiFailure> {
    let channels = state.store.channels().map_err(internal)?;
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

fn channel_name(text: &str) -> Result<ChannelName, ApiFailure> {
    text.parse().map_err(bad_request)
}

async fn post_message(
    State(state): State<ApiState>,
    Path(channel): Path<String>,
    Json(body): Json<PostRequest>,
) -> Result<Json<MessageView>, ApiFailure> {
    let channel = channel_name(&channel)?;
    ask(&state, |reply| Command::Post(channel, body.text, reply))
        .await?
        .map(Json)
        .map_err(bad_request)
}

async fn read(
    State(state): State<ApiState>,
    Path(channel): Path<String>,
    Query(query): Query<ReadQuery>,
) -> Result<Json<ReadReply>, ApiFailure> {
    let channel = channel_name(&channel)?;
    let limit = query.limit.unwrap_or(500).clamp(1, MAX_READ_LIMIT);
    // Reading a channel joins it, so its history is fetched from peers.
    let _ = state.commands.send(Command::Join(channel.clone())).await;
    let mut new_messages = state.new_messages.clone();
    let next = *new_messages.borrow_and_update();
    let Some(after) = query.after else {
        let messages = state.store.recent(&channel, limit).map_err(internal)?;
        return Ok(Json(ReadReply {
            messages: messages.iter().map(message_view).collect(),
            next,
        }));
    };
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(query.wait_ms.unwrap_or(0).min(MAX_WAIT_MS));
    loop {
        let next = *new_messages.borrow_and_update();
        let messages = state
            .store
            .after(&channel, after, limit)
            .map_err(internal)?;
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
            return Err(internal("the node is shutting down"));
        }
    }
}
