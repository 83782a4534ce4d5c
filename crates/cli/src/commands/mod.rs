//! One module per command group.

pub mod admin;
pub mod auth;
pub mod datagen;
pub mod iam;
pub mod jobs;
pub mod local;
pub mod models;
pub mod operations;
pub mod predict;
pub mod quickstart;
pub mod replica;
pub mod server;
pub mod server_config;
pub mod staging;
pub mod studies;
pub mod versions;

/// An enum value as a flag gives it (`scikit-learn`, `onnx-runtime`, `basic-gpu`) in the API's
/// spelling (`SCIKIT_LEARN`, `ONNX_RUNTIME`, `BASIC_GPU`), as gcloud takes both.
pub fn enum_value(flag: &str) -> String {
    flag.to_ascii_uppercase().replace('-', "_")
}

/// Parses gcloud's `--labels k=v,k2=v2`.
pub fn labels(text: Option<&str>) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let mut labels = serde_json::Map::new();
    for pair in text
        .unwrap_or_default()
        .split(',')
        .filter(|pair| !pair.is_empty())
    {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            anyhow::anyhow!("--labels takes KEY=VALUE pairs separated by commas, got {pair:?}")
        })?;
        labels.insert(
            key.to_string(),
            serde_json::Value::String(value.to_string()),
        );
    }
    Ok(labels)
}
