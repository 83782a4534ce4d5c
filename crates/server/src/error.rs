//! API errors and their HTTP form.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kiln_api::{Code, ErrorBody, PredictionErrorBody};
use kiln_registry::RegistryError;

/// An error on its way to the client.
#[derive(Debug)]
pub enum ApiError {
    /// From the registry.
    Registry(RegistryError),
    /// From the HTTP layer itself (bad JSON, unknown route, ...).
    Http(Code, String),
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        ApiError::Registry(error)
    }
}

impl ApiError {
    /// A 400 INVALID_ARGUMENT naming the problem.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::Http(Code::InvalidArgument, message.into())
    }

    /// ML Engine's error body for it (a prediction error as INVALID_ARGUMENT), for a client
    /// that receives it other than as an HTTP answer.
    pub fn body(&self) -> ErrorBody {
        match self {
            ApiError::Registry(error) => ErrorBody::new(
                classify(error).unwrap_or(Code::InvalidArgument),
                error.to_string(),
            ),
            ApiError::Http(code, message) => ErrorBody::new(*code, message.clone()),
        }
    }
}

/// The message of an error response, kept in its extensions for the audit log.
#[derive(Debug, Clone)]
pub struct ErrorMessage(pub String);

/// The status and message of a registry error; `None` for prediction errors, which have their
/// own body shape.
fn classify(error: &RegistryError) -> Option<Code> {
    match error {
        RegistryError::InvalidArgument(_) => Some(Code::InvalidArgument),
        RegistryError::Unauthenticated(_) => Some(Code::Unauthenticated),
        RegistryError::PermissionDenied(_) => Some(Code::PermissionDenied),
        RegistryError::NotFound(_) => Some(Code::NotFound),
        RegistryError::AlreadyExists(_) => Some(Code::AlreadyExists),
        RegistryError::FailedPrecondition(_) => Some(Code::FailedPrecondition),
        RegistryError::Aborted(_) => Some(Code::Aborted),
        RegistryError::ResourceExhausted(_) => Some(Code::ResourceExhausted),
        RegistryError::Internal(_) => Some(Code::Internal),
        RegistryError::Unavailable(_) => Some(Code::Unavailable),
        RegistryError::Prediction(_) => None,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, message) = match self {
            ApiError::Registry(error) => match classify(&error) {
                Some(code) => (code, error.to_string()),
                None => {
                    let body = PredictionErrorBody {
                        error: error.to_string(),
                    };
                    let mut response = (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
                    response
                        .extensions_mut()
                        .insert(ErrorMessage(error.to_string()));
                    return response;
                }
            },
            ApiError::Http(code, message) => (code, message),
        };
        if code == Code::Internal {
            tracing::error!(%message, "internal error");
        }
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response =
            (status, axum::Json(ErrorBody::new(code, message.clone()))).into_response();
        response.extensions_mut().insert(ErrorMessage(message));
        if code == Code::ResourceExhausted || code == Code::Unavailable {
            // A full queue drains in well under a second, and a database that restarts is back in
            // seconds; clients that honour it come back then.
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}
