//! `/v1/openapi.json`: the API's description, read without a token, agrees with the gate.

use serde_json::Value;

use crate::support::{Server, call};

#[test]
fn the_document_lists_every_operation_and_which_need_a_token() {
    let data = tempfile::tempdir().unwrap();
    let (server, _) = Server::start_with_args(data.path(), &[], &[]);
    let (status, document) = call("GET", &format!("{}/v1/openapi.json", server.url), None);
    assert_eq!(status, 200, "the document is open to anyone: {document}");
    assert_eq!(document["openapi"], "3.0.3");
    let predict = &document["paths"]["/v1/projects/{project}/models/{model}:predict"]["post"];
    assert_eq!(predict["operationId"], "projects.models.predict");
    assert_eq!(predict["x-kiln-permission"], "ml.models.predict");
    assert_eq!(
        predict["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/PredictRequest"
    );
    let job = &document["components"]["schemas"]["Job"]["properties"];
    assert!(
        job["trainingInput"].is_object() && job["state"].is_object(),
        "{job}"
    );

    let paths = document["paths"].as_object().expect("paths");
    assert!(paths.len() > 40, "{} paths", paths.len());
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("operations") {
            let open = operation["security"] == Value::Array(vec![]);
            let url = format!("{}{}", server.url, fill(path));
            let body = (method != "get" && method != "delete").then_some("{}");
            let (status, answer) = call(&method.to_ascii_uppercase(), &url, body);
            match open {
                true => assert_ne!(
                    status, 401,
                    "{method} {path} is documented as open: {answer}"
                ),
                false => assert_eq!(status, 401, "{method} {path} needs a token: {answer}"),
            }
        }
    }
}

/// `path` with each `{variable}` filled in.
fn fill(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment.starts_with('{') {
            true => match segment.split_once('}') {
                Some((_, rest)) => format!("x{rest}"),
                None => segment.to_string(),
            },
            false => segment.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}
