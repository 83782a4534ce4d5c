//! The REST client the resource commands share.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use reqwest::Method;
use reqwest::blocking::Client;
use serde_json::Value;

use crate::output::Format;

/// Global flags every command sees.
#[derive(Debug, Clone)]
pub struct Context {
    /// `--project`.
    pub project: String,
    /// `--endpoint`.
    pub endpoint: String,
    /// `--format`, if given.
    pub format: Option<Format>,
    /// The bearer token (`KILN_TOKEN` or the config file), if any.
    pub token: Option<String>,
    /// `--ca-file` (or the config file's), if any: the certificates [`Context::http`] trusts
    /// besides the system's.
    pub ca_file: Option<PathBuf>,
    /// The HTTP client every call goes through.
    pub http: Client,
}

impl Context {
    /// A client for the project's API on the server at `--endpoint`.
    pub fn client(&self) -> Api {
        self.api(format!("projects/{}", self.project))
    }

    /// A client for the server-wide API (`/v1/tokens`, `/v1/whoami`, ...).
    pub fn root(&self) -> Api {
        self.api(String::new())
    }

    fn api(&self, path: String) -> Api {
        Api {
            base: format!("{}/v1/{path}", self.endpoint.trim_end_matches('/'))
                .trim_end_matches('/')
                .to_string(),
            http: self.http.clone(),
            token: self.token.clone(),
        }
    }
}

/// The client of every command: HTTPS (rustls) trusting the system's certificate authorities and
/// those in `ca_file` (a PEM bundle, such as a self-signed server's own certificate).
pub fn http_client(ca_file: Option<&Path>) -> anyhow::Result<Client> {
    let mut builder = Client::builder().timeout(Duration::from_secs(300));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).with_context(|| format!("--ca-file {}", path.display()))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
            format!("--ca-file {}: not a PEM certificate bundle", path.display())
        })?;
        if certificates.is_empty() {
            bail!(
                "--ca-file {}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            );
        }
        builder = builder.tls_certs_merge(certificates);
    }
    builder.build().context("starting the HTTP client")
}

/// Why a request could not be sent: for a server certificate that was refused, what was wrong
/// with it and what to do.
fn send_error(error: reqwest::Error, method: &Method, url: &str) -> anyhow::Error {
    let Some((refusal, reason)) = certificate_refusal(&error) else {
        return anyhow::Error::new(error)
            .context(format!("cannot reach the Kiln server for {method} {url}"));
    };
    let advice = match reason {
        rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature => {
            "no certificate authority this client trusts signed it; pass the authority's \
             certificate (or a self-signed server's own) with --ca-file or KILN_CA_FILE"
        }
        rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. } => {
            "the server's administrator must renew it"
        }
        rustls::CertificateError::NotValidYet
        | rustls::CertificateError::NotValidYetContext { .. } => {
            "check this machine's clock and the server's"
        }
        rustls::CertificateError::NotValidForName
        | rustls::CertificateError::NotValidForNameContext { .. } => {
            "reach the server by a host name or address its certificate lists"
        }
        _ => "the server's administrator must replace it",
    };
    anyhow!("{method} {url}: the server's TLS certificate was refused: {refusal}; {advice}")
}

/// The TLS error in `error`'s chain and its reason, if a certificate was refused. An I/O error
/// does not name the error it wraps as its source, so the chain goes into it.
fn certificate_refusal<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<(&'a rustls::Error, &'a rustls::CertificateError)> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(refusal @ rustls::Error::InvalidCertificate(reason)) =
            error.downcast_ref::<rustls::Error>()
        {
            return Some((refusal, reason));
        }
        next = match error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(wrapped) => Some(wrapped as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    None
}

/// Calls on one part of the API.
pub struct Api {
    base: String,
    http: Client,
    token: Option<String>,
}

impl Api {
    /// Sends `method` to `path` (relative to the base; a path starting with `:` is a method on the
    /// base itself) and returns the JSON answer, or an error carrying the server's message.
    pub fn call(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let url = match path.starts_with(':') {
            true => format!("{}{path}", self.base),
            false => format!("{}/{}", self.base, path.trim_start_matches('/')),
        };
        let mut request = self.http.request(method.clone(), &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .map_err(|error| send_error(error, &method, &url))?;
        let status = response.status();
        let text = response.text().context("reading the server's answer")?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(value);
        }
        let message = match &value["error"] {
            Value::String(message) => message.clone(),
            Value::Object(error) => format!(
                "{} ({})",
                error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                error
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            ),
            _ => value.to_string(),
        };
        let hint = match status.as_u16() {
            401 => " (log in with `kiln auth login` or set KILN_TOKEN)",
            _ => "",
        };
        Err(anyhow!("HTTP {}: {message}{hint}", status.as_u16()))
    }

    /// GET.
    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None)
    }

    /// POST with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(Method::POST, path, Some(body))
    }

    /// DELETE.
    pub fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::DELETE, path, None)
    }

    /// Every item of a paged list, following `nextPageToken`; with `enough`, the pages until
    /// that many items are read.
    pub fn list_all(
        &self,
        path: &str,
        field: &str,
        enough: Option<usize>,
    ) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let separator = if path.contains('?') { '&' } else { '?' };
            let page_path = match &token {
                Some(token) => format!("{path}{separator}pageToken={token}"),
                None => path.to_string(),
            };
            let page = self.get(&page_path)?;
            if let Some(array) = page[field].as_array() {
                items.extend(array.iter().cloned());
            }
            if enough.is_some_and(|enough| items.len() >= enough) {
                return Ok(items);
            }
            match page["nextPageToken"].as_str() {
                Some(next) => token = Some(next.to_string()),
                None => return Ok(items),
            }
        }
    }

    /// Polls an operation until it is done; returns its response or fails with its error.
    pub fn wait(&self, operation: Value) -> anyhow::Result<Value> {
        let mut operation = operation;
        let started = std::time::Instant::now();
        while operation["done"] != Value::Bool(true) {
            if started.elapsed() > Duration::from_secs(600) {
                return Err(anyhow!(
                    "operation {} did not finish in 10 minutes",
                    operation["name"]
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
            let name = operation["name"].as_str().unwrap_or_default();
            let id = kiln_api::names::short(name);
            operation = self.get(&format!("operations/{id}"))?;
        }
        match &operation["error"] {
            Value::Null => Ok(operation["response"].clone()),
            error => Err(anyhow!(
                "operation {} failed: {}",
                operation["name"],
                error["message"].as_str().unwrap_or_default()
            )),
        }
    }
}

/// Percent-encodes a query value.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'*' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
