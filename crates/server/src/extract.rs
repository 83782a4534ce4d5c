//! Request extractors whose errors are ML Engine error bodies that name the field at fault.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_LENGTH, EXPECT};
use axum::http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use kiln_registry::ListParams;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body. An empty body reads as `{}` (as `:setDefault` and `:cancel` are sent). Routes
/// whose body is `{}` read it too (`JsonBody<Empty>`): a request body left unread may make hyper
/// close the connection after the answer, and a client that reuses it then fails its next
/// request.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(request, state).await?;
        parse_json(or_empty_object(&bytes)).map(JsonBody)
    }
}

/// The body as bytes, for handlers that parse it by verb. A body over the limit is refused as
/// Google APIs refuse it: 400 "Request payload size exceeds the limit: N bytes."
pub struct RawBody(pub Bytes);

/// Largest request body. Predict requests are the big ones; ML Engine allows 1.5 MB, Kiln more.
const MAX_BODY_BYTES: usize = 10 << 20;

/// How much of a body over the limit is read and dropped before the refusal is sent.
///
/// A server that answers while the client is still sending, then closes, leaves unread bytes in
/// its socket: the kernel resets the connection, and the client, still writing, gets the reset
/// instead of the 400 (seen in a test sending 11 MB). Reading the rest first closes cleanly. The
/// bound keeps a client from holding the connection with an endless body.
const DRAIN_BYTES: usize = 4 * MAX_BODY_BYTES;

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        if waits_to_send_too_much(request.headers()) {
            // Refused before hyper tells the client to go on, so it never sends the body.
            return Err(too_large());
        }
        let mut body = request.into_body();
        match Limited::new(&mut body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => Ok(RawBody(collected.to_bytes())),
            Err(error) if error.is::<LengthLimitError>() => {
                let mut drained = 0;
                while drained <= DRAIN_BYTES {
                    match body.frame().await {
                        Some(Ok(frame)) => {
                            drained += frame.data_ref().map_or(0, |data| data.len());
                        }
                        Some(Err(_)) | None => break,
                    }
                }
                Err(too_large())
            }
            Err(error) => Err(ApiError::invalid(format!("Invalid request body: {error}"))),
        }
    }
}

/// Whether the client waits for `100 Continue` (as curl does above 1 MB) before a body that its
/// `content-length` already puts over the limit.
fn waits_to_send_too_much(headers: &HeaderMap) -> bool {
    let expects = headers
        .get(EXPECT)
        .is_some_and(|expect| expect.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok()?.parse::<u64>().ok());
    expects && declared.is_some_and(|length| length > MAX_BODY_BYTES as u64)
}

/// Google APIs' refusal of a body over the limit.
fn too_large() -> ApiError {
    ApiError::invalid(format!(
        "Request payload size exceeds the limit: {MAX_BODY_BYTES} bytes."
    ))
}

/// A blank body read as `{}`, as clients send `:setDefault`, `:cancel` and `:getIamPolicy`.
pub fn or_empty_object(bytes: &[u8]) -> &[u8] {
    match bytes.iter().all(u8::is_ascii_whitespace) {
        true => b"{}",
        false => bytes,
    }
}

/// Parses a JSON body; the error names the field at fault, as Google APIs' messages do.
///
/// Tracking the path costs a fifth of a large `:predict` request's time, so it is only done to
/// word the error of a body that failed to parse.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match path.as_str() {
            "." | "" => ApiError::invalid(format!("Invalid JSON payload received. {inner}")),
            path => ApiError::invalid(format!(
                "Invalid JSON payload received. Field {path}: {inner}"
            )),
        }
    })
}

/// The query string; standard Google parameters (`alt`, `prettyPrint`, ...) are accepted and ignored.
pub struct QueryParams(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(map) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::invalid(format!("Invalid query string: {rejection}")))?;
        Ok(QueryParams(map))
    }
}

impl QueryParams {
    /// `filter`, `pageSize` and `pageToken`.
    pub fn list(&self) -> Result<ListParams, ApiError> {
        let page_size = match self.0.get("pageSize") {
            None => None,
            Some(text) => Some(text.parse::<i64>().map_err(|_| {
                ApiError::invalid(format!(
                    "Invalid value at 'pageSize' ({text:?}): must be an integer"
                ))
            })?),
        };
        Ok(ListParams {
            filter: self.0.get("filter").cloned(),
            page_size,
            page_token: self.0.get("pageToken").cloned(),
            order_by: self.0.get("orderBy").cloned(),
        })
    }

    /// A boolean parameter: `true` or `false`, absent meaning false.
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.0.get(name).map(String::as_str) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(text) => Err(ApiError::invalid(format!(
                "Invalid value at '{name}' ({text:?}): must be true or false"
            ))),
        }
    }

    /// `updateMask`, required by patch methods.
    pub fn update_mask(&self) -> Result<&str, ApiError> {
        self.0.get("updateMask").map(String::as_str).ok_or_else(|| {
            ApiError::invalid("updateMask is required and names the fields to change")
        })
    }
}
