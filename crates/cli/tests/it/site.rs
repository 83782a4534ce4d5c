//! The same-site gate: a web page the user visits cannot drive the server, in any mode. Requests
//! go over raw TCP so every header is exactly what a browser (or a rebinding attacker) would send.

use std::io::Write;

use crate::errors::{connect, response};
use crate::support::{Server, call};

/// Sends one request with `headers` (besides `content-length` and `connection: close`) and
/// returns the status and body.
fn send(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let (mut reader, mut stream) = connect(address);
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(request.as_bytes()).unwrap();
    response(&mut reader)
}

#[test]
fn cross_site_requests_foreign_hosts_and_non_json_bodies_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let address = server.url.trim_start_matches("http://").to_string();
    let port = address.rsplit(':').next().unwrap().to_string();
    let job = r#"{"jobId": "planted", "trainingInput": {"masterConfig": {"containerCommand": ["true"]}}}"#;
    let jobs = "/v1/projects/p/jobs";
    let own = address.as_str();
    let localhost = format!("localhost:{port}");
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(Headers, u16, &str)] = &[
        // A page's "simple request": text/plain, no preflight.
        (
            &[
                ("host", own),
                ("content-type", "text/plain"),
                ("origin", "http://evil.example"),
            ],
            403,
            "cross-origin",
        ),
        (
            &[("host", own), ("content-type", "text/plain")],
            400,
            "application/json",
        ),
        (&[("host", own)], 400, "application/json"),
        (
            &[
                ("host", own),
                ("content-type", "application/json"),
                ("origin", "http://evil.example"),
            ],
            403,
            "cross-origin",
        ),
        (
            &[
                ("host", own),
                ("content-type", "application/json"),
                ("origin", "null"),
            ],
            403,
            "cross-origin",
        ),
        (
            &[
                ("host", own),
                ("content-type", "application/json"),
                ("sec-fetch-site", "cross-site"),
            ],
            403,
            "cross-site",
        ),
        // DNS rebinding: the page's own name, now pointing at loopback.
        (
            &[
                ("host", &format!("rebound.example:{port}")),
                ("content-type", "application/json"),
            ],
            403,
            "does not name this server",
        ),
        (
            &[
                ("host", "127.0.0.1:1"),
                ("content-type", "application/json"),
            ],
            403,
            "does not name this server",
        ),
        (&[("content-type", "application/json")], 403, "no Host"),
    ];
    for (headers, status, fragment) in cases {
        let (got, body) = send(&address, "POST", jobs, headers, job);
        assert_eq!(got, *status, "{headers:?}: {body}");
        assert!(body.contains(fragment), "{headers:?}: {body}");
    }
    // A read through a rebound name is refused too, so the page cannot see replies either.
    let (got, body) = send(
        &address,
        "GET",
        jobs,
        &[("host", &format!("rebound.example:{port}"))],
        "",
    );
    assert_eq!(got, 403, "{body}");
    let (got, _) = send(
        &address,
        "GET",
        "/",
        &[("host", &format!("rebound.example:{port}"))],
        "",
    );
    assert_eq!(got, 403);
    let (_, listed) = call("GET", &server.api("p", "jobs"), None);
    assert!(!listed.to_string().contains("planted"), "{listed}");

    // The server's own origin (its console), under either loopback name, is served.
    let own_origin = format!("http://{own}");
    let (got, body) = send(
        &address,
        "POST",
        jobs,
        &[
            ("host", own),
            ("content-type", "application/json; charset=utf-8"),
            ("origin", &own_origin),
            ("sec-fetch-site", "same-origin"),
        ],
        job,
    );
    assert_eq!(got, 200, "{body}");
    let (got, body) = send(&address, "GET", jobs, &[("host", &localhost)], "");
    assert_eq!(got, 200, "{body}");
}

#[test]
fn a_name_the_administrator_allowed_is_served() {
    let data = tempfile::tempdir().unwrap();
    let (server, _) = Server::start_with_args(
        data.path(),
        &["--insecure-no-auth", "--allow-host", "kiln.internal"],
        &[],
    );
    let address = server.url.trim_start_matches("http://").to_string();
    let (got, body) = send(
        &address,
        "GET",
        "/v1/projects/p/models",
        &[("host", "kiln.internal")],
        "",
    );
    assert_eq!(got, 200, "{body}");
    let (got, _) = send(
        &address,
        "GET",
        "/v1/projects/p/models",
        &[("host", "other.internal")],
        "",
    );
    assert_eq!(got, 403);
}
