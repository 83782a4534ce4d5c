//! From a user's URI to an object store and a prefix in it.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use url::Url;

use crate::ArtifactError;

/// An object store and a prefix within it.
#[derive(Debug, Clone)]
pub struct Location {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The prefix of the objects.
    pub prefix: ObjectPath,
}

/// Parses an absolute local path, a `file://` URL, or a `gs://` or `s3://` URL whose settings and
/// credentials come from the server's environment (`AWS_*`, `GOOGLE_*`, as `object_store` names
/// them).
pub fn parse(uri: &str) -> Result<Location, ArtifactError> {
    let uri = uri.trim();
    if uri.is_empty() {
        return Err(ArtifactError::InvalidUri("the URI is empty".into()));
    }
    if uri.starts_with('/') {
        return local(std::path::Path::new(uri), uri);
    }
    let url = Url::parse(uri).map_err(|_| {
        ArtifactError::InvalidUri(format!(
            "{uri:?} is neither an absolute path nor a URL (file://, gs://, s3://)"
        ))
    })?;
    match url.scheme() {
        "file" => {
            let path = url.to_file_path().map_err(|_| {
                ArtifactError::InvalidUri(format!("{uri:?} is not a local file URL"))
            })?;
            local(&path, uri)
        }
        "gs" | "s3" => cloud(&url, uri),
        scheme => Err(ArtifactError::InvalidUri(format!(
            "{uri:?}: scheme {scheme:?} is not supported; use a local path, file://, gs:// or s3://"
        ))),
    }
}

fn local(path: &std::path::Path, uri: &str) -> Result<Location, ArtifactError> {
    if path
        .components()
        .any(|part| matches!(part, std::path::Component::ParentDir))
    {
        return Err(ArtifactError::InvalidUri(format!(
            "{uri:?} must not contain '..'"
        )));
    }
    let prefix = ObjectPath::from_absolute_path(path)
        .map_err(|error| ArtifactError::InvalidUri(format!("{uri:?}: {error}")))?;
    Ok(Location {
        store: Arc::new(LocalFileSystem::new()),
        prefix,
    })
}

fn cloud(url: &Url, uri: &str) -> Result<Location, ArtifactError> {
    let options = std::env::vars()
        .filter(|(key, _)| key.starts_with("AWS_") || key.starts_with("GOOGLE_"))
        .map(|(key, value)| (key.to_ascii_lowercase(), value));
    let (store, prefix) = object_store::parse_url_opts(url, options)
        .map_err(|error| ArtifactError::InvalidUri(format!("{uri:?}: {error}")))?;
    Ok(Location {
        store: Arc::from(store),
        prefix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_and_refused_uris() {
        assert_eq!(parse("/tmp/model").unwrap().prefix.as_ref(), "tmp/model");
        assert_eq!(
            parse("file:///tmp/model").unwrap().prefix.as_ref(),
            "tmp/model"
        );
        for (uri, expected) in [
            ("relative/dir", "neither an absolute path nor a URL"),
            ("/tmp/../etc", "must not contain '..'"),
            ("ftp://host/x", "scheme \"ftp\" is not supported"),
            ("", "empty"),
        ] {
            let error = parse(uri).unwrap_err().to_string();
            assert!(error.contains(expected), "{uri}: {error}");
        }
        assert_eq!(parse("s3://bucket/model").unwrap().prefix.as_ref(), "model");
    }
}
