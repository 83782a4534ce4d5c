//! Reading instances the way `gcloud ai-platform predict` does.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use serde_json::Value;

/// Instances to predict on, as gcloud takes them.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct InstanceArgs {
    /// File of JSON instances, one per line (`-` for stdin).
    #[arg(long)]
    pub json_instances: Option<std::path::PathBuf>,
    /// File of text instances, one per line (`-` for stdin).
    #[arg(long)]
    pub text_instances: Option<std::path::PathBuf>,
    /// File holding a whole request body, `{"instances": [...]}`.
    #[arg(long)]
    pub json_request: Option<std::path::PathBuf>,
}

impl InstanceArgs {
    /// The request body these flags describe.
    pub fn request(&self) -> anyhow::Result<Value> {
        request(
            self.json_instances.as_deref(),
            self.text_instances.as_deref(),
            self.json_request.as_deref(),
        )
    }
}

/// Most instances gcloud sends in one request.
pub const MAX_INSTANCES: usize = 100;

fn read(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// The request body from one of the three instance flags.
pub fn request(
    json_instances: Option<&Path>,
    text_instances: Option<&Path>,
    json_request: Option<&Path>,
) -> anyhow::Result<Value> {
    let instances: Vec<Value> = if let Some(path) = json_request {
        let body: Value = serde_json::from_str(&read(path)?)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        if !body["instances"].is_array() {
            bail!("{} must hold {{\"instances\": [...]}}", path.display());
        }
        return Ok(body);
    } else if let Some(path) = json_instances {
        lines(&read(path)?, path)?
            .into_iter()
            .map(|(number, line)| {
                serde_json::from_str(line)
                    .with_context(|| format!("{}:{number}: not a JSON instance", path.display()))
            })
            .collect::<anyhow::Result<_>>()?
    } else if let Some(path) = text_instances {
        lines(&read(path)?, path)?
            .into_iter()
            .map(|(_, line)| Value::String(line.to_string()))
            .collect()
    } else {
        bail!("one of --json-instances, --text-instances or --json-request is required");
    };
    if instances.len() > MAX_INSTANCES {
        return Err(anyhow!(
            "{} instances given; at most {MAX_INSTANCES} are sent at once",
            instances.len()
        ));
    }
    Ok(serde_json::json!({ "instances": instances }))
}

fn lines<'a>(text: &'a str, path: &Path) -> anyhow::Result<Vec<(usize, &'a str)>> {
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            bail!(
                "{}:{}: empty line; every line must hold an instance",
                path.display(),
                index + 1
            );
        }
        lines.push((index + 1, line));
    }
    if lines.is_empty() {
        bail!("{} holds no instances", path.display());
    }
    Ok(lines)
}
