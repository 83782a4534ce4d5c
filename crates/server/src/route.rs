//! What a route is, how a request finds its route, and the router built from the table.
//!
//! Every route of the API is one [`Route`] in [`crate::routes::ROUTES`]: its HTTP method, path
//! template and custom verb, the API method it implements, who may call it, the resource its
//! permission is checked on, its request and answer types, and its handler. The gate
//! ([`crate::auth`]), the router ([`router`]), the unknown-verb errors and the OpenAPI document
//! ([`crate::openapi`]) all read that one table, so they cannot disagree.
//!
//! Custom verbs (`:predict`, `:setDefault`, `:cancel`) arrive as part of the last path segment;
//! [`split_verb`] separates them.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures::future::BoxFuture;
use kiln_api::Code;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use tower_http::catch_panic::CatchPanicLayer;

use crate::Services;
use crate::error::ApiError;

/// A handler, called with the request and the services once the gate let the request through.
pub type Handler = fn(Request, Services) -> BoxFuture<'static, Response>;

/// The JSON schema of a request or answer body.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The schema of `T`, as a [`SchemaFn`].
pub fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// Wraps an axum handler function as a [`Handler`] that can sit in a `static` table.
macro_rules! handler {
    ($function:path) => {{
        fn call(
            request: axum::extract::Request,
            services: $crate::Services,
        ) -> futures::future::BoxFuture<'static, axum::response::Response> {
            Box::pin(axum::handler::Handler::call($function, request, services))
        }
        call as $crate::route::Handler
    }};
}
pub(crate) use handler;

/// The HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Http {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

impl Http {
    /// The method as `http` names it.
    pub fn method(self) -> Method {
        match self {
            Http::Get => Method::GET,
            Http::Post => Method::POST,
            Http::Patch => Method::PATCH,
            Http::Delete => Method::DELETE,
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Anyone, without a token: probes and the API's own description. Such a route names no
    /// resource and reads nothing private.
    Open,
    /// Any caller with a valid token.
    Token,
    /// Callers holding this permission on the route's resource. `kiln.server.admin` is held by
    /// administrators only.
    Permission(&'static str),
}

/// The permission of server-wide routes, which only administrators hold.
pub const SERVER_ADMIN: Gate = Gate::Permission("kiln.server.admin");

/// What a route answers with when it succeeds.
#[derive(Clone, Copy)]
pub enum Answer {
    /// A JSON body of this schema.
    Json(SchemaFn),
    /// Plain text (probes, Prometheus' format).
    Text,
    /// Server-sent events (a watch): each event's name and the schema of its JSON data.
    Events(&'static [(&'static str, SchemaFn)]),
}

/// The bodies a route's errors come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Errors {
    /// ML Engine's `{"error": {"code", "message", "status"}}`.
    Api,
    /// That, or the prediction error `{"error": "..."}` (predict, explain, the inference
    /// protocol).
    ApiOrPrediction,
}

/// A query parameter a route reads.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Its name.
    pub name: &'static str,
    /// What it holds.
    pub kind: ParamKind,
    /// Whether the route refuses a request without it.
    pub required: bool,
    /// What it does.
    pub about: &'static str,
}

/// What a query parameter holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// Text.
    Text,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Boolean,
}

/// One route of the API.
#[derive(Clone, Copy)]
pub struct Route {
    /// Its HTTP method.
    pub http: Http,
    /// Its path template, with `{name}` for each variable segment.
    pub path: &'static str,
    /// The custom verb after the last segment (`predict` in `.../versions/{version}:predict`).
    pub verb: Option<&'static str>,
    /// The API method, for the audit and access logs and the OpenAPI `operationId`.
    pub api: &'static str,
    /// Who may call it.
    pub gate: Gate,
    /// The resource the permission is checked on and the audit log names, a template over the
    /// path's variables (`projects/{project}/models/{model}`).
    pub resource: &'static str,
    /// Whether it changes something, and so goes to the audit log.
    pub writes: bool,
    /// The query parameters it reads.
    pub query: &'static [Param],
    /// The schema of its JSON request body, if it takes one.
    pub body: Option<SchemaFn>,
    /// What it answers with.
    pub answer: Answer,
    /// The shapes of its errors.
    pub errors: Errors,
    /// What it does, in one line.
    pub about: &'static str,
    /// The handler.
    pub handler: Handler,
}

impl Route {
    /// A route that reads, answers JSON of `answer`, takes no body and no query parameters.
    pub const fn new(
        http: Http,
        path: &'static str,
        api: &'static str,
        gate: Gate,
        resource: &'static str,
        answer: SchemaFn,
        handler: Handler,
    ) -> Self {
        Route {
            http,
            path,
            verb: None,
            api,
            gate,
            resource,
            writes: false,
            query: &[],
            body: None,
            answer: Answer::Json(answer),
            errors: Errors::Api,
            about: "",
            handler,
        }
    }

