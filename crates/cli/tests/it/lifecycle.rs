//! The registry's happy path over HTTP: model → version → predict → default → delete rules.

use serde_json::{Value, json};

use crate::support::{Server, call, census_instances, census_model, file_uri, wait_operation};

#[test]
fn model_version_predict_default_and_delete_rules() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let project = "acme";

    let (status, model) = call(
        "POST",
        &server.api(project, "models"),
        Some(r#"{"name": "census", "labels": {"team": "ml"}}"#),
    );
    assert_eq!(status, 200, "{model}");
    assert_eq!(model["name"], "projects/acme/models/census");
    assert_eq!(model["regions"], json!(["us-central1"]));
    assert!(model["etag"].as_str().is_some_and(|etag| !etag.is_empty()));
    assert!(model.get("defaultVersion").is_none());

    let (status, list) = call("GET", &server.api(project, "models"), None);
    assert_eq!(
        (status, list["models"][0]["name"].clone()),
        (200, json!("projects/acme/models/census"))
    );
    let (_, empty) = call("GET", &server.api("other-project", "models"), None);
    assert_eq!(
        empty,
        json!({}),
        "an empty list is {{}} and projects do not see each other"
    );

    let version_body =
        json!({"name": "v1", "deploymentUri": file_uri(census_model()), "runtimeVersion": "2.11"})
            .to_string();
    let (status, operation) = call(
        "POST",
        &server.api(project, "models/census/versions"),
        Some(&version_body),
    );
    assert_eq!(status, 200, "{operation}");
    assert_eq!(operation["metadata"]["operationType"], "CREATE_VERSION");
    assert_eq!(
        operation["metadata"]["@type"],
        "type.googleapis.com/google.cloud.ml.v1.OperationMetadata"
    );
    assert!(
        operation["name"]
            .as_str()
            .unwrap()
            .starts_with("projects/acme/operations/create_census_v1-")
    );
    let done = wait_operation(&server, project, &operation);
    assert!(done.get("error").is_none(), "{done}");
    assert_eq!(
        done["response"]["@type"],
        "type.googleapis.com/google.cloud.ml.v1.Version"
    );

    let (_, v1) = call(
        "GET",
        &server.api(project, "models/census/versions/v1"),
        None,
    );
    assert_eq!(v1["state"], "READY");
    assert_eq!(v1["framework"], "KILN");
    assert_eq!(
        v1["isDefault"], true,
        "the first version becomes the default"
    );
    assert_eq!(v1["runtimeVersion"], "2.11");
    let (_, model) = call("GET", &server.api(project, "models/census"), None);
    assert_eq!(
        model["defaultVersion"]["name"],
        "projects/acme/models/census/versions/v1"
    );

    let body = json!({"instances": census_instances()}).to_string();
    let (status, response) = call(
        "POST",
        &server.api(project, "models/census:predict"),
        Some(&body),
    );
    assert_eq!(status, 200, "{response}");
    let predictions = response["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 2);
    for prediction in predictions {
        let keys: Vec<&String> = prediction.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "class_ids",
                "classes",
                "logistic",
                "logits",
                "probabilities"
            ]
        );
        let p = prediction["logistic"][0].as_f64().unwrap();
        let probabilities = prediction["probabilities"].as_array().unwrap();
        assert!((probabilities[0].as_f64().unwrap() + p - 1.0).abs() < 1e-6);
        assert_eq!(
            prediction["classes"],
            if p > 0.5 { ">50K" } else { "<=50K" }
        );
        let logit = prediction["logits"][0].as_f64().unwrap();
        assert!(
            (1.0 / (1.0 + (-logit).exp()) - p).abs() < 1e-5,
            "logistic = sigmoid(logit)"
        );
    }
    let (status, by_version) = call(
        "POST",
        &server.api(project, "models/census/versions/v1:predict"),
        Some(&body),
    );
    assert_eq!(status, 200);
    assert_eq!(
        by_version, response,
        "the model's default version answers the same"
    );

    // A second version from the same export; set it as default.
    let v2_body = json!({"name": "v2", "deploymentUri": file_uri(census_model())}).to_string();
    let (_, operation) = call(
        "POST",
        &server.api(project, "models/census/versions"),
        Some(&v2_body),
    );
    wait_operation(&server, project, &operation);
    let (_, v2) = call(
        "GET",
        &server.api(project, "models/census/versions/v2"),
        None,
    );
    assert_eq!(
        v2.get("isDefault"),
        None,
        "later versions are not the default"
    );
    let (status, v2) = call(
        "POST",
        &server.api(project, "models/census/versions/v2:setDefault"),
        Some("{}"),
    );
    assert_eq!(
        (status, v2["isDefault"].clone()),
        (200, Value::Bool(true)),
        "{v2}"
    );
    let (_, model) = call("GET", &server.api(project, "models/census"), None);
    assert_eq!(
        model["defaultVersion"]["name"],
        "projects/acme/models/census/versions/v2"
    );

    // Patch a version's description; output-only state is untouched.
    let (status, operation) = call(
        "PATCH",
        &server.api(project, "models/census/versions/v1?updateMask=description"),
        Some(r#"{"description": "first cut", "state": "FAILED"}"#),
    );
    assert_eq!(
        (status, operation["metadata"]["operationType"].clone()),
        (200, json!("UPDATE_VERSION")),
        "{operation}"
    );
    let (_, v1) = call(
        "GET",
        &server.api(project, "models/census/versions/v1"),
        None,
    );
    assert_eq!(
        (v1["description"].clone(), v1["state"].clone()),
        (json!("first cut"), json!("READY"))
    );

    // Paging over versions.
    let (_, page) = call(
        "GET",
        &server.api(project, "models/census/versions?pageSize=1"),
        None,
    );
    assert_eq!(page["versions"].as_array().unwrap().len(), 1);
    let token = page["nextPageToken"].as_str().unwrap().to_string();
    let (_, page) = call(
        "GET",
        &server.api(
            project,
            &format!("models/census/versions?pageSize=1&pageToken={token}"),
        ),
        None,
    );
    assert_eq!(
        page["versions"][0]["name"],
        "projects/acme/models/census/versions/v2"
    );
    assert!(page.get("nextPageToken").is_none());
    let (_, filtered) = call(
        "GET",
        &server.api(project, "models/census/versions?filter=isDefault=true"),
        None,
    );
    assert_eq!(filtered["versions"].as_array().unwrap().len(), 1);

    // Delete rules.
    let (status, error) = call("DELETE", &server.api(project, "models/census"), None);
    assert_eq!(
        (status, error["error"]["status"].clone()),
        (400, json!("FAILED_PRECONDITION")),
        "{error}"
    );
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("A model with versions cannot be deleted")
    );
    let (status, error) = call(
        "DELETE",
        &server.api(project, "models/census/versions/v2"),
        None,
    );
    assert_eq!(
        status, 400,
        "the default version cannot be deleted while others exist: {error}"
    );
    // A deleted version stops answering at once, though it answered just before (predict
    // remembers where requests go); the model's default keeps answering.
    let predict = |path: &str| call("POST", &server.api(project, path), Some(&body)).0;
    assert_eq!(predict("models/census/versions/v1:predict"), 200);
    let (status, operation) = call(
        "DELETE",
        &server.api(project, "models/census/versions/v1"),
        None,
    );
    assert_eq!(
        (status, operation["done"].clone()),
        (200, Value::Bool(true)),
        "{operation}"
    );
    assert_eq!(operation["metadata"]["operationType"], "DELETE_VERSION");
    assert_eq!(predict("models/census/versions/v1:predict"), 404);
    assert_eq!(predict("models/census:predict"), 200);
    let (status, _) = call(
        "DELETE",
        &server.api(project, "models/census/versions/v2"),
        None,
    );
    assert_eq!(
        status, 200,
        "the default version can go when it is the last"
    );
    assert!(
        !data
            .path()
            .join("artifacts/projects/acme/models/census/versions/v2")
            .exists(),
        "its files are removed"
    );
    let (status, operation) = call("DELETE", &server.api(project, "models/census"), None);
    assert_eq!(
        (status, operation["metadata"]["operationType"].clone()),
        (200, json!("DELETE_MODEL"))
    );
    let (status, _) = call("GET", &server.api(project, "models/census"), None);
    assert_eq!(status, 404);

    let (_, operations) = call("GET", &server.api(project, "operations"), None);
    let kinds: Vec<&str> = operations["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["metadata"]["operationType"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "CREATE_VERSION",
            "CREATE_VERSION",
            "UPDATE_VERSION",
            "DELETE_VERSION",
            "DELETE_VERSION",
            "DELETE_MODEL"
        ]
    );
    let (_, filtered) = call(
        "GET",
        &server.api(
            project,
            "operations?filter=metadata.operationType=DELETE_MODEL",
        ),
        None,
    );
    assert_eq!(filtered["operations"].as_array().unwrap().len(), 1);
}

