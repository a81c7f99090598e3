//! Request extractors whose rejections are [`NodeError`]s, so a body that does
//! not parse, a path parameter of the wrong type or a bad query string is
//! answered with the same typed error body as every other failure.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::NodeError;

/// A JSON body (`axum::Json`), refused as [`NodeError`].
pub(super) struct ApiJson<T>(pub T);

/// A path parameter (`axum::extract::Path`), refused as [`NodeError`].
pub(super) struct ApiPath<T>(pub T);

/// A query string (`axum::extract::Query`), refused as [`NodeError`].
pub(super) struct ApiQuery<T>(pub T);

/// A rejection's status and text as a typed error: too large stays too large,
/// everything else is a malformed request.
fn refused(status: StatusCode, text: String) -> NodeError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        NodeError::TooLarge(text)
    } else {
        NodeError::Invalid(text)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = NodeError;

    async fn from_request(request: Request, state: &S) -> Result<Self, NodeError> {
        Json::<T>::from_request(request, state)
            .await
            .map(|Json(value)| ApiJson(value))
            .map_err(|e: JsonRejection| refused(e.status(), e.body_text()))
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = NodeError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, NodeError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|e: PathRejection| refused(e.status(), e.body_text()))
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = NodeError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, NodeError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|e: QueryRejection| refused(e.status(), e.body_text()))
    }
}