    /// The same route under the custom verb `verb`.
    pub const fn verb(mut self, verb: &'static str) -> Self {
        self.verb = Some(verb);
        self
    }

    /// The same route, marked as changing something.
    pub const fn writes(mut self) -> Self {
        self.writes = true;
        self
    }

    /// The same route, taking a JSON body of `body`.
    pub const fn body(mut self, body: SchemaFn) -> Self {
        self.body = Some(body);
        self
    }

    /// The same route, reading these query parameters.
    pub const fn query(mut self, query: &'static [Param]) -> Self {
        self.query = query;
        self
    }

    /// The same route, answering plain text.
    pub const fn text(mut self) -> Self {
        self.answer = Answer::Text;
        self
    }

    /// The same route, answering a stream of these server-sent events.
    pub const fn events(mut self, events: &'static [(&'static str, SchemaFn)]) -> Self {
        self.answer = Answer::Events(events);
        self
    }

    /// The same route, whose errors may also be prediction errors.
    pub const fn predicts(mut self) -> Self {
        self.errors = Errors::ApiOrPrediction;
        self
    }

    /// The same route, described.
    pub const fn about(mut self, about: &'static str) -> Self {
        self.about = about;
        self
    }

    /// The path as clients write it: the template, then `:verb`.
    pub fn full_path(&self) -> String {
        match self.verb {
            Some(verb) => format!("{}:{verb}", self.path),
            None => self.path.to_string(),
        }
    }

    /// The path's variables, in order.
    pub fn variables(&self) -> impl Iterator<Item = &'static str> {
        self.path.split('/').filter_map(variable)
    }
}

/// The variable a template segment names (`{model}` → `model`), if it is one.
fn variable(segment: &str) -> Option<&str> {
    segment.strip_prefix('{')?.strip_suffix('}')
}

/// Splits `name:verb` into its parts.
pub fn split_verb(segment: &str) -> (&str, Option<&str>) {
    match segment.split_once(':') {
        Some((name, verb)) => (name, Some(verb)),
        None => (segment, None),
    }
}

/// A request's route, with the values of the path's variables (percent-decoded, the verb split
/// off).
#[derive(Debug, Clone)]
pub struct Found {
    /// The route.
    pub route: &'static Route,
    /// Each variable's name and value, in the path's order.
    pub values: Vec<(&'static str, String)>,
}

impl Found {
    /// The value of the path variable `project`.
    pub fn project(&self) -> &str {
        self.value("project")
    }

    /// The value of the path variable `name`, or `""` when the path has none.
    pub fn value(&self, name: &str) -> &str {
        self.values
            .iter()
            .find(|(variable, _)| *variable == name)
            .map_or("", |(_, value)| value)
    }

    /// The route's resource, each variable segment of its template replaced by the variable's
    /// value (segment by segment, so a value is never read as a template).
    pub fn resource(&self) -> String {
        self.route
            .resource
            .split('/')
            .map(|segment| variable(segment).map_or(segment, |name| self.value(name)))
            .collect::<Vec<_>>()
            .join("/")
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{:?} {} ({})",
            self.http,
            self.full_path(),
            self.api
        )
    }
}

/// A template's segments, split once.
struct Template {
    route: &'static Route,
    segments: Vec<&'static str>,
}

static TEMPLATES: LazyLock<Vec<Template>> = LazyLock::new(|| {
    crate::routes::ROUTES
        .iter()
        .map(|route| Template {
            route,
            segments: route.path.split('/').skip(1).collect(),
        })
        .collect()
});

