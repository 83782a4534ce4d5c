//! The web console in a real browser: `tests/console/e2e.mjs` drives headless Chromium (Debian's
//! `chromium`, through `playwright-core` from npm) against a real server with authentication on.
//! It signs in, watches a job reach SUCCEEDED on a list that asks nothing while it waits, reads its
//! curves and logs, follows and cancels a running job, filters, deploys the export as versions,
//! sets the default, predicts in the playground from the version's example, deletes with
//! confirmation, submits a tuning job from the form (its YAML's mistakes named in place) and
//! reads its trials, follows a study's trials, and checks what a viewer and a model user are
//! shown. Screenshots go to `target/console-screenshots`.
//!
//! `.ci/run` installs Chromium and `npm ci`s the script's directory; without them this test fails
//! saying what to install.

use std::path::Path;
use std::process::Command;

use crate::auth::token_in;
use crate::support::{Server, census};

#[test]
fn console_end_to_end_in_chromium() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists() && tests.join("node_modules/playwright-core").exists(),
        "the console test needs Chromium ({chromium}: `apt-get install chromium`) and playwright-core \
         (`npm ci --prefix {}`); `.ci/run` installs both",
        tests.display()
    );
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let work_dir = work.path().display().to_string();
    let census_dir = census().display().to_string();
    let (server, startup) = Server::start_with_args(
        data.path(),
        &["--allow-path", &work_dir, "--allow-path", &census_dir],
        &[],
    );
    let admin = token_in(&startup).unwrap_or_else(|| panic!("no token in {startup:?}"));
    let screenshots =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
    let _ = std::fs::remove_dir_all(&screenshots);
    let output = Command::new("node")
        .arg(tests.join("e2e.mjs"))
        .env("KILN_URL", &server.url)
        .env("KILN_TOKEN", &admin)
        .env("KILN_WORK", &work_dir)
        .env("CENSUS_DIR", census())
        .env("SCREENSHOTS", &screenshots)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    assert!(output.status.success(), "console test failed:\n{report}");
    for page in [
        "jobs", "job", "model", "submit", "tuning", "study", "pareto", "models",
    ] {
        assert!(
            screenshots.join(format!("{page}.png")).exists(),
            "screenshot of {page}"
        );
    }
}
