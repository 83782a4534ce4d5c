//! The same-site gate: what keeps a web page the user visits from driving the server.
//!
//! A browser lets any page send a "simple" cross-origin request (a `text/plain` POST, no
//! preflight) and, through DNS rebinding, even read the reply if the server answers a foreign
//! `Host`. So every request, in every mode, passes three checks before anything else:
//! - `Host` (or the HTTP/2 authority) must name this server: an address it listens on, a loopback
//!   name when it listens on loopback, the machine's host name when it listens on every address,
//!   or a name the administrator allowed (`--allow-host`), and
//!   the port it listens on (any port for an allowed name, which a proxy in front may use);
//! - an `Origin`, when sent, must be this server's own (scheme aside, the same authority as
//!   `Host`), and `Sec-Fetch-Site: cross-site` is refused;
//! - a body sent with POST, PUT or PATCH must be declared `application/json`; only an inference
//!   request of the Open Inference Protocol (`…/v2/…/infer`) may also come as
//!   `application/octet-stream` or untyped, as Triton's and KServe's clients send it: it reads a
//!   prediction and changes nothing, and without the reply a page has gained nothing.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kiln_api::Code;

use crate::error::ApiError;

/// The names and port under which this server may be addressed.
#[derive(Debug, Clone)]
pub struct Site {
    /// The port the server listens on.
    port: u16,
    /// The port a `Host` without one means: 443 over HTTPS, 80 over HTTP.
    default_port: u16,
    /// The address it listens on.
    ip: IpAddr,
    /// Names allowed whatever the port (any case), from `--allow-host`.
    allowed: Vec<String>,
}

impl Site {
    /// The site of a server listening on `address` (over HTTPS when `https`), also answering to
    /// the names in `allowed` (and, listening on every address, to this machine's host name).
    pub fn new(address: SocketAddr, https: bool, allowed: &[String]) -> Self {
        let mut allowed = allowed.to_vec();
        if address.ip().is_unspecified()
            && let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname")
        {
            allowed.push(name.trim().to_string());
        }
        Self {
            port: address.port(),
            default_port: if https { 443 } else { 80 },
            ip: address.ip(),
            allowed,
        }
    }

    /// Whether `authority` (`host[:port]`, as in `Host`) names this server.
    pub fn names_this_server(&self, authority: &str) -> bool {
        let (host, port) = split_authority(authority);
        if self
            .allowed
            .iter()
            .any(|name| name.eq_ignore_ascii_case(host))
        {
            return true;
        }
        if port.unwrap_or(self.default_port) != self.port {
            return false;
        }
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        match literal {
            Some(_) if self.ip.is_unspecified() => true,
            Some(ip) => ip == self.ip || (self.ip.is_loopback() && ip.is_loopback()),
            None => {
                host.eq_ignore_ascii_case("localhost")
                    && (self.ip.is_loopback() || self.ip.is_unspecified())
            }
        }
    }

    /// The reason `request`'s headers are refused, if they are.
    fn refusal(
        &self,
        method: &Method,
        path: &str,
        authority: Option<&str>,
        headers: &HeaderMap,
    ) -> Option<(Code, String)> {
        let Some(authority) = authority else {
            return Some((Code::PermissionDenied, "the request names no Host".into()));
        };
        if !self.names_this_server(authority) {
            return Some((
                Code::PermissionDenied,
                format!(
                    "Host {authority:?} does not name this server (listening on {}:{}; more names with --allow-host)",
                    self.ip, self.port
                ),
            ));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            let own = origin
                .split_once("://")
                .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(authority));
            if !own {
                return Some((
                    Code::PermissionDenied,
                    format!(
                        "cross-origin requests are refused: Origin {origin:?} is not this server ({authority})"
                    ),
                ));
            }
        }
        if headers
            .get("sec-fetch-site")
            .is_some_and(|site| site.as_bytes().eq_ignore_ascii_case(b"cross-site"))
        {
            return Some((
                Code::PermissionDenied,
                "cross-site requests are refused (Sec-Fetch-Site: cross-site)".into(),
            ));
        }
        let sends_body = matches!(*method, Method::POST | Method::PUT | Method::PATCH)
            && (headers.contains_key(header::TRANSFER_ENCODING)
                || headers
                    .get(header::CONTENT_LENGTH)
                    .is_some_and(|length| length.as_bytes() != b"0"));
        let inference = path.contains("/v2/") && path.ends_with("/infer");
        let content_type = headers.get(header::CONTENT_TYPE);
        let untyped_inference = inference
            && content_type.is_none_or(|value| {
                value
                    .to_str()
                    .is_ok_and(|value| value.starts_with("application/octet-stream"))
            });
        if sends_body && !is_json(content_type) && !untyped_inference {
            let given = headers
                .get(header::CONTENT_TYPE)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                .unwrap_or_else(|| "none".into());
            return Some((
                Code::InvalidArgument,
                format!(
                    "a request body must be sent as Content-Type: application/json (got {given})"
                ),
            ));
        }
        None
    }
}

/// `host` and `port` of an authority; an IPv6 literal keeps its brackets.
fn split_authority(authority: &str) -> (&str, Option<u16>) {
    let colon = match authority.rfind(':') {
        Some(colon) if !authority[colon..].contains(']') => colon,
        _ => return (authority, None),
    };
    match authority[colon + 1..].parse() {
        Ok(port) => (&authority[..colon], Some(port)),
        Err(_) => (authority, Some(0)),
    }
}

/// Whether a Content-Type is `application/json`, parameters aside.
fn is_json(value: Option<&header::HeaderValue>) -> bool {
    value
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// The middleware: refuses what [`Site`] does not allow, before any handler or the auth gate.
pub async fn guard(State(site): State<Arc<Site>>, request: Request, next: Next) -> Response {
    let authority = request
        .uri()
        .authority()
        .map(|authority| authority.as_str())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|host| host.to_str().ok())
        });
    match site.refusal(
        request.method(),
        request.uri().path(),
        authority,
        request.headers(),
    ) {
        None => next.run(request).await,
        Some((code, reason)) => ApiError::Http(code, reason).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_name_the_server_by_its_addresses_and_allowed_names() {
        let loopback = Site::new(
            "127.0.0.1:8080".parse().unwrap(),
            false,
            &["kiln.example".into()],
        );
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST:8080",
            "[::1]:8080",
            "kiln.example",
            "kiln.example:443",
        ] {
            assert!(loopback.names_this_server(host), "{host}");
        }
        for host in [
            "attacker.example:8080",
            "127.0.0.1:8081",
            "localhost",
            "10.0.0.1:8080",
            "localhost:x",
            "",
        ] {
            assert!(!loopback.names_this_server(host), "{host}");
        }
        let everywhere = Site::new("0.0.0.0:8080".parse().unwrap(), false, &[]);
        assert!(everywhere.names_this_server("192.0.2.7:8080"));
        assert!(!everywhere.names_this_server("192.0.2.7"));
        let https = Site::new("0.0.0.0:443".parse().unwrap(), true, &[]);
        assert!(https.names_this_server("192.0.2.7"));
        assert!(https.names_this_server("192.0.2.7:443"));
        assert!(!https.names_this_server("192.0.2.7:80"));
        assert!(!everywhere.names_this_server("rebound.example:8080"));
        if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            assert!(everywhere.names_this_server(&format!("{}:8080", name.trim())));
        }
    }
}