/// The route of `method` on `path`, or the error to answer with: 404 for a path no route has
/// (or a custom verb this resource lacks, naming those it has), 400 for a method the path does
/// not take or a segment that is not UTF-8 or holds a `/` once decoded.
pub fn find(method: &Method, path: &str) -> Result<Found, ApiError> {
    let not_found = || ApiError::Http(Code::NotFound, format!("Not found: {path}"));
    let mut segments = Vec::new();
    for raw in path.split('/').skip(1) {
        let decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| ApiError::invalid(format!("{path:?} is not valid UTF-8")))?;
        if decoded.contains('/') {
            return Err(ApiError::invalid(
                "a path segment holds an encoded '/' (%2F), which no resource name holds",
            ));
        }
        segments.push(decoded.into_owned());
    }
    let last = segments.pop().unwrap_or_default();
    let (name, verb) = split_verb(&last);
    let (name, verb) = (name.to_string(), verb.map(str::to_string));
    segments.push(name);
    let verb = verb.as_deref();
    let shaped: Vec<&Template> = TEMPLATES
        .iter()
        .filter(|template| matches(&template.segments, &segments))
        .collect();
    if shaped.is_empty() {
        return Err(not_found());
    }
    let named: Vec<&&Template> = shaped.iter().filter(|t| t.route.verb == verb).collect();
    let Some(template) = named
        .iter()
        .find(|template| template.route.http.method() == *method)
    else {
        return Err(match (verb, named.is_empty()) {
            (Some(verb), true) => {
                let verbs: BTreeSet<&str> = shaped.iter().filter_map(|t| t.route.verb).collect();
                unknown_verb(verb, &verbs)
            }
            (Some(verb), false) => {
                let http = named[0].route.http.method();
                ApiError::Http(Code::NotFound, format!("the method :{verb} takes {http}"))
            }
            (None, _) if named.is_empty() => not_found(),
            (None, _) => ApiError::Http(
                Code::InvalidArgument,
                format!("method {method} is not allowed on {path}"),
            ),
        });
    };
    let values = template
        .segments
        .iter()
        .zip(segments)
        .filter_map(|(segment, value)| variable(segment).map(|name| (name, value)))
        .collect();
    Ok(Found {
        route: template.route,
        values,
    })
}

/// Whether `segments` have the template's shape: its literal segments, and a non-empty value
/// for each variable.
fn matches(template: &[&str], segments: &[String]) -> bool {
    template.len() == segments.len()
        && template
            .iter()
            .zip(segments)
            .all(|(expected, segment)| match variable(expected) {
                Some(_) => !segment.is_empty(),
                None => expected == segment,
            })
}

/// The error for a custom verb this resource lacks.
fn unknown_verb(verb: &str, known: &BTreeSet<&str>) -> ApiError {
    let known = match known.is_empty() {
        true => "no custom methods".to_string(),
        false => format!(":{}", known.iter().copied().collect::<Vec<_>>().join(", :")),
    };
    ApiError::Http(
        Code::NotFound,
        format!("unknown method :{verb}; this resource has {known}"),
    )
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Found {
    type Rejection = ApiError;

    /// The route [`crate::auth::guard`] found for the request.
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Found>().cloned().ok_or_else(|| {
            ApiError::Http(Code::NotFound, format!("Not found: {}", parts.uri.path()))
        })
    }
}

/// What a handler answers: a response, or the error to answer with.
pub type ApiResult = Result<Response, ApiError>;

/// A JSON answer.
pub fn json(value: impl serde::Serialize) -> ApiResult {
    Ok(axum::Json(value).into_response())
}

/// The router of the whole server: every route of the table, each served by [`dispatch`], which
/// runs the handler of the route the gate found; the console; and the errors of paths and
/// methods no route takes. Every request passes [`crate::auth::guard`] first.
pub fn router(services: Services) -> Router {
    let paths: BTreeSet<String> = crate::routes::ROUTES.iter().map(axum_path).collect();
    paths
        .into_iter()
        .fold(crate::console::routes(), |router, path| {
            router.route(&path, any(dispatch))
        })
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            services.clone(),
            crate::auth::guard,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Http(Code::Internal, "Internal error encountered.".into()).into_response()
        }))
        .with_state(services)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::Http(Code::NotFound, format!("Not found: {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::Http(
        Code::InvalidArgument,
        format!("method {method} is not allowed on {}", uri.path()),
    )
}

/// The path axum matches a route on. A verb after a literal last segment (`trials:suggest`,
/// `jobs:watch`) makes that segment a variable, since axum matches whole segments; routes whose
/// paths then coincide share one axum route ([`dispatch`] runs the one the gate found).
fn axum_path(route: &Route) -> String {
    match (route.verb, route.path.rsplit_once('/')) {
        (Some(_), Some((parent, last))) if variable(last).is_none() => {
            format!("{parent}/{{collection_verb}}")
        }
        _ => route.path.to_string(),
    }
}

/// Runs the handler of the request's route, which [`crate::auth::guard`] found and left in the
/// request's extensions. Without one (a method the path does not take, outside `/v1`, which the
/// guard lets through), answers why no route takes the request.
async fn dispatch(State(services): State<Services>, request: Request) -> Response {
    match request.extensions().get::<Found>().map(|found| found.route) {
        Some(route) => (route.handler)(request, services).await,
        None => {
            let path = request.uri().path();
            let error = find(request.method(), path)
                .err()
                .unwrap_or_else(|| ApiError::Http(Code::NotFound, format!("Not found: {path}")));
            error.into_response()
        }
    }
}
