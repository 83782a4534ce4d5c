//! Projects, tokens and roles over HTTP against a server with authentication on: the role ×
//! endpoint matrix, creators' ownership, cross-project access, path escapes in every path-bearing
//! field, revoked and expired tokens, policy etags, the audit log, the bind rules and the CLI.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::jobs::{ended, python_job, trainer_package, wait_job_as};
use crate::support::{
    Server, call_as, census_instances, census_model, file_uri, kiln, kiln_binary, metadata_bytes,
};

/// A server with authentication on, its administrator token, and a work directory it allows.
pub(crate) struct Secured {
    pub(crate) server: Server,
    pub(crate) admin: String,
    work: tempfile::TempDir,
    _data: tempfile::TempDir,
}

impl Secured {
    pub(crate) fn start() -> Secured {
        let data = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let allowed = format!("{}/{{project}}", work.path().display());
        let model_root = census_model().parent().unwrap().display().to_string();
        let (server, startup) = Server::start_with_args(
            data.path(),
            &["--allow-path", &allowed, "--allow-path", &model_root],
            &[],
        );
        let admin = token_in(&startup).unwrap_or_else(|| panic!("no token in {startup:?}"));
        Secured {
            server,
            admin,
            work,
            _data: data,
        }
    }

    /// A project's directory under the allowed root.
    pub(crate) fn dir(&self, project: &str) -> PathBuf {
        let dir = self.work.path().join(project);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    pub(crate) fn call(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}/v1/{path}", self.server.url);
        call_as(
            Some(token),
            method,
            &url,
            body.map(|body| body.to_string()).as_deref(),
        )
    }

