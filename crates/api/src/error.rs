//! The platform error body and `google.rpc.Code`.
//!
//! ML Engine answers errors in two shapes. Every method can fail with the Google JSON error
//! ([`ErrorBody`]); `:predict` also fails with `{"error": "Prediction failed: ..."}`, a bare string
//! (see [`crate::predict::PredictionErrorBody`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `google.rpc.Code`, the canonical error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The operation was cancelled.
    Cancelled,
    /// Unknown error.
    Unknown,
    /// The request is malformed.
    InvalidArgument,
    /// The deadline passed.
    DeadlineExceeded,
    /// The resource does not exist.
    NotFound,
    /// The resource exists already.
    AlreadyExists,
    /// The caller may not do this.
    PermissionDenied,
    /// A quota or queue is full.
    ResourceExhausted,
    /// The system is not in the state the request needs.
    FailedPrecondition,
    /// A concurrency conflict (etag mismatch).
    Aborted,
    /// Not implemented.
    Unimplemented,
    /// A bug.
    Internal,
    /// Try again later.
    Unavailable,
    /// The caller is not authenticated.
    Unauthenticated,
}

impl Code {
    /// The `google.rpc.Code` number.
    pub fn number(self) -> i32 {
        match self {
            Code::Cancelled => 1,
            Code::Unknown => 2,
            Code::InvalidArgument => 3,
            Code::DeadlineExceeded => 4,
            Code::NotFound => 5,
            Code::AlreadyExists => 6,
            Code::PermissionDenied => 7,
            Code::ResourceExhausted => 8,
            Code::FailedPrecondition => 9,
            Code::Aborted => 10,
            Code::Unimplemented => 12,
            Code::Internal => 13,
            Code::Unavailable => 14,
            Code::Unauthenticated => 16,
        }
    }

    /// The HTTP status the API answers with.
    pub fn http_status(self) -> u16 {
        match self {
            Code::InvalidArgument | Code::FailedPrecondition => 400,
            Code::Unauthenticated => 401,
            Code::PermissionDenied => 403,
            Code::NotFound => 404,
            Code::AlreadyExists | Code::Aborted => 409,
            Code::ResourceExhausted => 429,
            Code::Cancelled => 499,
            Code::Unknown | Code::Internal => 500,
            Code::Unimplemented => 501,
            Code::Unavailable => 503,
            Code::DeadlineExceeded => 504,
        }
    }

    /// The status name (`INVALID_ARGUMENT`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }
}

/// `{"error": {"code", "message", "status", "details"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    /// HTTP status.
    pub code: u16,
    /// What went wrong, naming the field or resource.
    pub message: String,
    /// The `google.rpc.Code` name.
    pub status: String,
    /// Extra detail objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Value>,
}

impl ErrorBody {
    /// The body for `code` with `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.http_status(),
                message: message.into(),
                status: code.name().to_string(),
                details: Vec::new(),
            },
        }
    }
}
