//! The OpenAPI 3.0 document of the API, written from the route table and the wire types' own
//! JSON schemas, and served at `/v1/openapi.json`.
//!
//! Every route of [`ROUTES`] is an operation: its path with the custom verb (`{model}:predict`),
//! its path variables and query parameters, its body's and answer's schemas (`kiln_api`'s types,
//! derived by schemars, under `components/schemas`), its errors, and whether it needs a token.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use kiln_api::{ErrorBody, PredictionErrorBody};
use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::route::{Answer, Errors, Gate, ParamKind, Route, SchemaFn, schema};
use crate::routes::ROUTES;

/// The document, written once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| document_value().to_string());

/// The `/v1/openapi.json` handler.
pub(crate) async fn document() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}

/// The document as JSON.
pub fn document_value() -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for route in ROUTES {
        let count = seen.entry(route.api).or_default();
        *count += 1;
        let operation_id = match *count {
            1 => route.api.to_string(),
            n => format!("{}.{n}", route.api),
        };
        let operation = operation(route, operation_id, &mut generator);
        let method = format!("{:?}", route.http).to_ascii_lowercase();
        paths
            .entry(route.full_path())
            .or_default()
            .insert(method, operation);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Kiln",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "ML Engine's v1 REST API (ml.googleapis.com/v1), the Open Inference \
                Protocol under /v1/projects/{project}/v2, and Kiln's tokens and audit log.",
        },
        "paths": paths,
        "components": {
            "schemas": generator.take_definitions(true),
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
            },
        },
    })
}

/// One route as an OpenAPI operation.
fn operation(route: &Route, operation_id: String, generator: &mut SchemaGenerator) -> Value {
    let mut parameters: Vec<Value> = route
        .variables()
        .map(|name| {
            json!({
                "name": name,
                "in": "path",
                "required": true,
                "schema": { "type": "string", "minLength": 1 },
            })
        })
        .collect();
    parameters.extend(route.query.iter().map(|param| {
        let kind = match param.kind {
            ParamKind::Text => "string",
            ParamKind::Integer => "integer",
            ParamKind::Boolean => "boolean",
        };
        json!({
            "name": param.name,
            "in": "query",
            "required": param.required,
            "description": param.about,
            "schema": { "type": kind },
        })
    }));
    let success = match route.answer {
        Answer::Json(answer) => json!({
            "description": "Success",
            "content": { "application/json": { "schema": inline(answer, generator) } },
        }),
        Answer::Text => json!({
            "description": "Success",
            "content": { "text/plain": { "schema": { "type": "string" } } },
        }),
        Answer::Events(events) => {
            let data: Map<String, Value> = events
                .iter()
                .map(|(name, data)| (name.to_string(), inline(*data, generator)))
                .collect();
            json!({
                "description": "Server-sent events, each event's data one JSON value",
                "content": { "text/event-stream": { "schema": { "type": "string" } } },
                "x-kiln-events": data,
            })
        }
    };
    let error = match route.errors {
        Errors::Api => inline(schema::<ErrorBody>, generator),
        Errors::ApiOrPrediction => json!({
            "anyOf": [
                inline(schema::<ErrorBody>, generator),
                inline(schema::<PredictionErrorBody>, generator),
            ],
        }),
    };
    let summary = match route.about {
        "" => route.api,
        about => about,
    };
    let mut operation = json!({
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag(route.api)],
        "parameters": parameters,
        "responses": {
            "200": success,
            "default": {
                "description": "An error, naming the field or resource at fault",
                "content": { "application/json": { "schema": error } },
            },
        },
    });
    if let Some(body) = route.body {
        operation["requestBody"] = json!({
            "required": false,
            "content": { "application/json": { "schema": inline(body, generator) } },
        });
    }
    operation["security"] = match route.gate {
        Gate::Open => json!([]),
        Gate::Token | Gate::Permission(_) => json!([{ "bearer": [] }]),
    };
    if let Gate::Permission(permission) = route.gate {
        operation["x-kiln-permission"] = json!(permission);
    }
    operation
}

/// A body's schema (a reference into `components/schemas`, or the schema itself for a type
/// without a name), with the generator's OpenAPI transforms applied.
fn inline(schema: SchemaFn, generator: &mut SchemaGenerator) -> Value {
    let mut schema: Schema = schema(generator);
    for transform in generator.transforms_mut() {
        transform.transform(&mut schema);
    }
    schema.to_value()
}

/// The operation's group: the API method less its last part (`projects.models` for
/// `projects.models.create`).
fn tag(api: &str) -> &str {
    api.rsplit_once('.').map_or(api, |(group, _)| group)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_an_operation_with_resolvable_references() {
        let document = document_value();
        let mut operations = 0;
        for route in ROUTES {
            let method = format!("{:?}", route.http).to_ascii_lowercase();
            let path = route.full_path();
            assert!(
                document["paths"][&path][&method].is_object(),
                "{method} {path} is missing"
            );
            operations += 1;
        }
        let counted: usize = document["paths"]
            .as_object()
            .map(|paths| {
                paths
                    .values()
                    .filter_map(Value::as_object)
                    .map(Map::len)
                    .sum()
            })
            .unwrap_or_default();
        assert_eq!(counted, operations, "one operation per route");
        let text = document.to_string();
        let schemas = &document["components"]["schemas"];
        for reference in text.split("\"$ref\":\"").skip(1) {
            let target = reference.split('"').next().unwrap_or_default();
            let name = target.strip_prefix("#/components/schemas/");
            assert!(
                name.is_some_and(|name| schemas[name].is_object()),
                "{target} does not resolve"
            );
        }
        assert!(schemas["Job"]["properties"]["trainingInput"].is_object());
    }

    #[test]
    fn operation_ids_are_unique() {
        let document = document_value();
        let mut ids = std::collections::BTreeSet::new();
        for item in document["paths"]
            .as_object()
            .into_iter()
            .flat_map(|p| p.values())
        {
            for operation in item.as_object().into_iter().flat_map(|o| o.values()) {
                let id = operation["operationId"].as_str().unwrap_or_default();
                assert!(ids.insert(id.to_string()), "{id} twice");
            }
        }
    }
}