#[test]
fn patch_changes_only_masked_fields_and_checks_the_etag() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (_, model) = call(
        "POST",
        &server.api("p", "models"),
        Some(r#"{"name": "m", "description": "old"}"#),
    );
    let etag = model["etag"].as_str().unwrap();
    let body = json!({"description": "new", "labels": {"a": "b"}, "etag": etag}).to_string();
    let (status, operation) = call(
        "PATCH",
        &server.api("p", "models/m?updateMask=description"),
        Some(&body),
    );
    assert_eq!(status, 200, "{operation}");
    assert_eq!(operation["metadata"]["operationType"], "UPDATE_MODEL");
    let (_, model) = call("GET", &server.api("p", "models/m"), None);
    assert_eq!(model["description"], "new");
    assert!(model.get("labels").is_none(), "labels were not in the mask");
    let (status, error) = call(
        "PATCH",
        &server.api("p", "models/m?updateMask=labels"),
        Some(&body),
    );
    assert_eq!(
        (status, error["error"]["status"].clone()),
        (409, json!("ABORTED")),
        "a stale etag is refused: {error}"
    );
}

#[test]
fn lists_are_sorted_by_order_by_across_pages() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let project = "acme";
    // Labels are strings: integer ones sort by value, before text; a model without the label
    // sorts first ascending, last descending.
    for (name, rank) in [
        ("a", Some("10")),
        ("b", Some("9")),
        ("c", None),
        ("d", Some("x")),
        ("e", Some("9")),
        ("f", Some("-1")),
    ] {
        let labels = rank.map_or(json!({}), |rank| json!({ "rank": rank }));
        let body = json!({ "name": name, "labels": labels }).to_string();
        let (status, model) = call("POST", &server.api(project, "models"), Some(&body));
        assert_eq!(status, 200, "{model}");
    }
    let names = |order: &str, filter: &str| -> Vec<String> {
        let mut names = Vec::new();
        let mut token = String::new();
        loop {
            let (status, page) = call(
                "GET",
                &server.api(
                    project,
                    &format!("models?pageSize=2&orderBy={order}&filter={filter}&pageToken={token}"),
                ),
                None,
            );
            assert_eq!(status, 200, "{page}");
            for model in page["models"].as_array().into_iter().flatten() {
                names.push(
                    model["name"]
                        .as_str()
                        .unwrap()
                        .rsplit('/')
                        .next()
                        .unwrap()
                        .to_string(),
                );
            }
            match page["nextPageToken"].as_str() {
                Some(next) => token = next.to_string(),
                None => return names,
            }
        }
    };
    assert_eq!(names("labels.rank", ""), ["c", "f", "b", "e", "a", "d"]);
    assert_eq!(
        names("labels.rank%20desc", ""),
        ["d", "a", "b", "e", "f", "c"]
    );
    assert_eq!(
        names("labels.rank%20desc,name%20desc", "labels.rank:*"),
        ["d", "a", "e", "b", "f"]
    );
    assert_eq!(
        names("defaultVersion.name,name%20desc", ""),
        ["f", "e", "d", "c", "b", "a"]
    );

    let (status, jobs) = call(
        "GET",
        &server.api(project, "jobs?orderBy=createTime%20desc"),
        None,
    );
    assert_eq!(status, 200, "{jobs}");
    for bad in ["name%20sideways", "labels.'rank'"] {
        let (status, error) = call(
            "GET",
            &server.api(project, &format!("models?orderBy={bad}")),
            None,
        );
        assert_eq!(
            (status, error["error"]["status"].clone()),
            (400, json!("INVALID_ARGUMENT")),
            "{error}"
        );
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("orderBy"),
            "{error}"
        );
    }
}