    pub(crate) fn ok(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.call(token, method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer
    }

    /// A new token for `account`.
    pub(crate) fn token(&self, account: &str) -> String {
        let token = self.ok(
            &self.admin,
            "POST",
            "tokens",
            Some(json!({ "serviceAccount": account })),
        );
        token["secret"].as_str().unwrap().to_string()
    }

    pub(crate) fn bind(&self, resource: &str, role: &str, member: &str) {
        let mut policy = self.ok(
            &self.admin,
            "GET",
            &format!("{resource}:getIamPolicy"),
            None,
        );
        let mut bindings = policy["bindings"].as_array().cloned().unwrap_or_default();
        bindings.push(json!({ "role": role, "members": [member] }));
        policy["bindings"] = Value::Array(bindings);
        self.ok(
            &self.admin,
            "POST",
            &format!("{resource}:setIamPolicy"),
            Some(json!({ "policy": policy })),
        );
    }

    /// Deploys the census model as `project/model/v1` and waits until it serves.
    fn deploy(&self, token: &str, project: &str, model: &str) {
        self.ok(
            token,
            "POST",
            &format!("projects/{project}/models"),
            Some(json!({ "name": model })),
        );
        let operation = self.ok(
            token,
            "POST",
            &format!("projects/{project}/models/{model}/versions"),
            Some(json!({ "name": "v1", "deploymentUri": file_uri(census_model()) })),
        );
        let id = operation["name"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        for _ in 0..600 {
            let operation = self.ok(
                token,
                "GET",
                &format!("projects/{project}/operations/{id}"),
                None,
            );
            if operation["done"] == true {
                assert!(operation["error"].is_null(), "{operation}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("version create did not finish");
    }
}

pub(crate) fn token_in(lines: &[String]) -> Option<String> {
    lines
        .iter()
        .find(|line| line.starts_with("Administrator token"))
        .and_then(|line| line.split_whitespace().last())
        .map(str::to_string)
}

fn predict_body() -> Value {
    json!({ "instances": census_instances() })
}

/// The census instances as an Open Inference Protocol request: a tensor per feature.
fn infer_body() -> Value {
    let instances = census_instances();
    let inputs: Vec<Value> = instances[0]
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, first)| {
            let data: Vec<Value> = instances.iter().map(|row| row[key].clone()).collect();
            let datatype = if first.is_string() { "BYTES" } else { "FP32" };
            json!({"name": key, "shape": [data.len()], "datatype": datatype, "data": data})
        })
        .collect();
    json!({ "inputs": inputs })
}

#[test]
fn the_first_start_prints_one_admin_token_and_every_request_needs_a_valid_one() {
    let data = tempfile::tempdir().unwrap();
    let (server, startup) = Server::start_with_args(data.path(), &[], &[]);
    let admin = token_in(&startup).expect("first start prints a token");
    let url = format!("{}/v1/projects/p/models", server.url);
    let (status, body) = call_as(None, "GET", &url, None);
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    for bad in [
        "nonsense",
        "kiln_0123456789ab_wrong",
        &format!("{}x", admin),
        &admin[..admin.len() - 1],
    ] {
        let (status, body) = call_as(Some(bad), "GET", &url, None);
        assert_eq!(status, 401, "{bad}: {body}");
    }
    let (status, _) = call_as(Some(&admin), "GET", &url, None);
    assert_eq!(status, 200);
    let (status, whoami) = call_as(
        Some(&admin),
        "GET",
        &format!("{}/v1/whoami", server.url),
        None,
    );
    assert_eq!(
        (status, whoami["member"].as_str()),
        (200, Some("serviceAccount:admin"))
    );
    assert_eq!(whoami["admin"], true);
    let (status, _) = call_as(None, "GET", &format!("{}/healthz", server.url), None);
    assert_eq!(status, 200, "health checks need no token");
    drop(server);

    let (server, startup) = Server::start_with_args(data.path(), &[], &[]);
    assert_eq!(
        token_in(&startup),
        None,
        "the token is shown once, on the first start only"
    );
    let database = metadata_bytes(data.path());
    // `kiln_<id>_<secret>`: the secret is URL-safe base64 and may itself hold `_`.
    let secret = admin.splitn(3, '_').nth(2).unwrap();
    assert!(
        !database
            .windows(secret.len())
            .any(|window| window == secret.as_bytes()),
        "the database must hold a hash, not the secret"
    );
    let (status, _) = call_as(
        Some(&admin),
        "GET",
        &format!("{}/v1/projects/p/models", server.url),
        None,
    );
    assert_eq!(status, 200, "tokens survive a restart");
}

/// Who may do what: every role against every kind of endpoint, read and write.
#[test]
fn roles_allow_and_deny_endpoint_by_endpoint() {
    let secured = Secured::start();
    let package = trainer_package(&secured.dir("p"));
    secured.deploy(&secured.admin, "p", "m");
    let job = python_job(
        "admin_job",
        &package,
        &secured.dir("p").join("out"),
        &[],
        json!({}),
    );
    secured.ok(
        &secured.admin,
        "POST",
        "projects/p/jobs",
        Some(serde_json::from_str(&job).unwrap()),
    );

    secured.ok(
        &secured.admin,
        "POST",
        "projects/p/locations/us-central1/studies?studyId=s",
        Some(json!({"studyConfig": {
            "metrics": [{"metric": "m", "goal": "MAXIMIZE"}],
            "parameters": [{"parameter": "x", "type": "DOUBLE", "doubleValueSpec": {"minValue": 0, "maxValue": 1}}],
        }})),
    );
    let admin = secured.admin.clone();
    let developer = secured.token("dev");
    let viewer = secured.token("viewer");
    let user = secured.token("user");
    let stranger = secured.token("stranger");
    secured.bind("projects/p", "roles/ml.developer", "serviceAccount:dev");
    secured.bind("projects/p", "roles/ml.viewer", "serviceAccount:viewer");
    secured.bind(
        "projects/p/models/m",
        "roles/ml.modelUser",
        "serviceAccount:user",
    );

    let roles = [
        ("admin", &admin),
        ("developer", &developer),
        ("viewer", &viewer),
        ("model user", &user),
        ("stranger", &stranger),
    ];
    // Expected per role, in the order above: A allowed (2xx), D denied (403).
    let matrix: Vec<(&str, &str, String, Option<Value>, &str)> = vec![
        (
            "GET",
            "list models",
            "projects/p/models".into(),
            None,
            "AAADD",
        ),
        (
            "GET",
            "get model",
            "projects/p/models/m".into(),
            None,
            "AAAAD",
        ),
        (
            "GET",
            "list versions",
            "projects/p/models/m/versions".into(),
            None,
            "AAAAD",
        ),
        (
            "GET",
            "get version",
            "projects/p/models/m/versions/v1".into(),
            None,
            "AAAAD",
        ),
        (
            "POST",
            "predict model",
            "projects/p/models/m:predict".into(),
            Some(predict_body()),
            "AADAD",
        ),
        (
            "POST",
            "predict version",
            "projects/p/models/m/versions/v1:predict".into(),
            Some(predict_body()),
            "AADAD",
        ),
        (
            "GET",
            "inference metadata",
            "projects/p/v2/models/m".into(),
            None,
            "AAAAD",
        ),
        (
            "GET",
            "inference version ready",
            "projects/p/v2/models/m/versions/v1/ready".into(),
            None,
            "AAAAD",
        ),
        (
            "POST",
            "inference",
            "projects/p/v2/models/m/versions/v1/infer".into(),
            Some(infer_body()),
            "AADAD",
        ),
        (
            "GET",
            "list operations",
            "projects/p/operations".into(),
            None,
            "AAADD",
        ),
        ("GET", "list jobs", "projects/p/jobs".into(), None, "AAADD"),
        (
            "GET",
            "get job",
            "projects/p/jobs/admin_job".into(),
            None,
            "AAADD",
        ),
        (
            "GET",
            "job logs",
            "projects/p/jobs/admin_job/logs".into(),
            None,
            "AAADD",
        ),
        (
            "PATCH",
            "patch model",
            "projects/p/models/m?updateMask=description".into(),
            Some(json!({"description": "x"})),
            "ADDDD",
        ),
        (
            "POST",
            "set default",
            "projects/p/models/m/versions/v1:setDefault".into(),
            Some(json!({})),
            "ADDDD",
        ),
        (
            "POST",
            "create version",
            "projects/p/models/m/versions".into(),
            Some(json!({"name": "v2", "deploymentUri": file_uri(census_model())})),
            "ADDDD",
        ),
        (
            "PATCH",
            "patch job",
            "projects/p/jobs/admin_job?updateMask=labels".into(),
            Some(json!({"labels": {"k": "v"}})),
            "ADDDD",
        ),
        (
            "GET",
            "model policy",
            "projects/p/models/m:getIamPolicy".into(),
            None,
            "ADDDD",
        ),
        (
            "GET",
            "job policy",
            "projects/p/jobs/admin_job:getIamPolicy".into(),
            None,
            "ADDDD",
        ),
        (
            "GET",
            "project policy",
            "projects/p:getIamPolicy".into(),
            None,
            "ADDDD",
        ),
        (
            "GET",
            "project audit log",
            "projects/p/auditLogs".into(),
            None,
            "ADDDD",
        ),
        (
            "GET",
            "list studies",
            "projects/p/locations/us-central1/studies".into(),
            None,
            "AAADD",
        ),
        (
            "GET",
            "get study",
            "projects/p/locations/us-central1/studies/s".into(),
            None,
            "AAADD",
        ),
        (
            "POST",
            "suggest trials",
            "projects/p/locations/us-central1/studies/s/trials:suggest".into(),
            Some(json!({})),
            "AADDD",
        ),
        (
            "GET",
            "list trials",
            "projects/p/locations/us-central1/studies/s/trials".into(),
            None,
            "AAADD",
        ),
        ("GET", "tokens", "tokens".into(), None, "ADDDD"),
        ("GET", "server audit log", "auditLogs".into(), None, "ADDDD"),
        (
            "POST",
            "test permissions",
            "projects/p/models/m:testIamPermissions".into(),
            Some(json!({"permissions": ["ml.models.get"]})),
            "AAAAA",
        ),
        ("GET", "whoami", "whoami".into(), None, "AAAAA"),
    ];
    let mut failures = Vec::new();
    for (method, what, path, body, expected) in &matrix {
        for ((role, token), expect) in roles.iter().zip(expected.chars()) {
            let (status, answer) = secured.call(token, method, path, body.clone());
            let fine = match expect {
                'A' => (200..300).contains(&status),
                _ => status == 403 && answer["error"]["status"] == "PERMISSION_DENIED",
            };
            if !fine {
                failures.push(format!(
                    "{what} as {role}: expected {expect}, got {status} {answer}"
                ));
            }
        }
    }
    // Creating: each role makes its own model and job; the ones allowed to succeed.
    for ((role, token), expect) in roles.iter().zip("AADDD".chars()) {
        let name = format!("made_by_{}", role.replace(' ', "_"));
        let (status, _) = secured.call(
            token,
            "POST",
            "projects/p/models",
            Some(json!({ "name": name })),
        );
        let job = python_job(
            &name,
            &package,
            &secured.dir("p").join(&name),
            &[],
            json!({}),
        );
        let (job_status, _) = secured.call(
            token,
            "POST",
            "projects/p/jobs",
            Some(serde_json::from_str(&job).unwrap()),
        );
        for (what, status) in [("create model", status), ("create job", job_status)] {
            if (expect == 'A') != (200..300).contains(&status) || (expect == 'D' && status != 403) {
                failures.push(format!("{what} as {role}: expected {expect}, got {status}"));
            }
        }
    }
    let (status, _) = secured.call(&admin, "DELETE", "projects/p/models/m/versions/v2", None);
    assert_eq!(status, 200);
    for (role, token) in &roles[1..] {
        let (status, _) = secured.call(token, "DELETE", "projects/p/models/m", None);
        if status != 403 {
            failures.push(format!("delete model as {role}: expected D, got {status}"));
        }
        let (status, _) = secured.call(
            token,
            "POST",
            "projects/p/jobs/admin_job:cancel",
            Some(json!({})),
        );
        if status != 403 {
            failures.push(format!("cancel job as {role}: expected D, got {status}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let tested = secured.ok(
        &user,
        "POST",
        "projects/p/models/m:testIamPermissions",
        Some(json!({"permissions": ["ml.models.predict", "ml.models.delete", "ml.versions.get"]})),
    );
    assert_eq!(
        tested["permissions"],
        json!(["ml.models.predict", "ml.versions.get"])
    );
    wait_job_as(
        Some(&secured.admin),
        &secured.server,
        "p",
        "admin_job",
        ended,
    );
}

/// Creators own what they make: a developer manages its own model and job, not others'.
#[test]
fn creators_own_their_models_jobs_and_operations() {
    let secured = Secured::start();
    let developer = secured.token("dev");
    let other = secured.token("other");
    secured.bind("projects/p", "roles/ml.developer", "serviceAccount:dev");
    secured.bind("projects/p", "roles/ml.developer", "serviceAccount:other");
    secured.deploy(&developer, "p", "mine");
    let policy = secured.ok(
        &developer,
        "GET",
        "projects/p/models/mine:getIamPolicy",
        None,
    );
    assert_eq!(
        policy["bindings"],
        json!([{ "role": "roles/ml.modelOwner", "members": ["serviceAccount:dev"] }])
    );
    secured.ok(
        &developer,
        "PATCH",
        "projects/p/models/mine?updateMask=description",
        Some(json!({"description": "d"})),
    );
    let (status, _) = secured.call(
        &other,
        "PATCH",
        "projects/p/models/mine?updateMask=description",
        Some(json!({"description": "e"})),
    );
    assert_eq!(status, 403, "another developer may read but not change it");
    secured.ok(
        &other,
        "POST",
        "projects/p/models/mine:predict",
        Some(predict_body()),
    );

    // The owner shares the model: a model user may predict.
    let user = secured.token("user");
    let (status, _) = secured.call(
        &user,
        "POST",
        "projects/p/models/mine:predict",
        Some(predict_body()),
    );
    assert_eq!(status, 403);
    let mut policy = secured.ok(
        &developer,
        "GET",
        "projects/p/models/mine:getIamPolicy",
        None,
    );
    policy["bindings"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "roles/ml.modelUser", "members": ["serviceAccount:user"]}));
    secured.ok(
        &developer,
        "POST",
        "projects/p/models/mine:setIamPolicy",
        Some(json!({ "policy": policy })),
    );
    secured.ok(
        &user,
        "POST",
        "projects/p/models/mine:predict",
        Some(predict_body()),
    );

    let package = trainer_package(&secured.dir("p"));
    let job = python_job(
        "long",
        &package,
        &secured.dir("p").join("long"),
        &["--sleep", "60"],
        json!({}),
    );
    secured.ok(
        &developer,
        "POST",
        "projects/p/jobs",
        Some(serde_json::from_str(&job).unwrap()),
    );
    let (status, _) = secured.call(
        &other,
        "POST",
        "projects/p/jobs/long:cancel",
        Some(json!({})),
    );
    assert_eq!(status, 403);
    secured.ok(
        &developer,
        "POST",
        "projects/p/jobs/long:cancel",
        Some(json!({})),
    );
    let job = wait_job_as(Some(&secured.admin), &secured.server, "p", "long", ended);
    assert_eq!(job["state"], "CANCELLED");
}

/// Nothing of one project is visible or reachable from another.
#[test]
fn projects_are_isolated() {
    let secured = Secured::start();
    secured.deploy(&secured.admin, "q", "theirs");
    let package = trainer_package(&secured.dir("q"));
    let job = python_job(
        "their_job",
        &package,
        &secured.dir("q").join("out"),
        &[],
        json!({}),
    );
    secured.ok(
        &secured.admin,
        "POST",
        "projects/q/jobs",
        Some(serde_json::from_str(&job).unwrap()),
    );
    let operations = secured.ok(&secured.admin, "GET", "projects/q/operations", None);
    let operation = operations["operations"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();

    let developer = secured.token("dev");
    secured.bind("projects/p", "roles/ml.admin", "serviceAccount:dev");
    for (method, path, body) in [
        ("GET", "projects/q/models".to_string(), None),
        ("GET", "projects/q/models/theirs".into(), None),
        ("GET", "projects/q/models/theirs/versions".into(), None),
        (
            "POST",
            "projects/q/models/theirs:predict".into(),
            Some(predict_body()),
        ),
        ("GET", "projects/q/v2/models/theirs".into(), None),
        (
            "POST",
            "projects/q/v2/models/theirs/infer".into(),
            Some(infer_body()),
        ),
        ("GET", "projects/q/models:watch".into(), None),
        (
            "GET",
            "projects/q/models/theirs/versions:watch".into(),
            None,
        ),
        (
            "GET",
            "projects/q/models/theirs/versions/v1/example".into(),
            None,
        ),
        ("GET", "projects/q/jobs".into(), None),
        ("GET", "projects/q/jobs:watch".into(), None),
        (
            "POST",
            "projects/q/jobs?validateOnly=true".into(),
            Some(serde_json::from_str(&job).unwrap()),
        ),
        ("GET", "projects/q/jobs/their_job".into(), None),
        ("GET", "projects/q/jobs/their_job:watch".into(), None),
        (
            "GET",
            "projects/q/locations/us-central1/studies/s/trials:watch".into(),
            None,
        ),
        ("GET", "projects/q/jobs/their_job/logs".into(), None),
        (
            "POST",
            "projects/q/jobs/their_job:cancel".into(),
            Some(json!({})),
        ),
        ("GET", "projects/q/operations".into(), None),
        ("GET", operation.clone(), None),
        ("GET", "projects/q/auditLogs".into(), None),
        (
            "POST",
            "projects/q:setIamPolicy".into(),
            Some(
                json!({"policy": {"bindings": [{"role": "roles/ml.admin", "members": ["serviceAccount:dev"]}]}}),
            ),
        ),
        (
            "POST",
            "projects/q/models".into(),
            Some(json!({"name": "intruder"})),
        ),
    ] {
        let (status, answer) = secured.call(&developer, method, &path, body);
        assert_eq!(status, 403, "{method} {path}: {answer}");
    }
    // A study or tuning job in p cannot start from q's trials, and the refusal does not say
    // whether the prior exists.
    let studies = "locations/us-central1/studies";
    let config = |priors: Value| {
        json!({"studyConfig": {"metrics": [{"metric": "acc", "goal": "MAXIMIZE"}],
            "parameters": [{"parameter": "x", "type": "DOUBLE", "doubleValueSpec": {"minValue": 0, "maxValue": 1}}],
            "transferLearningConfig": {"priorStudyNames": priors}}})
    };
    secured.ok(
        &secured.admin,
        "POST",
        &format!("projects/q/{studies}?studyId=their_study"),
        Some(config(json!([]))),
    );
    secured.ok(
        &secured.admin,
        "POST",
        &format!("projects/q/{studies}/their_study/trials"),
        Some(
            json!({"parameters": [{"parameter": "x", "floatValue": 0.5}],
            "finalMeasurement": {"metrics": [{"metric": "acc", "value": 0.9}]}}),
        ),
    );
    let package = trainer_package(&secured.dir("p"));
    for prior in [
        "projects/q/locations/us-central1/studies/their_study",
        "projects/q/locations/us-central1/studies/missing",
        "projects/q/jobs/their_job",
        "projects/q/jobs/missing",
    ] {
        let (status, answer) = secured.call(
            &developer,
            "POST",
            &format!("projects/p/{studies}?studyId=mine"),
            Some(config(json!([prior]))),
        );
        assert_eq!(status, 403, "a study from {prior}: {answer}");
        let job = python_job(
            "mine",
            &package,
            &secured.dir("p").join("out"),
            &[],
            json!({"hyperparameters": {"hyperparameterMetricTag": "acc", "maxTrials": 1,
                "params": [{"parameterName": "x", "type": "DOUBLE", "minValue": 0, "maxValue": 1}],
                "transferLearningConfig": {"priorStudyNames": [prior]}}}),
        );
        let (status, answer) = secured.call(
            &developer,
            "POST",
            "projects/p/jobs",
            Some(serde_json::from_str(&job).unwrap()),
        );
        assert_eq!(status, 403, "a tuning job from {prior}: {answer}");
    }
    // Names that try to climb out of project p are refused before they reach anything of q.
    for path in [
        "projects/p/models/..%2F..%2Fq%2Fmodels%2Ftheirs",
        "projects/p%2F..%2Fq/models",
        "projects/p/models/theirs/..%2F..%2F..%2Fq",
    ] {
        let (status, answer) = secured.call(&developer, "GET", path, None);
        assert!(
            (400..500).contains(&status) && status != 409,
            "{path}: {status} {answer}"
        );
        assert!(
            !answer.to_string().contains("theirs\""),
            "{path} leaked {answer}"
        );
    }
    // A model deployed in q is not in p's lists.
    let listed = secured.ok(&developer, "GET", "projects/p/models", None);
    assert!(listed.get("models").is_none(), "{listed}");
    let job = wait_job_as(
        Some(&secured.admin),
        &secured.server,
        "q",
        "their_job",
        ended,
    );
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
}

/// Every path-bearing field refuses `..`, symlinks out, other projects' locations and the data
/// directory, naming the field.
#[test]
fn path_fields_cannot_escape_the_allowed_locations() {
    let secured = Secured::start();
    let mine = secured.dir("p");
    let theirs = secured.dir("q");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "x").unwrap();
    std::os::unix::fs::symlink(outside.path(), mine.join("link")).unwrap();
    let package = trainer_package(&mine);
    secured.ok(
        &secured.admin,
        "POST",
        "projects/p/models",
        Some(json!({"name": "m"})),
    );
    let data = secured._data.path().to_path_buf();
    let escapes: Vec<String> = vec![
        format!("{}/../q", mine.display()),
        format!("file://{}/../q/x", mine.display()),
        mine.join("link").display().to_string(),
        mine.join("link/inner").display().to_string(),
        theirs.display().to_string(),
        data.display().to_string(),
        data.join("kiln.db").display().to_string(),
        data.join("workspace/q").display().to_string(),
        "/etc".into(),
        "relative/dir".into(),
    ];
    let developer = secured.token("dev");
    secured.bind("projects/p", "roles/ml.admin", "serviceAccount:dev");
    for escape in &escapes {
        let attempts = [
            (
                "version.deployment_uri",
                "projects/p/models/m/versions",
                json!({"name": "v", "deploymentUri": escape}),
            ),
            (
                "training_input.job_dir",
                "projects/p/jobs",
                serde_json::from_str(&python_job(
                    "j",
                    &package,
                    Path::new(escape),
                    &[],
                    json!({}),
                ))
                .unwrap(),
            ),
            (
                "training_input.package_uris[0]",
                "projects/p/jobs",
                json!({"jobId": "j", "trainingInput": {"pythonModule": "trainer.task", "packageUris": [escape], "region": "us-central1"}}),
            ),
        ];
        for (field, path, body) in attempts {
            let (status, answer) = secured.call(&developer, "POST", path, Some(body));
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            assert!(
                status == 400 && message.contains(field),
                "{field} = {escape}: {status} {answer}"
            );
        }
    }
    // The project's own workspace is always allowed.
    let workspace = data.join("workspace/p/out");
    let job = python_job("in_workspace", &package, &workspace, &[], json!({}));
    secured.ok(
        &developer,
        "POST",
        "projects/p/jobs",
        Some(serde_json::from_str(&job).unwrap()),
    );
    let job = wait_job_as(
        Some(&secured.admin),
        &secured.server,
        "p",
        "in_workspace",
        ended,
    );
    assert_eq!(job["state"], "SUCCEEDED", "{job}");
    assert!(workspace.join("master-0.json").exists());
}

#[test]
fn revoked_and_expired_tokens_stop_working() {
    let secured = Secured::start();
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let expiring = secured.ok(
        &secured.admin,
        "POST",
        "tokens",
        Some(json!({"serviceAccount": "brief", "expireTime": soon})),
    );
    let expiring = expiring["secret"].as_str().unwrap().to_string();
    let revocable = secured.ok(
        &secured.admin,
        "POST",
        "tokens",
        Some(json!({"serviceAccount": "ci"})),
    );
    let (id, revocable) = (
        revocable["name"].as_str().unwrap().to_string(),
        revocable["secret"].as_str().unwrap().to_string(),
    );
    secured.ok(&expiring, "GET", "whoami", None);
    secured.ok(&revocable, "GET", "whoami", None);

    secured.ok(&secured.admin, "DELETE", &id, None);
    let (status, answer) = secured.call(&revocable, "GET", "whoami", None);
    assert_eq!(status, 401);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{answer}"
    );
    std::thread::sleep(Duration::from_millis(2500));
    let (status, answer) = secured.call(&expiring, "GET", "whoami", None);
    assert_eq!(status, 401);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{answer}"
    );

    let tokens = secured.ok(&secured.admin, "GET", "tokens", None);
    let listed = tokens["tokens"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    assert!(
        listed.iter().all(|token| token.get("secret").is_none()),
        "{tokens}"
    );
    assert!(
        listed
            .iter()
            .any(|token| token["name"] == id && token["revokeTime"].is_string())
    );
    let first = secured.ok(&secured.admin, "GET", "tokens?pageSize=2", None);
    let token = first["nextPageToken"].as_str().unwrap();
    let rest = secured.ok(
        &secured.admin,
        "GET",
        &format!("tokens?pageSize=2&pageToken={token}"),
        None,
    );
    let names = |page: &Value| -> Vec<Value> {
        page["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|token| token["name"].clone())
            .collect()
    };
    assert_eq!(
        [names(&first), names(&rest)].concat(),
        names(&tokens),
        "paged oldest first"
    );

    for (body, field) in [
        (
            json!({"serviceAccount": "x", "expireTime": "2001-01-01T00:00:00Z"}),
            "token.expire_time",
        ),
        (
            json!({"serviceAccount": "x", "expireTime": "tomorrow"}),
            "token.expire_time",
        ),
        (
            json!({"serviceAccount": "no spaces"}),
            "token.service_account",
        ),
        (
            json!({"serviceAccount": "x", "secret": "mine"}),
            "token.secret",
        ),
    ] {
        let (status, answer) = secured.call(&secured.admin, "POST", "tokens", Some(body));
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(field),
            "{answer}"
        );
    }
}

#[test]
fn policies_check_etags_roles_and_members() {
    let secured = Secured::start();
    let first = secured.ok(&secured.admin, "GET", "projects/p:getIamPolicy", None);
    let policy = json!({"bindings": [{"role": "roles/ml.viewer", "members": ["allAuthenticatedUsers"]}], "etag": first["etag"]});
    let set = secured.ok(
        &secured.admin,
        "POST",
        "projects/p:setIamPolicy",
        Some(json!({ "policy": policy })),
    );
    assert_ne!(set["etag"], first["etag"]);
    let (status, answer) = secured.call(
        &secured.admin,
        "POST",
        "projects/p:setIamPolicy",
        Some(json!({ "policy": policy })),
    );
    assert_eq!(
        (status, answer["error"]["status"].as_str()),
        (409, Some("ABORTED")),
        "a stale etag is refused"
    );
    let anyone = secured.token("anyone");
    secured.ok(&anyone, "GET", "projects/p/models", None);

    for (binding, field) in [
        (
            json!({"role": "roles/owner", "members": ["allAuthenticatedUsers"]}),
            "policy.bindings[0].role",
        ),
        (
            json!({"role": "roles/ml.viewer", "members": ["user:alice@example.com"]}),
            "policy.bindings[0].members[0]",
        ),
        (
            json!({"role": "roles/ml.viewer", "members": ["allUsers"]}),
            "policy.bindings[0].members[0]",
        ),
        (
            json!({"role": "roles/ml.viewer", "members": []}),
            "policy.bindings[0].members",
        ),
        (
            json!({"role": "roles/ml.viewer", "members": ["allAuthenticatedUsers"], "condition": {"expression": "true"}}),
            "policy.bindings[0].condition",
        ),
    ] {
        let (status, answer) = secured.call(
            &secured.admin,
            "POST",
            "projects/p:setIamPolicy",
            Some(json!({"policy": {"bindings": [binding]}})),
        );
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(field),
            "{field}: {answer}"
        );
    }
    let (status, _) = secured.call(
        &secured.admin,
        "GET",
        "projects/p/models/nope:getIamPolicy",
        None,
    );
    assert_eq!(status, 404);
    let (status, answer) = secured.call(
        &secured.admin,
        "POST",
        "projects/p:testIamPermissions",
        Some(json!({"permissions": ["ml.everything"]})),
    );
    assert_eq!(status, 400, "{answer}");
}

#[test]
fn the_audit_log_records_every_mutating_call() {
    let secured = Secured::start();
    let developer = secured.token("dev");
    let viewer = secured.token("viewer");
    secured.bind("projects/p", "roles/ml.developer", "serviceAccount:dev");
    secured.bind("projects/p", "roles/ml.viewer", "serviceAccount:viewer");
    secured.ok(
        &developer,
        "POST",
        "projects/p/models",
        Some(json!({"name": "m"})),
    );
    secured.ok(&developer, "GET", "projects/p/models", None);
    let (status, _) = secured.call(
        &viewer,
        "POST",
        "projects/p/models",
        Some(json!({"name": "n"})),
    );
    assert_eq!(status, 403);
    let (status, _) = secured.call(
        &developer,
        "POST",
        "projects/p/models",
        Some(json!({"name": "bad-name"})),
    );
    assert_eq!(status, 400);
    let (status, _) = call_as(
        None,
        "DELETE",
        &format!("{}/v1/projects/p/models/m", secured.server.url),
        None,
    );
    assert_eq!(status, 401);

    let log = secured.ok(&secured.admin, "GET", "projects/p/auditLogs", None);
    let entries: Vec<(String, String, u64)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["member"].as_str().unwrap_or_default().to_string(),
                entry["method"].as_str().unwrap().to_string(),
                entry["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let expect = |member: &str, method: &str, status: u64| {
        assert!(
            entries.contains(&(member.to_string(), method.to_string(), status)),
            "{member} {method} {status} missing from {entries:?}"
        );
    };
    expect("serviceAccount:dev", "projects.models.create", 200);
    expect("serviceAccount:viewer", "projects.models.create", 403);
    expect("serviceAccount:dev", "projects.models.create", 400);
    expect("", "projects.models.delete", 401);
    expect("serviceAccount:admin", "projects.setIamPolicy", 200);
    assert!(
        !entries
            .iter()
            .any(|(_, method, _)| method.ends_with(".list")),
        "reads are not audited"
    );
    let failed = secured.ok(
        &secured.admin,
        "GET",
        "projects/p/auditLogs?filter=status%3E%3D400",
        None,
    );
    assert_eq!(failed["entries"].as_array().unwrap().len(), 3, "{failed}");
    assert!(
        failed["entries"].to_string().contains("bad-name"),
        "errors are kept: {failed}"
    );

    let server_wide = secured.ok(&secured.admin, "GET", "auditLogs", None);
    let methods = server_wide["entries"].to_string();
    assert!(methods.contains("kiln.tokens.create") && methods.contains("projects.models.create"));

    // Paged newest first, each page after the last entry of the one before.
    let mut ids: Vec<i64> = Vec::new();
    let mut token = String::new();
    loop {
        let page = secured.ok(
            &secured.admin,
            "GET",
            &format!("auditLogs?pageSize=2&pageToken={token}"),
            None,
        );
        for entry in page["entries"].as_array().unwrap() {
            ids.push(entry["id"].as_str().unwrap().parse().unwrap());
        }
        match page["nextPageToken"].as_str() {
            Some(next) => token = next.to_string(),
            None => break,
        }
    }
    assert!(ids.windows(2).all(|pair| pair[0] > pair[1]), "{ids:?}");
    let whole = secured.ok(&secured.admin, "GET", "auditLogs?pageSize=100", None);
    assert_eq!(ids.len(), whole["entries"].as_array().unwrap().len());
}

#[test]
fn insecure_mode_is_loopback_only_and_says_so() {
    let data = tempfile::tempdir().unwrap();
    let refused = std::process::Command::new(kiln_binary())
        .args([
            "server",
            "--bind",
            "0.0.0.0:0",
            "--insecure-no-auth",
            "--data-dir",
        ])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--insecure-no-auth is accepted only on a loopback"),
        "{stderr}"
    );

    let (server, startup) = Server::start_with_args(data.path(), &["--insecure-no-auth"], &[]);
    assert!(
        startup
            .iter()
            .any(|line| line.contains("WARNING: authentication is off")),
        "{startup:?}"
    );
    assert_eq!(token_in(&startup), None);
    let (status, whoami) = call_as(None, "GET", &format!("{}/v1/whoami", server.url), None);
    assert_eq!(
        (status, whoami["member"].as_str()),
        (200, Some("anonymous"))
    );
}

#[test]
fn the_cli_logs_in_manages_tokens_and_bindings() {
    let secured = Secured::start();
    secured.deploy(&secured.admin, "p", "m");
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("kiln/config.yaml");
    let run = |token: Option<&str>, args: &[&str]| {
        let mut command = std::process::Command::new(kiln_binary());
        command
            .args(["--project", "p", "--endpoint", &secured.server.url])
            .args(args)
            .env("KILN_CONFIG", &config)
            .env_remove("KILN_TOKEN");
        if let Some(token) = token {
            command.env("KILN_TOKEN", token);
        }
        command.output().unwrap()
    };
    let login = run(None, &["auth", "login", "--token", &secured.admin]);
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&config).unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "the config file holds a secret");
    let whoami = run(None, &["auth", "whoami", "--format", "json"]);
    assert!(String::from_utf8_lossy(&whoami.stdout).contains("serviceAccount:admin"));

    let created = run(
        None,
        &["auth", "tokens", "create", "ci", "--expires-in", "1d"],
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let ci = String::from_utf8_lossy(&created.stdout).trim().to_string();
    let instances = home.path().join("instances.json");
    std::fs::write(
        &instances,
        census_instances()
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let predict = |token| {
        run(
            Some(token),
            &[
                "predict",
                "--model",
                "m",
                "--json-instances",
                instances.to_str().unwrap(),
            ],
        )
    };
    let denied = predict(&ci);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("403"));
    // A token may hold a role on one resource itself, without a binding.
    let grant = |role: &str, resource: &str| {
        run(
            None,
            &[
                "auth",
                "tokens",
                "create",
                "granted",
                "--grant-role",
                role,
                "--grant-resource",
                resource,
            ],
        )
    };
    let granted = grant("roles/ml.modelUser", "projects/p/models/m");
    let granted = String::from_utf8_lossy(&granted.stdout).trim().to_string();
    let predicted = predict(&granted);
    assert!(
        predicted.status.success(),
        "{}",
        String::from_utf8_lossy(&predicted.stderr)
    );
    let elsewhere = grant("roles/ml.modelUser", "projects/p/models/other");
    let elsewhere = String::from_utf8_lossy(&elsewhere.stdout)
        .trim()
        .to_string();
    assert!(String::from_utf8_lossy(&predict(&elsewhere).stderr).contains("403"));
    for (role, resource, field) in [
        ("roles/owner", "projects/p", "token.grant.role"),
        ("roles/ml.viewer", "tokens/x", "token.grant.resource"),
    ] {
        let refused = grant(role, resource);
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(field), "{stderr}");
    }

    let bound = run(
        None,
        &[
            "ai-platform",
            "models",
            "add-iam-policy-binding",
            "m",
            "--member",
            "serviceAccount:ci",
            "--role",
            "roles/ml.modelUser",
        ],
    );
    assert!(
        bound.status.success(),
        "{}",
        String::from_utf8_lossy(&bound.stderr)
    );
    let allowed = predict(&ci);
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    let policy = run(None, &["models", "get-iam-policy", "m", "--format", "json"]);
    assert!(String::from_utf8_lossy(&policy.stdout).contains("roles/ml.modelUser"));

    let listed = run(None, &["auth", "tokens", "list", "--format", "json"]);
    let tokens: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|token| token["serviceAccount"] == "ci")
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        run(None, &["auth", "tokens", "revoke", &id])
            .status
            .success()
    );
    let revoked = predict(&ci);
    assert!(
        String::from_utf8_lossy(&revoked.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );

    let audit = run(None, &["auth", "audit-log", "--format", "json"]);
    assert!(String::from_utf8_lossy(&audit.stdout).contains("projects.models.setIamPolicy"));
    assert!(run(None, &["auth", "logout"]).status.success());
    let anonymous = run(None, &["models", "list"]);
    assert!(String::from_utf8_lossy(&anonymous.stderr).contains("kiln auth login"));
    let _ = kiln(&["--version"]);
}
