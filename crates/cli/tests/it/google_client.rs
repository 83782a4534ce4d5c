//! Google's own client for ML Engine (`google-api-python-client`, from PyPI) against a live Kiln
//! with authentication on: every method of the `ml` v1 discovery document it ships, the flows
//! gcloud builds from them, and the refusals, as `google_client.py` calls and checks them.

use std::process::Command;

use crate::auth::token_in;
use crate::support::{Server, census_instances, census_model, file_uri};

#[test]
fn googles_client_calls_every_method_of_the_discovery_document() {
    let data = tempfile::tempdir().unwrap();
    let model_root = census_model().parent().unwrap().display().to_string();
    let (server, startup) =
        Server::start_with_args(data.path(), &["--allow-path", &model_root], &[]);
    let token = token_in(&startup).unwrap_or_else(|| panic!("no token in {startup:?}"));
    let instances = serde_json::to_string(&census_instances()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/google_client.py");
    let output = Command::new("python3")
        .arg(script)
        .env("KILN_URL", &server.url)
        .env("KILN_TOKEN", &token)
        .env("KILN_MODEL_URI", file_uri(census_model()))
        .env("KILN_INSTANCES", &instances)
        .output()
        .expect("python3");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("answered as the document says"), "{stdout}");
}
