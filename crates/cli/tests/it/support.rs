//! Test support: a real `kiln server` process on an ephemeral loopback port, an HTTP helper, the
//! CLI binary, and a census model trained once per test process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Path of the `kiln` binary under test.
pub fn kiln_binary() -> &'static str {
    env!("CARGO_BIN_EXE_kiln")
}

/// The `--database` of the servers started on `data_dir`. With `KILN_TEST_DATABASE` set (a
/// PostgreSQL URL: `scripts/dev-cluster.sh postgres up`), a schema of its own in that database,
/// the same for every server started on the same directory (a restart finds its data); else none,
/// and the server keeps its metadata in the directory's SQLite file.
pub fn database_for(data_dir: &Path) -> Option<String> {
    use std::hash::{Hash, Hasher};
    let Ok(url) = std::env::var("KILN_TEST_DATABASE") else {
        assert!(
            std::env::var("KILN_REQUIRE_DATABASE").as_deref() != Ok("postgres"),
            "KILN_REQUIRE_DATABASE=postgres, but KILN_TEST_DATABASE is not set"
        );
        return None;
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut hasher);
    let schema = format!("it_{:016x}", hasher.finish());
    Some(kiln_store::postgres::in_schema(&url, &schema).expect("a schema in KILN_TEST_DATABASE"))
}

/// Every byte of the metadata the servers on `data_dir` keep: the SQLite file, or the text of every
/// row of their PostgreSQL schema.
pub fn metadata_bytes(data_dir: &Path) -> Vec<u8> {
    let Some(database) = database_for(data_dir) else {
        return std::fs::read(data_dir.join("kiln.db")).expect("the SQLite file");
    };
    let mut client = postgres::Client::connect(&database, postgres::NoTls).expect("connect");
    let tables = client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema()",
            &[],
        )
        .expect("list tables");
    let mut bytes = Vec::new();
    for table in tables {
        let table: String = table.get(0);
        for row in client
            .query(&format!("SELECT CAST(t AS TEXT) FROM {table} t"), &[])
            .expect("read a table")
        {
            bytes.extend(row.get::<_, String>(0).into_bytes());
        }
    }
    bytes
}

/// A running `kiln server`.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT` (`https://` with `--tls-cert`).
    pub url: String,
}

impl Server {
    /// Starts a server on `data_dir` without authentication (`--insecure-no-auth`: the tests of
    /// other concerns act as the administrator), binding port 0, and waits for its "listening" line.
    pub fn start(data_dir: &Path) -> Server {
        Server::start_with_env(data_dir, &[])
    }

    /// Starts a server without authentication, with extra environment variables. Projects may use
    /// what `--insecure-no-auth` allows by default (the home and temporary directories) and the
    /// repository's test data (built-in algorithms' arguments are checked, and their trainers
    /// confined, to these).
    pub fn start_with_env(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        let roots = [
            std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
            std::env::temp_dir().display().to_string(),
            census().parent().unwrap().display().to_string(),
        ];
        let mut args = vec!["--insecure-no-auth"];
        for root in &roots {
            args.extend(["--allow-path", root.as_str()]);
        }
        Server::start_with_args(data_dir, &args, env).0
    }

    /// Starts a server without authentication that may read the census export and, when given,
    /// `work`, with extra flags (the serving tests' server).
    pub fn start_serving(data_dir: &Path, work: Option<&Path>, flags: &[&str]) -> Server {
        let model_root = census_model().parent().unwrap().display().to_string();
        let work = work.map(|work| work.display().to_string());
        let mut args = vec!["--insecure-no-auth", "--allow-path", &model_root];
        if let Some(work) = &work {
            args.extend(["--allow-path", work]);
        }
        args.extend_from_slice(flags);
        Server::start_with_args(data_dir, &args, &[]).0
    }

