//! Building and finishing long-running operations.

use std::sync::atomic::{AtomicU64, Ordering};

use kiln_api::operation::{METADATA_TYPE, Operation, OperationMetadata, OperationType};
use kiln_api::{Code, Status, Version};
use serde_json::Value;

/// Last id suffix handed out, so ids are unique even within one millisecond.
static LAST_ID: AtomicU64 = AtomicU64::new(0);

/// A new, unfinished operation and its id (`create_census_v1-1700000000000` as ML Engine names them).
pub fn start(
    project: &str,
    model: &str,
    version: Option<&Version>,
    kind: OperationType,
    target: &str,
) -> (String, Operation) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|duration| duration.as_millis() as u64)
        .unwrap_or_default();
    let suffix = LAST_ID
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(now_ms.max(last + 1))
        })
        .map(|last| now_ms.max(last + 1))
        .unwrap_or(now_ms);
    let verb = match kind {
        OperationType::CreateVersion => "create",
        OperationType::DeleteVersion | OperationType::DeleteModel => "delete",
        OperationType::UpdateModel | OperationType::UpdateVersion | OperationType::UpdateConfig => {
            "update"
        }
        OperationType::OperationTypeUnspecified => "operation",
    };
    let id = format!("{verb}_{target}-{suffix}");
    let now = kiln_api::now();
    let operation = Operation {
        name: format!("projects/{project}/operations/{id}"),
        metadata: OperationMetadata {
            type_url: METADATA_TYPE.to_string(),
            create_time: now.clone(),
            start_time: now,
            model_name: format!("projects/{project}/models/{model}"),
            operation_type: kind,
            version: version.cloned(),
            ..OperationMetadata::default()
        },
        ..Operation::default()
    };
    (id, operation)
}

/// Marks `operation` done with `response` (a resource with its `@type`).
pub fn succeed(operation: &mut Operation, type_url: &str, resource: Value) {
    let mut response = match resource {
        Value::Object(fields) => fields,
        _ => serde_json::Map::new(),
    };
    response.insert("@type".into(), Value::String(type_url.to_string()));
    operation.done = true;
    operation.metadata.end_time = kiln_api::now();
    operation.response = Some(Value::Object(response));
}

/// Marks `operation` done with an error.
pub fn fail(operation: &mut Operation, code: Code, message: impl Into<String>) {
    operation.done = true;
    operation.metadata.end_time = kiln_api::now();
    operation.error = Some(Status {
        code: code.number(),
        message: message.into(),
        details: Vec::new(),
    });
}
