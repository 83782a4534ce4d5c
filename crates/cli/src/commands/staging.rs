//! A batch prediction's bucket locations on the local disk: the reader and writer of
//! `kiln local batch-predict` work on local files, so inputs in a bucket are downloaded into a
//! staging directory first, and an output in a bucket is written there and uploaded at the end.

use std::path::{Path, PathBuf};

use anyhow::Context;
use kiln_artifacts::bucket;

/// Where a batch prediction reads and writes on the local disk.
pub struct Staged {
    /// Input files and patterns, bucket ones replaced by their downloaded files.
    pub inputs: Vec<String>,
    /// Where results are written.
    pub output_dir: PathBuf,
    /// The bucket location the results go to once written, if the output is in a bucket.
    upload_to: Option<String>,
    /// The staging directory, removed when done.
    staging: Option<PathBuf>,
}

impl Staged {
    /// Downloads the bucket inputs among `inputs`; a bucket `output` is given a local directory.
    pub fn prepare(inputs: &[String], output: &Path) -> anyhow::Result<Staged> {
        let output = output.display().to_string();
        let needed =
            bucket::is_bucket(&output) || inputs.iter().any(|input| bucket::is_bucket(input));
        if !needed {
            return Ok(Staged {
                inputs: inputs.to_vec(),
                output_dir: PathBuf::from(output),
                upload_to: None,
                staging: None,
            });
        }
        let staging = std::env::temp_dir().join(format!("kiln-batch-{}", std::process::id()));
        let mut staged = Staged {
            inputs: Vec::new(),
            output_dir: PathBuf::from(&output),
            upload_to: None,
            staging: Some(staging.clone()),
        };
        let runtime = runtime()?;
        for (index, input) in inputs.iter().enumerate() {
            if !bucket::is_bucket(input) {
                staged.inputs.push(input.clone());
                continue;
            }
            let dir = staging.join("inputs").join(index.to_string());
            let files = runtime
                .block_on(bucket::fetch_matching(input, &dir))
                .with_context(|| format!("--input-paths {input}"))?;
            anyhow::ensure!(
                !files.is_empty(),
                "--input-paths {input}: no object matches"
            );
            staged
                .inputs
                .extend(files.iter().map(|file| file.display().to_string()));
        }
        if bucket::is_bucket(&output) {
            staged.output_dir = staging.join("outputs");
            staged.upload_to = Some(output);
        }
        Ok(staged)
    }

    /// Uploads the results to the bucket output, if any, and removes the staging directory.
    pub fn finish(self) -> anyhow::Result<()> {
        if let Some(uri) = &self.upload_to {
            runtime()?
                .block_on(bucket::upload(&self.output_dir, uri))
                .with_context(|| format!("--output-path {uri}"))?;
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(staging) = &self.staging {
            let _ = std::fs::remove_dir_all(staging);
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