    /// Creates model `census` with version `v1` from the census export and waits until it serves.
    pub fn deploy_census(&self) {
        call(
            "POST",
            &self.api("p", "models"),
            Some(r#"{"name": "census"}"#),
        );
        let body = serde_json::json!({"name": "v1", "deploymentUri": file_uri(census_model())});
        let url = self.api("p", "models/census/versions");
        let (status, operation) = call("POST", &url, Some(&body.to_string()));
        assert_eq!(status, 200, "{operation}");
        assert!(wait_operation(self, "p", &operation).get("error").is_none());
    }

    /// Starts a server with extra flags; returns it with the lines it printed after the
    /// "listening" line and before its first request could be answered (the first-start token).
    pub fn start_with_args(
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (Server, Vec<String>) {
        Server::start_with_stderr(data_dir, args, env, Stdio::inherit())
    }

    /// [`Server::start_with_args`], its log (stderr) going to `stderr`.
    pub fn start_with_stderr(
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> (Server, Vec<String>) {
        let mut command = Command::new(kiln_binary());
        command
            .args(["server", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env_remove("KILN_DATABASE")
            // The access log of every test's requests would bury the rest; tests of it set their own.
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info,kiln::access=off".into()),
            );
        if let Some(database) = database_for(data_dir).filter(|_| !args.contains(&"--database")) {
            command.arg("--database").arg(database);
        }
        let mut child = command
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn kiln server");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .expect("read the listening line");
        let url = line
            .split_whitespace()
            .find(|word| word.starts_with("http://") || word.starts_with("https://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_string();
        // The startup lines end with the one naming the allowed locations.
        let mut startup = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).expect("read startup lines") == 0 {
                break;
            }
            let done = line.starts_with("Projects may use");
            startup.push(line.trim_end().to_string());
            if done {
                break;
            }
        }
        // Keep draining stdout so the server never writes into a closed pipe.
        std::thread::spawn(move || for _ in reader.lines() {});
        (Server { child, url }, startup)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A URL under `/v1/projects/{project}/`.
    pub fn api(&self, project: &str, path: &str) -> String {
        format!("{}/v1/projects/{project}/{path}", self.url)
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// Sends SIGTERM and waits for a graceful exit.
    pub fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a request; returns the status and the JSON body (`Value::Null` when empty).
pub fn call(method: &str, url: &str, body: Option<&str>) -> (u16, Value) {
    call_as(None, method, url, body)
}

/// Sends a request with `Authorization: Bearer {token}` when a token is given.
pub fn call_as(token: Option<&str>, method: &str, url: &str, body: Option<&str>) -> (u16, Value) {
    let client = reqwest::blocking::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().expect("send");
    let status = response.status().as_u16();
    let text = response.text().expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// A watch's server-sent events as they arrive, each as its event name and JSON data.
pub struct Events {
    lines: std::io::Lines<BufReader<reqwest::blocking::Response>>,
}

impl Iterator for Events {
    type Item = (String, Value);

    fn next(&mut self) -> Option<(String, Value)> {
        let (mut name, mut data) = (String::new(), String::new());
        for line in self.lines.by_ref() {
            let line = line.ok()?;
            if let Some(value) = line.strip_prefix("event:") {
                name = value.trim().to_string();
            } else if let Some(value) = line.strip_prefix("data:") {
                data.push_str(value.strip_prefix(' ').unwrap_or(value));
            } else if line.is_empty() && !data.is_empty() {
                return Some((
                    name,
                    serde_json::from_str(&data).expect("event data is JSON"),
                ));
            }
        }
        None
    }
}

/// Opens the watch at `url` with `token`: its events, or the refusal's status and body.
pub fn watch_as(token: Option<&str>, url: &str) -> Result<Events, (u16, Value)> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().expect("send");
    let status = response.status().as_u16();
    if status != 200 {
        return Err((status, response.json().unwrap_or(Value::Null)));
    }
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE].clone();
    assert_eq!(content_type, "text/event-stream");
    Ok(Events {
        lines: BufReader::new(response).lines(),
    })
}

/// Polls an operation until done and returns it.
pub fn wait_operation(server: &Server, project: &str, operation: &Value) -> Value {
    let name = operation["name"].as_str().expect("operation name");
    let id = name.rsplit('/').next().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, operation) = call(
            "GET",
            &server.api(project, &format!("operations/{id}")),
            None,
        );
        assert_eq!(status, 200, "{operation}");
        if operation["done"] == Value::Bool(true) {
            return operation;
        }
        assert!(Instant::now() < deadline, "operation {name} did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `kiln server` on `data_dir` with `args`, expected to stop at startup: its stderr.
pub fn refused_start(data_dir: &Path, args: &[&str]) -> String {
    let output = Command::new(kiln_binary())
        .args(["server", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .env_remove("KILN_DATABASE")
        .output()
        .expect("run kiln server");
    assert!(!output.status.success(), "the server started with {args:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs the CLI with `args`.
pub fn kiln(args: &[&str]) -> Output {
    Command::new(kiln_binary())
        .args(args)
        .output()
        .expect("run kiln")
}

/// `count` census instances with varied ages (from `offset`), so most have their own prediction.
pub fn census_variants(count: usize, offset: usize) -> Vec<Value> {
    let base = census_instances();
    (0..count)
        .map(|index| {
            let mut instance = base[index % base.len()].clone();
            instance["age"] = serde_json::json!(18 + (offset + index) % 60);
            instance
        })
        .collect()
}

/// The repository's census data.
pub fn census() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/census")
        .canonicalize()
        .expect("the repository's census data")
}

/// A census Wide & Deep export, trained once per test process (one epoch: enough to serve).
pub fn census_model() -> &'static Path {
    static MODEL: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &MODEL
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let algorithm = kiln_train::Algorithm::find("wide_deep").unwrap();
            let schema = kiln_train::Schema::from_file(&census().join("schema.yaml")).unwrap();
            let mut config = kiln_train::TrainConfig::new(
                algorithm.name,
                algorithm.columns_kind().unwrap(),
                schema,
                dir.path().to_path_buf(),
            );
            config.train_files = vec![census().join("adult.data.csv.gz")];
            config.eval_files = vec![census().join("adult.test.csv.gz")];
            config.num_epochs = 1;
            let outcome = kiln_train::train(&config, &mut |_| {}).expect("train census");
            (dir, outcome.export_dir)
        })
        .1
}

/// `file://` URI of a directory.
pub fn file_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// Two census instances as JSON objects (the repository's test.json).
pub fn census_instances() -> Vec<Value> {
    std::fs::read_to_string(census().join("test.json"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Creates model `model` and its version `v1` from `dir` (plus `extra` fields); returns the
/// finished operation.
pub fn create_version(server: &Server, model: &str, dir: &Path, extra: Value) -> Value {
    call(
        "POST",
        &server.api("p", "models"),
        Some(&json!({"name": model}).to_string()),
    );
    let mut body = json!({"name": "v1", "deploymentUri": file_uri(dir)});
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    let url = server.api("p", &format!("models/{model}/versions"));
    let (status, operation) = call("POST", &url, Some(&body.to_string()));
    assert_eq!(status, 200, "{operation}");
    wait_operation(server, "p", &operation)
}

/// `:predict` on model `model`'s default version.
pub fn predict_model(server: &Server, model: &str, instances: &[Value]) -> (u16, Value) {
    let body = json!({ "instances": instances }).to_string();
    call(
        "POST",
        &server.api("p", &format!("models/{model}:predict")),
        Some(&body),
    )
}

/// Runs `tests/SCRIPT FRAMEWORK OUT` (a script that trains models with their own framework and
/// saves them with what the framework predicted) once per test process and framework; returns OUT.
pub fn python_exports(script: &'static str, framework: &'static str) -> &'static Path {
    type Once = &'static OnceLock<tempfile::TempDir>;
    static EXPORTS: std::sync::Mutex<Vec<((&str, &str), Once)>> = std::sync::Mutex::new(Vec::new());
    let once: Once = {
        let mut exports = EXPORTS.lock().unwrap();
        match exports.iter().find(|(key, _)| *key == (script, framework)) {
            Some((_, once)) => once,
            None => {
                let once: Once = Box::leak(Box::new(OnceLock::new()));
                exports.push(((script, framework), once));
                once
            }
        }
    };
    once.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join(script);
        let output = Command::new("python3")
            .arg(&path)
            .arg(framework)
            .arg(dir.path())
            .output()
            .expect("python3");
        assert!(
            output.status.success(),
            "{script} {framework} failed (.ci/run's pip install has what it needs): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        dir
    })
    .path()
}

/// The instances and the framework's own outputs that `python_exports` saved beside a model.
pub fn saved_expectations(model: &Path) -> (Vec<Value>, Value) {
    let text = std::fs::read_to_string(model.join("expected.json")).unwrap();
    let mut saved: Value = serde_json::from_str(&text).unwrap();
    let instances = saved["instances"].as_array().cloned().unwrap();
    (instances, saved["expected"].take())
}

/// The server's `/v1/metrics` text.
pub fn metrics(server: &Server) -> String {
    let output = std::process::Command::new("curl")
        .args(["-sf", &format!("{}/v1/metrics", server.url)])
        .output()
        .unwrap();
    assert!(output.status.success(), "GET /v1/metrics");
    String::from_utf8(output.stdout).unwrap()
}
