//! The registry's errors.

use kiln_store::StoreError;

/// Why a registry call failed. Each variant is one API status; the message names the field or
/// resource at fault.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The request is malformed (400 INVALID_ARGUMENT).
    #[error("{0}")]
    InvalidArgument(String),
    /// No valid credential came with the request (401 UNAUTHENTICATED).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not do this, or the resource may not exist (403 PERMISSION_DENIED).
    #[error("{0}")]
    PermissionDenied(String),
    /// The resource does not exist (404 NOT_FOUND).
    #[error("{0}")]
    NotFound(String),
    /// The resource exists already (409 ALREADY_EXISTS).
    #[error("{0}")]
    AlreadyExists(String),
    /// The resource is not in a state that allows this (400 FAILED_PRECONDITION).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The etag does not match (409 ABORTED).
    #[error("{0}")]
    Aborted(String),
    /// The model rejected the instances or failed to run (400 with the prediction error shape).
    #[error("Prediction failed: {0}")]
    Prediction(String),
    /// Too much at once: a version's request queue is full (429 RESOURCE_EXHAUSTED).
    #[error("{0}")]
    ResourceExhausted(String),
    /// A bug or a broken disk (500 INTERNAL).
    #[error("{0}")]
    Internal(String),
    /// A service this one depends on (the metadata database) cannot be reached now; nothing was
    /// changed, and the call may be retried (503 UNAVAILABLE).
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for RegistryError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::AlreadyExists(key) => {
                RegistryError::AlreadyExists(format!("{key} already exists"))
            }
            StoreError::NotFound(key) => RegistryError::NotFound(format!("{key} was not found")),
            StoreError::Conflict(key) => RegistryError::Aborted(format!(
                "{key} was changed by another request; read it again and retry"
            )),
            StoreError::Unavailable(_) | StoreError::Contended(_) => {
                RegistryError::Unavailable(error.to_string())
            }
            StoreError::Database(_)
            | StoreError::Corrupt { .. }
            | StoreError::NewerSchema { .. } => RegistryError::Internal(error.to_string()),
        }
    }
}

/// Runs a store change in one transaction whose `check` may refuse it with a registry error:
/// `run` hands the store a closure that answers `false` on refusal, and the caller gets the
/// error. `check` may run more than once (the store runs a transaction again when a concurrent
/// one wins a race).
pub(crate) fn refusable<S: ?Sized, R>(
    run: impl FnOnce(&mut (dyn FnMut(&mut S) -> bool + Send)) -> Result<R, StoreError>,
    mut check: impl FnMut(&mut S) -> Result<(), RegistryError> + Send,
) -> Result<R, RegistryError> {
    let mut refused = None;
    let result = run(&mut |subject: &mut S| match check(subject) {
        Ok(()) => {
            refused = None;
            true
        }
        Err(error) => {
            refused = Some(error);
            false
        }
    });
    match refused {
        Some(error) => Err(error),
        None => Ok(result?),
    }
}
